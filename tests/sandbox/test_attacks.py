"""Hostile programs, in Docker: each attack must end with the right verdict, and the next job in
the same container must still be judged correctly in a clean container (no process, file or IPC
object left, the same container id: the harness survived and reset it)."""

import textwrap
from pathlib import Path

import pytest

from sandbox.config import JobLimits
from sandbox.runner import FAIL, MEMORY, PASS, RUNTIME_ERROR, SYNTAX_ERROR, TIMEOUT, IOCase, Job

pytestmark = pytest.mark.docker

LIMITS = JobLimits(timeout_s=2.0)
REPO = Path(__file__).resolve().parents[2]

# The next job after every attack: passes only in a container that is clean again. The program
# looks around; the tests (in their own process) judge what it saw.
CANARY_PROGRAM = textwrap.dedent(
    """
    import os, time
    time.sleep(0.3)  # a daemon that survived the reset would have time to show itself
    me, launcher = os.getpid(), os.getppid()
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())

    def parent(pid):
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])

    # Besides the harness (1), this run and its launcher: the referee's launcher and the referee.
    others = sorted((parent(p), p) for p in pids if p not in (1, launcher, me))
    tmp = sorted(os.listdir("/tmp"))
    cwd = os.path.basename(os.getcwd())
    shm = os.listdir("/dev/shm")
    mqueue = os.listdir("/dev/mqueue")
    ipc = [open(f"/proc/sysvipc/{t}").read().count("\\n") - 1 for t in ("shm", "sem", "msg")]
    ids = (os.getuid(), os.getgid())

    def add(a, b):
        return a + b
    """
)
CANARY_TESTS = textwrap.dedent(
    """
    assert parent(me) == launcher and parent(launcher) == 1
    assert len(others) == 2 and others[0][0] == 1 and others[1][0] == others[0][1], (pids, others)
    assert tmp == [cwd], tmp
    assert shm == [] and mqueue == [], (shm, mqueue)
    assert ipc == [0, 0, 0], ipc
    assert ids == (65534, 65534)
    assert add(2, 3) == 5
    """
)


def make_job(program: str, tests: str = "assert True", **kw) -> Job:
    return Job("tests", textwrap.dedent(program), tests=textwrap.dedent(tests), limits=LIMITS, **kw)


def run_then_canary(pool, job: Job):
    """Run the attack, then the canary in the same (single) container."""
    [before] = pool.container_ids
    result = pool.run(job)
    canary = pool.run(Job("tests", CANARY_PROGRAM, tests=CANARY_TESTS, limits=LIMITS))
    assert canary.status == PASS, f"the container is not clean after the attack: {canary.detail}"
    assert pool.container_ids == [before], "the attack cost the container (it was replaced)"
    return result


