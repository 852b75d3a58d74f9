"""The round flow: the configured stages in order, each a cached, retried subprocess task.

    round(config, init):  e.g. sft -> reward_model -> ppo | dpo -> grpo -> evaluate

Each stage hands its policy ("model") to the next; its other products (a reward model) go to the
later stages that consume them, as the stage table (`pipeline.stages.STAGES`) declares. A stage's
result is persisted under a cache key of (the config sections it reads, the fingerprint of every
checkpoint it starts from), so re-running a failed or crashed round skips the finished stages,
and the stage that was interrupted resumes from its own last checkpoint. Results go to Prefect's
result storage, `PREFECT_RESULTS_LOCAL_STORAGE_PATH`: give every worker the same shared path
(`rlvr serve` does). At the end the round emits `rlvr.round.completed` with its held-out metric
and best checkpoint.

(No `from __future__ import annotations`: Prefect reads the pydantic parameter types at runtime.)
"""

import hashlib
import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.concurrency.sync import concurrency
from prefect.events import emit_event
from prefect.runtime import flow_run as current_flow_run

from errors import EXIT_RUN_HEALTH, PipelineError
from flows.artifacts import publish_guard_artifact, publish_stage_artifacts
from flows.execution import ExecutionConfig
from flows.launch import StageFailed, quiet_expected_failures, run_stage_subprocess, stage_command
from flows.presets import Override, Preset, resolve_config
from pipeline.config import RunConfig
from pipeline.stages import STAGES, stage_spec

__all__ = ["round_flow", "stage_cache_key", "stage_result", "best_of_round", "write_config", "ROUND_COMPLETED"]

ROUND_COMPLETED = "rlvr.round.completed"
quiet_expected_failures()
# Lease of a concurrency slot, renewed while the stage runs; a crashed holder frees it after this.
_LEASE_S = 60


def _fingerprint(path: str | None) -> str:
    """Name, size and mtime of every file of a checkpoint directory: a retrained or replaced
    input gives another key. A name that is not a directory (a preset, a hub id) is itself."""
    if not path or not Path(path).is_dir():
        return str(path)
    entries = sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                     for p in Path(path).rglob("*") if p.is_file())
    return hashlib.sha256(json.dumps([str(Path(path).resolve()), entries]).encode()).hexdigest()


# Settings that change how a run is watched or ordered, never what a stage computes.
_NOT_COMPUTED = {"stages", "campaign", "guards", "report_to"}


def stage_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """(stage, its config, its input checkpoints). The config sections of *other* stages (`grpo`
    for SFT), unless it reads them, and the stage list are left out: changing GRPO's learning rate
    must not redo SFT."""
    stage: str = parameters["stage"]
    config: RunConfig = parameters["config"]
    spec = stage_spec(stage)
    others = {s.section for name, s in STAGES.items() if name != stage and s.section} - {spec.section, *spec.reads}
    dump = config.model_dump(mode="json", exclude={*_NOT_COMPUTED, *others})
    outputs = parameters.get("outputs", {})
    inputs = {"init": parameters.get("init"), **(parameters.get("policies", {}) if spec.evaluates else {}),
              **{k: outputs[k] for k in spec.consumes if k in outputs}}
    blob = json.dumps({"stage": stage, "config": dump,
                       "inputs": {k: _fingerprint(v) for k, v in sorted(inputs.items())}}, sort_keys=True)
    return f"rlvr-{stage}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}"


def _retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    """Retry crashes and failures, but not a user's mistake (it would fail the same way again)."""
    error = state.result(raise_on_failure=False)
    if isinstance(error, PipelineError):
        return False
    return not (isinstance(error, StageFailed) and not error.retryable)


@task(persist_result=True, cache_key_fn=stage_cache_key)
def run_stage(stage: str, config: RunConfig, config_file: str, init: str | None, policies: dict[str, str],
              outputs: dict[str, str], execution: ExecutionConfig) -> dict[str, Any]:
    """Launch one stage, holding a slot of the accelerator's concurrency limit, then publish its artifacts."""
    spec = stage_spec(stage)
    logger = get_run_logger()
    cmd = stage_command(spec, config_file, init, policies, outputs, execution.launcher)
    logger.info("launching %s", " ".join(cmd))
    slot = (concurrency(execution.concurrency_limit, occupy=1, lease_duration=_LEASE_S)
            if execution.concurrency_limit else nullcontext())
    try:
        with slot:
            result = run_stage_subprocess(cmd, execution.stage_timeout_s, log_line=logger.info)
    except StageFailed as failure:
        if failure.returncode == EXIT_RUN_HEALTH:  # the UI shows why the stage stopped, beside its metrics
            publish_guard_artifact(stage, config.output_path / spec.directory, str(failure))
        raise
    publish_stage_artifacts(stage, config.output_path / spec.directory, result)
    return result


