"""A stage as a subprocess: commands from the stage table, results, failures, timeouts, orphans."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.launch import StageFailed, StageTimeout, run_stage_subprocess, stage_command
from pipeline.stages import STAGES, StageSpec


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_dead(pid: int, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_commands_of_policy_evaluation_and_input_stages():
    sft = stage_command(STAGES["sft"], "run/config.yaml", None, {}, {}, [])
    assert sft == [sys.executable, "-m", "pipeline.trainers.sft", "--config", "run/config.yaml"]
    grpo = stage_command(STAGES["grpo"], "c.yaml", "run/sft/final", {}, {}, ["accelerate", "launch", "--num_processes", "2"])
    assert grpo == ["accelerate", "launch", "--num_processes", "2", "-m", "pipeline.trainers.grpo", "--config", "c.yaml",
                    "--init", "run/sft/final"]
    # Evaluation takes every policy of the round and never runs under the distributed launcher.
    ev = stage_command(STAGES["evaluate"], "c.yaml", "run/grpo/final", {"sft": "a", "grpo": "b"}, {}, ["accelerate", "launch"])
    assert ev == [sys.executable, "-m", "pipeline.evaluate", "--config", "c.yaml", "--input=sft=a", "--input=grpo=b"]
    # A stage that consumes an artefact gets it from an earlier stage's result when the round has one.
    ppo = StageSpec("pipeline.trainers.ppo", "ppo", "ppo", consumes=("reward_model",))
    assert stage_command(ppo, "c.yaml", "p", {}, {"reward_model": "run/rm/final", "value_model": "x"}, [])[-3:] == [
        "--init", "p", "--input=reward_model=run/rm/final"]
    assert stage_command(ppo, "c.yaml", "p", {}, {"value_model": "x"}, [])[-2:] == ["--init", "p"]


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_returns_the_last_json_line_and_forwards_stderr():
    lines: list[str] = []
    code = "import sys, json; print('noise'); print(json.dumps({'a': 1})); print(json.dumps({'model': 'x'})); " \
           "print('step 1', file=sys.stderr); print('\\r10%\\r100%', file=sys.stderr)"
    assert run_stage_subprocess(_py(code), timeout_s=60, log_line=lines.append) == {"model": "x"}
    assert lines == ["step 1", "100%"]  # a progress bar's carriage returns keep its last state only


def test_failure_carries_the_error_line_and_user_errors_are_not_retryable():
    with pytest.raises(StageFailed, match="exited with code 2 after .* s: field grpo.beta bad$") as info:
        run_stage_subprocess(_py("import sys; print('error: field grpo.beta bad', file=sys.stderr); sys.exit(2)"),
                             log_line=lambda _: None)
    assert not info.value.retryable
    with pytest.raises(StageFailed, match="exited with code 3.*run-health guard") as info:  # a tripped guard
        run_stage_subprocess(_py("import sys; print('error: grpo stopped by the run-health guard', file=sys.stderr); "
                                 "sys.exit(3)"), log_line=lambda _: None)
    assert not info.value.retryable
    with pytest.raises(StageFailed, match="Traceback|ZeroDivisionError") as info:
        run_stage_subprocess(_py("1/0"), log_line=lambda _: None)
    assert info.value.retryable
    with pytest.raises(StageFailed, match="without its JSON result"):
        run_stage_subprocess(_py("print('done')"), log_line=lambda _: None)


def test_timeout_kills_the_whole_process_tree(tmp_path):
    pids = tmp_path / "pids"
    # The stage starts a grandchild (as `accelerate launch` does), then both hang.
    code = (f"import os, subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
            f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{c.pid}}'); time.sleep(600)")
    started = time.monotonic()
    with pytest.raises(StageTimeout, match="ran past its limit of 3 s"):
        run_stage_subprocess(_py(code), timeout_s=3, log_line=lambda _: None)
    assert time.monotonic() - started < 30
    for pid in map(int, pids.read_text().split()):
        assert _wait_dead(pid), f"process {pid} survived the timeout"


def test_stage_dies_with_a_sigkilled_parent(tmp_path):
    """A crashed flow process (SIGKILL: no cleanup runs) must not leave its trainer running."""
    pid_file = tmp_path / "stage.pid"
    stage = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    parent = subprocess.Popen([sys.executable, "-c", "import sys; from flows.launch import run_stage_subprocess; "
                               f"run_stage_subprocess([sys.executable, '-c', {stage!r}])"],
                              cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        stage_pid = int(pid_file.read_text())
        assert _alive(stage_pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert _wait_dead(stage_pid), "the stage outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
