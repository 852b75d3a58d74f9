"""The code verifier: program extraction, references, and verdicts from the real sandbox."""

import json

import pytest

from sandbox.runner import FAIL, PASS, SANDBOX_ERROR, TAMPER, JobResult
from verifiers import registry
from verifiers.base import ERROR, OK, Verifier, run_verifier
from verifiers.code import CodeVerifier, extract_program, parse_reference
from verifiers.registry import VerifierConfigError

# --- extraction (no Docker) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, program",
    [
        ("x = 1", "x = 1"),  # no fence: the whole text
        ("Here:\n```python\nx = 1\n```\nDone.", "x = 1\n"),
        ("```py\na = 1\n```", "a = 1\n"),
        ("```Python3\na = 1\n```", "a = 1\n"),
        # the last python block wins, even after a later untagged one
        ("```python\nfirst = 1\n```\ntext\n```python\nsecond = 2\n```\n```\nplain\n```", "second = 2\n"),
        # no python tag: the last untagged block; other languages are never the program
        ("```\nuntagged = 1\n```\n```bash\nls\n```", "untagged = 1\n"),
        ("```bash\nls\n```", "```bash\nls\n```"),
        # a block cut off by the token limit is still the program
        ("Solution:\n```python\ndef f():\n    return 1\n", "def f():\n    return 1\n"),
        # indented fences (inside a list) and an info string after the tag
        ("1. code:\n   ```python title=sol.py\n   x = 2\n   ```\n", "   x = 2\n"),
        ("", ""),
    ],
)
def test_extract_program(completion, program):
    assert extract_program(completion) == program


@pytest.mark.parametrize(
    "reference, kind",
    [
        ({"tests": "assert f(1) == 2"}, "tests"),
        ('{"tests": "assert True"}', "tests"),
        ({"io": [{"stdin": "1", "stdout": "2"}]}, "io"),
        ({"io": [{"stdout": "2"}]}, "io"),  # stdin defaults to empty
        (json.dumps({"io": [{"stdin": "", "stdout": ""}]}), "io"),
        ({"fn_name": "f", "inputs": [[1], [2]], "outputs": [2, 3]}, "calls"),
        ({"fn_name": "twoSum", "class_name": "Solution", "inputs": [[[2, 7], 9]], "outputs": [[0, 1]]}, "calls"),
        ({"class_name": "Box", "inputs": [[["Box", "put", "get"], [[], [1], []]]], "outputs": [[None, None, 1]]}, "calls"),
        (json.dumps({"fn_name": "f", "inputs": [[{"a": [1.5, None]}]], "outputs": [True]}), "calls"),
    ],
)
def test_parse_reference(reference, kind):
    assert parse_reference(reference)[0] == kind


def test_isolation_is_process_unless_the_reference_opts_out():
    assert parse_reference({"tests": "assert True"})[1] == ("assert True", "process")
    assert parse_reference({"tests": "assert True", "isolation": "shared"})[1] == ("assert True", "shared")


@pytest.mark.parametrize(
    "reference, message",
    [
        (None, "must be a dict"),
        ("not json", "not JSON"),
        ({}, "exactly one of"),
        ({"tests": "x", "io": []}, "exactly one of"),
        ({"tests": "   "}, "non-empty"),
        ({"io": []}, "non-empty list"),
        ({"io": [{"stdin": "1"}]}, "case 0"),
        ({"io": [{"stdin": 1, "stdout": "1"}]}, "'stdin' must be a string"),
        ({"tests": "assert True", "isolation": "none"}, "'isolation' must be one of"),
        ({"inputs": [[1]], "outputs": [1]}, "needs 'fn_name'"),
        ({"fn_name": "f(x)", "inputs": [[1]], "outputs": [1]}, "identifier"),
        ({"fn_name": "f", "inputs": [[1], [2]], "outputs": [1]}, "same length"),
        ({"fn_name": "f", "inputs": [], "outputs": []}, "non-empty"),
        ({"fn_name": "f", "inputs": [1], "outputs": [1]}, "list of the call's arguments"),
        ({"fn_name": "f", "inputs": [[float("nan")]], "outputs": [1]}, "JSON data"),
        ({"class_name": "Box", "inputs": [[["put"], [[1]]]], "outputs": [[None]]}, "the first operation 'Box'"),
        ({"class_name": "Box", "inputs": [[["Box", "put"], [[]]]], "outputs": [[None]]}, "equal length"),
        ({"class_name": "Box", "inputs": [[["Box", "put"], [[], [1]]]], "outputs": [[None]]}, "one result per operation"),
    ],
)
def test_bad_references_are_errors_not_scores(reference, message):
    with pytest.raises(ValueError, match=message):
        parse_reference(reference)
    verdict = CodeVerifier().verify(["x = 1"], [reference])[0]  # never reaches the sandbox
    assert verdict.status == ERROR and message.split("'")[0] in verdict.reason