def stage_result(stage: str, config: RunConfig, execution: ExecutionConfig,
                  **kwargs: Any) -> dict[str, Any]:
    options = dict(name=stage, task_run_name=stage, retries=execution.retries,
                   retry_delay_seconds=execution.retry_delay_s, retry_condition_fn=_retry_condition)
    kwargs["execution"] = execution
    state = run_stage.with_options(**options)(stage, config, return_state=True, **kwargs)
    result = state.result()
    if state.name == "Cached" and "model" in result and not Path(result["model"]).exists():
        # The checkpoint a cached result points to was deleted: run the stage again.
        get_run_logger().warning("%s: cached result points to a missing checkpoint; running the stage again", stage)
        result = run_stage.with_options(**options, refresh_cache=True)(stage, config, **kwargs)
    return result


def best_of_round(evaluation: dict[str, Any] | None, policies: dict[str, str]) -> dict[str, Any] | None:
    """The evaluated policy with the highest held-out accuracy (ties go to the later stage)."""
    best = None
    for name, r in (evaluation or {}).items():
        if isinstance(r, dict) and r.get("accuracy") is not None and name in policies:
            if best is None or r["accuracy"] >= best["metric"]:
                best = {"stage": name, "checkpoint": policies[name], "metric": r["accuracy"], "n": r.get("n")}
    return best


def write_config(config: RunConfig) -> Path:
    """The config every stage process of a run reads: <output_dir>/config.yaml."""
    out = config.output_path
    out.mkdir(parents=True, exist_ok=True)
    config_file = out / "config.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return config_file


@flow(name="round", persist_result=True)
def round_flow(preset: Preset = "tiny", overrides: list[Override] = [],  # noqa: B006 (never mutated)
               config: RunConfig | None = None, init: str | None = None,
               execution: ExecutionConfig = ExecutionConfig()) -> dict[str, Any]:
    """One round of the configured stages, in order. Returns each stage's result, the round's
    final policy and its best policy by held-out accuracy.

    Args:
        preset: a shipped config (configs/PRESET.yaml) to start from
        overrides: changes on top of it, one `key.sub=value` each, as on the command line (e.g. grpo.lr=1e-4)
        config: the full typed config; when given, it replaces the preset (the overrides still apply)
        init: the model the round's first stage starts from; default: the config's model.name
        execution: how the stages run (time limit, retries, concurrency limit, launcher)
    """
    config = resolve_config(preset, overrides, config)  # a bad override stops the run here, not retried
    specs = [(name, stage_spec(name)) for name in config.stages]  # an unknown stage fails before any runs
    logger = get_run_logger()
    out = config.output_path
    config_file = write_config(config)

    results: dict[str, Any] = {}
    start = init or config.model.name
    policy = init
    policies: dict[str, str] = {}  # stage -> the policy it produced, in order
    outputs: dict[str, str] = {}  # other products (e.g. "reward_model") for later stages
    for name, spec in specs:
        result = stage_result(name, config, execution, config_file=str(config_file), init=policy,
                               policies=dict(policies) or {"init": start}, outputs=dict(outputs))
        results[name] = result
        if "model" in spec.produces and result.get("model"):
            policy = policies[name] = result["model"]
        outputs.update({k: result[k] for k in spec.produces if k != "model" and result.get(k)})
        if spec.evaluates:
            for model_name, r in result.items():
                if isinstance(r, dict) and "accuracy" in r:
                    logger.info("held-out accuracy after %s: %.1f%% (n=%s)", model_name, 100 * r["accuracy"], r["n"])

    best = best_of_round(results.get("evaluate"), policies or {"init": start})
    summary = {"stages": results, "model": policy or start, "best": best, "output_dir": str(out),
               "flow_run": current_flow_run.get_id()}
    (out / "round.json").write_text(json.dumps(summary, indent=1))
    emit_event(
        event=ROUND_COMPLETED,
        resource={"prefect.resource.id": f"rlvr.run.{out.resolve()}", "prefect.resource.name": str(out)},
        payload={"metric": "heldout_accuracy", "value": best and best["metric"],
                 "checkpoint": best and best["checkpoint"], "best_stage": best and best["stage"],
                 "model": summary["model"], "output_dir": str(out)},
    )
    return summary
