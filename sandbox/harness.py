"""The resident harness: PID 1 of every sandbox container. It reads jobs, one JSON line each, on
its stdin, runs each job's processes (forked by the zygotes of driver.py, watched and cleaned up
after by runs.py), judges them here, and answers one JSON line per job on its stdout. boot.py
starts it with the sources of every module. Python 3.11 standard library only: this file runs
inside the image.

A job with tests or call-based cases runs as two processes joined by one socket: the program's
(sandbox/server.py) and a trusted referee's that runs the tests (sandbox/referee.py), forked first.
The referee's report decides; an io job, or tests with isolation "shared", is one program run
whose own report (sandbox/driver.py) decides.

Why the verdict channel cannot be forged by the program:
- The harness's stdin/stdout (the host's channel) are never inherited: every run gets its own
  stdin (a memfd), its own stdout/stderr pipes, and all other descriptors are closed first.
- The harness, the zygotes and the referee are non-dumpable, so their /proc/PID/{fd,mem,environ}
  belong to root and a process of the same uid without CAP_SYS_PTRACE (all capabilities are
  dropped) can neither open their descriptors nor ptrace them. Being PID 1 of its namespace with
  no signal handlers, the harness cannot be signalled from inside the container either.
- A verdict comes from a report that carries a per-run nonce and is written only after the tests
  have run, never from an exit code. A program that serves a referee holds no report descriptor at
  all; the referee's report pipe is its own.
- Signals are what a program can still send the referee: a referee that was killed before it
  reported, or stopped until the deadline, fails the job with the flag "tamper", as does a program
  that exits before the tests finish.
- A run cannot find other jobs' data in memory: runs are forked by zygotes that never read a
  job, and expected io outputs reach the harness only as digests.

Between jobs (and between the runs of one job) every process a run left is killed and reaped
(the zygotes too, if anything was left; new ones are started), and /tmp, /dev/shm, /dev/mqueue and
System V IPC objects are wiped; a job whose reset does not converge is answered with
`clean: false`, and the host replaces the container.

Deadlines count a run's own time: time its processes spent waiting for a CPU that other containers
or processes held is credited back (up to 10x the deadline), so an overloaded machine does not time
out a correct program, while a program that keeps the CPU busy itself earns no credit.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import signal
import socket
import sys
import time

from sandbox import runs

__all__ = ["normalize_output", "outputs_match", "output_digest", "main"]

PASS, FAIL, SYNTAX_ERROR, RUNTIME_ERROR, TIMEOUT, MEMORY, BAD_TESTS = (
    "pass", "fail", "syntax_error", "runtime_error", "timeout", "memory", "bad_tests"
)
TAMPER = "tamper"  # the flag of a job where the harness saw the program try to game its tests
_EXCERPT = 2000  # characters of stdout/stderr returned to the host per job


def normalize_output(text: str) -> list[str]:
    """Whitespace-normalised lines: each line's runs of blanks collapsed and ends stripped; blank
    lines at the end dropped. "1  2 \\n3\\n\\n" and "1 2\\n3" compare equal; "12" and "1 2" do not."""
    lines = [" ".join(line.split()) for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def outputs_match(actual: str, expected: str) -> bool:
    return normalize_output(actual) == normalize_output(expected)


def output_digest(text: str) -> str:
    """SHA-256 of the normalised output. The host sends expected outputs only as digests, so no
    run (forked from the harness's memory) can find them to print."""
    return hashlib.sha256("\n".join(normalize_output(text)).encode("utf-8", "surrogateescape")).hexdigest()


def _ending(ws: int) -> str:
    """How a process ended, from its wait status."""
    if os.WIFSIGNALED(ws):
        return f"was killed by signal {signal.Signals(os.WTERMSIG(ws)).name}"
    return f"exited with status {os.WEXITSTATUS(ws)}"


def _cpu_limited(p: runs.Proc, limits: dict) -> bool:
    ws, cpu = p.status
    sig = os.WTERMSIG(ws) if ws is not None and os.WIFSIGNALED(ws) else 0
    return sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits["cpu_s"])


