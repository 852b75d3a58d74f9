"""The campaign's loop logic: per-round configs and the stopping rule."""

import pytest

from errors import ConfigError
from flows.campaign import campaign_flow, next_step, round_config
from pipeline.config import CampaignConfig, RunConfig


def test_round_config_gives_each_round_its_directory_seed_and_stages():
    cfg = RunConfig(output_dir="runs/c", seed=7)
    plan = CampaignConfig(rounds=3, later_stages=["grpo", "evaluate"])
    first, third = round_config(cfg, plan, 1), round_config(cfg, plan, 3)
    assert (first.output_dir, first.seed, first.stages) == ("runs/c/round-1", 7, ["sft", "grpo", "evaluate"])
    assert (third.output_dir, third.seed, third.stages) == ("runs/c/round-3", 9, ["grpo", "evaluate"])
    assert round_config(cfg, CampaignConfig(), 2).stages == cfg.stages
    assert cfg.output_dir == "runs/c"  # the campaign's own config is left alone


@pytest.mark.parametrize("best, metric, index, expected", [
    (None, 0.30, 1, (None, True)),       # round 1: no gain yet, go on
    (0.30, 0.34, 2, (0.04, True)),       # +4 points >= 2 points: go on
    (0.30, 0.31, 2, (0.01, False)),      # +1 point < 2 points: plateau, stop
    (0.30, 0.25, 2, (-0.05, False)),     # worse: stop
    (0.30, 0.40, 3, (0.10, False)),      # K = 3 rounds done
])
def test_next_step_stops_on_k_rounds_or_a_plateau(best, metric, index, expected):
    gain, go_on = next_step(best, metric, CampaignConfig(rounds=3, min_gain=0.02), index)
    assert go_on == expected[1]
    assert gain == pytest.approx(expected[0]) if expected[0] is not None else gain is None


def test_a_campaign_without_evaluation_is_refused_with_the_field():
    with pytest.raises(ConfigError, match="field stages: .*'evaluate'"):
        campaign_flow.fn(RunConfig(stages=["sft", "grpo"]), CampaignConfig())
    with pytest.raises(ConfigError, match="field campaign.later_stages"):
        campaign_flow.fn(RunConfig(), CampaignConfig(later_stages=["grpo"]))


def test_campaign_config_bounds():
    with pytest.raises(ValueError, match="rounds"):
        CampaignConfig(rounds=0)
    with pytest.raises(ValueError, match="min_gain"):
        CampaignConfig(min_gain=-0.1)


@pytest.mark.slow
def test_rounds_that_feed_themselves_generate_their_data_from_the_previous_best(tmp_path, monkeypatch):
    # Round 1: sft -> generate_preferences -> dpo -> evaluate; round 2 starts from round 1's best:
    # rejection_sampling -> sft on its demonstrations -> evaluate. Each round's data and scores stay
    # in its directory. Round 1 scores with a composite of `length` (characters) and `format`, which
    # scores the samples of a prompt differently even when the model knows no arithmetic; round 2
    # with a `judge` (the random tiny preset: any answer it gives is a score in [0, 1]).
    import json
    from pathlib import Path

    from prefect.testing.utilities import prefect_test_harness

    from flows.execution import ExecutionConfig
    from pipeline.config import load_config

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)
    out = tmp_path / "campaign"
    cfg = load_config(repo / "configs" / "tiny.yaml", [
        f"output_dir={out}", "task.sft_size=64", "task.eval_size=8", "sft.steps=25", "sft.lr=3e-3", "sft.batch_size=32",
        "generate_preferences.prompts=16", "generate_preferences.eval_prompts=16",
        "generate_preferences.verifier=length=1,format=0.5", "rejection_sampling.prompts=16",
        "rejection_sampling.verifier=judge", "rejection_sampling.threshold=0",
        "verifiers.options={length: {max_length: 12, buffer: 8, unit: chars}, format: {pattern: '^[0-9]+$'}, "
        "judge: {model: tiny, rubric: 'The answer is right.', min_mass: 0}}",
        "dpo.steps=2", "dpo.batch_size=8", "dpo.micro_batch_size=8", "dpo.nll_coef=1.0",
        "stages=[sft,generate_preferences,dpo,evaluate]"])
    plan = CampaignConfig(rounds=2, later_stages=["rejection_sampling", "sft", "evaluate"])
    with prefect_test_harness(server_startup_timeout=120):
        result = campaign_flow(cfg, plan, ExecutionConfig(concurrency_limit=None, retries=0))
    first, second = (json.loads((out / f"round-{r}" / "round.json").read_text()) for r in (1, 2))
    generated = first["stages"]["generate_preferences"]
    assert generated["preferences"] == str(out / "round-1" / "generate_preferences") and generated["rows"] > 0
    kept = [json.loads(line) for line in (out / "round-1" / "generate_preferences" / "train.samples.jsonl").open()]
    assert set(kept[0]["samples"][0]["parts"]) == {"length", "format"}  # every sample's scores are kept
    assert first["stages"]["dpo"]["model"] == str(out / "round-1" / "dpo" / "final")
    assert set(first["stages"]["evaluate"]) == {"stage", "sft", "dpo"}
    # Round 2 sampled from round 1's best and trained SFT on those samples.
    best = result["rounds"][0]["checkpoint"]
    assert best in (first["stages"]["sft"]["model"], first["stages"]["dpo"]["model"])
    demos = second["stages"]["rejection_sampling"]
    assert demos["demonstrations"] == str(out / "round-2" / "rejection_sampling") and demos["rows"] > 0
    judged = [json.loads(line) for line in (out / "round-2" / "rejection_sampling" / "train.samples.jsonl").open()]
    assert all(line["verifier"] == "judge" and all(0 <= s["score"] <= 1 for s in line["samples"]) for line in judged)
    assert second["model"] == second["stages"]["sft"]["model"] == str(out / "round-2" / "sft" / "final")
    rs_log = (out / "round-2" / "rejection_sampling" / "metrics.jsonl").read_text()
    assert len(result["rounds"]) == 2 and rs_log
