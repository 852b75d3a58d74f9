"""How the harness runs processes in a container: the zygotes that fork every run, a run's
descriptors and what it wrote, deadlines that credit time spent waiting for a CPU, and the reset
after each run, after which nothing of it survives (see harness.py for the whole picture).

Python 3.11 standard library only: this file runs inside the image.
"""

from __future__ import annotations

import ctypes
import json
import marshal
import os
import selectors
import signal
import socket
import time

from sandbox import boot

__all__ = ["Proc", "run", "reset", "state", "SOURCES", "write_all", "REPORT_MAX"]

_SCRATCH_DIRS = ("/tmp", "/dev/shm", "/dev/mqueue")
REPORT_MAX = 1 << 16
_PYTHON = "/usr/bin/python3"
_ZYGOTE_TIMEOUT_S = 10.0
_MAX_WALL_FACTOR = 10.0  # a run ends by 10x its deadline, however loaded the machine
_LIBC = ctypes.CDLL(None, use_errno=True)
SETUP_FAILED = 126  # the exit status of a run whose set-up failed (driver.py's _start_run)


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
    write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Zygote:
    """A process launcher of the container (driver.py's `zygote_main`), a child of the harness:
    role "program" forks programs' runs, role "referee" the trusted processes that test them.
    Started on first use, and again whenever a reset had to kill it or a run killed it."""

    def __init__(self, role: str):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = boot.command(_PYTHON, SOURCES, "driver", ["3", role], list(_ROLE_MODULES[role]))
        pid = os.fork()
        if pid == 0:
            try:
                null = os.open("/dev/null", os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                os.dup2(child.fileno(), 3)
                os.closerange(4, max(os.sysconf("SC_OPEN_MAX"), 4096))
                os.execv(_PYTHON, argv)
            finally:
                os._exit(127)
        child.close()
        self.role = role
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
            raise RuntimeError(f"the {self.role} zygote did not fork a run: {e}") from e
        if not reply.startswith(b"pid "):
            raise RuntimeError(f"the {self.role} zygote did not fork a run: {reply!r}")
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


# The sources of the sandbox's modules (boot.py), from the harness's command line, and which of
# them each zygote role installs (each after those it imports).
SOURCES: dict[str, str] = {}
_ROLE_MODULES = {"program": ("wire", "server", "driver"), "referee": ("wire", "proxies", "remote", "referee", "driver")}
_ZYGOTES: dict[str, _Zygote | None] = {"program": None, "referee": None}


def _zygote(role: str) -> _Zygote:
    if _ZYGOTES[role] is None:
        _ZYGOTES[role] = _Zygote(role)
    return _ZYGOTES[role]


def _zygote_gone(role: str) -> None:
    z = _ZYGOTES[role]
    if z is not None:
        z.close()
        _ZYGOTES[role] = None


class Proc:
    """One process of a run, a program's or a referee's: its descriptors, and what it wrote."""

    def __init__(self, role: str, payload: dict, stdin: bytes, output_cap: int, channel: int | None = None):
        self.role = role
        self.nonce = os.urandom(16).hex()
        self.stdin_fd = _memfd(stdin)
        self.payload_fd = _memfd(marshal.dumps({**payload, "nonce": self.nonce}))
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        self.rep_r, self.rep_w = os.pipe()
        self.channel = channel
        self.bufs = {self.out_r: bytearray(), self.err_r: bytearray(), self.rep_r: bytearray()}
        self.caps = {self.out_r: output_cap, self.err_r: output_cap, self.rep_r: REPORT_MAX}
        self.pid = 0
        self.status: tuple[int | None, float] | None = None  # (wait status, None if its zygote died; CPU s)
        self.ended_first = False  # ended on its own while the run went on
        self.killed = False  # the harness killed it

    def child_fds(self) -> list[int]:
        fds = [self.stdin_fd, self.out_w, self.err_w, self.rep_w, self.payload_fd]
        return fds + ([self.channel] if self.channel is not None else [])

    def close_child_ends(self) -> None:
        for fd in self.child_fds():
            os.close(fd)

    def output(self, fd: int) -> str:
        return bytes(self.bufs[fd]).decode("utf-8", "replace")

    def report(self) -> tuple[bool, dict | None]:
        return _authentic_report(bytes(self.bufs[self.rep_r]), self.nonce)

    def collect(self) -> None:
        """Its (wait status, CPU seconds) from its zygote; status None when the zygote is gone:
        only a run can have killed it."""
        result = _zygote(self.role).exit_status()
        if result is None:
            _zygote_gone(self.role)
            result = (None, 0.0)
        self.status = result

    def kill(self) -> None:
        self.killed = True
        for kill in (os.killpg, os.kill):
            try:
                kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run(procs: list[Proc], limits: dict) -> dict:
    """Run processes together until the first of them (the one whose report decides) has ended;
    then end the rest. Fills each Proc; returns what the harness saw of the run as a whole."""
    workdir = _fresh_dir()
    oom_before = _oom_kills()
    cpu_before = _container_cpu_s()
    spec = {"cpu_s": limits["cpu_s"], "memory_mb": limits["memory_mb"], "workdir": workdir}
    try:
        for p in procs:  # in order: a referee is forked before any program is alive
            try:
                p.pid = _zygote(p.role).start_run(spec, p.child_fds())
            except RuntimeError:
                _zygote_gone(p.role)  # one fresh zygote, then give up: the host retries on another container
                p.pid = _zygote(p.role).start_run(spec, p.child_fds())
    finally:
        for p in procs:
            p.close_child_ends()
    start = time.monotonic()  # the deadline counts from the fork, never the zygote's own start
    primary = procs[0]

    sel = selectors.DefaultSelector()
    for p in procs:
        for fd in p.bufs:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, p)
        sel.register(_zygote(p.role).sock.fileno(), selectors.EVENT_READ, p)  # readable: its run ended
    timeout = limits["timeout_s"]
    deadline = start + timeout
    timed_out = overflow = starved = stopped = False
    at_deadline = ""
    while primary.status is None:
        now = time.monotonic()
        if now >= deadline:
            live = [p.pid for p in procs if p.status is None]
            credit = _starvation_credit_s(live, cpu_before)
            if now - start - credit < timeout and now - start < _MAX_WALL_FACTOR * timeout:
                deadline = max(start + timeout + credit, now + 0.01)
                continue
            timed_out = True
            ran = sum(_schedstat_s(pid)[0] for pid in live)
            waited = sum(_schedstat_s(pid)[1] for pid in live)
            at_deadline = f"ran {ran:.2f} s, waited for a CPU {waited:.2f} s, {credit:.2f} s of it credited"
            starved = now - start - credit < timeout
            state["starved"] = state["starved"] or starved
            stopped = _state(primary.pid) in ("T", "t")
            break
        for key, _ in sel.select(deadline - now):
            p, fd = key.data, key.fd
            if fd not in p.bufs:  # its zygote: the run ended
                sel.unregister(fd)
                p.collect()
                if p is not primary and primary.status is None:
                    p.ended_first = True
                    _kill_all_but({primary.pid})  # what it left holds the channel open: the referee must see it close
                continue
            chunk = _read(fd)
            if chunk is None:
                continue
            if not chunk:
                sel.unregister(fd)
                continue
            if len(p.bufs[fd]) <= p.caps[fd]:
                p.bufs[fd] += chunk
            if len(p.bufs[fd]) > p.caps[fd]:
                del p.bufs[fd][p.caps[fd]:]
                # Too much output from a program ends the run; a referee's (the tests' prints) is cut.
                if p.role == "program" and fd != p.rep_r:
                    overflow = True
                    break
        if overflow:
            break
    wall = time.monotonic() - start
    _drain(primary)
    # A referee that lost its program reports it "gone"; how the program ended (an exit, a signal,
    # or not at all) is the program's own doing only if it ended by itself, which it is doing.
    gone = bool((primary.report()[1] or {}).get("gone")) and not (timed_out or overflow)
    for p in procs:
        if p.status is not None:
            continue
        if gone and _ended_within(p, 0.05):
            p.ended_first = True
            continue
        p.kill()
        p.collect()
    for p in procs:  # what each wrote before it ended is still in its pipes
        _drain(p)
    sel.close()
    for p in procs:
        for fd in p.bufs:
            os.close(fd)
    reset()
    oom_after = _oom_kills()
    for p in procs:
        # A run that ended before saying "started" exited from its set-up (status 126): the sandbox
        # failed. One killed meanwhile was killed by another run (a program that kills every
        # process it can as it starts may catch its referee before that line): the job's verdict.
        ws = p.status[0]
        if not p.report()[0] and ws is not None and os.WIFEXITED(ws) and os.WEXITSTATUS(ws) == SETUP_FAILED:
            raise RuntimeError(
                f"a {p.role} run could not be set up (wait status {p.status[0]}): {bytes(p.bufs[p.err_r][-500:])!r}"
            )
    return {
        "timed_out": timed_out,
        "overflow": overflow,
        "oom_killed": oom_before is not None and oom_after is not None and oom_after > oom_before,
        # Hit the hard cap while mostly waiting for a CPU: the machine, not the program, was slow.
        "starved": starved,
        "stopped": stopped,
        "at_deadline": at_deadline,
        "wall_s": wall,
    }


