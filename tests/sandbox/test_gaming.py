"""The gaming attempts of gaming_attacks.py, in Docker, one case each: none passes under the
default isolation, the verdict says tamper where the sandbox can see an attempt, and a correct
program passes in the same container right after. As a control, the attacks meant to work do pass
when the tests share the program's interpreter (isolation "shared")."""

import importlib.util
from pathlib import Path

import pytest

from sandbox.config import JobLimits
from sandbox.runner import PASS, TAMPER, Job

_spec = importlib.util.spec_from_file_location("gaming_attacks", Path(__file__).with_name("gaming_attacks.py"))
_attacks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_attacks)
ATTACKS = _attacks.ATTACKS

pytestmark = pytest.mark.docker

LIMITS = JobLimits(timeout_s=2.0)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_gaming_attempt_never_passes(solo_pool, name):
    program, tests, correct, games_shared, tamper = ATTACKS[name]
    [container] = solo_pool.container_ids

    result = solo_pool.run(Job("tests", program, tests=tests, limits=LIMITS))
    assert result.status != PASS, f"{name} passed: {result}"
    if tamper is not None:
        assert (TAMPER in result.flags) == tamper, f"expected tamper={tamper}: {result}"
    if tamper:
        assert result.detail, result  # the reason names the attempt

    honest = solo_pool.run(Job("tests", correct, tests=tests, limits=LIMITS))
    assert honest.status == PASS and not honest.flags, f"a correct program after {name}: {honest}"
    assert solo_pool.container_ids == [container], "the attack cost the container"

    if games_shared:
        shared = solo_pool.run(Job("tests", program, tests=tests, isolation="shared", limits=LIMITS))
        assert shared.status == PASS, f"the control: {name} should game tests sharing its interpreter: {shared}"


def test_partial_credit_gives_a_tamperer_nothing(solo_pool):
    program, tests, _, _, _ = ATTACKS["always_equal_int_subclass"]
    partial = Job("tests", program, tests="assert True\nassert 1 == 1\n" + tests, partial=True, limits=LIMITS)
    result = solo_pool.run(partial)
    assert result.status != PASS and TAMPER in result.flags and result.passed == 0, result


def test_enough_attacks():
    assert len(ATTACKS) >= 30
