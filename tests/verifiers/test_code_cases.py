"""The `code` verifier on problems written for it: 60 MBPP-style problems (a function and three
asserts, mbpp_cases.py) and 24 call-based problems (call_cases.py). Each reference solution
passes; each wrong one fails, for being wrong (status ok, reward 0, no tamper flag)."""

import importlib.util
from pathlib import Path

import pytest

from verifiers.base import OK
from verifiers.code import CodeVerifier

pytestmark = pytest.mark.docker


def _load(name: str):
    # Loaded by path: tests/ is not a package.
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CASES


MBPP = _load("mbpp_cases")
CALLS = _load("call_cases")


@pytest.fixture(scope="module")
def verifier():
    v = CodeVerifier(timeout_s=5.0, sandbox={"pool_size": 2})
    yield v
    v.close()


def _judge(verifier, cases, reference_of):
    names = [case[0] for case in cases]
    right = [f"```python\n{case[1]}```" for case in cases]
    wrong = [f"```python\n{case[2]}```" for case in cases]
    references = [reference_of(case) for case in cases] * 2
    verdicts = verifier.verify(right + wrong, references)
    bad_right = [(n, v) for n, v in zip(names, verdicts[: len(cases)]) if (v.reward, v.status, v.flags) != (1.0, OK, ())]
    bad_wrong = [(n, v) for n, v in zip(names, verdicts[len(cases):]) if (v.reward, v.status, v.flags) != (0.0, OK, ())]
    assert not bad_right, f"reference solutions not passing: {bad_right[:5]}"
    assert not bad_wrong, f"wrong solutions not failing: {bad_wrong[:5]}"
    return verdicts[len(cases):]


def test_mbpp_style_problems(verifier):
    assert len(MBPP) >= 50 and len({c[0] for c in MBPP}) == len(MBPP)
    assert all(c[3].count("assert ") >= 3 for c in MBPP)
    wrong = _judge(verifier, MBPP, lambda case: {"tests": case[3]})
    assert all(v.reason.startswith(("fail", "runtime_error")) for v in wrong), [v.reason for v in wrong][:5]


def test_call_based_problems(verifier):
    assert len(CALLS) >= 20 and len({c[0] for c in CALLS}) == len(CALLS)
    forms = {("fn" if c[3].get("fn_name") else "design") + ("+class" if c[3].get("class_name") else "") for c in CALLS}
    assert forms == {"fn", "fn+class", "design+class"}, forms  # functions, Solution methods, design problems
    wrong = _judge(verifier, CALLS, lambda case: case[3])
    assert all("case " in v.reason for v in wrong), [v.reason for v in wrong][:5]


def test_call_based_partial_credit_counts_cases():
    partial = CodeVerifier(timeout_s=5.0, partial_credit=True, sandbox={"pool_size": 1})
    try:
        name, _, wrong, reference = next(c for c in CALLS if c[0] == "digital_root")
        [v] = partial.verify([f"```python\n{wrong}```"], [reference])
    finally:
        partial.close()
    # sum of digits once: right for 16 -> 7 and 0 -> 0 only (942 -> 15, 132189 -> 24, 493193 -> 29)
    assert v.reward == pytest.approx(2 / 5) and "(2/5 passed)" in v.reason, v
