"""The pool: retries on sandbox failures, recycling, concurrency, and cleanup however its owner ends."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sandbox.client import DockerUnavailableError, connect
from sandbox.config import JobLimits, SandboxConfig
from sandbox.container import LABEL, OWNER_LABEL, owner_alive, owner_id, remove_orphans
from sandbox.runner import PASS, SANDBOX_ERROR, Job, JobResult, SandboxPool

REPO = Path(__file__).resolve().parents[2]
LIMITS = JobLimits(timeout_s=5.0)
ADD = Job("tests", "def add(a, b):\n    return a + b\n", tests="assert add(2, 3) == 5", limits=LIMITS)


# --- without Docker -----------------------------------------------------------------------------


def test_owner_alive():
    assert owner_alive(owner_id())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = owner_id(child.pid)
    child.wait()
    assert not owner_alive(dead)
    assert not owner_alive(owner_id().rsplit(":", 1)[0] + ":0")  # same pid, another start time: reused
    assert owner_alive("another-host:1:1")  # cannot be checked from here: left alone
    assert owner_alive(owner_id().split(":")[0] + ":notapid:0")  # not ours to judge: left alone


def test_job_result_fraction():
    assert JobResult(PASS, passed=0, total=3).fraction == 1.0
    assert JobResult("fail", passed=1, total=4).fraction == 0.25
    assert JobResult("fail", passed=9, total=4).fraction == 1.0
    assert JobResult(SANDBOX_ERROR, passed=0, total=0).fraction == 0.0


def test_job_validation():
    with pytest.raises(ValueError, match="at least one case"):
        Job("io", "print(1)")
    with pytest.raises(ValueError, match="kind"):
        Job("bash", "echo")


def test_no_daemon_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(DockerUnavailableError, match="make docker-ready"):
        connect()


# --- with Docker --------------------------------------------------------------------------------

docker = pytest.mark.docker


def _ours(client, owner: str) -> list[str]:
    infos = client.api.containers(all=True, filters={"label": f"{OWNER_LABEL}={owner}"})
    return [i["Id"] for i in infos]


@docker
def test_missing_image_is_a_clear_error(docker_client):
    with pytest.raises(DockerUnavailableError, match="python -m sandbox.image"):
        SandboxPool(SandboxConfig(image="rlvr-sandbox:no-such-tag"), docker_client).start()


@docker
def test_a_container_killed_mid_job_is_retried_on_a_fresh_one(docker_client):
    sleeper = Job("tests", "import time\ntime.sleep(1.5)\n", tests="assert True", limits=LIMITS)
    with SandboxPool(SandboxConfig(pool_size=1), docker_client) as pool:
        [victim] = pool.container_ids
        killer = threading.Timer(0.5, lambda: docker_client.api.kill(victim))
        killer.start()
        result = pool.run(sleeper)
        killer.join()
        assert result.status == PASS and result.attempts == 2, result
        assert victim not in pool.container_ids
        assert pool.run(ADD).status == PASS


@docker
def test_a_persistent_sandbox_failure_is_a_sandbox_error_not_a_fail(docker_client):
    sleeper = Job("tests", "import time\ntime.sleep(1.5)\n", tests="assert True", limits=LIMITS)
    with SandboxPool(SandboxConfig(pool_size=1, retries=0), docker_client) as pool:
        [victim] = pool.container_ids
        threading.Timer(0.5, lambda: docker_client.api.kill(victim)).start()
        result = pool.run(sleeper)
        assert result.status == SANDBOX_ERROR, result
        assert "closed its channel" in result.detail or "channel failed" in result.detail, result
        assert pool.run(ADD).status == PASS  # a replacement took its place


@docker
def test_containers_are_recycled_after_k_jobs(docker_client):
    with SandboxPool(SandboxConfig(pool_size=1, jobs_per_container=3), docker_client) as pool:
        seen = set()
        for _ in range(7):
            assert pool.run(ADD).status == PASS
            seen.update(pool.container_ids)
        assert pool.stats["replaced"] == 2  # after jobs 3 and 6
        assert len(seen) >= 2


@docker
def test_run_many_spreads_a_batch_over_the_pool(docker_client):
    sleeper = Job("tests", "import time\ntime.sleep(1.0)\n", tests="assert True", limits=LIMITS)
    with SandboxPool(SandboxConfig(pool_size=4), docker_client) as pool:
        start = time.monotonic()
        results = pool.run_many([sleeper] * 4 + [ADD])
        elapsed = time.monotonic() - start
    assert [r.status for r in results] == [PASS] * 5
    assert elapsed < 3.5, f"4 one-second jobs on 4 containers took {elapsed:.1f} s: not concurrent"


@docker
def test_orphans_are_removed_and_live_owners_left_alone(docker_client):
    image = SandboxConfig().image
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner = owner_id(dead.pid)
    dead.wait()
    made = []
    for owner in (dead_owner, owner_id()):
        made.append(
            docker_client.api.create_container(image, command=["true"], labels={LABEL: "1", OWNER_LABEL: owner})["Id"]
        )
    try:
        remove_orphans(docker_client)
        remaining = {i["Id"] for i in docker_client.api.containers(all=True, filters={"label": f"{LABEL}=1"})}
        assert made[0] not in remaining and made[1] in remaining
    finally:
        for cid in made:
            try:
                docker_client.api.remove_container(cid, force=True)
            except Exception:
                pass


_CHILD = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {repo!r})
    from sandbox.config import SandboxConfig
    from sandbox.container import owner_id
    from sandbox.runner import Job, SandboxPool
    pool = SandboxPool(SandboxConfig(pool_size=2)).start()
    assert pool.run(Job("tests", "x = 1", tests="assert x == 1")).status == "pass"
    print(owner_id(), flush=True)
    if sys.argv[1] == "exit":
        sys.exit(0)
    time.sleep(60)
    """
)


