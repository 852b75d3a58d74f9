"""Bad input through the command line: one clear line naming the file/row/field, no traceback."""

import json
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
