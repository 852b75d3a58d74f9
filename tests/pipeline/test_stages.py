"""The stage table and the command line every stage shares."""

import importlib
import json
import sys

import pytest

from errors import ConfigError
from pipeline.config import RunConfig, load_config
from pipeline.stages import STAGES, StageSpec, register_stage, stage_main, stage_spec


def test_every_row_names_an_importable_module_and_a_real_config_section():
    for name, spec in STAGES.items():
        assert importlib.util.find_spec(spec.module) is not None, (name, spec.module)
        for section in filter(None, (spec.section, *spec.reads)):
            assert section in RunConfig.model_fields, (name, section)
        for artefact in spec.consumes:  # some stage's product, or the reference a campaign gives its gate
            assert artefact == "reference" or any(artefact in other.produces for other in STAGES.values()), (name, artefact)


def test_the_default_round_is_in_the_table_and_the_schema_offers_the_table():
    assert set(RunConfig().stages) <= set(STAGES)
    schema = RunConfig.model_json_schema()["properties"]["stages"]["items"]
    assert schema["enum"] == list(STAGES)


def test_unknown_stage_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"field stages: unknown stage 'rlhf' \(known: sft, .*\).*STAGES") as info:
        stage_spec("rlhf")
    assert all(name in str(info.value) for name in STAGES)


def test_config_checks_stage_names_against_the_table_at_validation_time(monkeypatch):
    with pytest.raises(ConfigError, match=r"field stages\.1: unknown stage 'extra'"):
        load_config(None, ["stages=[sft,extra]"])
    monkeypatch.setitem(STAGES, "extra", StageSpec("some.module", None, "extra"))
    assert load_config(None, ["stages=[sft,extra]"]).stages == ["sft", "extra"]
    assert "extra" in RunConfig.model_json_schema()["properties"]["stages"]["items"]["enum"]


def test_a_stage_process_leaves_the_list_to_its_flow():
    assert load_config(None, ["stages=[sft,extra]"], check_stages=False).stages == ["sft", "extra"]


def test_register_stage_refuses_to_replace_another_row(monkeypatch):
    monkeypatch.setattr("pipeline.stages.STAGES", dict(STAGES))
    spec = StageSpec("my.module", None, "mine")
    register_stage("mine", spec)
    register_stage("mine", spec)  # the same row again: harmless
    with pytest.raises(ConfigError, match="already in the stage table"):
        register_stage("sft", spec)


def test_plugin_stages_come_from_entry_points(monkeypatch, fake_entry_points):
    import importlib.metadata

    import pipeline.stages as stages

    spec = StageSpec("plugin.stage", None, "plugin")
    sys.modules["fake_stage_plugin"] = type(sys)("fake_stage_plugin")
    sys.modules["fake_stage_plugin"].SPEC = spec
    entry = importlib.metadata.EntryPoint(name="plugin", value="fake_stage_plugin:SPEC", group="rlvr.stages")
    fake_entry_points("rlvr.stages", entry)
    monkeypatch.setattr(stages, "STAGES", dict(STAGES))
    monkeypatch.setattr(stages, "_plugins_loaded", False)
    assert stage_spec("plugin") is spec
    assert load_config(None, ["stages=[sft,plugin]"]).stages == ["sft", "plugin"]


def _echo(cfg, init, inputs):
    return {"seed": cfg.seed, "init": init, "inputs": dict(inputs)}


def test_stage_main_parses_init_inputs_and_overrides_and_prints_json(capsys, monkeypatch):
    monkeypatch.setitem(STAGES, "echo", StageSpec("echo.module", None, "echo", consumes=("reward_model",)))
    assert stage_main("echo", _echo, ["--init", "a/b", "--input", "reward_model=r/m", "seed=5"]) == 0
    assert json.loads(capsys.readouterr().out) == {"stage": "echo", "seed": 5, "init": "a/b",
                                                    "inputs": {"reward_model": "r/m"}}


@pytest.mark.parametrize("argv, message", [
    (["--input", "value_model=x"], "takes no input 'value_model' (it takes: reward_model)"),
    (["--input", "reward_model"], "expected NAME=DIR"),
    (["grpo.group_size=1"], "field grpo.group_size"),
])
def test_stage_main_reports_bad_input_in_one_line_with_exit_2(capsys, monkeypatch, argv, message):
    monkeypatch.setitem(STAGES, "echo", StageSpec("echo.module", None, "echo", consumes=("reward_model",)))
    assert stage_main("echo", _echo, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_an_evaluating_stage_takes_any_policy_as_input(capsys):
    # evaluate's inputs are the round's policies by name
    from pipeline.stages import _parse_inputs

    assert _parse_inputs(["sft=a", "grpo=b"], STAGES["evaluate"], "evaluate") == {"sft": "a", "grpo": "b"}


def test_a_guard_exits_3(capsys, monkeypatch):
    from errors import RunHealthError

    def tripped(cfg, init, inputs):
        raise RunHealthError("grpo stopped by the run-health guard: it is broken")

    monkeypatch.setitem(STAGES, "echo", StageSpec("echo.module", None, "echo"))
    assert stage_main("echo", tripped, []) == 3
    assert capsys.readouterr().err.strip() == "error: grpo stopped by the run-health guard: it is broken"
