"""The deadline pool: results in order, overrunning jobs killed and replaced, dead workers
replaced, usable from threads."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from verifiers.pool import DONE, FAILED, TIMEOUT, DeadlinePool


@pytest.fixture
def sleeper():
    with DeadlinePool("time:sleep", workers=2, timeout_s=0.5) as pool:
        yield pool


def test_results_come_back_in_job_order():
    with DeadlinePool("math:gcd", workers=2) as pool:
        assert pool.map([(12, 18), (7, 5), (100, 75)]) == [(DONE, 6), (DONE, 1), (DONE, 25)]
        assert pool.map([]) == []


def test_an_overrunning_job_is_killed_and_its_worker_replaced(sleeper):
    start = time.perf_counter()
    results = sleeper.map([(30,), (0,), (0,)])
    elapsed = time.perf_counter() - start
    assert results == [(TIMEOUT, None), (DONE, None), (DONE, None)]
    assert elapsed < 2.0  # not the 30 s the job asked for
    assert sleeper.replaced == 1
    assert sleeper.last_elapsed[0] >= 0.5
    assert sleeper.map([(0,)] * 4) == [(DONE, None)] * 4  # the pool is whole again


def test_a_failing_job_reports_its_error_and_the_worker_lives_on():
    with DeadlinePool("math:sqrt", workers=1) as pool:
        (bad,), = [pool.map([(-1,)])]
        assert bad[0] == FAILED and "ValueError" in bad[1]
        assert pool.map([(16,)]) == [(DONE, 4.0)]
        assert pool.replaced == 0


def test_a_job_over_the_memory_limit_fails_without_taking_the_pool_down():
    with DeadlinePool("operator:mul", workers=1, memory_mb=512) as pool:
        (status, reason), = pool.map([("ab", 2 * 1024**3)])  # a 4 GiB string
        assert status == FAILED and "memory" in reason
        assert pool.map([("ab", 2)]) == [(DONE, "abab")]


def test_calls_from_many_threads_get_their_own_results():
    with DeadlinePool("math:factorial", workers=2) as pool:
        with ThreadPoolExecutor(6) as threads:
            results = list(threads.map(lambda n: pool.map([(n,), (n + 1,)]), range(12)))
    import math

    assert results == [[(DONE, math.factorial(n)), (DONE, math.factorial(n + 1))] for n in range(12)]


def test_close_stops_every_process():
    pool = DeadlinePool("math:gcd", workers=2)
    pool.start()
    server, workers = pool._server, [w.pid for w in pool._workers]
    pool.close()
    assert server.poll() is not None
    time.sleep(0.2)
    import os

    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        DeadlinePool("math:gcd", workers=0)
    with pytest.raises(ValueError):
        DeadlinePool("math:gcd", timeout_s=0)
