"""Code sandbox throughput: the warm pool against a fresh container per program, and a crash test.

    python bench/sandbox.py [--programs 200] [--pool-size 4] [--timeout 0.5] [--loop-share 0.05] [--cost-rounds 3]
    python bench/sandbox.py crash [--jobs 1000] [--kills 20]

Throughput (the default): generates `programs` programs (seeded) across ten small tasks, both
reference kinds (Python tests, stdin/stdout cases) and four outcomes (correct, wrong, syntax error,
infinite loop), each with the status it must get. Both sides run the real code path with the same
limits, the same harness and the same concurrency (`pool-size` threads):
- warm: `SandboxPool.run_many` over `pool-size` warm containers;
- fresh: one new container per program (`docker run` through the API: create, start, one job,
  remove), `pool-size` at a time.
Prints programs per second for both, and every verdict that differs from the expected status.
The target is at least 50 programs/s for the warm pool on 2 cores, with every verdict right.
Tests run in a trusted process of their own (the default isolation, "process"); the cost of that
second process is measured on the warm pool with the mix's tests jobs that end by themselves,
run with isolation "shared" and "process" in alternating rounds: programs/s with the pool's
concurrency, and, one job at a time, the latency and the CPU (program and tests together) per job.

crash: runs `jobs` jobs in child processes that each start a pool and are SIGKILLed at a random
moment (a seeded delay), `kills` times; then starts a new pool, which must find and remove every
container the dead children left, and checks that none of their containers remains.
Exits 1 when a verdict is wrong or a container is left behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.client import connect  # noqa: E402
from sandbox.config import JobLimits, SandboxConfig  # noqa: E402
from sandbox.container import LABEL, OWNER_LABEL, Container, owner_id  # noqa: E402
from sandbox.runner import FAIL, PASS, SYNTAX_ERROR, TIMEOUT, IOCase, Job, SandboxPool  # noqa: E402

# (correct source, wrong source, name, [(args, result)]): the tests-kind tasks. Each wrong
# source is wrong on every listed case and raises nothing, so its status is exactly "fail".
_FUNCTION_TASKS = [
    ("def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b + 1\n", "add",
     [((2, 3), 5), ((-4, 4), 0), ((10, 7), 17)]),
    ("def rev(s):\n    return s[::-1]\n", "def rev(s):\n    return s + '!'\n", "rev",
     [(("abc",), "cba"), (("",), ""), (("xy",), "yx")]),
    ("def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
     "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return b + 1\n", "fib",
     [((0,), 0), ((1,), 1), ((10,), 55)]),
    ("def is_prime(n):\n    if n < 2:\n        return False\n    i = 2\n    while i * i <= n:\n"
     "        if n % i == 0:\n            return False\n        i += 1\n    return True\n",
     "def is_prime(n):\n    return n % 2 == 1 and n != 97\n", "is_prime",
     [((2,), True), ((15,), False), ((97,), True)]),
    ("def vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())\n",
     "def vowels(s):\n    return len(s) + 1\n", "vowels",
     [(("Hello",), 2), (("xyz",), 0), (("AEIOU",), 5)]),
]
# (correct source, wrong source, [(stdin, stdout)]): the io-kind tasks; wrong = wrong output, exit 0.
_IO_TASKS = [
    ("a, b = map(int, input().split())\nprint(a + b)\n", "a, b = map(int, input().split())\nprint(a * b + 1)\n",
     [("1 2\n", "3\n"), ("10 -3\n", "7\n")]),
    ("n = int(input())\nprint(*sorted(map(int, input().split())))\n",
     "n = int(input())\nprint(*map(int, input().split()), 0)\n", [("3\n3 1 2\n", "1 2 3\n"), ("1\n5\n", "5\n")]),
    ("import sys\nprint(max(int(x) for x in sys.stdin.read().split()))\n",
     "import sys\nprint(min(int(x) for x in sys.stdin.read().split()) - 1)\n", [("4 9 2\n", "9\n"), ("-1 -5\n", "-1\n")]),
    ("s = input()\nprint(s.upper())\n", "s = input()\nprint(s.lower() + 'z')\n", [("abc\n", "ABC\n"), ("Hi\n", "HI\n")]),
    ("n = int(input())\nfor i in range(1, n + 1):\n    print(i * i)\n",
     "n = int(input())\nfor i in range(1, n + 1):\n    print(i + 1)\n", [("3\n", "1\n4\n9\n"), ("1\n", "1\n")]),
]


def _variant(correct: str, wrong: str, outcome: str, rng: random.Random) -> str:
    """A program with the given outcome; a random comment makes every program text distinct."""
    tag = f"# variant {rng.randrange(10**6)}\n"
    if outcome == "correct":
        return correct + tag
    if outcome == "wrong":
        return wrong + tag
    if outcome == "syntax":
        return correct.replace(")", "", 1) + tag  # an unclosed parenthesis
    if outcome == "loop":
        return "while True:\n    pass\n" + correct + tag
    raise ValueError(outcome)


def generate_jobs(n: int, seed: int, loop_share: float, limits: JobLimits) -> list[tuple[Job, str]]:
    """`n` (job, expected status) pairs: ~`loop_share` infinite loops, then correct:wrong:syntax 5:3:2."""
    rng = random.Random(seed)
    expected = {"correct": PASS, "wrong": FAIL, "syntax": SYNTAX_ERROR, "loop": TIMEOUT}
    jobs = []
    for i in range(n):
        if rng.random() < loop_share:
            outcome = "loop"
        else:
            outcome = rng.choices(["correct", "wrong", "syntax"], weights=[5, 3, 2])[0]
        if i % 2 == 0:
            correct, wrong, name, cases = _FUNCTION_TASKS[rng.randrange(len(_FUNCTION_TASKS))]
            tests = "".join(f"assert {name}{args!r} == {result!r}\n" for args, result in cases)
            job = Job("tests", _variant(correct, wrong, outcome, rng), tests=tests, limits=limits)
        else:
            correct, wrong, cases = _IO_TASKS[rng.randrange(len(_IO_TASKS))]
            program = _variant(correct, wrong, outcome, rng)
            job = Job("io", program, cases=tuple(IOCase(a, b) for a, b in cases), limits=limits)
        jobs.append((job, expected[outcome]))
    return jobs


def _check(name: str, results, jobs) -> int:
    wrong = [(i, r, want) for i, (r, (_, want)) in enumerate(zip(results, jobs)) if r.status != want]
    for i, r, want in wrong[:10]:
        print(f"  {name}: program {i} got {r.status} ({r.detail[:120]}), expected {want}")
    return len(wrong)


def throughput(args) -> int:
    limits = JobLimits(timeout_s=args.timeout)
    config = SandboxConfig(pool_size=args.pool_size, limits=limits)
    jobs = generate_jobs(args.programs, args.seed, args.loop_share, limits)
    mix = {}
    for job, want in jobs:
        mix[f"{job.kind}/{want}"] = mix.get(f"{job.kind}/{want}", 0) + 1
    print(f"{len(jobs)} programs, {os.cpu_count()} cores, pool_size {args.pool_size}, timeout {args.timeout:g} s; mix: "
          + ", ".join(f"{k} {v}" for k, v in sorted(mix.items())))

    with SandboxPool(config) as pool:
        pool.run_many([job for job, _ in jobs[: args.pool_size * 2]])  # warm-up, not timed
        start = time.perf_counter()
        results = pool.run_many([job for job, _ in jobs])
        warm_s = time.perf_counter() - start
        warm_stats = dict(pool.stats)
        cost_wrong = isolation_cost(pool, jobs, args.cost_rounds) if args.cost_rounds else 0
    warm_wrong = _check("warm", results, jobs)
    print(f"warm pool:  {len(jobs) / warm_s:6.1f} programs/s ({warm_s:.2f} s), wrong verdicts {warm_wrong}, "
          f"pool stats {warm_stats}")

    client = connect()
    owner = owner_id()

    def fresh(job: Job):
        container = Container(client, config, owner)
        try:
            reply = container.call(job.wire(0), job.runs * (10 * job.limits.timeout_s + 1) + config.reply_slack_s)
        finally:
            container.remove()
        return type("Reply", (), {"status": reply["status"], "detail": reply.get("detail", "")})

    fresh_jobs = jobs[: args.fresh_programs] if args.fresh_programs else jobs
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.pool_size) as ex:
        fresh_results = list(ex.map(fresh, [job for job, _ in fresh_jobs]))
    fresh_s = time.perf_counter() - start
    fresh_wrong = _check("fresh", fresh_results, fresh_jobs)
    print(f"fresh container per program: {len(fresh_jobs) / fresh_s:6.1f} programs/s ({fresh_s:.2f} s), "
          f"wrong verdicts {fresh_wrong}")
    rate = len(jobs) / warm_s
    loops = sum(want == TIMEOUT for _, want in jobs)
    # An infinite loop is stopped after `timeout` seconds of its own time (time spent waiting for a
    # CPU held by others is credited back), so each costs about `timeout` CPU-seconds.
    floor_s = loops * args.timeout / (os.cpu_count() or 1)
    print(f"infinite loops alone need >= {floor_s:.1f} s on {os.cpu_count()} cores: at most "
          f"{len(jobs) / floor_s if floor_s else float('inf'):.0f} programs/s with this mix and deadline")
    print(f"warm / fresh: {rate / (len(fresh_jobs) / fresh_s):.1f}x; target >= 50 programs/s warm with every "
          f"verdict right: {'met' if rate >= 50 and warm_wrong == 0 else 'NOT met'}")
    return 1 if warm_wrong or fresh_wrong or cost_wrong else 0


def isolation_cost(pool: SandboxPool, jobs: list[tuple[Job, str]], rounds: int) -> int:
    """The second process's cost: the mix's tests jobs that end by themselves (no infinite loops),
    with the tests in the program's interpreter ("shared") and in their own process ("process"),
    in alternating rounds so both meet the same load. Returns the number of wrong verdicts."""
    tests = [(job, want) for job, want in jobs if job.kind == "tests" and want != TIMEOUT]
    seen: dict[str, dict[str, list[float]]] = {iso: {"rate": [], "latency": [], "cpu": []} for iso in ("shared", "process")}
    wrong = 0
    for _ in range(rounds):
        for isolation, numbers in seen.items():
            batch = [(dataclasses.replace(job, isolation=isolation), want) for job, want in tests]
            start = time.perf_counter()
            results = pool.run_many([job for job, _ in batch])
            numbers["rate"].append(len(batch) / (time.perf_counter() - start))
            wrong += _check(isolation, results, batch)
            one_at_a_time = [pool.run(job) for job, _ in batch]
            wrong += _check(isolation, one_at_a_time, batch)
            numbers["latency"].extend(r.wall_s for r in one_at_a_time)
            numbers["cpu"].extend(r.cpu_s for r in one_at_a_time)
    row = {iso: (statistics.median(n["rate"]), 1000 * statistics.mean(n["latency"]), 1000 * statistics.mean(n["cpu"])) for iso, n in seen.items()}
    print(f"isolation cost, {len(tests)} tests jobs x {rounds} rounds (median programs/s with the pool; "
          "mean latency and CPU per job, one at a time):")
    for isolation, (rate, latency, cpu) in row.items():
        print(f"  {isolation:8s} {rate:6.1f} programs/s   {latency:6.1f} ms latency   {cpu:6.1f} ms CPU")
    (rate_s, lat_s, cpu_s), (rate_p, lat_p, cpu_p) = row["shared"], row["process"]
    print(f"  the second process costs {lat_p - lat_s:+.1f} ms latency and {cpu_p - cpu_s:+.1f} ms CPU per job; "
          f"throughput x{rate_p / rate_s:.2f}")
    return wrong


_CHILD = """
import sys, itertools
sys.path.insert(0, {repo!r})
from sandbox.config import SandboxConfig, JobLimits
from sandbox.runner import Job, SandboxPool
pool = SandboxPool(SandboxConfig(pool_size={pool_size}, limits=JobLimits(timeout_s=2))).start()
print("started", flush=True)
for i in itertools.count():
    pool.run_many([Job("tests", "def f(x):\\n    return x + 1\\n", tests=f"assert f({{j}}) == {{j}} + 1") for j in range({pool_size})])
    print("done", (i + 1) * {pool_size}, flush=True)
