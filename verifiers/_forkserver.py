"""The worker server of `verifiers.pool`: imports the job's module once, then forks a worker per
request and hands its socket to the parent.

    python -m verifiers._forkserver MODULE:FUNCTION CONTROL_FD MEMORY_MB [PRELOAD ...]

If the job's module has a `warm_up()` function, the server calls it once before forking. The
parent writes one byte per worker it wants on the control socket; the server answers with the
worker's pid and one end of a fresh socket pair (SCM_RIGHTS). A worker reads JSON jobs, one per
line, and answers `[status, value]` lines. Everything exits when the parent goes away: the server
sees its control socket close, a worker sees its job socket close.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys


def _serve_jobs(sock: socket.socket, function, memory_mb: int) -> None:  # type: ignore[no-untyped-def]
    if memory_mb:
        import resource

        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    reader = sock.makefile("rb")
    for line in reader:
        try:
            reply = ["done", function(*json.loads(line))]
        except MemoryError:
            reply = ["failed", "out of memory"]
        except RecursionError:
            reply = ["failed", "expression nested too deeply"]
        except Exception as e:  # the job's failure is its result; the worker lives on
            reply = ["failed", f"{type(e).__name__}: {e}"[:300]]
        sock.sendall(json.dumps(reply).encode() + b"\n")


def main(argv: list[str]) -> int:
    target, control_fd, memory_mb, *preload = argv
    module, _, name = target.partition(":")
    for extra in preload:
        importlib.import_module(extra)
    loaded = importlib.import_module(module)
    function = getattr(loaded, name)
    if callable(getattr(loaded, "warm_up", None)):
        loaded.warm_up()  # first-use costs paid once here, not by every forked worker
    control = socket.socket(fileno=int(control_fd))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped automatically
    while control.recv(1):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            control.close()
            ours.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                _serve_jobs(theirs, function, int(memory_mb))
            finally:
                os._exit(0)
        theirs.close()
        socket.send_fds(control, [str(pid).encode()], [ours.fileno()])
        ours.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
