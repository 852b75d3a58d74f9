from pathlib import Path

import pytest

from pipeline.config import RunConfig, apply_overrides, config_hash, load_config
from errors import ConfigError

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
