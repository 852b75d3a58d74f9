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