def _drain(p: Proc) -> None:
    """Read what is left in a run's pipes, up to their caps (they do not block)."""
    for fd in p.bufs:
        while len(p.bufs[fd]) <= p.caps[fd]:
            chunk = _read(fd)
            if not chunk:
                break
            p.bufs[fd] += chunk
        del p.bufs[fd][p.caps[fd]:]


def _ended_within(p: Proc, seconds: float) -> bool:
    """Whether a run's zygote reports it ended within `seconds` (then its status is collected)."""
    sock = _zygote(p.role).sock
    with selectors.DefaultSelector() as sel:
        sel.register(sock.fileno(), selectors.EVENT_READ)
        if not sel.select(seconds):
            return False
    p.collect()
    return True


def _state(pid: int) -> str:
    """A process's state letter (R, S, T...) from /proc, or "" when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


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


def _starvation_credit_s(pids: list[int], cpu_before: float | None) -> float:
    """Time not held against the run's deadline: what its processes spent waiting for a CPU, less
    the CPU the container's other processes took meanwhile. An overloaded machine (others' work)
    earns the credit, so a correct program is not timed out by it; a program that keeps the CPU
    busy itself (threads, a fork bomb) earns none. Zero where the container's CPU usage is not
    visible."""
    cpu_now = _container_cpu_s()
    if cpu_before is None or cpu_now is None:
        return 0.0
    ran = waited = 0.0
    for pid in pids:
        r, w = _schedstat_s(pid)
        ran, waited = ran + r, waited + w
    siblings = max(0.0, (cpu_now - cpu_before) - ran)
    return max(0.0, waited - siblings)


def _read(fd: int) -> bytes | None:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return None


def _authentic_report(data: bytes, nonce: str) -> tuple[bool, dict | None]:
    """(whether the run's set-up finished, the first well-formed "NONCE done HEX-JSON" report line
    carrying this run's nonce); anything else written to the report pipe is ignored."""
    started, report = False, None
    for line in data.split(b"\n"):
        fields = line.split(b" ")
        if fields[0] != nonce.encode():
            continue
        if fields[1:] == [b"started"]:
            started = True
            continue
        if len(fields) != 3 or fields[1] != b"done" or report is not None:
            continue
        try:
            found = json.loads(bytes.fromhex(fields[2].decode("ascii")))
        except ValueError:
            continue
        if (
            isinstance(found, dict)
            and isinstance(found.get("status"), str)
            and all(isinstance(found.get(k), int) for k in ("passed", "total"))
            and isinstance(found.get("detail"), str)
            and isinstance(found.get("flags", []), list)
            and all(isinstance(f, str) for f in found.get("flags", []))
        ):
            report = found
    return started, report


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
    so a fork bomb cannot fork its way past it; it takes the zygotes with it (new ones start on the
    next run), so it is used only when something is left. As PID 1, every orphan is our child:
    the dead are reaped here. True when none is left."""
    _reap()
    zygotes = {z.pid for z in _ZYGOTES.values() if z is not None}
    if set(_other_pids()) <= zygotes:
        return True
    for role in _ZYGOTES:
        _zygote_gone(role)  # new ones are started by _reset once the rest is gone
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


def _kill_all_but(keep: set[int], rounds: int = 20) -> None:
    """SIGKILL every process but the harness, the zygotes and `keep` (a referee whose program has
    ended: whatever the program left may still hold its end of the channel)."""
    for _ in range(rounds):
        spare = keep | {z.pid for z in _ZYGOTES.values() if z is not None}
        left = [pid for pid in _other_pids() if pid not in spare]
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.001)


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


# What the runs of the current job left: whether every reset converged, whether a run hit the hard
# cap while mostly waiting for a CPU (the machine, not the program, was slow). The harness reads both.
state = {"clean": True, "starved": False}


def reset() -> None:
    """Kill leftovers, wipe scratch space; remember whether it all worked for the job's answer."""
    ok = _kill_everything()
    for path in _SCRATCH_DIRS:
        _wipe(path)
    _remove_sysv_ipc()
    ok = ok and not any(os.listdir(p) for p in _SCRATCH_DIRS if os.path.isdir(p)) and not _sysv_ipc_left()
    state["clean"] = state["clean"] and ok
    if SOURCES:
        for role in _ZYGOTES:
            _zygote(role)  # (re)start them now: their interpreters start while the host reads the reply


def _fresh_dir() -> str:
    path = f"/tmp/run-{os.urandom(6).hex()}"
    os.mkdir(path, 0o700)
    return path
