"""Thin Prefect wiring over `pipeline`, and the `rlvr` command line.

    stages.py     the stage table (name -> module) and the stage subprocess
    execution.py  ExecutionConfig: time limits, retries, concurrency limit, launcher
    round.py      the round flow: stages in order, cached and retried tasks, rlvr.round.completed
    campaign.py   the campaign flow: rounds in a loop until K or a plateau
    artifacts.py  metrics tables, summaries with plots, verifier statistics, the rounds table
    serve.py      `rlvr serve`: server, work pool, gpu limit, deployments (prefect.yaml), worker
"""

import os

# The embedded server is local and offline: no usage telemetry (its SQLite writes also raced
# the flow's own at start-up and logged "database is locked").
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

__all__: list[str] = []
