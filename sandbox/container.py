"""One sandbox container: created with every limit, running the resident harness as PID 1, and
the host's end of its job channel (the container's attached stdin/stdout).

Each container carries the label `rlvr.sandbox=1` and its owner (`host:pid:start-time` of the
process that started it). Three things remove it: `Container.remove` (the pool's close, at exit or
on SIGTERM); the daemon itself when the owner dies outright, because the attached stdin closes with
the owner's socket, the harness reads end-of-file and exits, and the container was created with
auto-remove; and `remove_orphans`, run when a pool starts, for anything that slipped through both
(say, a container created but not yet started when its owner was killed).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import docker
from docker.types import Ulimit

from sandbox.config import SandboxConfig

__all__ = ["LABEL", "OWNER_LABEL", "SandboxFailure", "Container", "owner_id", "owner_alive", "remove_orphans"]

logger = logging.getLogger(__name__)

LABEL = "rlvr.sandbox"
OWNER_LABEL = "rlvr.sandbox.owner"
_HERE = Path(__file__).resolve().parent
# The sources of the sandbox's modules, passed on the harness's command line (sandbox/boot.py), each
# after those it imports: the image holds only Python.
_BOOT = (_HERE / "boot.py").read_text()
_MODULES = [
    f"{name}={(_HERE / f'{name}.py').read_text()}"
    for name in ("boot", "wire", "server", "proxies", "remote", "referee", "driver", "runs", "harness")
]
_STDERR_TAIL = 4000


class SandboxFailure(Exception):
    """The container, not the program, failed: no reply in time, a closed channel, a bad reply."""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner_id(pid: int | None = None) -> str:
    """`host:pid:start-time`: a pid alone could be reused by an unrelated process after a crash."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_alive(owner: str) -> bool:
    """False when the owner was a process on this host that no longer runs. An owner on another
    host (a daemon shared between machines) cannot be checked, so it counts as alive."""
    host, _, rest = owner.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    return _start_time(int(pid)) == start


def remove_orphans(client: docker.DockerClient) -> int:
    """Remove every labelled sandbox container whose owner process is gone. Returns how many."""
    removed = 0
    for info in client.api.containers(all=True, filters={"label": f"{LABEL}=1"}):
        owner = (info.get("Labels") or {}).get(OWNER_LABEL, "")
        if owner_alive(owner):
            continue
        try:
            client.api.remove_container(info["Id"], force=True)
            removed += 1
        except docker.errors.NotFound:
            pass  # auto-removed meanwhile
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: a removal is already in progress
                raise
    if removed:
        logger.info("removed %d sandbox containers left by processes that died", removed)
    return removed


class Container:
    """A started container whose harness has said it is ready. `call` sends a job, returns the reply."""

    def __init__(self, client: docker.DockerClient, config: SandboxConfig, owner: str):
        self.client = client
        self.config = config
        self.jobs_done = 0
        self.id: str | None = None
        self._sock: Any = None
        self._out = bytearray()
        self._err = bytearray()
        start = time.monotonic()
        try:
            self._create(owner)
            hello = self._recv(start + config.start_timeout_s)
        except BaseException:
            self.remove()
            raise
        if not hello.get("ready"):
            self.remove()
            raise SandboxFailure(f"sandbox harness did not start: {hello!r}")
        self.info = hello
        self.startup_s = time.monotonic() - start

    def _create(self, owner: str) -> None:
        c = self.config
        api = self.client.api
        host_config = api.create_host_config(
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={c.tmpfs_mb}m,mode=1777"},
            shm_size=f"{c.shm_mb}m",
            ipc_mode="private",
            mem_limit=f"{c.memory_mb}m",
            memswap_limit=f"{c.memory_mb}m",  # equal to the memory limit: no swap
            pids_limit=c.pids_limit,
            nano_cpus=int(c.cpus * 1e9),
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            ulimits=[
                Ulimit(name="fsize", soft=c.fsize_mb << 20, hard=c.fsize_mb << 20),
                Ulimit(name="nofile", soft=c.nofile, hard=c.nofile),
                Ulimit(name="core", soft=0, hard=0),
            ],
            auto_remove=True,
        )
        created = api.create_container(
            c.image,
            command=["python3", "-I", "-X", "utf8", "-c", _BOOT, "harness", "--", *_MODULES],
            user=c.user,
            hostname="sandbox",
            working_dir="/tmp",
            stdin_open=True,  # with detach=False this sets StdinOnce: our socket closing ends the harness
            detach=False,
            network_disabled=True,
            labels={LABEL: "1", OWNER_LABEL: owner},
            host_config=host_config,
        )
        self.id = created["Id"]
        # Attach before starting, so not a byte of the harness's output is missed.
        sock = api.attach_socket(self.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        self._sock = getattr(sock, "_sock", sock)
        api.start(self.id)

    def call(self, job: dict, timeout_s: float) -> dict:
        """Send one job; its reply, or SandboxFailure when none comes within `timeout_s`."""
        try:
            self._sock.sendall((json.dumps(job) + "\n").encode())
        except OSError as e:
            raise SandboxFailure(f"cannot send a job to container {self.short_id}: {e}{self._stderr_note()}") from e
        reply = self._recv(time.monotonic() + timeout_s)
        self.jobs_done += 1
        return reply

    @property
    def short_id(self) -> str:
        return (self.id or "?")[:12]

    def _recv(self, deadline: float) -> dict:
        while b"\n" not in self._out:
            self._read_frame(deadline)
        line, _, rest = bytes(self._out).partition(b"\n")
        self._out = bytearray(rest)
        try:
            reply = json.loads(line)
        except ValueError as e:
            raise SandboxFailure(f"container {self.short_id} sent a malformed reply: {line[:200]!r}") from e
        if not isinstance(reply, dict):
            raise SandboxFailure(f"container {self.short_id} sent a malformed reply: {line[:200]!r}")
        return reply

    def _read_frame(self, deadline: float) -> None:
        # Without a TTY, the attach stream is multiplexed: 8-byte header (stream, 0, 0, 0, size BE).
        header = self._read_exact(8, deadline)
        size = int.from_bytes(header[4:8], "big")
        data = self._read_exact(size, deadline)
        if header[0] == 2:
            self._err += data
            del self._err[: max(0, len(self._err) - _STDERR_TAIL)]
        else:
            self._out += data

    def _read_exact(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxFailure(f"container {self.short_id} did not answer in time{self._stderr_note()}")
            try:
                self._sock.settimeout(remaining)
                chunk = self._sock.recv(n - len(buf))
            except socket.timeout:
                continue
            except OSError as e:
                raise SandboxFailure(f"container {self.short_id}'s channel failed: {e}{self._stderr_note()}") from e
            if not chunk:
                raise SandboxFailure(f"container {self.short_id} closed its channel{self._stderr_note()}")
            buf += chunk
        return bytes(buf)

    def _stderr_note(self) -> str:
        text = self._err.decode("utf-8", "replace").strip()
        return f"; harness stderr: {text[-1000:]}" if text else ""

    def remove(self) -> None:
        """Force-remove the container (idempotent) and close the channel."""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        if self.id is None:
            return
        try:
            self.client.api.remove_container(self.id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: auto-removal already in progress
                logger.warning("could not remove sandbox container %s: %s", self.short_id, e)
        self.id = None
