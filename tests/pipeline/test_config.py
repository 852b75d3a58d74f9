from pathlib import Path

import pytest

from errors import ConfigError
from pipeline.config import RunConfig, apply_overrides, config_hash, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_parses(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)


def test_there_are_shipped_configs():
    assert any(p.name == "tiny.yaml" for p in CONFIGS)


def test_overrides_reach_nested_fields_and_parse_yaml_values():
    cfg = load_config(None, ["grpo.beta=0.04", "task.operations=['*']", "seed=7", "model.name=some/dir"])
    assert cfg.grpo.beta == 0.04
    assert cfg.task.operations == ["*"]
    assert cfg.seed == 7
    assert cfg.model.name == "some/dir"


def test_invalid_value_names_the_file_and_field(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("grpo:\n  group_size: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "grpo.group_size" in message and "got 1" in message


def test_misspelt_key_is_an_error_not_ignored():
    with pytest.raises(ConfigError, match="grpo.betta"):
        load_config(None, ["grpo.betta=0.1"])


def test_task_kind_is_a_discriminated_union():
    cfg = load_config(None, ["task.kind=dataset", "task.rl.path=data.jsonl"])
    assert cfg.task.kind == "dataset" and cfg.task.rl.path == "data.jsonl"
    with pytest.raises(ConfigError, match="task"):
        load_config(None, ["task.kind=chess"])


def test_malformed_override_and_missing_file():
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        apply_overrides({}, ["nonsense"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/run.yaml")


def test_config_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, pipeline.config; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_config_hash_is_stable_and_sensitive():
    a, b = load_config(None), load_config(None)
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(load_config(None, ["seed=1"]))


def test_rollout_is_one_of_several_engines_by_backend():
    from pipeline.config import HFRolloutConfig

    cfg = load_config(None, ["rollout.temperature=0.5"])
    assert isinstance(cfg.rollout, HFRolloutConfig) and cfg.rollout.backend == "hf"  # the default may go unsaid
    with pytest.raises(ConfigError, match="field rollout: .*'warp'"):
        load_config(None, ["rollout.backend=warp"])
    with pytest.raises(ConfigError, match=r"field rollout\.batch_size"):  # the tag is not part of the path
        load_config(None, ["rollout.batch_size=0"])


@pytest.mark.parametrize("overrides, field, words", [
    (["model.tiny.num_heads=3"], "model.tiny.num_heads", "3 heads must divide hidden_size (64)"),
    (["model.tiny.num_heads=64"], "model.tiny.num_heads", "must be even"),
    (["task.max_operand=1", "task.eval_size=500"], "task.eval_size", "8 distinct problems"),
    (["task.max_operand=9", "task.operations=['+']", "task.eval_size=100", "task.sft_size=0"], "task.eval_size",
     "100 distinct problems"),  # every problem held out: nothing left for RL
])
def test_cross_field_mistakes_are_config_errors_naming_the_field(overrides, field, words):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert f"field {field}: " in str(info.value) and words in str(info.value)


def test_a_task_that_fills_its_problem_space_still_draws_distinct_problems():
    from pipeline.tasks import ArithmeticTask

    cfg = load_config(None, ["task.max_operand=9", "task.operations=['+']", "task.eval_size=90", "task.sft_size=10"])
    task = ArithmeticTask(cfg.task)
    prompts = {p.prompt for p in task.eval_problems + task.sft_problems}
    assert len(prompts) == 100 == cfg.task.distinct_problems  # every problem, once
    # RL prompts can only be the 10 problems that are not held out
    assert {p.prompt for p in task.rl_problems(0, 20)} <= {p.prompt for p in task.sft_problems}


def test_guards_are_on_by_default_and_can_be_switched_off():
    cfg = load_config(None)
    assert cfg.guards.masked_share == 0.5 and cfg.guards.window == 20
    off = load_config(None, ["guards.masked_share=null", "guards.no_signal_share=null"])
    assert off.guards.masked_share is None and off.guards.no_signal_share is None
    with pytest.raises(ConfigError, match="guards.window"):
        load_config(None, ["guards.window=0"])
