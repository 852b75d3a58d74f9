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
    """A campaign of `rounds` rounds from `init` (the real flow, stages as subprocesses), every round
    promoted (gates.margin=-1), so each starts from the previous round's best; each round's stage
    results and best held-out accuracy."""
    os.environ.setdefault("PREFECT_HOME", str(REPO / "bench" / "out" / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")  # a busy machine
    from flows.campaign import campaign_flow
    from flows.execution import ExecutionConfig
    from pipeline.config import load_config

    cfg = load_config(config, [*overrides, f"campaign.rounds={rounds}", f"campaign.init={init}", "gates.margin=-1"])
    os.chdir(REPO)  # stages run as `python -m pipeline...`
    campaign_flow(config=cfg, execution=ExecutionConfig(concurrency_limit=None, retries=0))
    out = []
    for index in range(1, rounds + 1):
        summary = json.loads((cfg.output_path / f"round-{index}" / "round.json").read_text())
        out.append({"round": index, "accuracy": summary["best"]["metric"], "stages": summary["stages"]})
    return out
