import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pipeline.metrics import read_metrics
from pipeline.trainers.grpo import masked_group_advantages, train_grpo
from verifiers import ERROR, OK, Verdict

REPO = Path(__file__).resolve().parents[3]


def test_masked_samples_neither_get_advantages_nor_shift_their_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    valid = torch.tensor([True, True, False, True, True, True, True, False])
    adv, keep = masked_group_advantages(rewards, valid, 4, "std", drop_equal=True)
    # group 1, valid [1, 0, 1]: mean 2/3, unbiased std 0.5774 -> [+0.5774, -1.1547, 0, +0.5774]
    torch.testing.assert_close(adv[:4], torch.tensor([0.57735, -1.15470, 0.0, 0.57735]), atol=1e-4, rtol=0)
    # group 2, valid [1, 1, 0]: mean 2/3 -> same numbers, the masked 0 is not a zero reward
    torch.testing.assert_close(adv[4:], torch.tensor([0.57735, 0.57735, -1.15470, 0.0]), atol=1e-4, rtol=0)
    assert keep.tolist() == [True, True, False, True, True, True, True, False]


def test_groups_without_signal_are_dropped_only_when_asked():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0])
    valid = torch.tensor([True, True, True, False])  # group 2 has one valid member: no baseline
    adv, keep = masked_group_advantages(rewards, valid, 2, "none", drop_equal=True)
    assert keep.tolist() == [False, False, False, False] and adv.abs().sum() == 0
    adv, keep = masked_group_advantages(rewards, valid, 2, "none", drop_equal=False)
    assert keep.tolist() == [True, True, False, False]


class HalfBrokenVerifier:
    """Reward 1 for even positions, an ERROR verdict for odd ones."""

    name = "half_broken"

    def verify(self, completions, references):
        return [Verdict(1.0, OK) if i % 2 == 0 else Verdict(0.0, ERROR, "sandbox down") for i in range(len(completions))]


def test_a_verifier_error_masks_the_sample_instead_of_scoring_zero(tiny_cfg, monkeypatch):
    # If errors were scored 0, every group would hold rewards [1, 0, 1, 0]: a learning signal, so
    # the weights would move. Masked, each group's valid rewards are [1, 1]: no signal, no update.
    entry = importlib.metadata.EntryPoint(
        name="half_broken", value=f"{__name__}:HalfBrokenVerifier", group="rlvr.verifiers"
    )
    sys.modules.setdefault(__name__, sys.modules[HalfBrokenVerifier.__module__])
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [entry] if group == "rlvr.verifiers" else [])
    cfg = tiny_cfg.model_copy(update={"task": tiny_cfg.task.model_copy(update={"verifier": "half_broken"})})
    result = train_grpo(cfg)
    rows = [r for r in read_metrics(cfg.output_path / "grpo" / "metrics.jsonl") if "verdict_ok" in r]
    assert len(rows) == cfg.grpo.steps
    n = cfg.grpo.prompts_per_step * cfg.grpo.group_size
    assert all(r["verdict_error"] == n // 2 and r["verdict_ok"] == n // 2 for r in rows)
    assert all(r["reward_mean"] == 1.0 and r["groups_kept"] == 0 for r in rows)
    # the same counts per verifier, for the flow's verifier table
    assert all(r["verifier/half_broken/error"] == n // 2 and r["verifier/half_broken/ok"] == n // 2
               and r["verifier/half_broken/reward_mean"] == 1.0 and r["verifier/half_broken/latency_s"] >= 0 for r in rows)
    from safetensors.torch import load_file

    from pipeline.models import load_causal_lm, load_tokenizer, resolve_model

    source = resolve_model("tiny", cfg.model)
    start = load_causal_lm(source, cfg.model, load_tokenizer(source), seed=cfg.seed).state_dict()
    end = load_file(str(Path(result["model"]) / "model.safetensors"))
    assert all(torch.equal(start[k], end[k]) for k in end)


def test_grpo_learns_signal_moves_weights(tiny_cfg):
    result = train_grpo(tiny_cfg.model_copy(update={"grpo": tiny_cfg.grpo.model_copy(update={"drop_equal_groups": False})}))
    rows = [r for r in read_metrics(tiny_cfg.output_path / "grpo" / "metrics.jsonl") if "verdict_ok" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["ratio_mean"] == pytest.approx(1.0, abs=0.05) for r in rows if "ratio_mean" in r)
    assert result["final_accuracy"] is not None


def _grpo_cmd(out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "pipeline.trainers.grpo", "--config", str(REPO / "configs" / "tiny.yaml"),
            f"output_dir={out}", "task.sft_size=0", "task.eval_size=16", f"grpo.steps={steps}",
            "grpo.prompts_per_step=8", "grpo.checkpoint_every=3", "grpo.eval_every=0", "grpo.drop_equal_groups=false"]


@pytest.mark.slow
def test_sigkilled_run_resumes_at_the_saved_step_and_matches_an_uninterrupted_run(tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_grpo_cmd(killed, 12), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "grpo" / "ckpt-0000006").exists():
        assert proc.poll() is None, "the run ended before its second checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    metrics = killed / "grpo" / "metrics.jsonl"
    assert not (killed / "grpo" / "final").exists()

    resumed = subprocess.run(_grpo_cmd(killed, 12), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    step = int(resumed.stderr.split("grpo: resumed from step ")[1].split()[0])
    assert step >= 6 and step % 3 == 0
    steps = [r["step"] for r in read_metrics(metrics) if "verdict_ok" in r]
    assert steps == list(range(1, 13)), steps

    straight = tmp_path / "straight"
    subprocess.run(_grpo_cmd(straight, 12), check=True, capture_output=True)
    from safetensors.torch import load_file

    a = load_file(str(killed / "grpo" / "final" / "model.safetensors"))
    b = load_file(str(straight / "grpo" / "final" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=0)