def _classify(run: dict, p: runs.Proc, limits: dict, mode: str) -> tuple[str, str, list[str]]:
    """(status, detail, flags) of a program run on its own (io, or tests sharing its process),
    from what the harness itself observed first, then the run's report."""
    if p.status[0] is None:
        return RUNTIME_ERROR, "the run killed the sandbox's process launcher", []
    ws = p.status[0]
    sig = os.WTERMSIG(ws) if os.WIFSIGNALED(ws) else 0
    code = os.WEXITSTATUS(ws) if os.WIFEXITED(ws) else None
    report = p.report()[1] or {}
    if run["oom_killed"]:  # the cause, even when the run then also ran out of time
        return MEMORY, "a process of the run was killed by the container's memory limit", []
    if run["timed_out"]:
        return TIMEOUT, f"wall-clock deadline of {limits['timeout_s']:g} s ({run['at_deadline']})", []
    if _cpu_limited(p, limits):
        return TIMEOUT, f"CPU-time limit of {limits['cpu_s']} s", []
    if report.get("status") == MEMORY:
        return MEMORY, report.get("detail") or "MemoryError", []
    if run["overflow"]:
        return FAIL, f"output exceeded {limits['max_output_bytes']} bytes", []
    if sig == signal.SIGXFSZ:
        return RUNTIME_ERROR, "file-size limit exceeded", []
    if report.get("status") in (SYNTAX_ERROR, RUNTIME_ERROR, BAD_TESTS, FAIL, PASS):
        return report["status"], report["detail"], [f for f in report.get("flags", []) if f == TAMPER]
    if sig:
        return RUNTIME_ERROR, f"killed by signal {signal.Signals(sig).name}", []
    if mode == "tests":
        # No authentic report: the process ended (os._exit, a crash) before the tests finished.
        return FAIL, f"exited with status {code} before the tests finished", [TAMPER]
    if code:
        return RUNTIME_ERROR, f"exit status {code}", []
    return PASS, "", []


def _classify_isolated(run: dict, program: runs.Proc, referee: runs.Proc, limits: dict) -> tuple[str, str, list[str]]:
    """(status, detail, flags) of tests run by a referee against a program in its own process:
    what the harness saw first (the deadline, memory, limits, a referee that did not report),
    then the referee's report, refined by how the program ended when the referee lost it."""
    if run["timed_out"] and run["stopped"]:
        return FAIL, "the test runner was stopped (a signal from the program) before it finished", [TAMPER]
    if run["oom_killed"]:  # the cause, even when the run then also ran out of time
        return MEMORY, "a process of the run was killed by the container's memory limit", []
    if run["timed_out"]:
        return TIMEOUT, f"wall-clock deadline of {limits['timeout_s']:g} s ({run['at_deadline']})", []
    if program.status[0] is not None and _cpu_limited(program, limits):
        return TIMEOUT, f"CPU-time limit of {limits['cpu_s']} s", []
    if referee.status[0] is not None and _cpu_limited(referee, limits):
        return TIMEOUT, f"the tests ran past the CPU-time limit of {limits['cpu_s']} s", []
    if run["overflow"]:
        return FAIL, f"output exceeded {limits['max_output_bytes']} bytes", []
    report = referee.report()[1]
    if report is None:
        how = "vanished with its launcher" if referee.status[0] is None else _ending(referee.status[0])
        return FAIL, f"the test runner {how} before it reported (the program's doing)", [TAMPER]
    status, detail = report["status"], report["detail"]
    flags = [TAMPER] if TAMPER in report.get("flags", ()) else []
    stage = report.get("gone")
    if stage:
        detail = f"{detail} {stage}"
        ws = program.status[0]
        if ws is None:
            return FAIL, f"the program killed its process launcher {stage}", [TAMPER]
        if not program.ended_first:
            return FAIL, f"the program closed its channel to the tests {stage}", [TAMPER]
        if os.WIFSIGNALED(ws) and os.WTERMSIG(ws) == signal.SIGXFSZ:
            return RUNTIME_ERROR, f"file-size limit exceeded {stage}", []
        if os.WIFSIGNALED(ws):
            return RUNTIME_ERROR, f"the program {_ending(ws)} {stage}", []
        return FAIL, f"the program {_ending(ws)} {stage}", [TAMPER]
    return status, detail, flags


# --- a job: tests against a program, call-based cases, or one run per io case -----------------


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT // 2] + "\n...\n" + text[-_EXCERPT // 2 :]


