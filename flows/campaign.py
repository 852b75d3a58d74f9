"""The campaign flow: post-training rounds in a loop, unattended, with gated promotion.

    campaign(config):  measure the start model
                       for r in 1..K:  candidate = round(config @ round-r, init=last promoted).best
                                       measure the candidate (the gate stage)
                                       promote it if it passes every gate, else reject it

Round r runs in `<output_dir>/round-<r>` with seed `seed + r - 1` (fresh prompts each round), its
stages (`campaign.later_stages` after the first) and its own overrides
(`campaign.round_overrides`), starting from the last promoted model: a rejected round never
stops the campaign, the next one starts again from the last good model. The gates
(`gates`: held-out metric at least the promoted one's plus a margin, no regression beyond a
tolerance on the guard evaluation sets, the KL from the reference within a bound) are measured
by the `gate` stage and decided by `pipeline.gate.gate_decision`. Decisions go to the model
registry (`<output_dir>/registry`: history.json and `promoted/`, see flows/registry.py), emit
`rlvr.model.promoted` / `rlvr.model.rejected`, and show as a table artifact. A round that a
run-health guard stops is rejected with the guard's reason. A retried campaign keeps the
decisions it made (it re-enters those rounds only to find their results). The loop stops after
`campaign.rounds`, or after `campaign.patience` rounds in a row without a promotion.

(No `from __future__ import annotations`: Prefect reads the pydantic parameter types at runtime.)
"""

import json
import re
from typing import Any

from prefect import flow, get_run_logger
from prefect.events import emit_event
from prefect.runtime import flow_run as current_flow_run

from errors import EXIT_RUN_HEALTH, ConfigError
from flows.artifacts import publish_campaign_artifact
from flows.execution import ExecutionConfig
from flows.launch import StageFailed
from flows.presets import Override, Preset, resolve_config
from flows.registry import ModelRegistry
from flows.round import round_flow, stage_result, write_config
from pipeline.config import RunConfig, apply_overrides, config_from_dict
from pipeline.gate import HELDOUT, gate_decision

__all__ = ["campaign_flow", "round_config", "MODEL_PROMOTED", "MODEL_REJECTED"]

MODEL_PROMOTED = "rlvr.model.promoted"
MODEL_REJECTED = "rlvr.model.rejected"


def round_config(config: RunConfig, index: int) -> RunConfig:
    """The run config of round `index` (1-based): its own directory, seed, stages and overrides."""
    plan = config.campaign
    stages = config.stages if index == 1 or not plan.later_stages else plan.later_stages
    data = config.model_dump(mode="json")
    data.update(output_dir=str(config.output_path / f"round-{index}"), seed=config.seed + index - 1, stages=list(stages))
    overrides = plan.round_overrides.get(index, [])
    try:
        apply_overrides(data, list(overrides))
        return config_from_dict(data, f"campaign.round_overrides[{index}]")
    except ConfigError as e:
        raise ConfigError(str(e) if overrides else f"round {index}: {e}") from None


def _measure(config: RunConfig, candidate: str, reference: str | None, execution: ExecutionConfig) -> dict[str, float]:
    """The gate stage's numbers for `candidate` (a cached stage task, in config's output_dir)."""
    result = stage_result("gate", config, execution, config_file=str(write_config(config)), init=candidate,
                          policies={}, outputs={"reference": reference} if reference else {})
    return result["metrics"]


def _emit(event: str, registry: ModelRegistry, entry: dict[str, Any]) -> None:
    emit_event(event=event, resource={"prefect.resource.id": f"rlvr.registry.{registry.root.resolve()}",
                                      "prefect.resource.name": str(registry.root)},
               payload={k: entry.get(k) for k in ("round", "checkpoint", "version", "metrics", "reasons")})


