"""The resident harness: PID 1 of every sandbox container. It reads jobs, one JSON line each, on
its stdin, runs each program run as a fresh process (forked by the zygote, see driver.py), resets the
container, and answers one JSON line per job on its stdout. Python 3.11 standard library only:
this file runs inside the image.

Why the verdict channel cannot be forged by the program:
- The harness's stdin/stdout (the host's channel) are never inherited: every run gets its own
  stdin (a memfd), its own stdout/stderr pipes, and all other descriptors are closed first.
- The harness marks itself non-dumpable, so /proc/1/{fd,mem,environ} belong to root and a process
  of the same uid without CAP_SYS_PTRACE (all capabilities are dropped) can neither open its
  descriptors nor ptrace it. Being PID 1 of its namespace with no signal handlers, it cannot be
  signalled from inside the container either.
- A program's own outcome is judged from the run's driver report, which carries a per-run nonce
  and is written only after the tests have run, never from an exit code (see sandbox/driver.py).

- A run cannot find other jobs' data in memory: runs are forked by a zygote that never reads a
  job, and expected io outputs reach the harness only as digests.

Between jobs (and between the runs of one job) every process a run left is killed and reaped
(the zygote too, if anything was left; a new one is started), and /tmp, /dev/shm, /dev/mqueue and
System V IPC objects are wiped; a job whose reset does not converge is answered with
`clean: false`, and the host replaces the container.

Deadlines count a run's own time: time its process spent waiting for a CPU that other containers
or processes held is credited back (up to 10x the deadline), so an overloaded machine does not time
out a correct program, while a program that keeps the CPU busy itself earns no credit.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import marshal
import os
import selectors
import signal
import socket
import sys
import time

__all__ = ["normalize_output", "outputs_match", "output_digest", "main"]

PASS, FAIL, SYNTAX_ERROR, RUNTIME_ERROR, TIMEOUT, MEMORY, BAD_TESTS = (
    "pass", "fail", "syntax_error", "runtime_error", "timeout", "memory", "bad_tests"
)
_SCRATCH_DIRS = ("/tmp", "/dev/shm", "/dev/mqueue")
_EXCERPT = 2000  # characters of stdout/stderr returned to the host per job
_REPORT_MAX = 1 << 16
_PYTHON = "/usr/bin/python3"
_ZYGOTE_TIMEOUT_S = 10.0
_MAX_WALL_FACTOR = 10.0  # a run ends by 10x its deadline, however loaded the machine


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


# --- one run: a fresh process group in a fresh directory ------------------------------------------


def _oom_kills() -> int | None:
    """The container cgroup's OOM-kill counter (cgroup v1 or v2), or None where it is not visible."""
    for path, key in (("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"), ("/sys/fs/cgroup/memory.events", "oom_kill")):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def _memfd(data: bytes) -> int:
    fd = os.memfd_create("input", os.MFD_CLOEXEC)  # the child gets a dup2'd copy
    _write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Zygote:
    """The container's process launcher (driver.py's `zygote_main`), a child of the harness.
    Started on first use, and again whenever a reset had to kill it or a run killed it."""

    def __init__(self, driver_source: str):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                null = os.open("/dev/null", os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                os.dup2(child.fileno(), 3)
                os.closerange(4, max(os.sysconf("SC_OPEN_MAX"), 4096))
                argv = [_PYTHON, "-I", "-X", "utf8", "-c", driver_source, "3"]
                os.execv(_PYTHON, argv)
            finally:
                os._exit(127)
        child.close()
        self.pid = pid
        self.sock = parent
        self.ready = False

    def start_run(self, spec: dict, fds: list[int]) -> int:
        """Fork a run with these descriptors; the child's pid. RuntimeError if the zygote is gone."""
        try:
            os.kill(self.pid, signal.SIGCONT)  # a run may have stopped it
            self.sock.settimeout(_ZYGOTE_TIMEOUT_S)
            if not self.ready:  # its interpreter may still be starting (not part of any deadline)
                if self.sock.recv(64) != b"ready":
                    raise OSError("no ready message")
                self.ready = True
            socket.send_fds(self.sock, [json.dumps(spec).encode()], fds)
            self.sock.settimeout(_ZYGOTE_TIMEOUT_S)
            reply = self.sock.recv(64)
        except OSError as e:
            raise RuntimeError(f"the zygote did not fork a run: {e}") from e
        if not reply.startswith(b"pid "):
            raise RuntimeError(f"the zygote did not fork a run: {reply!r}")
        return int(reply[4:])

    def exit_status(self) -> tuple[int, float] | None:
        """(wait status, CPU seconds) of the run that just ended, or None if the zygote died."""
        try:
            os.kill(self.pid, signal.SIGCONT)
            self.sock.settimeout(_ZYGOTE_TIMEOUT_S)
            reply = self.sock.recv(64)
        except OSError:
            return None
        if not reply.startswith(b"exit "):
            return None
        status, cpu = reply.split()[1:]
        return int(status), float(cpu)

    def close(self) -> None:
        self.sock.close()


_ZYGOTE: dict = {"z": None, "source": ""}


def _zygote() -> _Zygote:
    if _ZYGOTE["z"] is None:
        _ZYGOTE["z"] = _Zygote(_ZYGOTE["source"])
    return _ZYGOTE["z"]


def _zygote_gone() -> None:
    z = _ZYGOTE["z"]
    if z is not None:
        z.close()
        _ZYGOTE["z"] = None


def _run(mode: str, payload: dict, stdin: bytes, limits: dict) -> dict:
    """One program run. Returns status, stdout, stderr, report (the driver's, if authentic), times."""
    nonce = os.urandom(16).hex()
    workdir = _fresh_dir()
    stdin_fd = _memfd(stdin)
    payload_fd = _memfd(marshal.dumps({**payload, "mode": mode, "nonce": nonce}))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    rep_r, rep_w = os.pipe()
    oom_before = _oom_kills()
    cpu_before = _container_cpu_s()
    spec = {"cpu_s": limits["cpu_s"], "memory_mb": limits["memory_mb"], "workdir": workdir}
    try:
        pid = _zygote().start_run(spec, [stdin_fd, out_w, err_w, rep_w, payload_fd])
    except RuntimeError:
        _zygote_gone()  # one fresh zygote, then give up: the host retries on another container
        pid = _zygote().start_run(spec, [stdin_fd, out_w, err_w, rep_w, payload_fd])
    finally:
        for fd in (stdin_fd, payload_fd, out_w, err_w, rep_w):
            os.close(fd)
    start = time.monotonic()  # the deadline counts from the fork, never the zygote's own start

    max_out = limits["max_output_bytes"]
    bufs = {out_r: bytearray(), err_r: bytearray(), rep_r: bytearray()}
    caps = {out_r: max_out, err_r: max_out, rep_r: _REPORT_MAX}
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    zygote = _zygote().sock.fileno()  # readable when the run has ended (or the zygote died)
    sel.register(zygote, selectors.EVENT_READ)
    timeout = limits["timeout_s"]
    deadline = start + timeout
    timed_out = overflow = starved = False
    at_deadline = ""
    wait_status = None
    while wait_status is None:
        now = time.monotonic()
        if now >= deadline:
            credit = _starvation_credit_s(pid, cpu_before)
            if now - start - credit < timeout and now - start < _MAX_WALL_FACTOR * timeout:
                deadline = max(start + timeout + credit, now + 0.01)
                continue
            timed_out = True
            ran, waited = _schedstat_s(pid)
            at_deadline = f"ran {ran:.2f} s, waited for a CPU {waited:.2f} s, {credit:.2f} s of it credited"
            starved = now - start - credit < timeout
            break
        remaining = deadline - now
        for key, _ in sel.select(remaining):
            fd = key.fd
            if fd == zygote:
                wait_status = _collect(pid)
                sel.unregister(fd)
                continue
            chunk = _read(fd)
            if chunk is None:
                continue
            if not chunk:
                sel.unregister(fd)
                continue
            bufs[fd] += chunk
            if len(bufs[fd]) > caps[fd]:
                overflow = overflow or fd != rep_r
                del bufs[fd][caps[fd]:]
                if fd != rep_r:
                    break
        if overflow:
            break
    wall = time.monotonic() - start
    if wait_status is None:  # deadline or output limit: kill the run, then collect its status
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_status = _collect(pid)
    for fd in bufs:  # what the run wrote before it ended is still in the pipes
        while len(bufs[fd]) <= caps[fd]:
            chunk = _read(fd)
            if not chunk:
                break
            bufs[fd] += chunk
        del bufs[fd][caps[fd]:]
    sel.close()
    for fd in bufs:
        os.close(fd)
    _reset()
    oom_after = _oom_kills()
    started, report = _authentic_report(bytes(bufs[rep_r]), nonce)
    if not started and wait_status[0] is not None:
        raise RuntimeError(f"a run could not be set up (wait status {wait_status[0]}): {bytes(bufs[err_r][-500:])!r}")
    return {
        "wait_status": wait_status[0],
        "zygote_killed": wait_status[0] is None,
        "timed_out": timed_out,
        "overflow": overflow,
        "oom_killed": oom_before is not None and oom_after is not None and oom_after > oom_before,
        # Hit the hard cap while mostly waiting for a CPU: the machine, not the program, was slow.
        "starved": starved,
        "at_deadline": at_deadline,
        "cpu_s": wait_status[1],
        "wall_s": wall,
        "stdout": bytes(bufs[out_r]).decode("utf-8", "replace"),
        "stderr": bytes(bufs[err_r]).decode("utf-8", "replace"),
        "report": report,
    }


def _schedstat_s(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a process; zeros if unknown."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            ran, waited = f.read().split()[:2]
        return int(ran) / 1e9, int(waited) / 1e9
    except (OSError, ValueError):
        return 0.0, 0.0


def _container_cpu_s() -> float | None:
    """CPU seconds used by the whole container so far (its cgroup), or None where not visible."""
    for path, scale in (("/sys/fs/cgroup/cpuacct/cpuacct.usage", 1e-9), ("/sys/fs/cgroup/cpu.stat", 1e-6)):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        try:
            if path.endswith("cpu.stat"):
                return int(text.split("usage_usec")[1].split()[0]) * scale
            return int(text) * scale
        except (ValueError, IndexError):
            continue
    return None


def _starvation_credit_s(pid: int, cpu_before: float | None) -> float:
    """Time not held against the run's deadline: what its process spent waiting for a CPU, less
    the CPU its own other processes took meanwhile. An overloaded machine (others' work) earns the
    credit, so a correct program is not timed out by it; a program that keeps the CPU busy itself
    (threads, a fork bomb) earns none. Zero where the container's CPU usage is not visible."""
    cpu_now = _container_cpu_s()
    if cpu_before is None or cpu_now is None:
        return 0.0
    ran, waited = _schedstat_s(pid)
    siblings = max(0.0, (cpu_now - cpu_before) - ran)
    return max(0.0, waited - siblings)


def _read(fd: int) -> bytes | None:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return None


def _collect(pid: int) -> tuple[int | None, float]:
    """(wait status, CPU seconds) of a run that has ended, from the zygote (its parent); status
    None when the zygote is gone: only the run itself can have killed it."""
    result = _zygote().exit_status()
    if result is None:
        _zygote_gone()
        return None, 0.0
    return result


def _authentic_report(data: bytes, nonce: str) -> tuple[bool, dict | None]:
    """(whether the run's set-up finished, the first well-formed report line carrying this run's
    nonce (see driver.py's `finish`)); anything else written to the report pipe is ignored."""
    started, report = False, None
    for line in data.split(b"\n"):
        fields = line.split(b" ")
        if fields[0] != nonce.encode():
            continue
        if fields[1:] == [b"started"]:
            started = True
            continue
        if len(fields) != 5 or report is not None:
            continue
        try:
            report = {
                "status": fields[1].decode("ascii"),
                "passed": int(fields[2]),
                "total": int(fields[3]),
                "detail": bytes.fromhex(fields[4].decode("ascii")).decode("utf-8", "replace"),
            }
        except ValueError:
            continue
    return started, report


def _classify(run: dict, limits: dict, mode: str) -> tuple[str, str]:
    """(status, detail) of one run, from what the harness itself observed first, then the report."""
    if run["zygote_killed"]:
        return RUNTIME_ERROR, "the run killed the sandbox's process launcher"
    ws = run["wait_status"]
    sig = os.WTERMSIG(ws) if os.WIFSIGNALED(ws) else 0
    code = os.WEXITSTATUS(ws) if os.WIFEXITED(ws) else None
    report = run["report"] or {}
    if run["oom_killed"]:  # the cause, even when the run then also ran out of time
        return MEMORY, "a process of the run was killed by the container's memory limit"
    if run["timed_out"]:
        return TIMEOUT, f"wall-clock deadline of {limits['timeout_s']:g} s ({run['at_deadline']})"
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and run["cpu_s"] >= limits["cpu_s"]):
        return TIMEOUT, f"CPU-time limit of {limits['cpu_s']} s"
    if report.get("status") == MEMORY:
        return MEMORY, report.get("detail") or "MemoryError"
    if run["overflow"]:
        return FAIL, f"output exceeded {limits['max_output_bytes']} bytes"
    if sig == signal.SIGXFSZ:
        return RUNTIME_ERROR, "file-size limit exceeded"
    if report.get("status") in (SYNTAX_ERROR, RUNTIME_ERROR, BAD_TESTS, FAIL, PASS):
        return report["status"], str(report.get("detail", ""))
    if sig:
        return RUNTIME_ERROR, f"killed by signal {signal.Signals(sig).name}"
    if mode == "tests":
        # No authentic report: the process ended (os._exit, a crash) before the tests finished.
        return FAIL, f"exited with status {code} before the tests finished"
    return (RUNTIME_ERROR, f"exit status {code}") if code else (PASS, "")


# --- reset: nothing of one run survives into the next --------------------------------------------


def _other_pids() -> list[int]:
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_everything(rounds: int = 100) -> bool:
    """SIGKILL every process the runs left behind, until none is left. kill(-1) from PID 1 reaches
    every process of the namespace but the caller, in one pass under the kernel's task-list lock,
    so a fork bomb cannot fork its way past it; it takes the zygote with it (a new one starts on
    the next run), so it is used only when something is left. As PID 1, every orphan is our
    child: the dead are reaped here. True when none is left."""
    z = _ZYGOTE["z"]
    _reap()
    if z is not None and set(_other_pids()) <= {z.pid}:
        return True
    _zygote_gone()  # a new one is started by _reset once the rest is gone
    for _ in range(rounds):
        if not _other_pids():
            return True
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap()
        if _other_pids():
            time.sleep(0.001)  # the killed are exiting; give them a moment before reaping again
            _reap()
    return not _other_pids()


def _wipe(path: str) -> None:
    """Remove everything below `path` (which stays), fixing permissions a program took away."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
    for entry in entries:
        full = entry.path
        try:
            if entry.is_dir(follow_symlinks=False):
                os.chmod(full, 0o700)
                _wipe(full)
                os.rmdir(full)
            else:
                os.unlink(full)
        except OSError:
            pass


_IPC_RMID = 0


def _remove_sysv_ipc() -> None:
    """Delete System V shared memory, semaphores and message queues left in the IPC namespace."""
    libc = _LIBC
    for table, rm in (("shm", lambda i: libc.shmctl(i, _IPC_RMID, None)),
                      ("sem", lambda i: libc.semctl(i, 0, _IPC_RMID)),
                      ("msg", lambda i: libc.msgctl(i, _IPC_RMID, None))):
        try:
            with open(f"/proc/sysvipc/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 1:
                rm(int(fields[1]))


def _sysv_ipc_left() -> bool:
    for table in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{table}") as f:
                if len(f.read().splitlines()) > 1:
                    return True
        except OSError:
            pass
    return False


_CLEAN = {"ok": True}


def _reset() -> None:
    """Kill leftovers, wipe scratch space; remember whether it all worked for the job's answer."""
    ok = _kill_everything()
    for path in _SCRATCH_DIRS:
        _wipe(path)
    _remove_sysv_ipc()
    ok = ok and not any(os.listdir(p) for p in _SCRATCH_DIRS if os.path.isdir(p)) and not _sysv_ipc_left()
    _CLEAN["ok"] = _CLEAN["ok"] and ok
    if _ZYGOTE["source"]:
        _zygote()  # (re)start it now: its interpreter starts while the host reads the reply


def _fresh_dir() -> str:
    path = f"/tmp/run-{os.urandom(6).hex()}"
    os.mkdir(path, 0o700)
    return path


# --- a job: one run (tests) or one run per io case -----------------------------------------------


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT // 2] + "\n...\n" + text[-_EXCERPT // 2 :]


def run_job(job: dict) -> dict:
    limits = {
        "timeout_s": float(job["timeout_s"]),
        "cpu_s": max(1, int(job.get("cpu_s") or -(-float(job["timeout_s"]) // 1))),
        "memory_mb": int(job["memory_mb"]),
        "max_output_bytes": int(job["max_output_bytes"]),
    }
    partial = bool(job.get("partial"))
    _CLEAN["ok"] = True
    start = time.monotonic()
    if job["kind"] == "tests":
        run = _run("tests", {"program": job["program"], "tests": job["tests"], "partial": partial}, b"", limits)
        status, detail = _classify(run, limits, "tests")
        report = run["report"] or {}
        total = int(report.get("total") or 1)
        passed = int(report.get("passed") or 0) if report.get("status") in (PASS, FAIL) else 0
        if status == PASS:
            passed = total
        elif status != FAIL:
            passed = min(passed, total) if partial else 0
        runs = [run]
    else:
        status, detail, passed, runs = PASS, "", 0, []
        cases = job["cases"]
        total = len(cases)
        for i, case in enumerate(cases):
            run = _run("io", {"program": job["program"]}, case["stdin"].encode(), limits)
            runs.append(run)
            case_status, case_detail = _classify(run, limits, "io")
            if case_status == PASS and output_digest(run["stdout"]) != case["stdout_digest"]:
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
    last = runs[-1] if runs else {"stdout": "", "stderr": "", "cpu_s": 0.0}
    return {
        "id": job.get("id"),
        "status": status,
        "detail": detail,
        "passed": passed,
        "total": total,
        "stdout": _excerpt(last["stdout"]),
        "stderr": _excerpt(last["stderr"]),
        "cpu_s": round(sum(r["cpu_s"] for r in runs), 4),
        "wall_s": round(time.monotonic() - start, 4),
        "clean": _CLEAN["ok"],
        "starved": any(r.get("starved") for r in runs),
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


def main(argv: list[str]) -> int:
    # The driver's source (sandbox/driver.py) arrives as an argument: the zygote runs it.
    _ZYGOTE["source"] = argv[1]
    _harden()
    # The channel lives on descriptors no child ever gets (runs get only what start_run passes).
    chan_in = os.fdopen(os.dup(0), "rb")
    chan_out = os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    _reset()

    def answer(obj: dict) -> None:
        _write_all(chan_out, (json.dumps(obj) + "\n").encode())

    answer({"ready": True, "python": sys.version.split()[0], "pid": os.getpid(), "uid": os.getuid(), "clean": _CLEAN["ok"]})
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


if __name__ == "__main__":
    sys.exit(main(sys.argv))