def _tested(job: dict, limits: dict) -> tuple[str, str, int, int, list[str], list[runs.Proc]]:
    """Tests or call-based cases, run by a referee against the program in its own process."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        spec = {"mode": job["kind"], "tests": job.get("tests", ""), "calls": job.get("calls"), "partial": bool(job.get("partial"))}
        referee = runs.Proc("referee", spec, b"", runs.REPORT_MAX, channel=os.dup(ours.fileno()))
        program = runs.Proc("program", {"mode": "serve", "program": job["program"]}, b"", limits["max_output_bytes"], channel=os.dup(theirs.fileno()))
    finally:
        ours.close()
        theirs.close()
    run = runs.run([referee, program], limits)
    status, detail, flags = _classify_isolated(run, program, referee, limits)
    report = referee.report()[1] or {}
    total = max(1, int(report.get("total") or 1))
    passed = min(int(report.get("passed") or 0), total)
    if status == PASS:
        passed = total
    elif status != FAIL and not job.get("partial") or TAMPER in flags:
        passed = 0
    return status, detail, passed, total, flags, [referee, program]


def _shared(job: dict, limits: dict) -> tuple[str, str, int, int, list[str], runs.Proc]:
    """Tests run after the program in its own interpreter (isolation "shared": gameable)."""
    payload = {"mode": "tests", "program": job["program"], "tests": job["tests"], "partial": bool(job.get("partial"))}
    program = runs.Proc("program", payload, b"", limits["max_output_bytes"])
    run = runs.run([program], limits)
    status, detail, flags = _classify(run, program, limits, "tests")
    report = program.report()[1] or {}
    total = max(1, int(report.get("total") or 1))
    passed = int(report.get("passed") or 0) if report.get("status") in (PASS, FAIL) else 0
    if status == PASS:
        passed = total
    elif status != FAIL:
        passed = min(passed, total) if job.get("partial") else 0
    return status, detail, passed, total, flags, program


def run_job(job: dict) -> dict:
    limits = {
        "timeout_s": float(job["timeout_s"]),
        "cpu_s": max(1, int(job.get("cpu_s") or -(-float(job["timeout_s"]) // 1))),
        "memory_mb": int(job["memory_mb"]),
        "max_output_bytes": int(job["max_output_bytes"]),
    }
    partial = bool(job.get("partial"))
    runs.state.update(clean=True, starved=False)
    start = time.monotonic()
    if job["kind"] == "calls" or (job["kind"] == "tests" and job.get("isolation", "process") == "process"):
        status, detail, passed, total, flags, procs = _tested(job, limits)  # the program's run last
    elif job["kind"] == "tests":
        status, detail, passed, total, flags, program = _shared(job, limits)
        procs = [program]
    else:
        status, detail, passed, flags, procs = PASS, "", 0, [], []
        cases = job["cases"]
        total = len(cases)
        for i, case in enumerate(cases):
            program = runs.Proc("program", {"mode": "io", "program": job["program"]}, case["stdin"].encode(), limits["max_output_bytes"])
            run = runs.run([program], limits)
            procs.append(program)
            case_status, case_detail, _ = _classify(run, program, limits, "io")
            if case_status == PASS and output_digest(program.output(program.out_r)) != case["stdout_digest"]:
                case_status, case_detail = FAIL, f"wrong output on case {i}"
            elif case_status != PASS:
                case_detail = f"case {i}: {case_detail}"
            if case_status == PASS:
                passed += 1
                continue
            if status == PASS:
                status, detail = case_status, case_detail
            # Later cases cannot change the outcome without partial credit, and a program that
            # cannot even be compiled would fail each of them the same way.
            if not partial or case_status in (SYNTAX_ERROR,):
                break
    last = procs[-1]
    return {
        "id": job.get("id"),
        "status": status,
        "detail": detail,
        "passed": passed,
        "total": total,
        "flags": flags,
        "stdout": _excerpt(last.output(last.out_r)),
        "stderr": _excerpt(last.output(last.err_r)),
        "cpu_s": round(sum(p.status[1] for p in procs), 4),  # a referee's CPU counts too
        "wall_s": round(time.monotonic() - start, 4),
        "clean": runs.state["clean"],
        "starved": runs.state["starved"],
    }


def _prctl_dumpable(value: int) -> None:
    PR_SET_DUMPABLE = 4
    if _LIBC.prctl(PR_SET_DUMPABLE, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl(PR_SET_DUMPABLE, {value}) failed")


def _harden() -> None:
    """Non-dumpable: /proc/1/* owned by root, no ptrace. Default SIGINT: as PID 1, undeliverable."""
    _prctl_dumpable(0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


_LIBC = ctypes.CDLL(None, use_errno=True)


def main(args: list[str], sources: dict[str, str]) -> int:
    """Serve jobs on stdin until it closes (boot.py starts it with the sources of every module)."""
    runs.SOURCES.update(sources)
    _harden()
    # The channel lives on descriptors no child ever gets (runs get only what start_run passes).
    chan_in = os.fdopen(os.dup(0), "rb")
    chan_out = os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    runs.reset()

    def answer(obj: dict) -> None:
        runs.write_all(chan_out, (json.dumps(obj) + "\n").encode())

    answer({"ready": True, "python": sys.version.split()[0], "pid": os.getpid(), "uid": os.getuid(), "clean": runs.state["clean"]})
    for line in chan_in:
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except ValueError as e:
            answer({"id": None, "status": "harness_error", "detail": f"bad job line: {e}", "clean": True})
            continue
        try:
            result = run_job(job)
        except Exception as e:  # a harness bug: say so, and let the host replace this container
            result = {"id": job.get("id"), "status": "harness_error", "detail": f"{type(e).__name__}: {e}", "clean": False}
        answer(result)
    return 0

