"""The round flow for real: `rlvr run` on Prefect's embedded server, stages as subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_rlvr_run_chains_sft_grpo_evaluate(tmp_path):
    home = tmp_path / "prefect"
    home.mkdir()
    out = tmp_path / "run"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "configs/tiny.yaml", f"output_dir={out}", "task.sft_size=128",
         "task.eval_size=16", "sft.steps=3", "sft.batch_size=32", "grpo.steps=2", "grpo.prompts_per_step=4"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "held-out accuracy after sft:" in proc.stdout and "held-out accuracy after grpo:" in proc.stdout
    result = json.loads((out / "round.json").read_text())
    # The GRPO stage started from the SFT stage's model, and the round's model is GRPO's.
    assert result["sft"]["model"] == str(out / "sft" / "final")
    assert result["model"] == result["grpo"]["model"] == str(out / "grpo" / "final")
    assert (out / "grpo" / "final" / "model.safetensors").is_file()
    assert (out / "grpo" / "metrics.png").is_file()
    assert set(json.loads((out / "eval" / "results.json").read_text())) == {"sft", "grpo"}