def _decide_round(index: int, cfg: RunConfig, registry: ModelRegistry, start: str,
                  execution: ExecutionConfig) -> dict[str, Any]:
    """Run round `index` from the last promoted model, measure its best policy, promote or reject
    it. A round stopped by a run-health guard is rejected with the guard's reason (the campaign
    goes on from the last good model); any other failure stops the campaign.

    A round already decided (by an earlier attempt of a retried campaign) keeps its decision. It
    is still entered, with the model it started from: Prefect matches a retried run's subflows
    and tasks to the first attempt's by their order, so the calls must come in the same order
    every time (a finished round comes back from Prefect's results at once)."""
    gates = cfg.gates
    decided = registry.decision(index)
    promoted = registry.current()
    init = decided["init"] if decided else registry.current_checkpoint()
    try:
        result = round_flow.with_options(flow_run_name=f"round-{index}")(config=cfg, init=init, execution=execution)
    except StageFailed as failure:
        if failure.returncode != EXIT_RUN_HEALTH:
            raise
        if decided:
            return decided
        entry = registry.reject(index, None, {}, [str(failure).split(": ", 1)[-1]], init=init)
        _emit(MODEL_REJECTED, registry, entry)
        return entry
    if result["best"] is None:
        raise RuntimeError(f"round {index}: the evaluate stage returned no accuracy ({cfg.output_dir}/round.json)")
    candidate = result["best"]["checkpoint"]
    reference = (start if gates.kl_reference == "start" else init) if gates.kl_max is not None else None
    measured = _measure(cfg, candidate, reference, execution)
    if decided:
        return decided
    passed, reasons = gate_decision(measured, promoted["metrics"], gates)
    if passed:
        entry = registry.promote(index, candidate, measured, init=init)
        _emit(MODEL_PROMOTED, registry, entry)
    else:
        entry = registry.reject(index, candidate, measured, reasons, init=init)
        _emit(MODEL_REJECTED, registry, entry)
    return entry


@flow(name="campaign", log_prints=True)
def campaign_flow(preset: Preset = "tiny", overrides: list[Override] = [],  # noqa: B006 (never mutated)
                  config: RunConfig | None = None, execution: ExecutionConfig = ExecutionConfig()) -> dict[str, Any]:
    """Rounds until K (or `campaign.patience` rounds without a promotion); each round's best model
    is promoted only when it passes the gates. Returns every round's decision and the promoted model.

    Args:
        preset: a shipped config (configs/PRESET.yaml) to start from; its `campaign` and `gates` sections plan the rounds
        overrides: changes on top of it, one `key.sub=value` each (e.g. campaign.rounds=5, gates.margin=0.01)
        config: the full typed config; when given, it replaces the preset (the overrides still apply)
        execution: how the stages run (time limit, retries, concurrency limit, launcher)
    """
    config = resolve_config(preset, overrides, config)
    plan = config.campaign
    rounds = [round_config(config, index) for index in range(1, plan.rounds + 1)]  # every round's config checked first
    for index, cfg in enumerate(rounds[:2], start=1):
        if "evaluate" not in cfg.stages:
            field = "stages" if index == 1 else "campaign.later_stages"
            raise ConfigError(f"field {field}: a campaign picks each round's best checkpoint by held-out "
                              f"accuracy, so its rounds need the 'evaluate' stage (got {cfg.stages})")
    logger = get_run_logger()
    registry = ModelRegistry(config.output_path / "registry")
    start = plan.init or config.model.name
    start_cfg = config.model_copy(update={"output_dir": str(config.output_path / "start")})
    measured = _measure(start_cfg, start, None, execution)  # every attempt: see _decide_round
    if registry.current() is None:
        registry.start(start, measured)
    print(f"start: {start} at {100 * registry.current()['metrics'][HELDOUT]:.1f}% held-out")

    decisions: list[dict[str, Any]] = []
    misses = 0
    for index, cfg in enumerate(rounds, start=1):
        entry = _decide_round(index, cfg, registry, start, execution)
        decisions.append(entry)
        misses = 0 if entry["event"] == "promoted" else misses + 1
        verdict = f"promoted as {entry['version']}" if entry["event"] == "promoted" else \
            "rejected: " + "; ".join(entry["reasons"])
        held_out = entry["metrics"].get(HELDOUT)
        print(f"round {index}: " + (f"{100 * held_out:.1f}% held-out, " if held_out is not None else "") + verdict)
        if plan.patience is not None and misses >= plan.patience and index < plan.rounds:
            logger.info("stopping after round %d: %d rounds in a row without a promotion", index, misses)
            break

    key = "campaign-" + re.sub(r"[^a-z0-9]+", "-", str(config.output_path.resolve()).lower()).strip("-")
    publish_campaign_artifact(registry.history(), key=key[:200])
    promoted = registry.current() or {}
    summary = {"rounds": decisions, "promoted": {**promoted, "source": promoted.get("checkpoint"),
                                                 "checkpoint": registry.current_checkpoint()},
               "registry": str(registry.root), "flow_run": current_flow_run.get_id()}
    (config.output_path / "campaign.json").write_text(json.dumps(summary, indent=1))
    return summary
