"""The stage table, and running one stage as a subprocess.

A stage is a module with the contract `python -m <module> --config FILE [--init POLICY_DIR]` that
prints one JSON line last; a stage that trains a policy returns it as "model", any other artefact
under its own key (the reward model stage: "reward_model"). Adding a stage to the pipeline is one
line in `STAGES`. The table is plain data, so `pipeline` stays free of Prefect and every stage
still runs alone.

Each stage runs in its own process (a session of its own, killed with its parent): a timeout or
a cancellation ends the whole process tree, and the accelerator's memory is freed before the next
stage starts.
"""

import ctypes
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from errors import ConfigError

__all__ = [
    "StageSpec",
    "STAGES",
    "stage_spec",
    "stage_command",
    "run_stage_subprocess",
    "StageFailed",
    "StageTimeout",
]


@dataclass(frozen=True)
class StageSpec:
    """How the round flow launches a stage and what it hands on.

    module: run as `python -m <module>` (or under the execution launcher when `distributed`).
    directory: the stage's folder under output_dir (metrics.jsonl, metrics.png live there).
    evaluates: the stage takes `--model NAME=DIR` for every policy of the round instead of `--init`.
    inputs: results of earlier stages of the round passed as `--<key> DIR` when there are any
        (e.g. ("reward_model",) for PPO; without one the stage falls back on its config).
    reads: config sections named after other stages that this stage reads too (PPO reads
        `reward_model.path`); they join its cache key.
    distributed: the stage may run under `accelerate launch` on many devices.
    """

    module: str
    directory: str = ""
    evaluates: bool = False
    inputs: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    distributed: bool = True


# Stage name -> how to run it. Stages run in the order the config lists them. A config section
# named like a stage (`sft`, `grpo`, ...) belongs to that stage's cache key only.
STAGES: dict[str, StageSpec] = {
    "sft": StageSpec("pipeline.trainers.sft", "sft"),
    "reward_model": StageSpec("pipeline.trainers.reward_model", "reward_model"),
    "ppo": StageSpec("pipeline.trainers.ppo", "ppo", inputs=("reward_model",), reads=("reward_model",)),
    "dpo": StageSpec("pipeline.trainers.dpo", "dpo"),
    "kto": StageSpec("pipeline.trainers.kto", "kto", distributed=False),
    "grpo": StageSpec("pipeline.trainers.grpo", "grpo"),
    "evaluate": StageSpec("pipeline.evaluate", "eval", evaluates=True, distributed=False),
}


def stage_spec(name: str) -> StageSpec:
    """The table entry of a stage; an unknown name is a ConfigError naming the field and the choices."""
    if name not in STAGES:
        raise ConfigError(
            f"field stages: stage {name!r} has no entry in the round flow's stage table "
            f"(known: {', '.join(STAGES)}); add a line to flows/stages.py:STAGES"
        )
    return STAGES[name]


class StageFailed(RuntimeError):
    """A stage's process exited non-zero; the message carries its error line or the end of stderr.

    `retryable` is False for exit code 2, the trainers' code for a mistake in the user's input:
    running it again cannot help.
    """

    def __init__(self, message: str, returncode: int):
        super().__init__(message)
        self.returncode = returncode

    @property
    def retryable(self) -> bool:
        return self.returncode != 2


class StageTimeout(StageFailed):
    """A stage ran past its time limit and its process tree was killed."""


def stage_command(spec: StageSpec, config_file: str, init: str | None, models: dict[str, str],
                  inputs: dict[str, str], launcher: list[str]) -> list[str]:
    """The argv of one stage: launcher (or this interpreter), `-m module`, then the stage's options."""
    prefix = list(launcher) if launcher and spec.distributed else [sys.executable]
    args = ["--config", config_file]
    if spec.evaluates:
        args += [f"--model={name}={path}" for name, path in models.items()]
    elif init:
        args += ["--init", init]
    for key in spec.inputs:
        if key in inputs:
            args += [f"--{key.replace('_', '-')}", inputs[key]]
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
        errors = [line for line in tail if line.startswith("error:")]
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
