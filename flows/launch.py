"""Running one stage as a subprocess: its command line from the stage table, its result, its
failures, its time limit.

A stage (`pipeline.stages.STAGES`) prints one JSON line last. Each runs in its own process (a
session of its own, killed with its parent): a timeout or a cancellation ends the whole process
tree, and the accelerator's memory is freed before the next stage starts. A stage that exits with
one of `errors.NOT_RETRYABLE_EXIT_CODES` (a user's mistake, a tripped run-health guard) is a
failure that running it again cannot mend.
"""

import ctypes
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any, Callable

from errors import NOT_RETRYABLE_EXIT_CODES, PipelineError
from pipeline.stages import StageSpec

__all__ = ["stage_command", "run_stage_subprocess", "StageFailed", "StageTimeout", "quiet_expected_failures"]


class StageFailed(RuntimeError):
    """A stage's process exited non-zero; the message carries its error line or the end of stderr.

    `retryable` is False for the exit codes of `errors.PipelineError` (2: a mistake in the user's
    input; 3: a run-health guard stopped it): running it again cannot help.
    """

    def __init__(self, message: str, returncode: int):
        super().__init__(message)
        self.returncode = returncode

    @property
    def retryable(self) -> bool:
        return self.returncode not in NOT_RETRYABLE_EXIT_CODES


class StageTimeout(StageFailed):
    """A stage ran past its time limit and its process tree was killed."""


def stage_command(spec: StageSpec, config_file: str, init: str | None, policies: dict[str, str],
                  outputs: dict[str, str], launcher: list[str]) -> list[str]:
    """The argv of one stage: launcher (or this interpreter), `-m module`, then `--config`, the
    policy to start from (`--init`; an evaluating stage gets every policy as `--input`), and the
    earlier stages' artefacts the stage consumes (`--input NAME=DIR`)."""
    prefix = list(launcher) if launcher and spec.distributed else [sys.executable]
    args = ["--config", config_file]
    if spec.evaluates:
        args += [f"--input={name}={path}" for name, path in policies.items()]
    elif init:
        args += ["--init", init]
    args += [f"--input={key}={outputs[key]}" for key in spec.consumes if key in outputs]
    return [*prefix, "-m", spec.module, *args]


def _die_with_parent() -> None:
    # Linux: the stage gets SIGKILL when the process that launched it dies, even by SIGKILL, so a
    # crashed flow run never leaves a trainer behind writing into the directory its retry resumes.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _kill_tree(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the stage's process group, then SIGKILL what is left after `grace_s`."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_stage_subprocess(cmd: list[str], timeout_s: float | None = None,
                         log_line: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run one stage command; forward its stderr line by line; return the JSON it prints last.

    Raises StageTimeout past `timeout_s` (the whole process group is killed), StageFailed on a
    non-zero exit. An exception in the caller (cancellation, Ctrl-C) kills the group too.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            start_new_session=True, preexec_fn=_die_with_parent)
    # Lines end at "\n" only, so a progress bar's "\r" redraws stay on one line (its last state is kept).
    err = io.TextIOWrapper(proc.stderr, encoding="utf-8", errors="replace", newline="\n")  # type: ignore[arg-type]
    out = io.TextIOWrapper(proc.stdout, encoding="utf-8", errors="replace")  # type: ignore[arg-type]
    tail: deque[str] = deque(maxlen=40)
    stdout: list[str] = []

    def pump_stderr() -> None:
        for line in err:
            line = line.rstrip("\n").rsplit("\r", 1)[-1]  # a progress bar's last state
            if not line.strip():
                continue
            tail.append(line)
            (log_line or _to_stderr)(line)

    def pump_stdout() -> None:
        stdout.extend(out)

    pumps = [threading.Thread(target=pump_stderr, daemon=True), threading.Thread(target=pump_stdout, daemon=True)]
    for pump in pumps:
        pump.start()
    started = time.monotonic()
    try:
        code = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        raise StageTimeout(f"{_name(cmd)} ran past its limit of {timeout_s:g} s and was stopped", -9) from None
    except BaseException:
        _kill_tree(proc)
        raise
    for pump in pumps:
        pump.join(timeout=10)
    if code != 0:
        errors = [line.removeprefix("error: ") for line in tail if line.startswith("error:")]
        detail = errors[-1] if errors else "\n".join(list(tail)[-8:])
        raise StageFailed(f"{_name(cmd)} exited with code {code} after {time.monotonic() - started:.0f} s: {detail}", code)
    last = [line for line in stdout if line.startswith("{")]
    if not last:
        raise StageFailed(f"{_name(cmd)} exited 0 without its JSON result line", code)
    return json.loads(last[-1])


def _name(cmd: list[str]) -> str:
    return cmd[cmd.index("-m") + 1] if "-m" in cmd else cmd[0]


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class _NoTracebackForExpectedFailures(logging.Filter):
    """Prefect logs a failed task or flow with its traceback. For a failure the user must mend
    (a stage that exited with a user error or a tripped guard, a PipelineError) the message says
    everything and the traceback is noise: it is dropped, the record is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, PipelineError) or (isinstance(error, StageFailed) and not error.retryable):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_expected_failures() -> None:
    """Install the filter on Prefect's task-run and flow-run loggers (once)."""
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTracebackForExpectedFailures) for f in logger.filters):
            logger.addFilter(_NoTracebackForExpectedFailures())
