"""A stage that fails on purpose, for the tests of what the round flow retries: each run appends a
line to `<output_dir>/attempts`, then raises the error that `FAILURE` in the environment names.

    python -m tests.flows.failing_stage --config FILE
"""

import os
import sys

from errors import DataError, RunHealthError
from pipeline.stages import StageSpec, stage_main

SPEC = StageSpec("tests.flows.failing_stage", section=None, directory="failing", produces=())


def fail(cfg, init=None, inputs=None):
    cfg.output_path.mkdir(parents=True, exist_ok=True)
    with (cfg.output_path / "attempts").open("a") as f:
        f.write("attempt\n")
    failure = os.environ.get("FAILURE", "crash")
    if failure == "user":
        raise DataError("data.jsonl: row 3: field 'answer' is missing")
    if failure == "guard":
        raise RunHealthError("failing stopped by the run-health guard: 100% of the verdicts were masked")
    raise RuntimeError("a crash that a retry may mend")


if __name__ == "__main__":
    sys.exit(stage_main("failing", fail, spec=SPEC))
