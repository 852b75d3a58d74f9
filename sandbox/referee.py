"""The trusted process: runs a job's tests, or its call-based cases, against a program that runs in
another process and is reached only through proxies.

Each container has a warm referee zygote (driver.py, role "referee") that forks one referee per
job; the program runs in a process forked by the other zygote. The two share one socket and
nothing else: the referee is non-dumpable (the program can neither ptrace it nor open its /proc
files), the program never receives the tests, and the referee's report reaches the harness on a
pipe only the referee holds. What the program sends is decoded by wire.Decoder into plain data
or proxies (remote.py, proxies.py).

What the tests see of the program:
- each name the tests use that the program defines (never a builtin's name, nor a standard
  module's name bound to anything but that module) as plain data or as a proxy;
- calling a proxy sends the arguments as data and brings the result back as data; a result that
  is not data (an object of the program's class, a generator, a function) is a *handle*: the tests
  may call it, read and set its attributes, index it, take its len, str and iterate it, each a
  further call into the program. Comparing, hashing, truth-testing or doing arithmetic with a
  handle lets the program decide the test's outcome after seeing the expected value, so it is
  refused: the test fails, saying which result was not data (proxies.py);
- exceptions the program raises arrive as the built-in exception they derive from (or the tests'
  copy of the program's own exception class), with their arguments when those are data;
- lists, dicts and sets the tests pass to a call that returns None (an in-place API, as
  list.sort) and that the program changed are changed in place in the tests too.

Tamper evidence, reported with the flag "tamper" and a failing status: a result that compares
equal to anything or disguises its class, a frame that breaks the protocol, and (seen by the
harness) an exit before the tests finish, a referee that was killed or stopped.

Python 3.11 standard library only: this file runs inside the image.
"""

from __future__ import annotations

import _ast
import builtins
import os
import signal
import sys
import types

from sandbox.proxies import CannotCross
from sandbox.remote import CannotSend, Peer

__all__ = ["main", "referenced_names", "outputs_equal"]

PASS, FAIL, SYNTAX_ERROR, RUNTIME_ERROR, MEMORY, BAD_TESTS = (
    "pass", "fail", "syntax_error", "runtime_error", "memory", "bad_tests"
)
TAMPER = "tamper"
_ONLY_AST = 0x400  # ast.PyCF_ONLY_AST


def referenced_names(codes: list) -> list[str]:
    """Every global or attribute name the code objects (and the code nested in them) mention."""
    names: set[str] = set()
    stack = list(codes)
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return sorted(names)


def _as_lists(value: object) -> object:
    """Tuples as lists, all the way down: call-based expected outputs come from JSON."""
    if type(value) in (list, tuple):
        return [_as_lists(x) for x in value]
    if type(value) is dict:
        return {k: _as_lists(v) for k, v in value.items()}
    return value


def outputs_equal(result: object, expected: object) -> bool:
    """APPS / TACO's rule: the result equals the expected output, tuples read as lists; or, as
    those datasets wrap each output in a one-element list, equals that list's element."""
    result = _as_lists(result)
    if result == expected:
        return True
    return type(expected) is list and len(expected) == 1 and result == expected[0]


