"""What the benchmarks of rounds share: the SFT model each arm starts from, and campaigns run on a
private Prefect server."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def sft_model(config: str, seed: int, out: Path) -> str:
    """The SFT policy of `config` for `seed` (trained once; reused when its final directory exists)."""
    from pipeline.config import load_config
    from pipeline.trainers.sft import train_sft

    final = out / "sft" / "final"
    if not (final / "model.safetensors").is_file():
        train_sft(load_config(config, [f"seed={seed}", f"output_dir={out}"]))
    return str(final)


def run_campaign(config: str, overrides: list[str], rounds: int, init: str) -> list[dict[str, Any]]:
    """A campaign of `rounds` rounds from `init` (the real flow, stages as subprocesses); each round's
    stage results and best accuracy."""
    os.environ.setdefault("PREFECT_HOME", str(REPO / "bench" / "out" / "prefect"))
    from flows.campaign import campaign_flow
    from flows.execution import ExecutionConfig
    from pipeline.config import CampaignConfig, load_config

    cfg = load_config(config, overrides)
    os.chdir(REPO)  # stages run as `python -m pipeline...`
    result = campaign_flow(cfg, CampaignConfig(rounds=rounds, init=init),
                           ExecutionConfig(concurrency_limit=None, retries=0))
    out = []
    for r in result["rounds"]:
        summary = json.loads((Path(r["output_dir"]) / "round.json").read_text())
        out.append({"round": r["round"], "accuracy": r["metric"], "stages": summary["stages"]})
    return out
