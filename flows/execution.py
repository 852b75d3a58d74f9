"""How the flows run their stages: time limits, retries, the accelerator's concurrency limit and
the launcher. A flow parameter like the run config, so the Prefect UI draws it as a form too.

(No `from __future__ import annotations` here: Prefect builds the parameter schema from the
runtime annotations.)
"""

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ExecutionConfig"]


class ExecutionConfig(BaseModel):
    """Orchestration settings, separate from the run config: they change how a stage is run,
    never what it computes, so they are not part of any stage's cache key."""

    model_config = ConfigDict(extra="forbid")

    stage_timeout_s: float = Field(
        6 * 3600, gt=0, le=30 * 24 * 3600, description="A stage still running after this many seconds is killed"
    )
    retries: int = Field(1, ge=0, le=20, description="Retries of a failed stage (it resumes from its last checkpoint)")
    retry_delay_s: float = Field(10, ge=0, le=3600, description="Seconds between a stage's failure and its retry")
    concurrency_limit: str | None = Field(
        "gpu",
        min_length=1,
        description="Global concurrency limit every stage holds one slot of while it runs (serialises "
        "stages sharing an accelerator); None: no limit",
    )
    launcher: list[str] = Field(
        default_factory=list,
        description="Command prefix for training stages, e.g. ['accelerate', 'launch', '--num_processes', '8']; "
        "empty: this Python interpreter",
    )
