"""The warm container pool: jobs in, `JobResult`s out, spread over containers that stay up.

A job is a program plus Python tests, call-based cases, or stdin/stdout cases. Each job goes
to an idle container's resident harness (sandbox/harness.py), which runs it in a fresh directory
and process group under its limits, then resets the container. A container that fails (no answer
in time, a dead channel, a reset that did not converge) or has run `jobs_per_container` jobs is
replaced, in the background. A job that met a sandbox failure is retried on another container;
if the failure persists its result has status `sandbox_error`, which the code verifier turns into
a masked verdict, never a failing reward.

Every container the pool starts is removed by `close()`, which runs at interpreter exit and on
SIGTERM; containers of a process that died without closing are removed by the daemon (see
sandbox/container.py) or, at the latest, when the next pool starts.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import queue
import signal
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, Sequence

import docker

from sandbox.client import DockerUnavailableError, connect
from sandbox.config import JobLimits, SandboxConfig
from sandbox.container import Container, SandboxFailure, owner_id, remove_orphans
from sandbox.harness import output_digest

__all__ = [
    "PASS",
    "FAIL",
    "SYNTAX_ERROR",
    "RUNTIME_ERROR",
    "TIMEOUT",
    "MEMORY",
    "BAD_TESTS",
    "SANDBOX_ERROR",
    "STATUSES",
    "TAMPER",
    "IOCase",
    "Job",
    "JobResult",
    "SandboxPool",
]

logger = logging.getLogger(__name__)

PASS = "pass"  # the tests ran to the end / every case's output matched
FAIL = "fail"  # a test failed, a wrong output, an early exit, too much output
SYNTAX_ERROR = "syntax_error"  # the program does not compile
RUNTIME_ERROR = "runtime_error"  # the program raised or exited non-zero
TIMEOUT = "timeout"  # the program passed its wall-clock deadline or CPU-time limit
MEMORY = "memory"  # the program hit its memory limit
BAD_TESTS = "bad_tests"  # the reference tests themselves do not compile: the data's fault
SANDBOX_ERROR = "sandbox_error"  # the infrastructure failed, after retries: no judgement
STATUSES = (PASS, FAIL, SYNTAX_ERROR, RUNTIME_ERROR, TIMEOUT, MEMORY, BAD_TESTS, SANDBOX_ERROR)
TAMPER = "tamper"  # a result's flag: the program tried to game its tests


@dataclass(frozen=True)
class IOCase:
    stdin: str
    stdout: str


@dataclass(frozen=True)
class Job:
    """One program to judge.

    - "tests": run `tests` (Python) against the program. With `isolation` "process" (the
      default) the tests run in a trusted process of their own and reach the program's functions
      and classes through proxies that carry plain data only (sandbox/referee.py); with "shared"
      they run after the program in its interpreter, where a program can game them (an `__eq__`
      that always holds, a trace hook, frames): only for tests that need the program's objects.
    - "calls": call-based cases, `calls` = {"fn_name", "inputs", "outputs"} and optionally
      "class_name" (see verifiers/code.py), compared in the trusted process.
    - "io": run the program once per case with its stdin, compare its stdout."""

    kind: Literal["tests", "calls", "io"]
    program: str
    tests: str = ""
    cases: tuple[IOCase, ...] = ()
    calls: dict | None = None
    isolation: Literal["process", "shared"] = "process"
    partial: bool = False
    limits: JobLimits = field(default_factory=JobLimits)

    def __post_init__(self) -> None:
        if self.kind not in ("tests", "calls", "io"):
            raise ValueError(f"Job kind must be 'tests', 'calls' or 'io', got {self.kind!r}")
        if self.kind == "io" and not self.cases:
            raise ValueError("an io job needs at least one case")
        if self.kind == "calls" and not (self.calls and self.calls.get("inputs")):
            raise ValueError("a calls job needs `calls` with at least one input")
        if self.isolation not in ("process", "shared"):
            raise ValueError(f"Job isolation must be 'process' or 'shared', got {self.isolation!r}")

    @property
    def runs(self) -> int:
        return len(self.cases) if self.kind == "io" else 1

    def wire(self, job_id: int) -> dict:
        return {
            "id": job_id,
            "kind": self.kind,
            "program": self.program,
            "tests": self.tests,
            "calls": self.calls,
            "isolation": self.isolation,
            # Expected outputs travel as digests only: the harness never holds them (see harness.py).
            "cases": [{"stdin": c.stdin, "stdout_digest": output_digest(c.stdout)} for c in self.cases],
            "partial": self.partial,
            **self.limits.model_dump(),
        }


@dataclass(frozen=True)
class JobResult:
    status: str
    passed: int = 0
    total: int = 1
    detail: str = ""
    stdout: str = ""
    stderr: str = ""
    cpu_s: float = 0.0
    wall_s: float = 0.0
    attempts: int = 1
    # "tamper": the harness saw the program try to game its tests (the status is then a failure)
    flags: tuple[str, ...] = ()

    @property
    def fraction(self) -> float:
        """Share of io cases or test asserts that passed (1.0 exactly when status is pass)."""
        if self.status == PASS:
            return 1.0
        return min(self.passed, self.total) / self.total if self.total else 0.0


_POOLS: weakref.WeakSet[SandboxPool] = weakref.WeakSet()
_HOOKS = {"installed": False}


def _close_all_pools() -> None:
    for pool in list(_POOLS):
        pool.close()


def _on_sigterm(signum: int, frame: object) -> None:
    # Raising SystemExit unwinds the main thread, so atexit (and every pool's close) runs.
    raise SystemExit(128 + signum)


def _install_exit_hooks() -> None:
    """atexit for every pool; SIGTERM too, when the process has not chosen its own handler."""
    if _HOOKS["installed"]:
        return
    _HOOKS["installed"] = True
    atexit.register(_close_all_pools)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


class SandboxPool:
    """`pool_size` warm containers. Thread-safe: `run` may be called from many threads at once."""

    def __init__(self, config: SandboxConfig | None = None, client: docker.DockerClient | None = None):
        self.config = config or SandboxConfig()
        self._client = client
        self._idle: queue.Queue[Container] = queue.Queue()
        self._lock = threading.Lock()
        self._containers: set[Container] = set()
        self._live = 0  # containers up or being started
        self._ids = itertools.count()
        self._background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox-spawn")
        self._closed = False
        self._started = False
        self.stats = {"jobs": 0, "sandbox_failures": 0, "replaced": 0, "sandbox_errors": 0}

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> SandboxPool:
        """Connect, remove containers left by dead processes, start the warm containers."""
        if self._started:
            return self
        self._client = self._client or connect()
        try:
            self._client.images.get(self.config.image)
        except docker.errors.ImageNotFound:
            raise DockerUnavailableError(
                f"The sandbox image {self.config.image!r} does not exist: build it with "
                "`python -m sandbox.image` (or `make docker-ready`)."
            ) from None
        remove_orphans(self._client)
        self._owner = owner_id()
        _install_exit_hooks()
        _POOLS.add(self)
        self._started = True
        with ThreadPoolExecutor(max_workers=min(self.config.pool_size, 8)) as ex:
            for c in ex.map(lambda _: self._spawn(), range(self.config.pool_size)):
                self._idle.put(c)
        return self

    def close(self) -> None:
        """Remove every container this pool started. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            containers = list(self._containers)
            self._containers.clear()
        self._background.shutdown(wait=True, cancel_futures=True)
        # Plain threads: at interpreter exit (atexit) concurrent.futures refuses new work.
        removers = [threading.Thread(target=c.remove, daemon=True) for c in containers]
        for t in removers:
            t.start()
        for t in removers:
            t.join()
        _POOLS.discard(self)

    def __enter__(self) -> SandboxPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def container_ids(self) -> list[str]:
        with self._lock:
            return [c.id for c in self._containers if c.id]

    # --- jobs -------------------------------------------------------------------------------

    def run(self, job: Job) -> JobResult:
        """Judge one job. A sandbox failure is retried on a fresh container; a persistent one
        gives status sandbox_error (never a failing status)."""
        if not self._started:
            self.start()
        timeout = self.reply_timeout(job)
        reasons = []
        attempts = 1 + self.config.retries
        for attempt in range(1, attempts + 1):
            container = None
            try:
                container = self._acquire(timeout)
                reply = container.call(job.wire(next(self._ids)), timeout)
                if reply.get("status") == "harness_error":
                    raise SandboxFailure(f"harness error: {reply.get('detail')}")
                if reply.get("starved"):
                    raise SandboxFailure("the program was starved of CPU past its deadline (machine overloaded)")
                if reply.get("status") not in STATUSES:
                    raise SandboxFailure(f"unknown status in reply {reply!r:.200}")
            except (SandboxFailure, docker.errors.DockerException, OSError) as e:
                reasons.append(f"attempt {attempt}: {e}")
                self._count("sandbox_failures")
                logger.warning("sandbox failure (%s); %s", e, "retrying" if attempt < attempts else "giving up")
                if container is not None:
                    self._replace(container)
                continue
            self._release(container, clean=bool(reply.get("clean")))
            self._count("jobs")
            return JobResult(
                status=reply["status"],
                passed=int(reply.get("passed", 0)),
                total=int(reply.get("total", 1)),
                detail=str(reply.get("detail", "")),
                stdout=str(reply.get("stdout", "")),
                stderr=str(reply.get("stderr", "")),
                cpu_s=float(reply.get("cpu_s", 0.0)),
                wall_s=float(reply.get("wall_s", 0.0)),
                attempts=attempt,
                flags=tuple(str(f) for f in reply.get("flags", ())),
            )
        self._count("sandbox_errors")
        return JobResult(SANDBOX_ERROR, passed=0, total=job.runs, detail="; ".join(reasons), attempts=attempts)

    def reply_timeout(self, job: Job) -> float:
        """How long the host waits for a job's reply: the harness ends a run by 10x its deadline
        (time waiting for a CPU is not held against the program, up to that cap)."""
        return job.runs * (10 * job.limits.timeout_s + 1.0) + self.config.reply_slack_s

    def run_many(self, jobs: Sequence[Job]) -> list[JobResult]:
        """Judge a batch concurrently, one job per container at a time; results in input order."""
        if not jobs:
            return []
        if not self._started:
            self.start()
        with ThreadPoolExecutor(max_workers=min(len(jobs), self.config.pool_size), thread_name_prefix="sandbox-job") as ex:
            return list(ex.map(self.run, jobs))

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    # --- containers -------------------------------------------------------------------------

    def _spawn(self, counted: bool = False) -> Container:
        """Start a container. `counted`: its slot in `_live` was already taken (a replacement)."""
        with self._lock:
            if self._closed:
                if counted:
                    self._live -= 1
                raise SandboxFailure("the sandbox pool is closed")
            if not counted:
                self._live += 1
        try:
            container = Container(self._client, self.config, self._owner)
        except BaseException:
            with self._lock:
                self._live -= 1
            raise
        with self._lock:
            closed = self._closed
            if not closed:
                self._containers.add(container)
        if closed:  # closed while it started: never hand it out
            container.remove()
            raise SandboxFailure("the sandbox pool is closed")
        return container

    def _acquire(self, timeout: float) -> Container:
        """An idle container; starts one here when the pool is short (a failed background start)."""
        deadline = time.monotonic() + timeout + self.config.start_timeout_s
        while True:
            try:
                return self._idle.get(timeout=0.05)
            except queue.Empty:
                pass
            with self._lock:
                short = self._live < self.config.pool_size and not self._closed
            if short:
                return self._spawn()
            if self._closed:
                raise SandboxFailure("the sandbox pool is closed")
            if time.monotonic() > deadline:
                raise SandboxFailure("no sandbox container became free in time")

    def _release(self, container: Container, clean: bool) -> None:
        if clean and container.jobs_done < self.config.jobs_per_container and not self._closed:
            self._idle.put(container)
        else:
            self._replace(container)

    def _replace(self, container: Container) -> None:
        """Retire a container and start its successor, both in the background."""
        with self._lock:
            self._containers.discard(container)
            closed = self._closed
            if closed:
                self._live -= 1
            self.stats["replaced"] += 1
        try:
            self._background.submit(container.remove)
            if not closed:
                self._background.submit(self._spawn_idle)  # keeps the retired container's slot
        except RuntimeError:  # the executor shut down: the pool is closing
            container.remove()

    def _spawn_idle(self) -> None:
        try:
            self._idle.put(self._spawn(counted=True))
        except Exception as e:  # the slot is free again; _acquire starts one itself if needed
            logger.warning("could not start a replacement sandbox container: %s", e)
