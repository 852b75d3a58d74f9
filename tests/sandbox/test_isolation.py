"""Honest programs under process isolation, in Docker: the test idioms real datasets use still
pass when the tests reach the program through proxies, and what isolation refuses fails with a
reason that says so (never a silent pass, never a tamper flag for an honest program)."""

import textwrap

import pytest

from sandbox.config import JobLimits
from sandbox.runner import BAD_TESTS, FAIL, PASS, RUNTIME_ERROR, TAMPER, Job

pytestmark = pytest.mark.docker

LIMITS = JobLimits(timeout_s=2.0)

# (program, tests): each must pass with the tests in their own process
HONEST = {
    "counter_namedtuple_intenum_cross_as_their_values": (
        """
        from collections import Counter, OrderedDict, defaultdict, namedtuple
        from enum import IntEnum
        Point = namedtuple("Point", "x y")
        class Colour(IntEnum):
            RED = 1
        def count(s): return Counter(s)
        def point(): return Point(1, 2)
        def colour(): return Colour.RED
        def ordered(): return OrderedDict(a=1)
        def grouped(): return defaultdict(list, a=[1])
        """,
        """
        assert count("aab") == {"a": 2, "b": 1}
        assert point() == (1, 2) and point()[0] == 1
        assert colour() == 1 and type(colour()) is int
        assert ordered() == {"a": 1} and grouped() == {"a": [1]}
        """,
    ),
    "every_data_type_round_trips": (
        """
        def echo(x): return x
        """,
        """
        for value in [None, True, 0, -1, 2**200, 1.5, float("inf"), 1+2j, "é", b"\\x00", [1, [2]], (1, (2,)),
                      {1: "a", (1, 2): {3}}, {1, 2}, frozenset({3})]:
            back = echo(value)
            assert back == value and type(back) is type(value), (value, back)
        assert echo(float("nan")) != echo(float("nan"))
        """,
    ),
    "generators_and_views_by_iteration": (
        """
        def squares(n):
            for i in range(n):
                yield i * i
        def keys(d): return d.keys()
        def evens(xs): return filter(lambda x: x % 2 == 0, xs)
        """,
        """
        assert list(squares(4)) == [0, 1, 4, 9]
        assert sum(squares(3)) == 5 and 4 in squares(5) and 7 not in squares(5)
        assert sorted(keys({"b": 1, "a": 2})) == ["a", "b"] and len(list(keys({1: 1}))) == 1
        assert list(evens(range(7))) == [0, 2, 4, 6]
        it = squares(2)
        assert next(it) == 0 and next(it) == 1
        try:
            next(it)
            assert False
        except StopIteration:
            pass
        """,
    ),
    "classes_through_their_methods": (
        """
        class Stack:
            def __init__(self, *items): self.items = list(items)
            def push(self, x): self.items.append(x)
            def pop(self): return self.items.pop()
            def __len__(self): return len(self.items)
            def __getitem__(self, i): return self.items[i]
            def __str__(self): return f"Stack{self.items}"
            @staticmethod
            def kind(): return "lifo"
        """,
        """
        s = Stack(1)
        s.push(2)
        assert len(s) == 2 and s[0] == 1 and s[-1] == 2 and s.items == [1, 2]
        assert s.pop() == 2 and str(s) == "Stack[1]" and isinstance(s, Stack)
        assert Stack.kind() == "lifo" and s is not None and s != None
        s.items = [7]
        assert s.pop() == 7 and hasattr(s, "push") and not hasattr(s, "nope")
        """,
    ),
    "exceptions_by_builtin_base_and_own_class": (
        """
        class InputError(ValueError):
            pass
        def parse(x):
            if x < 0:
                raise InputError(f"negative: {x}")
            if x == 0:
                raise ZeroDivisionError("zero")
            return {}[x]
        """,
        """
        try:
            parse(-1)
            assert False
        except ValueError as e:
            assert str(e) == "negative: -1" and isinstance(e, InputError)
        try:
            parse(0)
        except ArithmeticError as e:
            assert e.args == ("zero",)
        try:
            parse(5)
        except KeyError as e:
            assert e.args == (5,)
        """,
    ),
    "callbacks_and_keyword_arguments": (
        """
        def apply(f, xs, *, reverse=False):
            out = [f(x) for x in xs]
            return out[::-1] if reverse else out
        def sort_by(xs, key): return sorted(xs, key=key)
        """,
        """
        assert apply(lambda x: x * 2, [1, 2]) == [2, 4]
        assert apply(str, [1, 2], reverse=True) == ["2", "1"]
        assert sort_by(["bb", "a", "ccc"], key=len) == ["a", "bb", "ccc"]
        assert apply(abs, [-3]) == [3]
        """,
    ),
    "in_place_apis": (
        """
        def rotate(nums, k):
            k %= len(nums)
            nums[:] = nums[-k:] + nums[:-k]
        def add_key(d): d["new"] = 1
        """,
        """
        nums = [1, 2, 3, 4, 5]
        assert rotate(nums, 2) is None
        assert nums == [4, 5, 1, 2, 3]
        d = {}
        add_key(d)
        assert d == {"new": 1}
        """,
    ),
    "the_programs_imports_and_helpers": (
        """
        import math
        def helper(x): return x + 1
        def area(r): return math.pi * r * r
        LIMIT = 10
        """,
        """
        assert math.isclose(area(1), math.pi)  # math: the tests' own copy, named by the program's import
        assert helper(LIMIT) == 11 and abs(area(2) - 4 * math.pi) < 1e-9
        """,
    ),
    "humaneval_style_check": (
        """
        def fib(n):
            a, b = 0, 1
            for _ in range(n):
                a, b = b, a + b
            return a
        """,
        """
        def check(candidate):
            assert candidate(10) == 55
            assert candidate.__name__ == "fib"
            assert all(candidate(i) + candidate(i + 1) == candidate(i + 2) for i in range(20))
        check(fib)
        """,
    ),
    "standard_library_objects_as_arguments": (  # they cross to the program pickled (never the other way)
        "from fractions import Fraction\ndef size(f): return len(f.read())\ndef half(q): return str(q / 2)\n",
        "import io\nfrom fractions import Fraction\nassert size(io.StringIO('abc')) == 3\nassert half(Fraction(1, 3)) == '1/6'\n",
    ),
    "results_too_big_to_cross_are_handles": (  # over a million values, or over a frame's 8 MiB
        "def many(): return list(range(1_500_000))\ndef wide(): return ['x' * 10_000] * 1000\n",
        "assert len(many()) == 1_500_000 and many()[-1] == 1_499_999\nassert len(wide()) == 1000 and wide()[0] == 'x' * 10_000\n",
    ),
    "everyday_machinery_is_not_tamper": (  # none of it is what the watch on the program's process flags
        """
        import builtins, dataclasses, enum, functools, gc, inspect, sys, threading, typing
        from collections import namedtuple
        sys.setrecursionlimit(10_000)
        input = sys.stdin.readline
        builtins.print = functools.partial(print, flush=True)
        gc.collect()
        Pair = namedtuple("Pair", "a b")
        class Colour(enum.Enum):
            RED = 1
        @dataclasses.dataclass(frozen=True)
        class Box:
            size: int
        class Row(typing.NamedTuple):
            x: int
        @functools.lru_cache(None)
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)
        def arity(f): return len(inspect.signature(f).parameters)
        def threaded():
            out = []
            t = threading.Thread(target=out.append, args=(fib(30),))
            t.start()
            t.join()
            return out[0] + Box(1).size + Row(2).x + Pair(3, 4).b + Colour.RED.value
        """,
        "assert threaded() == 832040 + 1 + 2 + 4 + 1\nassert arity(lambda a, b: 0) == 2\n",
    ),
    "future_annotations_and_dataclasses": (  # the program's module is in sys.modules, as imported code's is
        """
        from __future__ import annotations
        import dataclasses, pickle
        @dataclasses.dataclass(order=True)
        class Item:
            weight: int
            name: str = ""
        def heaviest(pairs: list[tuple[int, str]]) -> str:
            return max(Item(w, n) for w, n in pairs).name
        def round_trip(w): return pickle.loads(pickle.dumps(Item(w))).weight
        """,
        "assert heaviest([(1, 'a'), (3, 'b'), (2, 'c')]) == 'b'\nassert round_trip(5) == 5\n",
    ),
    "program_state_persists_across_calls": (
        """
        calls = []
        def remember(x):
            calls.append(x)
            return len(calls)
        def bytes_out(): return bytearray(b"ab")
        """,
        "assert remember('a') == 1 and remember('b') == 2\nassert bytes_out() == b'ab'\n",
    ),
}


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_programs_pass(solo_pool, name):
    program, tests = HONEST[name]
    result = solo_pool.run(Job("tests", textwrap.dedent(program), tests=textwrap.dedent(tests), limits=LIMITS))
    assert result.status == PASS and not result.flags, result


