"""Two gloo processes on the CPU (ACCELERATE_USE_CPU=1 torchrun), the path multi-GPU runs take."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[3]
SMALL = ["task.sft_size=64", "task.eval_size=8", "sft.batch_size=16", "sft.micro_batch_size=4",
         "sft.steps=3", "sft.checkpoint_every=3", "grpo.steps=2", "grpo.prompts_per_step=6",
         "grpo.checkpoint_every=2", "grpo.drop_equal_groups=false"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(stage: str, out: Path, processes: int) -> None:
    module = f"pipeline.trainers.{stage}"
    args = ["--config", str(REPO / "configs" / "tiny.yaml"), f"output_dir={out}", *SMALL]
    if processes == 1:
        cmd = [sys.executable, "-m", module, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_port", str(_free_port()), "-m", module, *args]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_sft_on_two_processes_matches_one_process(tmp_path):
    # The global batch is split across processes and each micro-batch loss is weighted by its
    # share of the batch's tokens, so two processes must take exactly the step one process takes.
    from safetensors.torch import load_file

    _run("sft", tmp_path / "one", 1)
    _run("sft", tmp_path / "two", 2)
    a = load_file(str(tmp_path / "one" / "sft" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "sft" / "final" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=2e-5, rtol=1e-4)
    assert (tmp_path / "two" / "sft" / "ckpt-0000003" / "random_states_1.pkl").is_file()


@pytest.mark.slow
def test_grpo_on_two_processes_reports_the_whole_batch(tmp_path):
    _run("grpo", tmp_path / "two", 2)
    rows = [json.loads(line) for line in (tmp_path / "two" / "grpo" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "verdict_ok" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["verdict_ok"] + r["verdict_error"] + r["verdict_timeout"] == 6 * 4 for r in steps)
    assert (tmp_path / "two" / "grpo" / "final" / "model.safetensors").is_file()
