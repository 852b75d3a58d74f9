"""The `code` verifier: runs the completion's program against the reference's tests in the Docker
sandbox (sandbox/) and rewards passing.

The program is the last fenced python block of the completion (```python / ```py / ```python3),
else the last untagged fenced block, else the whole text. A reference is one of

    {"tests": "<python source>"}                          # pass = every statement completes
    {"fn_name": "solve", "inputs": [[arg, ...], ...], "outputs": [result, ...]}
    {"io": [{"stdin": "...", "stdout": "..."}, ...]}      # run per case; stdout compared, whitespace-normalised

given as a dict or as its JSON text (a dataset column).

`tests` run in a trusted process of their own; they reach the program's functions and classes
through proxies that carry plain data only, so a program cannot pass by returning an object that
equals anything, by patching builtins, by walking frames or by exiting early (sandbox/referee.py
says what the tests may do with a program's objects). `"isolation": "shared"` on the reference
runs the tests inside the program's interpreter instead, as most harnesses do: it is gameable by
exactly those tricks, and is only for tests that must share the program's objects.

Call-based references (APPS / TACO / LiveCodeBench style) call `fn_name` with each input's
arguments and compare the result with the output in the trusted process (tuples read as lists;
an output wrapped in a one-element list, as in APPS and TACO, also matches its element). With
`"class_name"`, each case calls the method `fn_name` of a fresh instance (LeetCode's `Solution`;
a program without a top-level `fn_name` but with a `Solution` class is called that way too);
without `fn_name`, each input is a design problem, `[operations, arguments]`, whose first
operation constructs `class_name` and whose output lists each operation's result (None first).

Verdicts:
- pass: reward 1.0, status ok;
- fail, syntax error, runtime error, timeout, memory-killed: the program's own fault, so status ok
  with reward 0 (or, with `partial_credit`, the fraction of io cases, call cases or top-level
  asserts that passed), and a reason naming the sandbox status;
- a gaming attempt the sandbox saw (a result that compares equal to anything or disguises its
  class, an exit before the tests finished, writing outside the protocol, killing or stopping the
  test runner): reward 0 whatever the credit, the reason naming it, and the flag "tamper";
- a sandbox failure that persisted through a retry on a fresh container, a reference that is
  malformed or whose tests do not compile: status error, masked out of training.

The batch is spread over the sandbox's warm containers concurrently. The pool starts on the first
`verify` (so building the verifier starts no Docker) and is removed at exit or by `close()`.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, ClassVar, Sequence

from pydantic import ValidationError

from sandbox.config import JobLimits, SandboxConfig
from sandbox.runner import BAD_TESTS, PASS, SANDBOX_ERROR, TAMPER, IOCase, Job, JobResult, SandboxPool
from verifiers.base import ERROR, OK, Verdict

__all__ = ["CodeVerifier", "extract_program", "parse_reference"]

# An opening fence with its info string, the body, and the closing fence (or the end of the text:
# a completion cut off by the token limit still has its code scored).
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3", "py3"}
_REASON_CHARS = 300


def extract_program(completion: str) -> str:
    """The program in a completion: the last python-tagged fenced block, else the last untagged
    fenced block, else the whole text."""
    tagged, untagged = None, None
    for m in _FENCE.finditer(completion):
        tag = m.group(1).lower()
        if tag in _PYTHON_TAGS:
            tagged = m.group(2)
        elif not tag:
            untagged = m.group(2)
    if tagged is not None:
        return tagged
    if untagged is not None:
        return untagged
    return completion


_ISOLATIONS = ("process", "shared")


def parse_reference(reference: Any) -> tuple[str, Any]:
    """("tests", (source, isolation)), ("calls", spec) or ("io", [IOCase, ...]); ValueError saying
    what is wrong otherwise."""
    if isinstance(reference, str):
        try:
            reference = json.loads(reference)
        except ValueError as e:
            raise ValueError(f"reference is a string but not JSON ({e})") from None
    if not isinstance(reference, dict):
        raise ValueError(f"reference must be a dict with 'tests', 'io' or 'fn_name', got {type(reference).__name__}")
    kinds = [k for k in ("tests", "io", "inputs") if k in reference]
    if len(kinds) != 1:
        raise ValueError(
            f"reference must have exactly one of 'tests', 'io' or 'inputs' (with 'fn_name'), got keys {sorted(reference)}"
        )
    if kinds == ["tests"]:
        tests = reference["tests"]
        if not isinstance(tests, str) or not tests.strip():
            raise ValueError("reference 'tests' must be non-empty Python source")
        isolation = reference.get("isolation", "process")
        if isolation not in _ISOLATIONS:
            raise ValueError(f"reference 'isolation' must be one of {_ISOLATIONS}, got {isolation!r}")
        return "tests", (tests, isolation)
    if kinds == ["inputs"]:
        return "calls", _parse_calls(reference)
    cases = reference["io"]
    if not isinstance(cases, list) or not cases:
        raise ValueError("reference 'io' must be a non-empty list of {'stdin', 'stdout'} cases")
    parsed = []
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("stdout"), str):
            raise ValueError(f"reference io case {i} must be a dict with a string 'stdout'")
        stdin = case.get("stdin", "")
        if not isinstance(stdin, str):
            raise ValueError(f"reference io case {i}: 'stdin' must be a string")
        parsed.append(IOCase(stdin, case["stdout"]))
    return "io", parsed


def _parse_calls(reference: dict) -> dict:
    fn_name, class_name = reference.get("fn_name"), reference.get("class_name")
    for key, name in (("fn_name", fn_name), ("class_name", class_name)):
        if name is not None and not (isinstance(name, str) and name.isidentifier()):
            raise ValueError(f"reference '{key}' must be a Python identifier, got {name!r}")
    if fn_name is None and class_name is None:
        raise ValueError("a call-based reference needs 'fn_name' (and, for a class, 'class_name')")
    inputs, outputs = reference["inputs"], reference.get("outputs")
    if not isinstance(inputs, list) or not inputs or not isinstance(outputs, list) or len(outputs) != len(inputs):
        raise ValueError("reference 'inputs' and 'outputs' must be non-empty lists of the same length")
    for i, (args, expected) in enumerate(zip(inputs, outputs)):
        if fn_name is not None:
            if not isinstance(args, list):
                raise ValueError(f"reference input {i} must be the list of the call's arguments")
            continue
        ok = isinstance(args, list) and len(args) == 2 and all(isinstance(x, list) for x in args)
        ops, op_args = args if ok else ([], [])
        if not (ok and ops and len(ops) == len(op_args) and ops[0] == class_name):
            raise ValueError(
                f"reference input {i} must be [operations, arguments] of equal length, the first operation {class_name!r}"
            )
        if not all(isinstance(op, str) and op.isidentifier() for op in ops) or not all(isinstance(a, list) for a in op_args):
            raise ValueError(f"reference input {i}: operations must be method names and arguments lists")
        if not (isinstance(expected, list) and len(expected) == len(ops)):
            raise ValueError(f"reference output {i} must list one result per operation")
    try:
        json.dumps([inputs, outputs], allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"reference 'inputs' and 'outputs' must be JSON data ({e})") from None
    return {"fn_name": fn_name, "class_name": class_name, "inputs": inputs, "outputs": outputs}


class CodeVerifier:
    """Scores programs by running them against tests in the sandbox; see the module docstring.

    Options (from `verifiers.options.code` in a run config): `timeout_s`, `memory_mb`,
    `max_output_bytes` per program run; `partial_credit`; `sandbox`, a dict of
    `sandbox.config.SandboxConfig` fields (pool size, container limits).
    """

    name: ClassVar[str] = "code"

    def __init__(
        self,
        timeout_s: float = 5.0,
        memory_mb: int = 256,
        max_output_bytes: int = 1 << 20,
        partial_credit: bool = False,
        sandbox: dict | SandboxConfig | None = None,
    ):
        try:
            self.limits = JobLimits(timeout_s=timeout_s, memory_mb=memory_mb, max_output_bytes=max_output_bytes)
            base = sandbox if isinstance(sandbox, SandboxConfig) else SandboxConfig(**(sandbox or {}))
            # The job limits above are the ones that apply; the container must have room for them.
            self.sandbox = SandboxConfig(**{**base.model_dump(), "limits": self.limits.model_dump()})
        except ValidationError as e:
            raise ValueError(str(e)) from None
        if not isinstance(partial_credit, bool):
            raise ValueError(f"partial_credit must be true or false, got {partial_credit!r}")
        self.partial_credit = partial_credit
        self._pool: SandboxPool | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> SandboxPool:
        with self._lock:
            if self._pool is None:
                self._pool = SandboxPool(self.sandbox).start()
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def verify(self, completions: Sequence[str], references: Sequence[Any]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(completions)
        jobs, where = [], []
        for i, (completion, reference) in enumerate(zip(completions, references, strict=True)):
            try:
                kind, spec = parse_reference(reference)
            except ValueError as e:
                verdicts[i] = Verdict(0.0, ERROR, f"bad reference: {e}")
                continue
            program = extract_program(completion)
            if kind == "tests":
                tests, isolation = spec
                job = Job("tests", program, tests=tests, isolation=isolation, partial=self.partial_credit, limits=self.limits)
            elif kind == "calls":
                job = Job("calls", program, calls=spec, partial=self.partial_credit, limits=self.limits)
            else:
                job = Job("io", program, cases=tuple(spec), partial=self.partial_credit, limits=self.limits)
            jobs.append(job)
            where.append(i)
        if jobs:
            for i, result in zip(where, self.pool.run_many(jobs)):
                verdicts[i] = self._verdict(result)
        return verdicts  # type: ignore[return-value]

    def _verdict(self, r: JobResult) -> Verdict:
        latency = max(r.wall_s, 0.0)
        if r.status == SANDBOX_ERROR:
            return Verdict(0.0, ERROR, _clip(f"sandbox error: {r.detail}"), latency)
        if r.status == BAD_TESTS:
            return Verdict(0.0, ERROR, _clip(f"bad reference: {r.detail}"), latency)
        if TAMPER in r.flags:  # a gaming attempt earns nothing, partial credit or not
            return Verdict(0.0, OK, _clip(f"{r.status}, tampering: {r.detail}"), latency, flags=(TAMPER,))
        if r.status == PASS:
            return Verdict(1.0, OK, "", latency)
        reward = r.fraction if self.partial_credit else 0.0
        counts = f" ({r.passed}/{r.total} passed)" if self.partial_credit else ""
        return Verdict(reward, OK, _clip(f"{r.status}{counts}: {r.detail}"), latency)


def _clip(text: str) -> str:
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."
