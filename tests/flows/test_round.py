"""The round flow: cache keys, the best checkpoint of a round, and `rlvr run` for real (Prefect's
embedded server, stages as subprocesses, a second run served from the cache)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from errors import ConfigError
from flows.round import best_of_round, round_flow, stage_cache_key
from pipeline.config import RunConfig
from pipeline.stages import STAGES, StageSpec

REPO = Path(__file__).resolve().parents[2]


def _key(stage: str, config: RunConfig, init=None, policies=None, outputs=None) -> str:
    return stage_cache_key(None, {"stage": stage, "config": config, "init": init, "policies": policies or {},
                                  "outputs": outputs or {}})


def test_cache_key_covers_the_stage_config_and_nothing_of_other_stages():
    base = RunConfig()
    other_grpo = base.model_copy(update={"grpo": base.grpo.model_copy(update={"lr": 1e-5})})
    other_sft = base.model_copy(update={"sft": base.sft.model_copy(update={"steps": 7})})
    assert _key("sft", base) == _key("sft", other_grpo)  # GRPO's learning rate does not redo SFT
    assert _key("sft", base) != _key("sft", other_sft)
    assert _key("grpo", base) != _key("grpo", other_grpo)
    assert _key("grpo", base) == _key("grpo", base.model_copy(update={"stages": ["grpo"]}))
    assert _key("grpo", base) != _key("grpo", base.model_copy(update={"seed": 1}))  # shared settings count
    assert _key("sft", base) != _key("grpo", base)


def test_cache_key_includes_other_stages_sections_a_stage_declares_it_reads(monkeypatch):
    base = RunConfig()
    other_sft = base.model_copy(update={"sft": base.sft.model_copy(update={"lr": 0.5})})
    assert _key("grpo", base) == _key("grpo", other_sft)
    monkeypatch.setitem(STAGES, "grpo", StageSpec("pipeline.trainers.grpo", "grpo", "grpo", reads=("sft",)))
    assert _key("grpo", base) != _key("grpo", other_sft)


def test_cache_key_counts_the_eval_section_for_stages_that_evaluate_as_they_train():
    base = RunConfig()
    other_eval = base.model_copy(update={"eval": base.eval.model_copy(update={"max_new_tokens": 3})})
    assert _key("grpo", base) != _key("grpo", other_eval)
    assert _key("evaluate", base) != _key("evaluate", other_eval)
    assert _key("dpo", base) == _key("dpo", other_eval)  # DPO never generates


def test_cache_key_follows_only_the_artefacts_a_stage_consumes(tmp_path):
    rm = tmp_path / "rm"
    rm.mkdir()
    (rm / "model.safetensors").write_bytes(b"a")
    cfg = RunConfig()
    assert _key("ppo", cfg, outputs={"reward_model": str(rm)}) != _key("ppo", cfg)
    assert _key("grpo", cfg, outputs={"reward_model": str(rm)}) == _key("grpo", cfg)


def test_cache_key_follows_the_input_checkpoint_contents(tmp_path):
    ckpt = tmp_path / "sft" / "final"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"a")
    cfg = RunConfig()
    first = _key("grpo", cfg, init=str(ckpt))
    assert first == _key("grpo", cfg, init=str(ckpt))
    assert first != _key("grpo", cfg, init=None)
    (ckpt / "model.safetensors").write_bytes(b"bb")  # the input was retrained: another key
    assert first != _key("grpo", cfg, init=str(ckpt))
    assert _key("evaluate", cfg, policies={"sft": str(ckpt)}) != _key("evaluate", cfg, policies={"sft": "tiny"})


def test_best_of_round_by_heldout_accuracy():
    policies = {"sft": "r/sft/final", "grpo": "r/grpo/final"}
    evaluation = {"stage": "evaluate", "sft": {"accuracy": 0.3, "n": 10}, "grpo": {"accuracy": 0.5, "n": 10}}
    assert best_of_round(evaluation, policies) == {"stage": "grpo", "checkpoint": "r/grpo/final", "metric": 0.5, "n": 10}
    # ties go to the later stage; an evaluated name that is no policy of the round is ignored
    tie = {"sft": {"accuracy": 0.5, "n": 10}, "grpo": {"accuracy": 0.5, "n": 10}, "base": {"accuracy": 0.9, "n": 10}}
    assert best_of_round(tie, policies)["stage"] == "grpo"
    assert best_of_round(None, policies) is None


@pytest.mark.slow
def _embedded_prefect(tmp_path):
    """(environment for `rlvr run` on a private embedded Prefect server, the run's output dir)."""
    home = tmp_path / "prefect"
    home.mkdir()
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    return env, tmp_path / "run"


def test_rlvr_run_chains_sft_grpo_evaluate_then_serves_the_rerun_from_cache(tmp_path):
    env, out = _embedded_prefect(tmp_path)
    cmd = [sys.executable, "-m", "flows.cli", "run", "configs/tiny.yaml", f"output_dir={out}", "task.sft_size=128",
           "task.eval_size=16", "sft.steps=3", "sft.batch_size=32", "grpo.steps=2", "grpo.prompts_per_step=4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "held-out accuracy after sft:" in proc.stdout and "held-out accuracy after grpo:" in proc.stdout
    result = json.loads((out / "round.json").read_text())
    # The GRPO stage started from the SFT stage's model, and the round's model is GRPO's.
    assert result["stages"]["sft"]["model"] == str(out / "sft" / "final")
    assert result["model"] == result["stages"]["grpo"]["model"] == str(out / "grpo" / "final")
    assert result["best"]["stage"] in ("sft", "grpo")
    assert (out / "grpo" / "final" / "model.safetensors").is_file()
    assert (out / "grpo" / "metrics.png").is_file()
    assert set(json.loads((out / "eval" / "results.json").read_text())) == {"sft", "grpo"}

    weights = (out / "grpo" / "final" / "model.safetensors").stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("Finished in state Cached") == 3, again.stderr[-3000:]
    assert (out / "grpo" / "final" / "model.safetensors").stat().st_mtime_ns == weights


def test_unknown_stage_fails_before_any_stage_runs(tmp_path, monkeypatch):
    # A config validated while the table had the stage, run after it lost it: an error naming it,
    # before anything runs.
    cfg = RunConfig(output_dir=str(tmp_path / "run"), stages=["sft", "grpo", "evaluate"])
    monkeypatch.setattr("pipeline.stages.STAGES", {k: v for k, v in STAGES.items() if k != "grpo"})
    with pytest.raises(ConfigError, match=r"field stages.1: unknown stage 'grpo'"):
        round_flow.fn(config=cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_rlvr_run_chains_the_rlhf_stages_and_dpo(tmp_path):
    # sft -> reward_model -> ppo -> evaluate through the stage table: the reward model stage hands
    # on no policy, PPO gets the reward model as an input; then the dpo alternative.
    env, out = _embedded_prefect(tmp_path)
    small = [f"output_dir={out}", "task.sft_size=64", "task.eval_size=8", "sft.steps=2", "sft.batch_size=16",
             "preference.size=64", "preference.eval_size=16", "reward_model.steps=2", "reward_model.batch_size=16",
             "ppo.steps=2", "ppo.prompts_per_step=8", "ppo.minibatch_size=8", "ppo.epochs=1", "dpo.steps=2",
             "dpo.batch_size=8", "dpo.micro_batch_size=8"]
    cmd = [sys.executable, "-m", "flows.cli", "run", "configs/rlhf-tiny.yaml", *small]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "round.json").read_text())
    assert result["stages"]["reward_model"]["reward_model"] == str(out / "reward_model" / "final")
    assert "model" not in result["stages"]["reward_model"]
    assert result["model"] == result["stages"]["ppo"]["model"] == str(out / "ppo" / "final")
    assert set(json.loads((out / "eval" / "results.json").read_text())) == {"sft", "ppo"}

    dpo = subprocess.run(cmd + ["stages=[sft,dpo,evaluate]"], capture_output=True, text=True, cwd=REPO, env=env,
                         timeout=600)
    assert dpo.returncode == 0, dpo.stderr[-3000:]
    result = json.loads((out / "round.json").read_text())
    assert result["model"] == str(out / "dpo" / "final")
    assert "Cached" in dpo.stderr  # the SFT stage is the same as above


@pytest.fixture(scope="module")
def prefect_harness():
    """A private Prefect server for the tests that run the round flow in this process."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.slow
def test_a_stage_added_through_the_table_alone_runs_in_a_round(tmp_path, monkeypatch, prefect_harness):
    # A stage from outside the project: its module and one row in the table. The round launches
    # it between SFT and evaluation, hands it SFT's policy, evaluates its policy and ends with it.
    from flows.execution import ExecutionConfig
    from pipeline.config import load_config
    from tests.flows.noisy_copy_stage import SPEC

    monkeypatch.chdir(REPO)  # the stage runs as `python -m tests.flows.noisy_copy_stage`
    monkeypatch.setitem(STAGES, "noisy_copy", SPEC)
    out = tmp_path / "run"
    cfg = load_config(REPO / "configs" / "tiny.yaml", [
        f"output_dir={out}", "task.sft_size=64", "task.eval_size=8", "sft.steps=2", "sft.batch_size=16",
        "stages=[sft,noisy_copy,evaluate]"])
    result = round_flow(config=cfg, execution=ExecutionConfig(concurrency_limit=None, retries=0))
    stage = result["stages"]["noisy_copy"]
    assert stage["stage"] == "noisy_copy" and stage["model"] == str(out / "noisy_copy" / "final")
    assert stage["saw_inputs"] == []  # the round produced no reward model to pass on
    assert result["model"] == stage["model"]
    assert set(result["stages"]["evaluate"]) == {"stage", "sft", "noisy_copy"}
    assert set(json.loads((out / "eval" / "results.json").read_text())) == {"sft", "noisy_copy"}


@pytest.mark.slow
@pytest.mark.parametrize("failure, attempts", [("user", 1), ("guard", 1), ("crash", 3)])
def test_the_flow_retries_a_crash_but_never_a_user_error_or_a_tripped_guard(tmp_path, monkeypatch, prefect_harness,
                                                                            failure, attempts):
    from flows.execution import ExecutionConfig
    from flows.launch import StageFailed
    from tests.flows.failing_stage import SPEC

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("FAILURE", failure)
    monkeypatch.setitem(STAGES, "failing", SPEC)
    cfg = RunConfig(output_dir=str(tmp_path / "run"), stages=["failing"])
    with pytest.raises(StageFailed) as info:
        round_flow(config=cfg, execution=ExecutionConfig(concurrency_limit=None, retries=2, retry_delay_s=0))
    assert (tmp_path / "run" / "attempts").read_text().count("attempt") == attempts
    assert info.value.retryable == (failure == "crash")