def _start_child(how: str) -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(repo=str(REPO)), how], stdout=subprocess.PIPE, text=True
    )
    owner = child.stdout.readline().strip()
    assert owner, "the child pool did not start"
    return child, owner


@docker
@pytest.mark.parametrize("how", ["exit", "sigterm", "sigint"])
def test_containers_are_removed_when_the_owner_exits(docker_client, how):
    child, owner = _start_child(how)
    assert len(_ours(docker_client, owner)) == 2 or how == "exit"
    if how != "exit":
        child.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
    child.wait(timeout=60)
    child.stdout.close()
    assert _ours(docker_client, owner) == []


@docker
def test_containers_of_a_killed_owner_are_gone_by_the_next_start(docker_client):
    child, owner = _start_child("sleep")
    assert len(_ours(docker_client, owner)) == 2
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    # The daemon removes them by itself (stdin closed -> harness exits -> auto-remove); the next
    # pool's start removes whatever is left.
    SandboxPool(SandboxConfig(pool_size=1), docker_client).start().close()
    deadline = time.monotonic() + 10
    while _ours(docker_client, owner) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ours(docker_client, owner) == []


@docker
@pytest.mark.slow
def test_random_kills_leave_no_container_behind():
    """The crash benchmark, smaller: jobs in children SIGKILLed at random moments."""
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "sandbox.py"), "crash", "--jobs", "120", "--kills", "6", "--pool-size", "2"],
        capture_output=True, text=True, timeout=300, env={**os.environ},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "after the next pool start: 0" in out.stdout, out.stdout


@docker
@pytest.mark.slow
def test_a_correct_program_is_not_timed_out_by_an_overloaded_machine(docker_client):
    """Time its process spends waiting for a CPU that others hold is not held against it. The
    others are six containers spinning (each container is its own fairly-weighted cgroup)."""
    busy = Job("tests", "t = 0\nfor i in range(8_000_000):\n    t += i\n", tests="assert t > 0", limits=JobLimits(timeout_s=1.0))
    spin = Job("tests", "while True:\n    pass\n", tests="assert True", limits=JobLimits(timeout_s=1.0))
    with SandboxPool(SandboxConfig(pool_size=1), docker_client) as pool, SandboxPool(
        SandboxConfig(pool_size=6), docker_client
    ) as hogs:
        alone = pool.run(busy)
        assert alone.status == PASS, alone
        crowd = threading.Thread(target=hogs.run_many, args=([spin] * 6,))
        crowd.start()
        time.sleep(0.3)
        crowded = pool.run(busy)
        crowd.join()
    assert crowded.status == PASS, (alone, crowded)
    assert crowded.wall_s > 1.0, f"the machine was not crowded enough for this test to mean anything: {crowded}"


@docker
def test_a_harness_error_is_answered_and_the_pool_retries_elsewhere(docker_client, monkeypatch):
    from sandbox.container import Container

    container = Container(docker_client, SandboxConfig(), owner_id())
    try:
        reply = container.call({"id": 1, "kind": "tests"}, timeout_s=30)  # no program, no limits
        assert reply["status"] == "harness_error" and "KeyError" in reply["detail"] and reply["clean"] is False
        assert container.call({**ADD.wire(2)}, timeout_s=30)["status"] == PASS  # the channel still works
    finally:
        container.remove()
    with SandboxPool(SandboxConfig(pool_size=1), docker_client) as pool:
        wire = Job.wire
        calls = []

        def broken_once(self, job_id):
            calls.append(job_id)
            return {"id": job_id, "kind": "tests"} if len(calls) == 1 else wire(self, job_id)

        monkeypatch.setattr(Job, "wire", broken_once)
        result = pool.run(ADD)
    assert result.status == PASS and result.attempts == 2, result
