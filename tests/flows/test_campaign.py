"""The campaign: per-round configs, refusals before any round runs, presets, and (slow) a
3-round campaign whose regressing round is rejected by the gate."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from errors import ConfigError
from flows.campaign import campaign_flow, round_config
from flows.presets import PRESETS, resolve_config
from pipeline.config import RunConfig, load_config

REPO = Path(__file__).resolve().parents[2]


def test_round_config_gives_each_round_its_directory_seed_stages_and_overrides():
    cfg = load_config(None, ["output_dir=runs/c", "seed=7", "campaign.later_stages=[grpo,evaluate]",
                             "campaign.round_overrides={2: ['grpo.lr=0.5', 'grpo.steps=3']}"])
    first, second, third = (round_config(cfg, i) for i in (1, 2, 3))
    assert (first.output_dir, first.seed, first.stages) == ("runs/c/round-1", 7, ["sft", "grpo", "evaluate"])
    assert (third.output_dir, third.seed, third.stages) == ("runs/c/round-3", 9, ["grpo", "evaluate"])
    assert (second.grpo.lr, second.grpo.steps) == (0.5, 3) and third.grpo.lr == cfg.grpo.lr
    assert cfg.output_dir == "runs/c"  # the campaign's own config is left alone


def test_a_bad_round_override_names_its_round_and_field():
    cfg = load_config(None, ["campaign.round_overrides={2: ['grpo.clip_low=3']}"])
    with pytest.raises(ConfigError, match=r"campaign.round_overrides\[2\]: field grpo.clip_low"):
        round_config(cfg, 2)


def test_a_campaign_without_evaluation_is_refused_with_the_field():
    with pytest.raises(ConfigError, match="field stages: .*'evaluate'"):
        campaign_flow.fn(config=RunConfig(stages=["sft", "grpo"]))
    with pytest.raises(ConfigError, match="field campaign.later_stages"):
        campaign_flow.fn(config=load_config(None, ["campaign.later_stages=[grpo]"]))


def test_a_bad_round_override_stops_the_campaign_before_any_round():
    with pytest.raises(ConfigError, match=r"round_overrides\[3\]: field grpo.lrr"):
        campaign_flow.fn(preset="tiny", overrides=["campaign.round_overrides={3: ['grpo.lrr=1']}"])


def test_campaign_config_bounds():
    with pytest.raises(ConfigError, match="campaign.rounds"):
        load_config(None, ["campaign.rounds=0"])
    with pytest.raises(ConfigError, match="campaign.patience"):
        load_config(None, ["campaign.patience=0"])


def test_presets_are_the_shipped_configs_and_overrides_apply_on_top():
    assert {"tiny", "rlhf-tiny", "gsm8k-smollm2"} <= set(PRESETS)
    cfg = resolve_config("tiny", ["grpo.lr=0.01", "seed=4"])
    assert (cfg.grpo.lr, cfg.seed, cfg.model.name) == (0.01, 4, "tiny")
    assert resolve_config(None, ["seed=5"], RunConfig(seed=1)).seed == 5  # a full config replaces the preset
    with pytest.raises(ConfigError, match=r"preset 'tiny': field grpo.clip_low: Input should be less than or equal to 1"):
        resolve_config("tiny", ["grpo.clip_low=3"])
    with pytest.raises(ConfigError, match=r"field preset: unknown preset 'huge'"):
        resolve_config("huge", [])


@pytest.mark.slow
def test_a_regressing_round_is_rejected_the_next_starts_from_the_promoted_model_and_rollback_restores(tmp_path):
    # Round 1 learns (SFT), round 2 is made to regress (a learning rate 50x too high), round 3
    # learns again. Everything through the command line, on Prefect's embedded server.
    import os

    home = tmp_path / "prefect"
    home.mkdir()
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    out = tmp_path / "campaign"
    cmd = [sys.executable, "-m", "flows.cli", "campaign", "configs/tiny.yaml", f"output_dir={out}",
           "task.eval_size=50", "sft.steps=250", "sft.checkpoint_every=250", "stages=[sft,evaluate]",
           "campaign.rounds=3", "campaign.round_overrides={2: ['sft.lr=0.05', 'sft.steps=60'], 3: ['sft.steps=60']}",
           "gates.guard_sets=[{kind: sft_likelihood, limit: 64}]", "gates.margin=-0.02"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.loads((out / "registry" / "history.json").read_text())
    assert [(e["event"], e.get("round")) for e in history] == [
        ("start", None), ("promoted", 1), ("rejected", 2), ("promoted", 3)], history
    rejected = history[2]
    assert any(r.startswith("held-out accuracy") for r in rejected["reasons"]), rejected
    assert any(r.startswith("sft_likelihood") for r in rejected["reasons"]), rejected
    # Rounds 2 and 3 both started from round 1's promoted copy, not from round 2's model.
    for index in (2, 3):
        assert f"--init {out}/registry/models/v1-round-1" in proc.stderr.split(f"round-{index}/config.yaml")[1][:200]
    assert os.readlink(out / "registry" / "promoted") == "models/v2-round-3"
    assert "promoted model:" in proc.stdout and "v2-round-3" in proc.stdout
    assert "round 2: " in proc.stderr and "rejected: held-out accuracy" in proc.stderr

    back = subprocess.run([sys.executable, "-m", "flows.cli", "rollback", str(out)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)
    assert back.returncode == 0, back.stderr
    assert "-> v1-round-1 (round 1; was v2-round-3)" in back.stdout
    assert os.readlink(out / "registry" / "promoted") == "models/v1-round-1"
    again = subprocess.run([sys.executable, "-m", "flows.cli", "rollback", str(out)], capture_output=True, text=True,
                           cwd=REPO, env=env, timeout=120)
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "first promotion" in again.stderr


@pytest.mark.slow
def test_rounds_that_feed_themselves_generate_their_data_from_the_promoted_model(tmp_path, monkeypatch):
    # Round 1: sft -> generate_preferences -> dpo -> evaluate; round 2 starts from round 1's best,
    # promoted by the gate (a margin of -1 promotes any round): rejection_sampling -> sft on its
    # demonstrations -> evaluate. Each round's data and scores stay
    # in its directory. Round 1 scores with a composite of `length` (characters) and `format`, which
    # scores the samples of a prompt differently even when the model knows no arithmetic; round 2
    # with a `judge` (the random tiny preset: any answer it gives is a score in [0, 1]).
    import json
    from pathlib import Path

    from prefect.testing.utilities import prefect_test_harness

    from flows.execution import ExecutionConfig

    monkeypatch.chdir(REPO)
    out = tmp_path / "campaign"
    cfg = load_config(REPO / "configs" / "tiny.yaml", [
        f"output_dir={out}", "task.sft_size=64", "task.eval_size=8", "sft.steps=25", "sft.lr=3e-3", "sft.batch_size=32",
        "generate_preferences.prompts=16", "generate_preferences.eval_prompts=16",
        "generate_preferences.verifier=length=1,format=0.5", "rejection_sampling.prompts=16",
        "rejection_sampling.verifier=judge", "rejection_sampling.threshold=0",
        "verifiers.options={length: {max_length: 12, buffer: 8, unit: chars}, format: {pattern: '^[0-9]+$'}, "
        "judge: {model: tiny, rubric: 'The answer is right.', min_mass: 0}}",
        "dpo.steps=2", "dpo.batch_size=8", "dpo.micro_batch_size=8", "dpo.nll_coef=1.0",
        "stages=[sft,generate_preferences,dpo,evaluate]", "campaign.rounds=2",
        "campaign.later_stages=[rejection_sampling,sft,evaluate]", "gates.margin=-1"])
    with prefect_test_harness(server_startup_timeout=120):
        result = campaign_flow(config=cfg, execution=ExecutionConfig(concurrency_limit=None, retries=0))
    first, second = (json.loads((out / f"round-{r}" / "round.json").read_text()) for r in (1, 2))
    generated = first["stages"]["generate_preferences"]
    assert generated["preferences"] == str(out / "round-1" / "generate_preferences") and generated["rows"] > 0
    kept = [json.loads(line) for line in (out / "round-1" / "generate_preferences" / "train.samples.jsonl").open()]
    assert set(kept[0]["samples"][0]["parts"]) == {"length", "format"}  # every sample's scores are kept
    assert first["stages"]["dpo"]["model"] == str(out / "round-1" / "dpo" / "final")
    assert set(first["stages"]["evaluate"]) == {"stage", "sft", "dpo"}
    # Round 2 sampled from round 1's best (its promoted copy) and trained SFT on those samples.
    promoted, decided = result["rounds"]
    assert (promoted["event"], decided["event"]) == ("promoted", "promoted")
    assert promoted["checkpoint"] in (first["stages"]["sft"]["model"], first["stages"]["dpo"]["model"])
    assert decided["init"] == str((out / "registry" / "models" / promoted["version"]).resolve())
    demos = second["stages"]["rejection_sampling"]
    assert demos["demonstrations"] == str(out / "round-2" / "rejection_sampling") and demos["rows"] > 0
    judged = [json.loads(line) for line in (out / "round-2" / "rejection_sampling" / "train.samples.jsonl").open()]
    assert all(line["verifier"] == "judge" and all(0 <= s["score"] <= 1 for s in line["samples"]) for line in judged)
    assert second["model"] == second["stages"]["sft"]["model"] == str(out / "round-2" / "sft" / "final")
    rs_log = (out / "round-2" / "rejection_sampling" / "metrics.jsonl").read_text()
    assert len(result["rounds"]) == 2 and rs_log