"""


def labelled(client, owners: set[int]) -> list[dict]:
    """Sandbox containers whose owner is one of these processes (the daemon may be shared with
    other users' pools, which come and go meanwhile)."""
    wanted = {str(pid) for pid in owners}
    infos = client.api.containers(all=True, filters={"label": f"{LABEL}=1"})
    # the owner label reads host:pid:start-time (sandbox.container.owner_id)
    return [i for i in infos if _owner_pid(i) in wanted]


def _owner_pid(info: dict) -> str:
    fields = (info.get("Labels") or {}).get(OWNER_LABEL, "").split(":")
    return fields[1] if len(fields) == 3 else ""


def crash(args) -> int:
    rng = random.Random(args.seed)
    client = connect()
    children: set[int] = set()
    jobs_done = 0
    start = time.perf_counter()
    k = 0
    while k < args.kills or jobs_done < args.jobs:  # at least `kills` children and `jobs` jobs
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD.format(repo=str(REPO), pool_size=args.pool_size)],
            stdout=subprocess.PIPE, text=True,
        )
        children.add(child.pid)
        target = max(args.jobs - jobs_done, 8) / max(args.kills - k, 1)
        done_here = 0
        if k % 5 == 4:
            # Every fifth child dies while its pool starts: containers created, started, not yet ready.
            time.sleep(rng.uniform(0.2, 1.5))
        else:
            # Killed after a random number of jobs, mid-batch or between batches.
            kill_at = rng.uniform(0, target * 1.6)
            for line in child.stdout:
                if line.startswith("done"):
                    done_here = int(line.split()[1])
                if done_here >= kill_at:
                    break
            time.sleep(rng.uniform(0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        jobs_done += done_here
        k += 1
        print(f"kill {k}: child SIGKILLed after {done_here} jobs; its containers now "
              f"{len(labelled(client, children))}")
    time.sleep(args.settle)
    left_before_start = len(labelled(client, children))
    pool = SandboxPool(SandboxConfig(pool_size=1)).start()  # its start removes the orphans
    pool.close()
    left = len(labelled(client, children))
    print(f"{jobs_done} jobs in {k} killed children ({time.perf_counter() - start:.0f} s); "
          f"containers left after the kills: {left_before_start} (the daemon auto-removes most), "
          f"after the next pool start: {left}")
    return 1 if left else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=["throughput", "crash"], default="throughput")
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--fresh-programs", type=int, default=0, help="score only the first N with fresh containers (0: all)")
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=0.5, help="wall-clock deadline per run, seconds")
    parser.add_argument("--loop-share", type=float, default=0.05, help="share of infinite-loop programs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cost-rounds", type=int, default=3, help="rounds of the isolation-cost measurement (0: skip)")
    parser.add_argument("--jobs", type=int, default=1000, help="crash: jobs to run across the killed children")
    parser.add_argument("--kills", type=int, default=20, help="crash: children to start and SIGKILL")
    parser.add_argument("--settle", type=float, default=2.0, help="crash: seconds before the next pool starts")
    args = parser.parse_args(argv)
    return crash(args) if args.mode == "crash" else throughput(args)


if __name__ == "__main__":
    sys.exit(main())
