import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from errors import RunHealthError
from pipeline.metrics import read_metrics
from pipeline.trainers.grpo import train_grpo
from verifiers import ERROR, OK, Verdict

REPO = Path(__file__).resolve().parents[3]


class HalfBrokenVerifier:
    """Reward 1 for even positions, an ERROR verdict for odd ones."""

    name = "half_broken"

    def verify(self, completions, references):
        return [Verdict(1.0, OK) if i % 2 == 0 else Verdict(0.0, ERROR, "sandbox down") for i in range(len(completions))]


def test_a_verifier_error_masks_the_sample_instead_of_scoring_zero(tiny_cfg, fake_entry_points):
    # If errors were scored 0, every group would hold rewards [1, 0, 1, 0]: a learning signal, so
    # the weights would move. Masked, each group's valid rewards are [1, 1]: no signal, no update.
    _plugin(fake_entry_points, "half_broken", HalfBrokenVerifier)
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

    start, end = _start_weights(cfg), load_file(str(Path(result["model"]) / "model.safetensors"))
    assert all(torch.equal(start[k], end[k]) for k in end)


def _plugin(install, name: str, cls) -> None:
    """Register `cls` as the verifier `name`, as a third-party entry point would."""
    sys.modules.setdefault(__name__, sys.modules[cls.__module__])
    install("rlvr.verifiers", importlib.metadata.EntryPoint(name=name, value=f"{__name__}:{cls.__name__}",
                                                            group="rlvr.verifiers"))


def _start_weights(cfg):
    from pipeline.models import load_causal_lm, load_tokenizer, resolve_model

    source = resolve_model("tiny", cfg.model)
    return load_causal_lm(source, cfg.model, load_tokenizer(source), seed=cfg.seed).state_dict()


class LengthVerifier:
    """Reward: the completion's length in characters, so every group of an untrained model carries
    a signal (its math answers would all score 0)."""

    name = "char_length"

    def verify(self, completions, references):
        return [Verdict(len(c) / 10, OK) for c in completions]


