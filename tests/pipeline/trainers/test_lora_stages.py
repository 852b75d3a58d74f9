"""Every policy stage trained with LoRA adapters: checkpoints hold the adapters, `final/` is the
merged model, equal to the starting model plus the saved adapter's update (only adapters moved),
and a SIGKILLed LoRA GRPO run resumes exactly."""

import importlib
import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pipeline.config import LoRAConfig
from pipeline.metrics import read_metrics
from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
from verifiers import OK, Verdict

REPO = Path(__file__).resolve().parents[3]
# peft 0.21 loading an adapter asks transformers 5 a deprecated question (check_final does)
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def with_lora(cfg, **stage_changes):
    """`cfg` with rank-4 adapters and, per stage section, the given changes."""
    update = {"model": cfg.model.model_copy(update={"lora": LoRAConfig(rank=4, alpha=8)})}
    for section, changes in stage_changes.items():
        update[section] = getattr(cfg, section).model_copy(update=changes)
    return cfg.model_copy(update=update)


def _start(cfg):
    source = resolve_model("tiny", cfg.model)
    return load_causal_lm(source, cfg.model, load_tokenizer(source), seed=cfg.seed)


def check_final(cfg, final: Path) -> None:
    """final/ loads as a plain model, equal to the start plus the saved adapter's update (so nothing
    but the adapters moved), and differs from the start."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert (final / "adapter" / "adapter_config.json").is_file()
    saved = load_file(str(final / "model.safetensors"))
    assert not any("lora" in k for k in saved)
    rebuilt = PeftModel.from_pretrained(_start(cfg), str(final / "adapter")).merge_and_unload().state_dict()
    for name, tensor in saved.items():
        torch.testing.assert_close(tensor, rebuilt[name], atol=1e-6, rtol=0)
    plain = AutoModelForCausalLM.from_pretrained(final)
    start = _start(cfg)
    assert not torch.equal(plain.model.layers[0].self_attn.q_proj.weight, start.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(plain.model.embed_tokens.weight, start.model.embed_tokens.weight)  # no adapter there


class LengthVerifier:
    """Reward: the completion's length, so every group of an untrained model carries a signal."""

    name = "char_length"

    def verify(self, completions, references):
        return [Verdict(len(c) / 10, OK) for c in completions]


def _length_plugin(monkeypatch) -> None:
    entry = importlib.metadata.EntryPoint(name="char_length", value=f"{__name__}:LengthVerifier", group="rlvr.verifiers")
    sys.modules.setdefault(__name__, sys.modules[LengthVerifier.__module__])
    real = importlib.metadata.entry_points

    def entry_points(**kwargs):  # other groups (peft's imports ask for some) as installed
        return [entry] if kwargs.get("group") == "rlvr.verifiers" else real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_grpo_checkpoints_the_adapters_and_exports_the_merged_model(tiny_cfg, monkeypatch):
    from pipeline.trainers.grpo import train_grpo

    _length_plugin(monkeypatch)
    cfg = with_lora(tiny_cfg, grpo={"beta": 0.1, "lr": 1e-2}, task={"verifier": "char_length"})
    result = train_grpo(cfg)
    ckpt = sorted((cfg.output_path / "grpo").glob("ckpt-*"))[-1]
    saved = load_file(str(ckpt / "model.safetensors"))
    assert saved and all(".lora_A." in k or ".lora_B." in k for k in saved)  # the adapters, not the base
    check_final(cfg, Path(result["model"]))
    rows = [r for r in read_metrics(cfg.output_path / "grpo" / "metrics.jsonl") if "verdict_ok" in r]
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # adapters start at zero: policy == reference
    assert rows[-1]["kl"] > 0  # the adapters-off reference stays the base while the policy moves


def test_sft_trains_adapters(tiny_cfg):
    from pipeline.trainers.sft import train_sft

    cfg = with_lora(tiny_cfg, sft={"lr": 1e-2})
    check_final(cfg, Path(train_sft(cfg)["model"]))


@pytest.mark.parametrize("stage", ["dpo", "kto"])
def test_preference_stages_train_adapters(tiny_cfg, stage, small_preference_run):
    train = getattr(importlib.import_module(f"pipeline.trainers.{stage}"), f"train_{stage}")
    cfg = small_preference_run(with_lora(tiny_cfg), stage, lr=1e-2)
    result = train(cfg)
    check_final(cfg, Path(result["model"]))
    assert result["eval_accuracy"] is not None


def test_ppo_trains_adapters_on_the_policy_and_a_full_critic(tiny_cfg):
    from pipeline.trainers.ppo import train_ppo
    from pipeline.trainers.reward_model import train_reward_model

    cfg = with_lora(tiny_cfg, preference={"size": 8, "eval_size": 4},
                    reward_model={"steps": 2, "batch_size": 16, "micro_batch_size": 16, "eval_every": 0},
                    ppo={"steps": 2, "prompts_per_step": 8, "epochs": 1, "minibatch_size": 4, "micro_batch_size": 4,
                         "lr": 1e-2, "critic_init": "policy"})
    reward = train_reward_model(cfg)  # the scorer trains every weight, LoRA or not
    assert not (Path(reward["reward_model"]) / "adapter").exists()
    result = train_ppo(cfg)
    check_final(cfg, Path(result["model"]))
    assert not (Path(result["value_model"]) / "adapter").exists()


def _grpo_cmd(out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "pipeline.trainers.grpo", "--config", str(REPO / "configs" / "tiny.yaml"),
            f"output_dir={out}", "task.sft_size=0", "task.eval_size=16", f"grpo.steps={steps}",
            "grpo.prompts_per_step=8", "grpo.checkpoint_every=3", "grpo.eval_every=0", "grpo.drop_equal_groups=false",
            "grpo.beta=0.05", "grpo.lr=1e-2", "model.lora.rank=4", "model.lora.dropout=0.1"]


@pytest.mark.slow
def test_a_sigkilled_lora_grpo_run_resumes_exactly(tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_grpo_cmd(killed, 9), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not (killed / "grpo" / "ckpt-0000003").exists():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "grpo" / "final").exists()

    resumed = subprocess.run(_grpo_cmd(killed, 9), cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    step = int(resumed.stderr.split("grpo: resumed from step ")[1].split()[0])
    assert step in (3, 6)
    steps = [r["step"] for r in read_metrics(killed / "grpo" / "metrics.jsonl") if "verdict_ok" in r]
    assert steps == list(range(1, 10)), steps

    straight = tmp_path / "straight"
    subprocess.run(_grpo_cmd(straight, 9), cwd=REPO, check=True, capture_output=True)
    for name in ("model.safetensors", "adapter/adapter_model.safetensors"):
        a = load_file(str(killed / "grpo" / "final" / name))
        b = load_file(str(straight / "grpo" / "final" / name))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
