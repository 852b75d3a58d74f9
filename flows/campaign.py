"""The campaign flow: post-training rounds in a loop, unattended.

    campaign(config, campaign):  for r in 1..K: best = round(config @ round-r, init=best); stop on plateau

Round r runs in `<output_dir>/round-<r>` with seed `seed + r - 1` (fresh prompts each round),
starts from round r-1's best checkpoint by held-out accuracy, and is a subflow of its own in the
UI. The loop stops after `campaign.rounds`, or when a round improves on the best accuracy so far
by less than `campaign.min_gain`. A table artifact lists the rounds.

(No `from __future__ import annotations`: Prefect reads the pydantic parameter types at runtime.)
"""

import json
import re
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as current_flow_run

from errors import ConfigError
from flows.artifacts import publish_campaign_artifact
from flows.execution import ExecutionConfig
from flows.round import round_flow
from pipeline.config import CampaignConfig, RunConfig

__all__ = ["campaign_flow", "round_config", "next_step"]


def round_config(config: RunConfig, campaign: CampaignConfig, index: int) -> RunConfig:
    """The run config of round `index` (1-based): its own directory, seed and stages."""
    stages = config.stages if index == 1 or not campaign.later_stages else campaign.later_stages
    return config.model_copy(update={"output_dir": str(config.output_path / f"round-{index}"),
                                     "seed": config.seed + index - 1, "stages": list(stages)})


def next_step(best: float | None, metric: float, campaign: CampaignConfig, index: int) -> tuple[float | None, bool]:
    """(gain of this round over the best so far, whether to go on to another round)."""
    gain = None if best is None else metric - best
    go_on = index < campaign.rounds and (gain is None or gain >= campaign.min_gain)
    return gain, go_on


@flow(name="campaign", log_prints=True)
def campaign_flow(config: RunConfig, campaign: CampaignConfig = CampaignConfig(),
                  execution: ExecutionConfig = ExecutionConfig()) -> dict[str, Any]:
    """Rounds until K or a plateau; returns every round's best and the campaign's best checkpoint."""
    for index in (1, 2):
        stages = round_config(config, campaign, index).stages
        if "evaluate" not in stages:
            field = "stages" if index == 1 else "campaign.later_stages"
            raise ConfigError(f"field {field}: a campaign picks each round's best checkpoint by held-out "
                              f"accuracy, so its rounds need the 'evaluate' stage (got {stages})")
    logger = get_run_logger()
    rounds: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    init = campaign.init
    for index in range(1, campaign.rounds + 1):
        cfg = round_config(config, campaign, index)
        this_round = round_flow.with_options(flow_run_name=f"round-{index}")
        result = this_round(cfg, init, execution)
        if result["best"] is None:
            raise RuntimeError(f"round {index}: the evaluate stage returned no accuracy ({cfg.output_dir}/round.json)")
        metric = result["best"]["metric"]
        gain, go_on = next_step(best and best["metric"], metric, campaign, index)
        rounds.append({"round": index, "best_stage": result["best"]["stage"], "metric": metric, "gain": gain,
                       "checkpoint": result["best"]["checkpoint"], "output_dir": cfg.output_dir,
                       "flow_run": result.get("flow_run")})
        if best is None or metric > best["metric"]:
            best = {**result["best"], "round": index}
        print(f"round {index}: best {result['best']['stage']} at {100 * metric:.1f}% held-out"
              + ("" if gain is None else f" (gain {100 * gain:+.1f} points)"))
        init = result["best"]["checkpoint"]  # the next round starts from this round's best
        if not go_on:
            if index < campaign.rounds:
                logger.info("stopping after round %d: gain %.4f < min_gain %.4f", index, gain, campaign.min_gain)
            break

    key = "campaign-" + re.sub(r"[^a-z0-9]+", "-", str(config.output_path.resolve()).lower()).strip("-")
    publish_campaign_artifact(rounds, key=key[:200])
    summary = {"rounds": rounds, "best": best, "flow_run": current_flow_run.get_id()}
    (config.output_path / "campaign.json").write_text(json.dumps(summary, indent=1))
    return summary