def test_grpo_learns_signal_moves_weights(tiny_cfg, fake_entry_points):
    from safetensors.torch import load_file

    _plugin(fake_entry_points, "char_length", LengthVerifier)
    tiny_cfg = tiny_cfg.model_copy(update={"task": tiny_cfg.task.model_copy(update={"verifier": "char_length"})})
    result = train_grpo(tiny_cfg)
    rows = [r for r in read_metrics(tiny_cfg.output_path / "grpo" / "metrics.jsonl") if "verdict_ok" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    # Every step trained on samples whose first ratio is 1 (the sampler's log-probs are pi_old).
    assert all(r["groups_kept"] > 0 for r in rows)
    assert all(r["ratio_mean"] == pytest.approx(1.0, abs=0.05) for r in rows)
    assert all(r["grad_norm"] > 0 for r in rows)
    start, end = _start_weights(tiny_cfg), load_file(str(Path(result["model"]) / "model.safetensors"))
    moved = [k for k in end if not torch.equal(start[k], end[k])]
    assert len(moved) == len(end), sorted(set(end) - set(moved))
    assert result["final_accuracy"] is not None


class AlwaysErrorVerifier:
    """Every verdict an error, as from a sandbox that is down."""

    name = "always_error"

    def verify(self, completions, references):
        return [Verdict(0.0, ERROR, "sandbox unreachable: connection refused") for _ in completions]


def test_a_verifier_that_always_errors_stops_the_run_within_the_guards_window(tiny_cfg, fake_entry_points):
    _plugin(fake_entry_points, "always_error", AlwaysErrorVerifier)
    cfg = tiny_cfg.model_copy(update={
        "task": tiny_cfg.task.model_copy(update={"verifier": "always_error"}),
        "grpo": tiny_cfg.grpo.model_copy(update={"steps": 50}),
        "guards": tiny_cfg.guards.model_copy(update={"window": 5}),
    })
    with pytest.raises(RunHealthError) as info:
        train_grpo(cfg)
    message = str(info.value)
    assert "100% of the verdicts of the last 5 steps were masked" in message
    assert "verifier 'always_error'" in message and "sandbox unreachable: connection refused" in message
    assert "guards.masked_share" in message and "\n" not in message
    rows = [r for r in read_metrics(cfg.output_path / "grpo" / "metrics.jsonl") if "verdict_ok" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]  # stopped at the first full window
    assert not (cfg.output_path / "grpo" / "final").exists()


def test_the_guards_stay_silent_when_switched_off(tiny_cfg, fake_entry_points):
    _plugin(fake_entry_points, "always_error", AlwaysErrorVerifier)
    cfg = tiny_cfg.model_copy(update={
        "task": tiny_cfg.task.model_copy(update={"verifier": "always_error"}),
        "guards": tiny_cfg.guards.model_copy(update={"window": 2, "masked_share": None, "no_signal_share": None}),
    })
    assert train_grpo(cfg)["steps"] == cfg.grpo.steps


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


class OddOperandsVary:
    """Sees the prompt: a prompt whose first operand is even scores 1 whatever the completion (a
    group without a signal); an odd one scores the completion's length (a signal)."""

    name = "odd_operands_vary"
    wants_context = True

    def verify(self, completions, references, contexts):
        return [Verdict(1.0 if int(x.prompt.split("+")[0].split("-")[0]) % 2 == 0 else len(c) / 10, OK)
                for c, x in zip(completions, contexts)]


def test_dynamic_sampling_refills_every_step_to_full_batches_and_logs_the_cost(tiny_cfg, fake_entry_points):
    _plugin(fake_entry_points, "odd_operands_vary", OddOperandsVary)
    cfg = tiny_cfg.model_copy(update={
        "task": tiny_cfg.task.model_copy(update={"verifier": "odd_operands_vary"}),
        "grpo": tiny_cfg.grpo.model_copy(update={"dynamic_sampling": True, "max_extra_prompts": 8.0}),
    })
    train_grpo(cfg)
    rows = [r for r in read_metrics(cfg.output_path / "grpo" / "metrics.jsonl") if "verdict_ok" in r]
    p, g = cfg.grpo.prompts_per_step, cfg.grpo.group_size
    assert len(rows) == cfg.grpo.steps
    for r in rows:  # about half the prompts have a signal: every step refilled to 8 groups and trained on them
        assert r["dynamic/groups_trained"] == r["groups_kept"] == p and r["dynamic/groups_short"] == 0
        assert r["dynamic/prompts_sampled"] > p and r["dynamic/refills"] >= 1
        assert r["dynamic/extra_generation"] == (r["dynamic/prompts_sampled"] - p) / p
        assert r["verdict_ok"] == r["dynamic/prompts_sampled"] * g  # every sampled group is scored and logged
        assert r["time_generate_s"] > 0


def test_a_failing_component_of_a_composite_masks_its_samples_even_at_weight_zero(tiny_cfg, fake_entry_points):
    _plugin(fake_entry_points, "half_broken", HalfBrokenVerifier)
    cfg = tiny_cfg.model_copy(update={
        "task": tiny_cfg.task.model_copy(update={"verifier": "shaped"}),
        "verifiers": tiny_cfg.verifiers.model_copy(update={
            "composites": {"shaped": {"length": 1.0, "half_broken": 0.0}},
            "options": {"length": {"max_length": 12, "buffer": 8, "unit": "chars"}}}),
        "eval": tiny_cfg.eval.model_copy(update={"verifier": "math"}),
    })
    train_grpo(cfg)
    rows = [r for r in read_metrics(cfg.output_path / "grpo" / "metrics.jsonl") if "verdict_ok" in r]
    n = cfg.grpo.prompts_per_step * cfg.grpo.group_size
    for r in rows:
        # half_broken errs on every other sample: those samples are masked, though its weight is 0
        assert r["verdict_error"] == n // 2 and r["verifier/shaped/error"] == n // 2
        assert r["verifier/shaped/half_broken/error"] == n // 2 and r["verifier/shaped/half_broken/ok"] == n // 2
        assert r["verifier/shaped/length/ok"] == n and r["verifier/shaped/length/reward_mean"] <= 0
    png = cfg.output_path / "grpo" / "metrics.png"
    assert png.is_file()


def test_the_truncation_guard_stops_a_run_whose_completions_all_run_out(tiny_cfg):
    # An untrained tiny model almost never says its end token within 6 tokens.
    cfg = tiny_cfg.model_copy(update={"grpo": tiny_cfg.grpo.model_copy(update={"steps": 20}),
                                      "guards": tiny_cfg.guards.model_copy(update={"window": 3, "truncated_share": 0.5,
                                                                                    "no_signal_share": None})})
    with pytest.raises(RunHealthError, match=r"grpo stopped by the run-health guard: \d+% of the completions ran out"):
        train_grpo(cfg)
    assert len([r for r in read_metrics(cfg.output_path / "grpo" / "metrics.jsonl") if "verdict_ok" in r]) == 3


def test_the_kl_guard_stops_a_policy_that_drifts_from_its_reference(tiny_cfg, fake_entry_points):
    _plugin(fake_entry_points, "char_length", LengthVerifier)
    cfg = tiny_cfg.model_copy(update={
        "task": tiny_cfg.task.model_copy(update={"verifier": "char_length"}),
        "grpo": tiny_cfg.grpo.model_copy(update={"steps": 20, "beta": 0.04, "lr": 1e-2}),
        "guards": tiny_cfg.guards.model_copy(update={"window": 3, "kl_max": 1e-6}),
    })
    with pytest.raises(RunHealthError, match=r"KL to the reference averaged .* above guards.kl_max=1e-06"):
        train_grpo(cfg)


@pytest.mark.parametrize("changes", [{"mixed_precision": "bf16"}, {"shared_prefix": False}],
                         ids=["bf16-autocast", "one-sequence-per-completion"])
def test_grpo_trains_under_bf16_autocast_and_without_a_shared_prefix(tiny_cfg, fake_entry_points, request, changes):
    # The sampler and the training forward run in the same precision and layout, so the first
    # ratio against the sampler's log-probs is 1 (bf16 rounding allowed for).
    from safetensors.torch import load_file

    from accelerate.state import AcceleratorState

    _plugin(fake_entry_points, "char_length", LengthVerifier)
    AcceleratorState._reset_state(reset_partial_state=True)  # one precision per process, as a stage has
    request.addfinalizer(lambda: AcceleratorState._reset_state(reset_partial_state=True))
    grpo = tiny_cfg.grpo.model_copy(update={k: v for k, v in changes.items() if k == "shared_prefix"})
    cfg = tiny_cfg.model_copy(update={"task": tiny_cfg.task.model_copy(update={"verifier": "char_length"}), "grpo": grpo,
                                      **{k: v for k, v in changes.items() if k == "mixed_precision"}})
    result = train_grpo(cfg)
    rows = [r for r in read_metrics(cfg.output_path / "grpo" / "metrics.jsonl") if "verdict_ok" in r]
    assert all(r["ratio_mean"] == pytest.approx(1.0, abs=0.05) and r["grad_norm"] > 0 for r in rows)
    end = load_file(str(Path(result["model"]) / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in end.values())  # autocast leaves the weights in float32
