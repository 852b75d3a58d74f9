"""The driver: the zygotes that start every run, and the first code of each run.

The harness starts two zygotes per container (through boot.py, with the modules each role
imports): role "program" forks the runs of programs, role "referee" forks the
trusted processes that run tests against them (sandbox/referee.py). For each run the harness sends
a zygote a small spec (limits, work directory) and the run's descriptors; the zygote forks,
reports the child's pid, waits for it and reports its exit status. A zygote never reads a job: the
program, tests and nonce travel in a memfd only the child reads. So a run, forked from the
zygote's memory, finds nothing of any other run there (forking the harness itself would hand each
run a copy of earlier runs' programs and outputs). Zygotes are non-dumpable, so no run can ptrace
them or read their memory; a referee stays non-dumpable, a program's run becomes a normal process.
Forking a warm interpreter instead of starting one is most of the warm pool's speed.

What a program's run does depends on the job:
- "serve" (tests and call-based cases, the default): sandbox/server.py runs the program and
  answers the referee's calls over a socket; the tests never enter the program's process.
- "io": `run_program` runs the program once on its stdin; the harness compares its stdout.
- "tests" (isolation "shared", an explicit opt-in): `run_program` runs the tests after the program in
  the program's own interpreter. A report is written only after the last test statement has run,
  so an early exit is never a pass; but code written to inspect the driver's frames (where the
  nonce lives), or to change what the tests compute (an `__eq__` that always holds), runs with the
  same rights as the tests. That is why it is not the default.

Python 3.11 standard library only: this file runs inside the image.
"""

import _ast
import builtins
import ctypes
import fcntl
import json
import marshal
import os
import resource
import signal
import socket
import sys

__all__ = ["main", "zygote_main", "run_program"]

PASS, FAIL, SYNTAX_ERROR, RUNTIME_ERROR, MEMORY, BAD_TESTS = (
    "pass", "fail", "syntax_error", "runtime_error", "memory", "bad_tests"
)


_ONLY_AST = 0x400  # ast.PyCF_ONLY_AST


class _Quitter:
    def __repr__(self) -> str:
        return "Use exit() or Ctrl-D (i.e. EOF) to exit"

    def __call__(self, code: object = None) -> None:
        raise SystemExit(code)


def _print_traceback(stream: object) -> None:
    try:
        import traceback

        traceback.print_exc(file=stream)
    except BaseException:
        pass


