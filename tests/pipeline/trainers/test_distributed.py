"""Two gloo processes on the CPU (ACCELERATE_USE_CPU=1 torchrun), the path multi-GPU runs take:
DDP, and FSDP2 through accelerate with the shipped configs/accelerate/fsdp.yaml
(distributed_stage.py switches accelerate to FSDP on CPU processes)."""

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


def _run(stage: str, out: Path, processes: int, fsdp: bool = False, launcher: bool = False, extra=()) -> None:
    """One stage run; `fsdp` (or `launcher`, for DDP) starts it through distributed_stage.py, which
    also registers the `length` verifier."""
    module = f"pipeline.trainers.{stage}"
    args = ["--config", str(REPO / "configs" / "tiny.yaml"), f"output_dir={out}", *SMALL, *extra]
    if processes == 1:
        cmd = [sys.executable, "-m", module, *args]
    elif fsdp or launcher:
        wrapper = [str(Path(__file__).with_name("distributed_stage.py"))]
        if fsdp:
            wrapper += ["--fsdp", str(REPO / "configs" / "accelerate" / "fsdp.yaml")]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_port", str(_free_port()), *wrapper, module, *args]
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


@pytest.mark.parametrize("name,kind,stage", [("ddp", "MULTI_GPU", None), ("fsdp", "FSDP", None),
                                             ("deepspeed-zero2", "DEEPSPEED", 2), ("deepspeed-zero3", "DEEPSPEED", 3)])
def test_the_shipped_accelerate_configs_load_as_accelerate_reads_them(name, kind, stage):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO / "configs" / "accelerate" / f"{name}.yaml"))
    assert config.distributed_type.name == kind
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_version"] == 2
    if stage is not None:
        assert config.deepspeed_config["zero_stage"] == stage


def _weights(out: Path, stage: str) -> dict:
    from safetensors.torch import load_file

    weights = load_file(str(out / stage / "final" / "model.safetensors"))
    weights.pop("lm_head.weight", None)  # tied to the embedding; an FSDP export writes it out too
    return weights


REWARD_MODEL = ["preference.size=16", "preference.eval_size=4", "reward_model.steps=3", "reward_model.batch_size=16",
                "reward_model.micro_batch_size=4", "reward_model.checkpoint_every=3", "reward_model.eval_every=0"]


@pytest.mark.slow
@pytest.mark.parametrize("stage,extra", [("sft", []), ("reward_model", REWARD_MODEL)])
def test_sft_and_the_reward_model_under_fsdp_match_one_process(tmp_path, stage, extra):
    # Parameters, gradients and optimiser state sharded over two processes (FSDP2, sharded
    # checkpoints), the reward model's scalar head read inside the sharded forward: the same step
    # as one process takes.
    _run(stage, tmp_path / "one", 1, extra=extra)
    _run(stage, tmp_path / "fsdp", 2, fsdp=True, extra=extra)
    a, b = _weights(tmp_path / "one", stage), _weights(tmp_path / "fsdp", stage)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=2e-5, rtol=1e-4)
    checkpoint = tmp_path / "fsdp" / stage / "ckpt-0000003"
    assert (checkpoint / "pytorch_model_fsdp_0").is_dir() and not (checkpoint / "model.safetensors").exists()


@pytest.mark.slow
def test_grpo_under_fsdp_takes_the_step_ddp_takes(tmp_path):
    # Generation through the sharded module (every process steps until all have finished), the
    # loss weighting and the evaluation on every process: with the same samples as DDP (the same
    # per-process seeds), the same weights, which the length reward's signal has moved. A sharded
    # module samples through transformers generate, so DDP's run uses that decoder too.
    extra = ["task.verifier=length", "rollout.decoder=generate"]
    _run("grpo", tmp_path / "ddp", 2, launcher=True, extra=extra)
    _run("grpo", tmp_path / "fsdp", 2, fsdp=True, extra=extra)
    a, b = _weights(tmp_path / "ddp", "grpo"), _weights(tmp_path / "fsdp", "grpo")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
    from pipeline.config import ModelConfig
    from pipeline.models import load_causal_lm, load_tokenizer, resolve_model

    source = resolve_model("tiny", ModelConfig())
    start = load_causal_lm(source, ModelConfig(), load_tokenizer(source), seed=0).state_dict()
    assert all(not torch.equal(start[k], a[k]) for k in a)
    rows = {name: [json.loads(line) for line in (tmp_path / name / "grpo" / "metrics.jsonl").read_text().splitlines()]
            for name in ("ddp", "fsdp")}
    steps = [[r for r in rows[name] if "loss" in r] for name in ("ddp", "fsdp")]
    assert len(steps[0]) == len(steps[1]) == 2 and all(r["grad_norm"] > 0 for r in steps[1])
    for x, y in zip(*steps):
        assert x["reward_mean"] == y["reward_mean"] and x["loss"] == pytest.approx(y["loss"], abs=1e-6)


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("config", ["deepspeed-zero2.yaml", "deepspeed-zero3.yaml"])
def test_sft_under_deepspeed_matches_one_process(tmp_path, config):
    # GPU only (DeepSpeed is not a dependency: `pip install deepspeed`); bench/gpu_check.sh runs it.
    pytest.importorskip("deepspeed")
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    _run("sft", tmp_path / "one", 1)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "configs" / "accelerate" / config),
           "--num_processes", "2", "--main_process_port", str(_free_port()), "-m", "pipeline.trainers.sft",
           "--config", str(REPO / "configs" / "tiny.yaml"), f"output_dir={tmp_path / 'ds'}", *SMALL]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _weights(tmp_path / "one", "sft"), _weights(tmp_path / "ds", "sft")
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), atol=1e-4, rtol=1e-3)
