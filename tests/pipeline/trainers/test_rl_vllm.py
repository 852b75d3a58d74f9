"""GRPO and PPO with a vLLM engine: the trainer recomputes pi_old, weights tokens against the sampler,
logs the mismatch, pushes its weights after every step and proves they arrived. The server engine
runs here (vLLM in its virtualenv); the colocated one from the vLLM virtualenv
(tests/test_vllm_venv.py)."""

import sys
from pathlib import Path

import pytest
import torch

from errors import RunHealthError
from pipeline.config import TinyModelConfig, VLLMRolloutConfig, VLLMServerRolloutConfig
from pipeline.metrics import read_metrics
from pipeline.trainers.grpo import train_grpo
from tests.conftest import VLLM_TEST_OPTIONS
from verifiers import OK, Verdict

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


class LengthVerifier:
    """Reward: the completion's length, so an untrained model's groups carry a signal."""

    name = "length"

    def verify(self, completions, references):
        return [Verdict(len(c) / 10, OK) for c in completions]


@pytest.fixture(params=["vllm", "vllm_server"])
def vllm_run(request, tiny_cfg, monkeypatch):
    """The small GRPO run of the trainer tests on the 2-head tiny model, sampled by a vLLM engine,
    scored by `LengthVerifier`."""
    from verifiers import registry

    if request.param == "vllm":
        request.getfixturevalue("vllm_in_process")
        rollout = VLLMRolloutConfig(**VLLM_TEST_OPTIONS, max_new_tokens=tiny_cfg.rollout.max_new_tokens)
    else:
        python = request.getfixturevalue("vllm_server_python")
        rollout = VLLMServerRolloutConfig(**VLLM_TEST_OPTIONS, python=python, max_new_tokens=tiny_cfg.rollout.max_new_tokens)
    sys.modules.setdefault(__name__, sys.modules[LengthVerifier.__module__])
    monkeypatch.setitem(registry._BUILTINS, "length", f"{__name__}:LengthVerifier")
    model = tiny_cfg.model.model_copy(update={"tiny": TinyModelConfig(num_heads=2)})
    task = tiny_cfg.task.model_copy(update={"verifier": "length"})
    return tiny_cfg.model_copy(update={"model": model, "task": task, "rollout": rollout})


def test_grpo_with_a_vllm_engine_corrects_logs_the_mismatch_and_proves_each_sync(vllm_run):
    from safetensors.torch import load_file

    result = train_grpo(vllm_run)
    rows = [r for r in read_metrics(vllm_run.output_path / "grpo" / "metrics.jsonl") if "verdict_ok" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        # Same weights, same fp32 numbers: the trainer and the sampler agree to noise.
        assert 0 <= r["mismatch_kl"] < 1e-6 and r["mismatch_abs"] < 1e-4
        assert r["is_clipped_fraction"] == 0 and r["is_weight_mean"] == pytest.approx(1.0, abs=1e-4)
        assert r["sync_probe_diff"] < 1e-4 and r["time_sync_s"] > 0
    from pipeline.models import load_causal_lm, load_tokenizer, resolve_model

    source = resolve_model("tiny", vllm_run.model)
    start = load_causal_lm(source, vllm_run.model, load_tokenizer(source), seed=vllm_run.seed).state_dict()
    end = load_file(str(Path(result["model"]) / "model.safetensors"))
    assert all(not torch.equal(start[k], end[k]) for k in end)


def test_a_grpo_run_whose_weights_never_reach_the_engine_stops(vllm_run, monkeypatch):
    # A sync that silently does nothing (the failure users lost weeks to) stops the run with the
    # run-health exit code as soon as the policy has drifted past the tolerance (the first step
    # here is a warm-up step at a tenth of the learning rate, which may stay below it).
    from pipeline import rollout

    real = rollout.sync_weights
    pushed = []

    def first_only(engine, model):  # the start-up push arrives, none after it
        if not pushed:
            pushed.append(True)
            real(engine, model)

    monkeypatch.setattr(rollout, "sync_weights", first_only)
    with pytest.raises(RunHealthError, match="weights are not the trainer's after weight sync [234]:"):
        train_grpo(vllm_run)


def test_ppo_with_a_vllm_engine_recomputes_pi_old_and_logs_the_mismatch(vllm_run):
    # PPO on the length reward (no reward model: the critic starts from the policy), several
    # epochs per batch: pi_old is the trainer's own forward before the update.
    from pipeline.trainers.ppo import train_ppo

    cfg = vllm_run.model_copy(update={"ppo": vllm_run.ppo.model_copy(update={
        "verifier": "length", "critic_init": "policy", "steps": 2, "prompts_per_step": 8, "epochs": 2,
        "minibatch_size": 4, "micro_batch_size": 4, "checkpoint_every": 2})})
    result = train_ppo(cfg)
    rows = [r for r in read_metrics(cfg.output_path / "ppo" / "metrics.jsonl") if "score_mean" in r]
    assert result["steps"] == 2 and len(rows) == 2
    for r in rows:
        assert 0 <= r["mismatch_kl"] < 1e-6 and r["mismatch_abs"] < 1e-4 and r["is_clipped_fraction"] == 0
        assert r["sync_probe_diff"] < 1e-4