def _describe(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return text[:1000]


def run_program(job: dict, report_fd: int) -> None:
    """Run one job ({"mode", "program", "tests", "partial", "nonce"}); ends the process."""
    nonce = job.pop("nonce")
    # The program may rebind any of these names; the driver keeps its own references.
    write, _exit, run, dumps = os.write, os._exit, exec, json.dumps
    stdout, stderr = sys.stdout, sys.stderr
    builtins.exit = builtins.quit = _Quitter()  # the same in every run, whatever the harness's site did

    def finish(status: str, exit_code: int, detail: str = "", tamper: bool = False, **counts: int) -> None:
        for stream in (sys.stdout, sys.stderr, stdout, stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        # "NONCE done HEX-JSON": parsed by the harness, which trusts no other line.
        report = {"status": status, "passed": counts.get("passed", 0), "total": counts.get("total", 0), "detail": detail,
                  "flags": ["tamper"] if tamper else []}
        try:
            write(report_fd, f"{nonce} done {dumps(report).encode().hex()}\n".encode())
        except OSError:
            pass
        _exit(exit_code)  # no atexit handlers, no lingering threads: the program ran its course

    mode = job["mode"]
    sys.argv = ["solution.py"]
    try:
        program = compile(job["program"], "solution.py", "exec")
    except (SyntaxError, ValueError) as e:  # ValueError: source with a NUL byte
        finish(SYNTAX_ERROR, 1, _describe(e))
    except (MemoryError, RecursionError) as e:  # a pathological nesting depth
        finish(SYNTAX_ERROR, 1, _describe(e))

    if mode == "io":
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        try:
            run(program, namespace)
        except SystemExit as e:
            if e.code is None or e.code == 0:
                finish(PASS, 0)
            if not isinstance(e.code, int):
                print(e.code, file=stderr)
            code = e.code if isinstance(e.code, int) else 1
            finish(RUNTIME_ERROR, code & 0xFF or 1, f"sys.exit({e.code!r})")
        except MemoryError as e:
            finish(MEMORY, 1, _describe(e))
        except BaseException as e:
            _print_traceback(stderr)
            finish(RUNTIME_ERROR, 1, _describe(e))
        finish(PASS, 0)

    # mode "tests": compile every top-level test statement before the program can run.
    try:
        tree = compile(job["tests"], "tests.py", "exec", _ONLY_AST)
        statements = [
            (compile(_ast.Module(body=[node], type_ignores=[]), "tests.py", "exec"), isinstance(node, _ast.Assert))
            for node in tree.body
        ]
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        finish(BAD_TESTS, 1, f"the reference tests do not compile: {_describe(e)}")
    n_asserts = sum(is_assert for _, is_assert in statements)
    total = n_asserts or 1
    partial = bool(job.get("partial"))

    namespace = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        run(program, namespace)
    except SystemExit as e:
        finish(FAIL, 1, f"the program exited (sys.exit({e.code!r})) before the tests ran", True, passed=0, total=total)
    except MemoryError as e:
        finish(MEMORY, 1, _describe(e), passed=0, total=total)
    except BaseException as e:
        _print_traceback(stderr)
        finish(RUNTIME_ERROR, 1, f"while running the program: {_describe(e)}", passed=0, total=total)

    passed = 0
    first_failure: tuple[str, str] | None = None
    for index, (code, is_assert) in enumerate(statements):
        try:
            run(code, namespace)
        except SystemExit as e:
            finish(FAIL, 1, f"the program exited (sys.exit({e.code!r})) during the tests", True, passed=passed, total=total)
        except MemoryError as e:
            finish(MEMORY, 1, _describe(e), passed=passed, total=total)
        except BaseException as e:
            status = FAIL if isinstance(e, AssertionError) else RUNTIME_ERROR
            where = f"test statement {index + 1} (line {tree.body[index].lineno})"
            first_failure = first_failure or (status, f"{where}: {_describe(e)}")
            if not (partial and is_assert):
                # A failed setup statement leaves later tests meaningless; without partial
                # credit the first failure decides.
                finish(status, 1, first_failure[1], passed=passed, total=total)
            continue
        passed += is_assert
    if first_failure is not None:
        finish(first_failure[0], 1, first_failure[1], passed=passed, total=total)
    finish(PASS, 0, passed=total, total=total)


# --- the zygote ----------------------------------------------------------------------------------

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_DUMPABLE = 4


def _dumpable(value: int) -> None:
    if _LIBC.prctl(_PR_SET_DUMPABLE, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl(PR_SET_DUMPABLE, {value}) failed")


def zygote_main(control_fd: int, role: str) -> None:
    """Serve fork requests on `control_fd` (a SOCK_SEQPACKET socket) until it closes.

    Says b"ready" once. Request: JSON spec + descriptors [stdin, stdout, stderr, report, payload]
    and, for a program that serves a referee or for the referee, the socket between them.
    Replies: b"pid N" once forked, then b"exit STATUS CPU_SECONDS" once the child has ended."""
    _dumpable(0)
    if role == "referee":
        for name in _REFEREE_PRELOAD:  # the modules tests use most, imported once, not per job
            try:
                __import__(name)
            except ImportError:
                pass
    sock = socket.socket(fileno=control_fd)
    sock.send(b"ready")
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, 8)
        except (OSError, KeyboardInterrupt):
            os._exit(0)
        if not msg:
            os._exit(0)
        spec = json.loads(msg)
        pid = os.fork()
        if pid == 0:
            sock.close()
            _start_run(spec, fds, role)
        for fd in fds:
            os.close(fd)
        try:
            sock.send(b"pid %d" % pid)
            _, status, usage = os.wait4(pid, 0)
            sock.send(b"exit %d %.6f" % (status, usage.ru_utime + usage.ru_stime))
        except (OSError, KeyboardInterrupt):
            os._exit(0)


_REFEREE_PRELOAD = ("math", "re", "random", "collections", "itertools", "functools", "heapq", "string", "typing")


def _start_run(spec: dict, fds: list[int], role: str) -> None:
    """In the forked child: descriptors, session, limits, environment; then the job. Never returns.
    The line "NONCE started" tells the harness the set-up worked: without it, a run that ends is
    the sandbox's failure, never the program's."""
    try:
        os.setsid()
        # Copy above 100 first, so dup2 onto 0..4 cannot clobber a source.
        staged = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
        for target, src in enumerate(staged[:4]):
            os.dup2(src, target)  # stdin, stdout, stderr, report: inheritable
        with os.fdopen(staged[4], "rb") as f:
            job = marshal.loads(f.read())
        channel = None
        if len(staged) > 5:
            channel = 4
            os.dup2(staged[5], channel)
        os.closerange(5 if channel else 4, max(os.sysconf("SC_OPEN_MAX"), 4096))
        cpu = spec["cpu_s"]
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        mem = spec["memory_mb"] << 20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        workdir = spec["workdir"]
        os.chdir(workdir)
        os.umask(0o077)
        os.environ.clear()
        os.environ.update(
            {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        )
        if role == "program":
            _dumpable(1)  # a normal process again: its own /proc, its oom_score_adj
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")  # if the container runs out of memory, the kernel kills the program first
            signal.signal(signal.SIGINT, signal.default_int_handler)
        elif "random" in sys.modules:
            sys.modules["random"].seed()  # as a fresh interpreter would: not the zygote's stream
        sys.stdin = sys.__stdin__ = open(0, "r", encoding="utf-8", errors="surrogateescape", closefd=False)
        sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", errors="surrogateescape", closefd=False)
        sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
        os.write(3, f"{job['nonce']} started\n".encode())
        if role == "program" and channel is not None:
            # The program holds no report descriptor: its channel to the referee takes fd 3.
            os.dup2(channel, 3)
            os.close(channel)
            channel = 3
    except BaseException:
        os._exit(126)
    try:
        if role == "referee":
            from sandbox import referee

            referee.main(job, 3, channel)
        elif job["mode"] == "serve":
            from sandbox import server

            server.serve(job, channel)
        else:
            run_program(job, 3)
    finally:
        os._exit(70)  # each of them ends the process itself; reaching here is a driver bug


def main(args: list[str], sources: dict[str, str]) -> None:
    """A zygote: args are CONTROL_FD ROLE (boot.py starts it, with the modules its role imports)."""
    zygote_main(int(args[0]), args[1])