# (program, tests, status, reason contains): what process isolation refuses, and how it says so
REFUSED = {
    "comparing_two_program_objects": (
        "class P:\n    def __init__(self, x): self.x = x\n    def __eq__(self, o): return isinstance(o, P) and o.x == self.x\n",
        "assert P(1) == P(1)\n",
        FAIL,
        "P object from the program is not data; the tests compared it with ==",
    ),
    "hashing_a_program_object": (
        "class P:\n    pass\n",
        "assert len({P(), P()}) == 2\n",
        FAIL,
        "hashed it",
    ),
    "a_swallowed_refusal_still_fails": (
        "def gen(): yield 1\n",
        "try:\n    assert gen() == [1]\nexcept BaseException:\n    pass\nassert True\n",
        FAIL,
        "compared it with ==",
    ),
    "an_argument_that_cannot_cross": (
        "def size(box): return box.n\n",
        "class Box:\n    n = 3\nassert size(Box()) == 3\n",  # the tests' own class: the program cannot import it
        BAD_TESTS,
        "cannot cross",
    ),
    "a_builtin_name_is_never_the_programs": (
        "def sum(xs): return 'mine'\n",
        "assert sum([1, 2]) == 3\n",
        PASS,
        "",
    ),
    "an_unknown_name": (
        "def f(): return 1\n",
        "assert g() == 1\n",
        RUNTIME_ERROR,
        "NameError",
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_what_isolation_refuses_is_said(solo_pool, name):
    program, tests, status, reason = REFUSED[name]
    result = solo_pool.run(Job("tests", program, tests=tests, limits=LIMITS))
    assert result.status == status and reason in result.detail and TAMPER not in result.flags, result


def test_partial_credit_counts_asserts_with_a_refusal(solo_pool):
    job = Job("tests", "def gen(): yield 1\ndef one(): return 1\n", tests="assert one() == 1\nassert gen() == [1]\nassert one() == 1\n",
              partial=True, limits=LIMITS)
    result = solo_pool.run(job)
    assert (result.status, result.passed, result.total) == (FAIL, 2, 3), result


def test_shared_isolation_still_runs_tests_in_the_programs_interpreter(solo_pool):
    tests = "import sys\nassert sys.modules['__main__'].__name__ and marker == 1 and P(1) == P(1)\n"
    program = "marker = 1\nclass P:\n    def __init__(self, x): self.x = x\n    def __eq__(self, o): return o.x == self.x\n"
    assert solo_pool.run(Job("tests", program, tests=tests, isolation="shared", limits=LIMITS)).status == PASS
    assert solo_pool.run(Job("tests", program, tests=tests, limits=LIMITS)).status == FAIL


@pytest.mark.parametrize("program", ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "import sys\ndef f(x):\n    sys.exit(0)\n"])
def test_shared_isolation_flags_an_early_exit_too(solo_pool, program):
    result = solo_pool.run(Job("tests", program, tests="f(1)\nassert False\n", isolation="shared", limits=LIMITS))
    assert result.status == FAIL and TAMPER in result.flags, result


def test_nothing_of_the_test_runner_is_reachable_from_the_program(solo_pool):
    """Its memory, descriptors, environment and frames: /proc, ptrace and process_vm_readv all refuse."""
    probe = textwrap.dedent(
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        me, launcher = os.getpid(), os.getppid()
        others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me, launcher)]
        reached = []
        for pid in others:
            for name in ("mem", "environ", "maps", "fd/0", "fd/1", "fd/3", "fd/4", "cwd", "root", "stack"):
                for mode in (os.O_RDONLY, os.O_WRONLY):
                    try:
                        os.close(os.open(f"/proc/{pid}/{name}", mode))
                        reached.append(f"{pid}/{name}/{mode}")
                    except OSError:
                        pass
            try:
                os.listdir(f"/proc/{pid}/fd")
                reached.append(f"{pid}/fd listing")
            except OSError:
                pass
            if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
                reached.append(f"{pid} ptrace")
            buf = ctypes.create_string_buffer(8)
            local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
            remote = (ctypes.c_void_p * 2)(0x400000, 8)
            if libc.process_vm_readv(pid, local, 1, remote, 1, 0) >= 0 or ctypes.get_errno() != 1:  # EPERM
                reached.append(f"{pid} process_vm_readv errno {ctypes.get_errno()}")
        """
    )
    result = solo_pool.run(Job("tests", probe, tests="assert len(others) == 2, others\nassert reached == [], reached\n", limits=LIMITS))
    assert result.status == PASS, result
