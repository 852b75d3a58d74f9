"""Thin Prefect wiring over `pipeline`: stage tasks and the round flow, and the `rlvr` CLI."""

import os

# The embedded server is local and offline: no usage telemetry (its SQLite writes also raced
# the flow's own at start-up and logged "database is locked").
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

__all__: list[str] = []
