"""A pool of worker processes with a hard deadline per job.

Why not `signal.alarm` or `concurrent.futures`: an alarm only works in the main thread of the
main process (a verifier called from a Prefect task thread would get no timeout at all), and a
running future cannot be cancelled. Here a job that overruns has its worker killed with SIGKILL
(a C-level sympy loop cannot ignore it) and replaced, and its result is `TIMEOUT`; a worker that
dies (memory limit, crash) yields `FAILED` for its job and is replaced too. `map` is safe to call
from any thread; calls are served one at a time.

Workers fork from a small server process (`python -m verifiers._forkserver`) that has imported
the job's module once, so a replacement is ready in milliseconds. Unlike multiprocessing's
start methods, nothing re-imports the caller's `__main__` (a trainer that imported torch).
Jobs and results travel as JSON lines over socket pairs.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from typing import Any, Sequence

__all__ = ["DeadlinePool", "DONE", "TIMEOUT", "FAILED"]

DONE, TIMEOUT, FAILED = "done", "timeout", "failed"


class _Worker:
    def __init__(self, pid: int, sock: socket.socket):
        self.pid, self.sock = pid, sock
        self.buffer = b""
        self.job: int | None = None
        self.started = self.deadline = 0.0

    def send(self, job: Sequence[Any]) -> None:
        self.sock.sendall(json.dumps(list(job)).encode() + b"\n")

    def read_line(self) -> bytes | None:
        """The next complete line if one has arrived; raises EOFError when the worker is gone."""
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise EOFError
        self.buffer += chunk
        line, sep, rest = self.buffer.partition(b"\n")
        if not sep:
            return None
        self.buffer = rest
        return line

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.sock.close()


class DeadlinePool:
    """`map(jobs)` runs `target(*job)` (target "module:function", JSON in and out) for each job
    in `workers` processes, each within `timeout_s`. Returns, in order, `(DONE, result)`,
    `(TIMEOUT, None)` or `(FAILED, reason)` per job; `last_elapsed` has each job's seconds."""

    def __init__(self, target: str, workers: int = 2, timeout_s: float = 3.0, memory_mb: int | None = 3072,
                 preload: Sequence[str] = ()):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.target, self.size, self.timeout_s = target, workers, timeout_s
        self.memory_mb = memory_mb or 0
        self.preload = list(preload)
        self.replaced = 0  # workers killed for overrunning, or lost
        self.last_elapsed: list[float] = []
        self._server: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._owner = os.getpid()
        _live_pools.add(self)

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers now (otherwise the first `map` does)."""
        with self._lock:
            self._ensure_started()

    def start_in_background(self) -> None:
        threading.Thread(target=self.start, name="deadline-pool-start", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            if self._owner != os.getpid():
                return
            for worker in self._workers:
                worker.kill()
            self._workers = []
            if self._control is not None:
                self._control.close()  # the server exits when its control socket closes
                self._control = None
            if self._server is not None:
                try:
                    self._server.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    self._server.kill()
                    self._server.wait()
                self._server = None

    def __enter__(self) -> "DeadlinePool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_started(self) -> None:
        if self._owner != os.getpid():  # inherited through fork: those processes are not ours
            self._workers, self._server, self._control, self._owner = [], None, None, os.getpid()
        if self._server is None or self._server.poll() is not None:
            self._start_server()
            self._workers = []
        while len(self._workers) < self.size:
            self._workers.append(self._fork_worker())

    def _start_server(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cmd = [sys.executable, "-m", "verifiers._forkserver", self.target, str(theirs.fileno()), str(self.memory_mb),
               *self.preload]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [_project_root(), os.environ.get("PYTHONPATH", "")] if p)}
        self._server = subprocess.Popen(cmd, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        self._control = ours

    def _fork_worker(self) -> _Worker:
        assert self._control is not None
        self._control.sendall(b"F")
        message, fds, _, _ = socket.recv_fds(self._control, 64, 1)
        if not message or not fds:
            raise RuntimeError("the verifier worker server exited; see its error output above")
        return _Worker(int(message.decode()), socket.socket(fileno=fds[0]))

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        fresh = self._fork_worker()
        self._workers[self._workers.index(worker)] = fresh
        self.replaced += 1
        return fresh

    # --- work -----------------------------------------------------------------------------

    def map(self, jobs: Sequence[Sequence[Any]]) -> list[tuple[str, Any]]:
        results: list[tuple[str, Any]] = [(FAILED, "not run")] * len(jobs)
        elapsed = [0.0] * len(jobs)
        self.last_elapsed = elapsed
        if not jobs:
            return []
        with self._lock:
            self._ensure_started()
            pending = deque(range(len(jobs)))
            idle = list(self._workers)
            busy: dict[int, _Worker] = {}  # fd -> worker
            selector = selectors.DefaultSelector()
            try:
                while pending or busy:
                    while pending and idle:
                        worker = idle.pop()
                        index = pending.popleft()
                        try:
                            worker.send(jobs[index])
                        except OSError:  # died while idle: replace it, retry the job
                            pending.appendleft(index)
                            idle.append(self._replace(worker))
                            continue
                        worker.job, worker.started = index, time.monotonic()
                        worker.deadline = worker.started + self.timeout_s
                        busy[worker.sock.fileno()] = worker
                        selector.register(worker.sock, selectors.EVENT_READ)
                    wait_s = max(0.0, min(w.deadline for w in busy.values()) - time.monotonic())
                    for key, _ in selector.select(timeout=wait_s):
                        worker = busy[key.fd]
                        try:
                            line = worker.read_line()
                        except (EOFError, OSError):
                            line, lost = None, True
                        else:
                            lost = False
                        if line is None and not lost:
                            continue  # half a line: wait for the rest
                        selector.unregister(worker.sock)
                        del busy[key.fd]
                        elapsed[worker.job] = time.monotonic() - worker.started  # type: ignore[index]
                        if lost:
                            results[worker.job] = (FAILED, "worker died (memory limit or crash)")  # type: ignore[index]
                            idle.append(self._replace(worker))
                        else:
                            status, value = json.loads(line)  # type: ignore[arg-type]
                            results[worker.job] = (status, value)  # type: ignore[index]
                            idle.append(worker)
                    now = time.monotonic()
                    for fd, worker in list(busy.items()):
                        if worker.deadline <= now:
                            selector.unregister(worker.sock)
                            del busy[fd]
                            elapsed[worker.job] = now - worker.started  # type: ignore[index]
                            results[worker.job] = (TIMEOUT, None)  # type: ignore[index]
                            idle.append(self._replace(worker))
            finally:
                selector.close()
        return results


def _project_root() -> str:
    """The directory holding the `verifiers` package, so the server imports this very copy."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_live_pools: "weakref.WeakSet[DeadlinePool]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for pool in list(_live_pools):
        pool.close()
