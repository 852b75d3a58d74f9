"""Typed settings of the sandbox: the pool, each container's limits, and each job's defaults.

Defaults suit a 2-core machine scoring short test programs: four warm containers of one CPU each
(two per core, since a container spends much of each job starting the program's interpreter).
Imports pydantic only, like pipeline/config.py.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["SandboxConfig", "JobLimits"]

_DEFAULT_IMAGE = "rlvr-sandbox:bookworm-py3-1"  # sandbox.image.IMAGE, without importing docker


class JobLimits(BaseModel):
    """Limits of one program run (each io case is its own run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(5.0, gt=0, le=300, description="Wall-clock deadline of one run, seconds")
    cpu_s: int | None = Field(
        None, ge=1, le=300, description="CPU-time limit of one run, seconds (default: the deadline, rounded up)"
    )
    memory_mb: int = Field(
        256, ge=32, le=65536, description="Address-space limit of the program's process, MiB (RLIMIT_AS)"
    )
    max_output_bytes: int = Field(
        1 << 20, ge=1024, le=1 << 28, description="stdout or stderr beyond this ends the run as a failure"
    )


class SandboxConfig(BaseModel):
    """The warm container pool and the limits every container runs under."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field(_DEFAULT_IMAGE, min_length=1, description="Runner image (built by `python -m sandbox.image`)")
    pool_size: int = Field(4, ge=1, le=256, description="Warm containers, each running one job at a time")
    jobs_per_container: int = Field(
        200, ge=1, le=100_000, description="A container is replaced after this many jobs"
    )
    retries: int = Field(
        1, ge=0, le=5, description="Extra attempts, each on a fresh container, for a job that hit a sandbox error"
    )
    cpus: float = Field(1.0, gt=0, le=64, description="CPU limit of each container (docker --cpus)")
    memory_mb: int = Field(
        512, ge=64, le=1 << 20, description="Memory limit of each container, MiB; swap is not allowed"
    )
    pids_limit: int = Field(64, ge=8, le=4096, description="Processes and threads per container (fork bombs stop here)")
    tmpfs_mb: int = Field(64, ge=1, le=4096, description="Size of each container's /tmp (a tmpfs), MiB")
    shm_mb: int = Field(16, ge=1, le=4096, description="Size of each container's /dev/shm, MiB")
    fsize_mb: int = Field(16, ge=1, le=4096, description="Largest file a program may write, MiB (ulimit fsize)")
    nofile: int = Field(256, ge=16, le=65536, description="Open files per process (ulimit nofile)")
    user: str = Field("65534:65534", pattern=r"^[1-9]\d*:[1-9]\d*$", description="Unprivileged uid:gid (never root)")
    start_timeout_s: float = Field(60.0, gt=0, le=600, description="Time for a new container to report ready")
    reply_slack_s: float = Field(
        10.0, gt=0, le=600, description="Allowance beyond a job's own deadlines before the host gives up on a container"
    )
    limits: JobLimits = Field(default_factory=JobLimits, description="Defaults for each job's limits")

    @model_validator(mode="after")
    def _job_fits_container(self) -> SandboxConfig:
        if self.limits.memory_mb > self.memory_mb:
            raise ValueError(
                f"limits.memory_mb ({self.limits.memory_mb}) exceeds the container's memory_mb ({self.memory_mb})"
            )
        return self