def test_options_are_checked_when_built():
    assert isinstance(registry.get("code"), Verifier)
    with pytest.raises(VerifierConfigError, match="timeout_s"):
        registry.get("code", timeout_s=-1)
    with pytest.raises(VerifierConfigError, match="pool_size"):
        registry.get("code", sandbox={"pool_size": 0})
    with pytest.raises(VerifierConfigError, match="exceeds the container"):
        registry.get("code", memory_mb=4096, sandbox={"memory_mb": 512})
    with pytest.raises(VerifierConfigError, match="partial_credit"):
        registry.get("code", partial_credit="yes")


class _FakePool:
    def __init__(self, results):
        self.results = results

    def run_many(self, jobs):
        return self.results[: len(jobs)]


def test_verdict_mapping_without_docker():
    verifier = CodeVerifier()
    verifier._pool = _FakePool(
        [
            JobResult(PASS, passed=2, total=2, wall_s=0.1),
            JobResult(FAIL, passed=1, total=2, detail="test statement 2 (line 2): AssertionError"),
            JobResult("timeout", detail="wall-clock deadline of 5 s"),
            JobResult(SANDBOX_ERROR, detail="attempt 1: container closed its channel"),
            JobResult("bad_tests", detail="the reference tests do not compile"),
            JobResult(FAIL, passed=1, total=2, detail="the program exited with status 0 during the tests", flags=(TAMPER,)),
        ]
    )
    ref = {"tests": "assert True"}
    v = verifier.verify(["a", "b", "c", "d", "e", "f"], [ref] * 6)
    assert (v[0].reward, v[0].status, v[0].latency_s) == (1.0, OK, 0.1)
    assert (v[1].reward, v[1].status) == (0.0, OK) and v[1].reason.startswith("fail: ")
    assert (v[2].reward, v[2].status) == (0.0, OK) and v[2].reason.startswith("timeout: ")
    assert v[3].status == ERROR and "sandbox error" in v[3].reason  # masked, never a 0 reward
    assert v[4].status == ERROR and "bad reference" in v[4].reason
    assert (v[5].reward, v[5].status, v[5].flags) == (0.0, OK, (TAMPER,)) and "exited" in v[5].reason
    assert all(x.flags == () for x in v[:5])


def test_a_tamperer_gets_nothing_even_with_partial_credit():
    verifier = CodeVerifier(partial_credit=True)
    verifier._pool = _FakePool([JobResult(FAIL, passed=3, total=4, detail="compares equal to anything", flags=(TAMPER,))])
    [v] = verifier.verify(["a"], [{"tests": "assert True"}])
    assert (v.reward, v.flags) == (0.0, (TAMPER,)) and "tampering" in v.reason


# --- against the real sandbox -------------------------------------------------------------------


@pytest.fixture(scope="module")
def code_verifier():
    from sandbox.client import DockerUnavailableError, connect

    try:
        connect()
    except DockerUnavailableError as e:
        pytest.fail(f"{e}\n(The docker tests need the daemon; `make test` runs `make docker-ready` first.)")
    verifier = CodeVerifier(timeout_s=2.0, sandbox={"pool_size": 2})
    yield verifier
    verifier.close()


ADD_TESTS = {"tests": "assert add(1, 2) == 3\nassert add(-1, 1) == 0\nassert add(5, 5) == 10\n"}
SUM_IO = {"io": [{"stdin": "1 2\n", "stdout": "3\n"}, {"stdin": "10 20", "stdout": "30"}, {"stdin": "0 0", "stdout": "0"}]}

ANYTHING = "```python\nclass Anything:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Anything()\n```"
ADD_CALLS = {"fn_name": "add", "inputs": [[1, 2], [-1, 1], [5, 5]], "outputs": [3, 0, 10]}