def _describe(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return text[:1000]


class _Run:
    """One job's outcome so far, and the single way it ends: one report line, then exit."""

    def __init__(self, nonce: str, report_fd: int):
        self.nonce = nonce
        self.report_fd = report_fd
        self.passed = 0
        self.total = 1

    def finish(self, status: str, detail: str = "", tamper: bool = False, gone: str = "") -> None:
        import json

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        report = {
            "status": status,
            "passed": 0 if tamper else self.passed,
            "total": self.total,
            "detail": detail,
            "flags": [TAMPER] if tamper else [],
            "gone": gone,
        }
        line = f"{self.nonce} done {json.dumps(report).encode().hex()}\n"
        try:
            os.write(self.report_fd, line.encode())
        except OSError:
            pass
        os._exit(0)


def main(job: dict, report_fd: int, channel_fd: int) -> None:
    """Run one job ({"mode": "tests" | "calls", "tests" | "calls", "partial", "nonce"}); ends the process."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)  # a signal from the program ends the referee, never steers it
    run = _Run(job["nonce"], report_fd)
    peer = Peer(channel_fd, run.finish)
    try:
        if job["mode"] == "calls":
            _run_calls(job, run, peer)
        else:
            _run_tests(job, run, peer)
    except MemoryError:
        run.finish(MEMORY, f"MemoryError {peer.stage}")
    except BaseException as e:  # a referee bug: the harness says so and the host retries elsewhere
        run.finish("harness_error", f"referee: {_describe(e)}")


def _run_tests(job: dict, run: _Run, peer: Peer) -> None:
    try:
        # dont_inherit: not this file's `from __future__ import annotations`
        tree = compile(job["tests"], "tests.py", "exec", _ONLY_AST, dont_inherit=True)
        statements = [
            (compile(_ast.Module(body=[node], type_ignores=[]), "tests.py", "exec", dont_inherit=True), isinstance(node, _ast.Assert))
            for node in tree.body
        ]
        names = referenced_names([code for code, _ in statements])
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        run.finish(BAD_TESTS, f"the reference tests do not compile: {_describe(e)}")
    n_asserts = sum(is_assert for _, is_assert in statements)
    run.total = n_asserts or 1
    partial = bool(job.get("partial"))

    module = types.ModuleType("__tests__")  # registered, as for the program (see server.py)
    module.__builtins__ = builtins
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    namespace.update(peer.start(names))
    peer.stage = "during the tests"
    first_failure: tuple[str, str] | None = None
    for index, (code, is_assert) in enumerate(statements):
        where = f"test statement {index + 1} (line {tree.body[index].lineno})"
        failure = _attempt(run, where, lambda: exec(code, namespace))
        if failure is not None:
            first_failure = first_failure or failure
            if not (partial and is_assert):
                # A failed setup statement leaves later tests meaningless; without partial
                # credit the first failure decides.
                run.finish(*first_failure)
            continue
        run.passed += is_assert
    if peer.violations and first_failure is None:
        first_failure = (FAIL, peer.violations[0])  # a test swallowed the refusal; it still fails
    if first_failure is not None:
        run.finish(*first_failure)
    run.passed = run.total
    run.finish(PASS)


def _attempt(run: _Run, where: str, action) -> tuple[str, str] | None:
    """Run one test statement or case: None when it passed, else (status, detail). Ends the run
    on a MemoryError, or when the tests passed the program what cannot cross (bad tests)."""
    try:
        action()
    except CannotSend as e:
        run.finish(BAD_TESTS, f"{where}: {e}; tests that need it can run with isolation 'shared'")
    except MemoryError as e:
        run.finish(MEMORY, f"{where}: {_describe(e)}")
    except BaseException as e:
        status = FAIL if isinstance(e, (AssertionError, CannotCross)) else RUNTIME_ERROR
        return status, f"{where}: {e if isinstance(e, CannotCross) else _describe(e)}"
    return None


def _run_calls(job: dict, run: _Run, peer: Peer) -> None:
    """Call-based cases: {"fn_name", "class_name", "inputs", "outputs"} (see verifiers/code.py)."""
    spec = job["calls"]
    fn_name, class_name = spec.get("fn_name"), spec.get("class_name")
    inputs, outputs = spec["inputs"], spec["outputs"]
    run.total = len(inputs)
    partial = bool(job.get("partial"))
    names = [n for n in (fn_name, class_name, "Solution") if n]
    exports = peer.start(names)

    def target():
        """What one case calls: fn_name of the program, or of a fresh instance of its class."""
        owner = class_name or (None if fn_name in exports else "Solution")
        if owner is None:
            return exports[fn_name]
        if owner not in exports:
            raise NameError(f"the program defines no {fn_name or owner!r}")
        return getattr(exports[owner](), fn_name)

    def case(args: list, expected: object) -> None:
        if fn_name is None:  # a design problem: [operations, arguments], the first the constructor
            ops, op_args = args
            obj = exports[class_name](*op_args[0]) if class_name in exports else _missing(class_name)
            results = [None] + [getattr(obj, op)(*a) for op, a in zip(ops[1:], op_args[1:])]
            ok = len(results) == len(expected) and all(outputs_equal(r, e) for r, e in zip(results, expected))
        else:
            ok = outputs_equal(target()(*args), expected)
        if not ok:
            raise AssertionError("wrong output")

    first_failure = None
    for i, (args, expected) in enumerate(zip(inputs, outputs)):
        peer.stage = f"during case {i}"
        failure = _attempt(run, f"case {i}", lambda: case(args, expected))
        if failure is not None:
            first_failure = first_failure or failure
            if not partial:
                run.finish(*first_failure)
            continue
        run.passed += 1
    if first_failure is not None:
        run.finish(*first_failure)
    run.finish(PASS)


def _missing(name: str) -> None:
    raise NameError(f"the program defines no {name!r}")