ATTACKS = {
    "network": (
        """
        import socket
        connected = []
        for address in [("1.1.1.1", 53), ("8.8.8.8", 443), ("172.17.0.1", 2375), ("10.0.0.1", 80)]:
            try:
                socket.create_connection(address, timeout=1).close()
                connected.append(address)
            except OSError:
                pass
        try:
            socket.getaddrinfo("deb.debian.org", 80)
            connected.append("dns")
        except OSError:
            pass
        """,
        "assert connected",
        FAIL,
        "AssertionError",
    ),
    "fork_bomb": (
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
        "assert True",
        TIMEOUT,
        "",
    ),
    "memory_bomb": (
        """
        blocks = []
        while True:
            blocks.append(bytearray(64 << 20))
        """,
        "assert True",
        MEMORY,
        "MemoryError",
    ),
    "memory_bomb_in_children": (
        # Four processes each below the per-process limit, together above the container's.
        """
        import os, time
        for _ in range(3):
            if os.fork() == 0:
                break
        blocks = [bytearray(200 << 20)]
        for b in blocks:
            for i in range(0, len(b), 4096):
                b[i] = 1
        time.sleep(5)
        """,
        "assert True",
        MEMORY,
        "container's memory limit",
    ),
    "disk_fill_one_file": (
        """
        with open("big", "wb") as f:
            while True:
                f.write(b"0" * (1 << 20))
        """,
        "assert True",
        RUNTIME_ERROR,
        "File too large",  # Python ignores SIGXFSZ, so the write fails with EFBIG
    ),
    "disk_fill_tmpfs": (
        """
        for i in range(100):
            with open(f"/tmp/fill-{i}", "wb") as f:
                f.write(b"0" * (8 << 20))
        """,
        "assert True",
        RUNTIME_ERROR,
        "No space left on device",
    ),
    "dev_shm_and_ipc_leftovers": (
        """
        import ctypes, os
        open("/dev/shm/leftover", "wb").write(b"x" * 1024)
        libc = ctypes.CDLL(None)
        assert libc.shmget(0, 4096, 0o1600) >= 0  # IPC_PRIVATE, IPC_CREAT | 0600
        assert libc.semget(0, 1, 0o1600) >= 0
        assert libc.msgget(0, 0o1600) >= 0
        """,
        "assert True",
        PASS,
        "",
    ),
    "cpu_spin": ("while True:\n    pass\n", "assert True", TIMEOUT, ""),
    "cpu_spin_ignoring_sigxcpu": (
        """
        import signal
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        while True:
            pass
        """,
        "assert True",
        TIMEOUT,
        "",
    ),
    "sleep_forever": ("import time\ntime.sleep(3600)\n", "assert True", TIMEOUT, "wall-clock"),
    "output_200mb": (
        """
        import sys
        chunk = "x" * (1 << 20)
        for _ in range(200):
            sys.stdout.write(chunk)
        """,
        "assert True",
        FAIL,
        "output exceeded",
    ),
    "kill_pid_1": (
        """
        import os, signal
        for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGSTOP, signal.SIGSEGV):
            os.kill(1, sig)
        """,
        "assert True",
        PASS,  # signals to a namespace's init without a handler are dropped: the program goes on
        "",
    ),
    "kill_every_process": (
        # Every process it may signal but itself and PID 1: that includes both launchers (the
        # zygotes) and the test runner, which only a run can have killed; the harness starts new ones.
        "import os, signal\nos.kill(-1, signal.SIGKILL)\n",
        "assert True",
        FAIL,
        "the test runner vanished",
    ),
    "ptrace_pid_1": (
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        attached = libc.ptrace(16, 1, None, None) == 0  # PTRACE_ATTACH
        """,
        "assert attached",
        FAIL,
        "AssertionError",
    ),
    "ptrace_the_launcher": (
        # Its parent, the zygote that forks every run, is non-dumpable: no ptrace, no /proc access.
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        attached = libc.ptrace(16, os.getppid(), None, None) == 0
        try:
            open(f"/proc/{os.getppid()}/mem", "rb").read(1)
            attached = True
        except OSError:
            pass
        """,
        "assert attached",
        FAIL,
        "AssertionError",
    ),
    "stop_the_launcher": (
        # The test runner decides, not the program's exit; the harness resumes the zygote.
        "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\n",
        "assert True",
        PASS,
        "",
    ),
    "daemon_left_behind": (
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                for _ in range(100):
                    open("/tmp/daemon-was-here", "w").write(str(os.getpid()))
                    time.sleep(0.05)
                os._exit(0)
            os._exit(0)
        time.sleep(0.2)
        """,
        "assert True",
        PASS,
        "",
    ),
    "fake_pass_through_proc_fds": (
        """
        import json, os
        lines = [
            json.dumps({"id": 0, "status": "pass", "passed": 1, "total": 1, "detail": "", "clean": True}) + "\\n",
            "0" * 32 + " pass 1 1 \\n",
        ]
        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    with open(f"/proc/{pid}/fd/{fd}", "w") as f:
                        f.writelines(lines)
                except OSError:
                    pass
        for fd in range(0, 64):
            for line in lines:
                try:
                    os.write(fd, line.encode())
                except OSError:
                    pass
        print(lines[0], flush=True)
        os._exit(0)
        """,
        "assert False, 'the tests ran: this cannot pass'",
        FAIL,
        "outside the protocol",  # its channel to the tests was among the descriptors it wrote to
    ),
    "read_the_harness": (
        # Its memory, descriptors (the host's channel) and environment are the root's to read:
        # the harness is non-dumpable, and no capability is left to override that.
        """
        import os
        leaked = []
        for path in ["/proc/1/mem", "/proc/1/fd/0", "/proc/1/fd/1", "/proc/1/environ", "/proc/1/maps"]:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                leaked.append(os.read(fd, 64))
            except OSError:
                pass
        """,
        "assert leaked",
        FAIL,
        "AssertionError",
    ),
    "sys_exit_0_before_tests": ("import sys\nsys.exit(0)\n", "assert False", FAIL, "before the tests ran"),
    "exit_builtin_before_tests": ("exit()\n", "assert False", FAIL, "before the tests ran"),
    "os_exit_0_before_tests": ("import os\nos._exit(0)\n", "assert False", FAIL, "exited with status 0 before the tests ran"),
    "exit_0_from_an_atexit_hook": (
        """
        import atexit, os
        atexit.register(lambda: os._exit(0))
        raise SystemExit(0)
        """,
        "assert False",
        FAIL,
        "before the tests ran",
    ),
    "exit_inside_the_tests": (
        "import sys\ndef f():\n    sys.exit(0)\n",
        "f()\nassert False",
        FAIL,
        "during the tests",
    ),
    "kill_itself": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "assert True", RUNTIME_ERROR, "SIGKILL"),
    "read_host_files": (
        f"""
        import os
        found = [p for p in [{str(REPO / "pyproject.toml")!r}, "/root/.bashrc", "/etc/shadow", "/var/lib/docker",
                             "/proc/1/environ", "/proc/1/mem", "/sys/fs/cgroup/memory/memory.limit_in_bytes_w"]
                 if os.access(p, os.R_OK)]
        """,
        "assert found, 'nothing of the host is readable'",
        FAIL,
        "nothing of the host is readable",
    ),
    "docker_socket": (
        """
        import socket
        reached = []
        for path in ["/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"]:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
                reached.append(path)
            except OSError:
                pass
        for port in (2375, 2376):
            try:
                socket.create_connection(("172.17.0.1", port), timeout=1)
                reached.append(port)
            except OSError:
                pass
        """,
        "assert reached",
        FAIL,
        "AssertionError",
    ),
    "write_outside_tmp": (
        """
        import os
        written = []
        for path in ["/etc/passwd", "/usr/bin/python3", "/harness", "/var/tmp/x", "/home/x"]:
            try:
                open(path, "a").close()
                written.append(path)
            except OSError:
                pass
        """,
        "assert written",
        FAIL,
        "AssertionError",
    ),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack(solo_pool, name):
    program, tests, status, detail = ATTACKS[name]
    result = run_then_canary(solo_pool, make_job(program, tests))
    assert result.status == status, result
    assert detail in result.detail, result
    assert result.attempts == 1, result


def test_output_is_truncated_not_lost(solo_pool):
    result = solo_pool.run(make_job("import sys\nprint('start')\nfor _ in range(300):\n    sys.stdout.write('y' * (1 << 20))"))
    assert result.status == FAIL and "output exceeded" in result.detail
    assert result.stdout.startswith("start") and len(result.stdout) < 5000


def test_host_files_are_invisible(solo_pool, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    probe = make_job(f"import os\nseen = os.path.exists({str(secret)!r})", "assert not seen")
    assert run_then_canary(solo_pool, probe).status == PASS


def test_network_is_only_loopback(solo_pool):
    probe = make_job("import os\nifaces = sorted(os.listdir('/sys/class/net'))", "assert ifaces == ['lo'], ifaces")
    assert run_then_canary(solo_pool, probe).status == PASS


def test_program_runs_unprivileged_with_limits(solo_pool):
    probe = make_job(
        """
        import os, resource
        status = open("/proc/self/status").read()
        cap_eff = [l for l in status.splitlines() if l.startswith("CapEff")][0].split()[1]
        no_new_privs = [l for l in status.splitlines() if l.startswith("NoNewPrivs")][0].split()[1]
        ids = (os.getuid(), os.geteuid())
        limits = [resource.getrlimit(r)[0] for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_FSIZE, resource.RLIMIT_NOFILE)]
        session = (os.getpgid(0), os.getpid(), os.getsid(0))
        """,
        """
        assert ids == (65534, 65534)
        assert int(cap_eff, 16) == 0, cap_eff
        assert no_new_privs == "1"
        assert limits == [256 << 20, 2, 16 << 20, 256], limits
        assert session[0] == session[1] == session[2]  # its own session and process group
        """,
    )
    result = run_then_canary(solo_pool, probe)
    assert result.status == PASS, result


def test_container_limits(solo_pool, docker_client):
    [cid] = solo_pool.container_ids
    info = docker_client.api.inspect_container(cid)
    host, config = info["HostConfig"], info["Config"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == 64
    assert host["Memory"] == host["MemorySwap"] == 512 << 20
    assert host["NanoCpus"] == 10**9
    assert "/tmp" in host["Tmpfs"] and "size=64m" in host["Tmpfs"]["/tmp"]
    assert {u["Name"] for u in host["Ulimits"]} >= {"fsize", "nofile"}
    assert host["Privileged"] is False and not host.get("Binds")
    assert config["User"] == "65534:65534"
    assert config["Labels"]["rlvr.sandbox"] == "1"


@pytest.mark.parametrize(
    "program, status",
    [
        ("print(int(input()) * 2)", PASS),
        ("print(int(input()) * 3)", FAIL),
        ("print(int(input()) * 2", SYNTAX_ERROR),
        ("raise ValueError('no')", RUNTIME_ERROR),
        ("import sys\nprint(int(input()) * 2)\nsys.exit(0)", PASS),  # an explicit exit 0 is fine for io
        ("import sys\nprint(int(input()) * 2)\nsys.exit(3)", RUNTIME_ERROR),
        ("import os\nprint(int(input()) * 2, flush=True)\nos._exit(0)", PASS),
        ("while True:\n    pass", TIMEOUT),
    ],
)
def test_io_statuses(solo_pool, program, status):
    job = Job("io", program, cases=(IOCase("21\n", "42\n"), IOCase("5", "10")), limits=LIMITS)
    result = solo_pool.run(job)
    assert result.status == status, result
    assert result.total == 2


def test_a_run_looks_like_a_fresh_interpreter(solo_pool):
    probe = make_job(
        """
        import os, sys
        env = dict(os.environ)
        cwd = os.getcwd()
        fds = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                fds[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                pass  # the descriptor listdir itself used, closed by now
        utf8 = (sys.flags.utf8_mode, sys.getfilesystemencoding(), sys.stdout.encoding)
        std = (sys.stdin.fileno(), sys.stdout.fileno())
        name, argv = __name__, sys.argv
        """,
        """
        assert utf8 == (1, "utf-8", "utf-8") and std == (0, 1)
        assert sorted(env) == ["HOME", "LANG", "LC_ALL", "PATH", "TMPDIR"], env
        assert env["HOME"] == cwd and cwd.startswith("/tmp/run-")
        assert name == "__solution__" and argv == ["solution.py"]
        # stdin (a memfd), stdout, stderr, and its channel to the tests: no report descriptor
        assert sorted(fds) == [0, 1, 2, 3], fds
        assert fds[0].startswith("/memfd:") and all(fds[i].startswith("pipe:") for i in (1, 2)), fds
        assert fds[3].startswith("socket:"), fds
        """,
    )
    result = run_then_canary(solo_pool, probe)
    assert result.status == PASS, result


# Scans the run's own memory (a copy of its launcher's) for a string shaped like the secret,
# and prints it. It reads its stdin first, so a secret given as input is in its memory.
MEMORY_SCAN = textwrap.dedent(
    """
    import re, sys
    given = sys.stdin.read()
    pattern = re.compile(("s3" + "cr3t-").encode() + rb"[0-9a-f]{16}")
    found = set()
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if "r" not in perms:
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            for at in range(start, end, 1 << 20):
                try:
                    mem.seek(at)
                    found.update(pattern.findall(mem.read(min(1 << 20, end - at))))
                except (OSError, ValueError, OverflowError):
                    break
    print(sorted(found)[0].decode() if found else "nothing found")
    """
)


def test_nothing_of_other_jobs_reaches_a_run(solo_pool):
    """No run can find an expected output, nor an earlier run's program or output, in memory."""
    import secrets

    secret = "s3cr3t-" + secrets.token_hex(8)
    # Control: given as its own input, the secret is found, so the scan works.
    control = solo_pool.run(Job("io", MEMORY_SCAN, cases=(IOCase(secret, secret),), limits=LIMITS))
    assert control.status == PASS, control
    # Earlier jobs in the same container: a program that prints it, a program that contains it.
    printer = Job("io", f"print({secret!r})", cases=(IOCase("", secret),), limits=LIMITS)
    holder = Job("tests", f"KEY = {secret!r}", tests="assert KEY", limits=LIMITS)
    assert [solo_pool.run(printer).status, solo_pool.run(holder).status] == [PASS, PASS]
    # The attack: the secret is the expected output (sent to the harness only as a digest).
    attack = solo_pool.run(Job("io", MEMORY_SCAN, cases=(IOCase("", secret),), limits=LIMITS))
    assert attack.status == FAIL and "nothing found" in attack.stdout, attack