# (completion, reference, reward, status, reason starts with)
CASES = [
    ("```python\ndef add(a, b):\n    return a + b\n```", ADD_TESTS, 1.0, OK, ""),
    ("I think this works:\n```python\ndef add(a, b):\n    return a - b\n```", ADD_TESTS, 0.0, OK, "fail"),
    ("```python\ndef add(a, b)\n    return a + b\n```", ADD_TESTS, 0.0, OK, "syntax_error"),
    ("def add(a, b):\n    return a + b", ADD_TESTS, 1.0, OK, ""),  # bare code
    ("Sure! def add(a, b): return a + b", ADD_TESTS, 0.0, OK, "syntax_error"),  # prose is not a program
    ("```python\nimport sys\nsys.exit(0)\n```", ADD_TESTS, 0.0, OK, "fail, tampering: the program exited (sys.exit(0))"),
    ("```python\ndef add(a, b):\n    while True:\n        pass\n```", ADD_TESTS, 0.0, OK, "timeout"),
    ("```python\nx = [0] * (10 ** 10)\n```", ADD_TESTS, 0.0, OK, "memory"),
    ("```python\nraise RuntimeError('boom')\n```", ADD_TESTS, 0.0, OK, "runtime_error"),
    ("```python\na, b = map(int, input().split())\nprint(a + b)\n```", SUM_IO, 1.0, OK, ""),
    ("```python\nimport sys\nprint(sum(map(int, sys.stdin.read().split())), '  ')\n```", SUM_IO, 1.0, OK, ""),
    ("```python\na, b = map(int, input().split())\nprint(a * b)\n```", SUM_IO, 0.0, OK, "fail"),
    ("```python\nprint(int(input()))\n```", SUM_IO, 0.0, OK, "runtime_error"),
    ("```python\ndef add(a, b):\n    return a + b\n```", {"tests": "assert add(1, 2) ==\n"}, 0.0, ERROR, "bad reference"),
    ("```python\ndef add(a, b):\n    return a + b\n```", json.dumps(ADD_TESTS), 1.0, OK, ""),
    # the tests run in their own process: an object equal to anything is seen, flagged, worth 0
    (ANYTHING, ADD_TESTS, 0.0, OK, "fail, tampering: the program returned"),
    (ANYTHING, {**ADD_TESTS, "isolation": "shared"}, 1.0, OK, ""),  # the opt-in mode it games
    ("```python\ndef add(a, b):\n    return a + b\n```", ADD_CALLS, 1.0, OK, ""),
    ("```python\ndef add(a, b):\n    return a - b\n```", ADD_CALLS, 0.0, OK, "fail: case 0: AssertionError: wrong output"),
    (ANYTHING, ADD_CALLS, 0.0, OK, "fail, tampering"),
    ("```python\nclass Solution:\n    def add(self, a, b):\n        return a + b\n```", ADD_CALLS, 1.0, OK, ""),
]


@pytest.mark.docker
def test_verdicts_against_the_sandbox(code_verifier):
    completions, references = [c[0] for c in CASES], [c[1] for c in CASES]
    verdicts = run_verifier(code_verifier, completions, references)
    for (completion, _, reward, status, reason), v in zip(CASES, verdicts):
        assert (v.reward, v.status) == (reward, status), (completion, v)
        assert v.reason.startswith(reason), (completion, v)
        assert (TAMPER in v.flags) == ("tampering" in reason), (completion, v)


@pytest.mark.docker
def test_partial_credit(code_verifier):
    partial = CodeVerifier(timeout_s=2.0, partial_credit=True, sandbox={"pool_size": 1})
    try:
        half_add = "```python\ndef add(a, b):\n    return a + b if a >= 0 else 99\n```"  # fails add(-1, 1)
        io_two_of_three = "```python\na, b = map(int, input().split())\nprint(a + b if a else 7)\n```"
        v_tests, v_io, v_calls, v_syntax = partial.verify(
            [half_add, io_two_of_three, half_add, "def ("], [ADD_TESTS, SUM_IO, ADD_CALLS, SUM_IO]
        )
        assert (v_tests.reward, v_tests.status) == (pytest.approx(2 / 3), OK) and "(2/3 passed)" in v_tests.reason
        assert (v_io.reward, v_io.status) == (pytest.approx(2 / 3), OK) and "(2/3 passed)" in v_io.reason
        assert (v_calls.reward, v_calls.status) == (pytest.approx(2 / 3), OK) and "case 1" in v_calls.reason
        assert (v_syntax.reward, v_syntax.status) == (0.0, OK)
        # without partial credit the same programs score 0
        assert [v.reward for v in code_verifier.verify([half_add, io_two_of_three], [ADD_TESTS, SUM_IO])] == [0, 0]
    finally:
        partial.close()


@pytest.mark.docker
def test_time_and_memory_options():
    slow = "```python\nimport time\ntime.sleep(1.5)\ndef add(a, b):\n    return a + b\n```"
    big = "```python\nblock = bytearray(150 << 20)\ndef add(a, b):\n    return a + b\n```"
    tight = CodeVerifier(timeout_s=1.0, memory_mb=128, sandbox={"pool_size": 1})
    roomy = CodeVerifier(timeout_s=3.0, memory_mb=256, sandbox={"pool_size": 1})
    try:
        assert [v.reason.split(":")[0] for v in tight.verify([slow, big], [ADD_TESTS] * 2)] == ["timeout", "memory"]
        assert [v.reward for v in roomy.verify([slow, big], [ADD_TESTS] * 2)] == [1.0, 1.0]
    finally:
        tight.close()
        roomy.close()
