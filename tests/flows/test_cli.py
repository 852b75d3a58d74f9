"""Bad input through the command line: one clear line naming the file/row/field, no traceback."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def rlvr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, cwd=REPO)


def _assert_one_clear_line(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_invalid_config_value(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("grpo:\n  clip_low: 3\n")
    _assert_one_clear_line(rlvr("run", str(config)), str(config), "grpo.clip_low")


def test_unknown_verifier():
    proc = rlvr("run", "configs/tiny.yaml", "task.verifier=chess")
    _assert_one_clear_line(proc, "chess", "math", "rlvr.verifiers")


def test_missing_model_directory(tmp_path):
    _assert_one_clear_line(rlvr("run", "configs/tiny.yaml", f"model.name={tmp_path}/no-such-model"), "no-such-model")


def test_malformed_dataset_row(tmp_path):
    data = tmp_path / "rl.jsonl"
    data.write_text(json.dumps({"prompt": "1+1=", "answer": "2"}) + "\n" + '{"prompt": "2+2=" "answer": "4"}\n')
    config = tmp_path / "run.yaml"
    config.write_text(f"task:\n  kind: dataset\n  rl:\n    path: {data}\n")
    proc = rlvr("run", str(config))
    _assert_one_clear_line(proc, str(data), "row 2")


def test_stage_alone_reports_bad_input_the_same_way(tmp_path):
    _assert_one_clear_line(rlvr("stage", "grpo", "configs/tiny.yaml", "grpo.group_size=1"), "grpo.group_size")


def test_verifiers_lists_builtins():
    proc = rlvr("verifiers")
    assert proc.returncode == 0 and "math" in proc.stdout.split()


def test_a_shape_mistake_in_the_model_is_one_line_naming_the_field():
    proc = rlvr("run", "configs/tiny.yaml", "model.tiny.num_heads=3")
    _assert_one_clear_line(proc, "model.tiny.num_heads", "hidden_size (64)")


def test_a_held_out_set_larger_than_the_task_can_generate_is_one_line_naming_the_field():
    proc = rlvr("run", "configs/tiny.yaml", "task.max_operand=1", "task.eval_size=500")
    _assert_one_clear_line(proc, "task.eval_size", "8 distinct problems")


def test_an_unknown_stage_is_one_line_naming_the_field():
    _assert_one_clear_line(rlvr("run", "configs/tiny.yaml", "stages=[sft,rlhf]"), "stages.1", "unknown stage 'rlhf'")


def test_an_input_a_stage_does_not_take_is_one_line():
    proc = rlvr("stage", "grpo", "configs/tiny.yaml", "--input", "reward_model=x")
    _assert_one_clear_line(proc, "grpo stage takes no input 'reward_model'")


@pytest.mark.slow
def test_a_stage_that_exits_with_a_user_error_ends_the_run_in_one_line_and_is_not_retried(tmp_path):
    # The data is fine for the preflight check (RL rows) but the SFT stage needs demonstrations it
    # does not have: the stage exits 2, the flow does not retry it, `rlvr run` exits 2.
    import os

    data = tmp_path / "rl.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{i}+1=", "answer": str(i + 1)}) + "\n" for i in range(40)))
    config = tmp_path / "run.yaml"
    config.write_text(f"task:\n  kind: dataset\n  eval_size: 8\n  rl:\n    path: {data}\noutput_dir: {tmp_path / 'run'}\n")
    home = tmp_path / "prefect"
    home.mkdir()
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "run", str(config)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # Besides Prefect's own log lines ("HH:MM:SS.mmm | LEVEL | ..."), one line: the error.
    ours = [line for line in proc.stderr.splitlines() if line.strip() and not re.match(r"\d\d:\d\d:\d\d\.\d+ \|", line)
            and not line.startswith("See https://docs.prefect.io")]
    assert len(ours) == 1 and ours[0].startswith("error: "), ours
    assert "sft stage: the task has no demonstrations" in ours[0] and "error: error:" not in ours[0]
    assert proc.stderr.count("launching") == 1  # one attempt, no retry


@pytest.mark.parametrize("overrides, needles", [
    # an empty K
    (["stages=[generate_preferences,dpo,evaluate]", "generate_preferences.samples_per_prompt=0"],
     ["generate_preferences.samples_per_prompt", "greater than or equal to 2"]),
    # an unknown verifier in a composite
    (["task.verifier=shaped", "verifiers.composites={shaped: {math: 1.0, fromat: 0.2}}"],
     ["verifiers.composites.shaped", "Unknown verifier 'fromat'"]),
    # a missing judge directory, named by a sampling stage
    (["stages=[rejection_sampling,sft,evaluate]", "rejection_sampling.verifier=judge",
      "verifiers.options.judge={model: /no/such-judge, rubric: right}"],
     ["judge model '/no/such-judge' not found", "verifiers.options.judge.model"]),
])
def test_bad_input_of_rounds_that_feed_themselves_is_one_clear_line(overrides, needles):
    _assert_one_clear_line(rlvr("run", "configs/tiny.yaml", *overrides), *needles)
