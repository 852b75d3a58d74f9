"""Run-health guards: a sliding window per measure, tripping only when the window is full."""

import pytest

from errors import RunHealthError
from pipeline.guards import RunGuards, WindowGuard


def test_window_guard_waits_for_a_full_window_then_compares_the_mean():
    guard = WindowGuard("x", threshold=0.5, window=3)
    assert not guard.observe(1.0) and not guard.observe(1.0)  # 2 of 3 values: not judged yet
    assert guard.observe(1.0)  # mean 1.0 > 0.5
    guard = WindowGuard("x", threshold=0.5, window=3)
    # [1, 0, 0] mean 1/3; [0, 0, 1] 1/3; [0, 1, 1] 2/3 > .5 trips
    assert [guard.observe(v) for v in (1.0, 0.0, 0.0, 1.0, 1.0)] == [False, False, False, False, True]


def test_the_threshold_is_exclusive_and_none_switches_it_off():
    guard = WindowGuard("x", threshold=0.5, window=2)
    assert [guard.observe(v) for v in (0.5, 0.5)] == [False, False]  # mean .5 is not above .5
    off = WindowGuard("x", threshold=None, window=1)
    assert not any(off.observe(1.0) for _ in range(10))


def _masked(n, verifier="code", status="error", reason="sandbox down"):
    return [(verifier, status, reason)] * n


def test_masked_verdicts_trip_with_the_verifier_and_its_commonest_reasons():
    guards = RunGuards("grpo", masked_share=0.5, no_signal_share=None, window=2)
    guards.observe_step(10, _masked(6) + _masked(2, reason="container died"), reward_mean=1.0)
    with pytest.raises(RunHealthError) as info:
        guards.observe_step(10, _masked(7) + _masked(1, "math", "timeout", "over 3 s"), reward_mean=None)
    message = str(info.value)
    # steps at 8/10 and 8/10 masked: 80% over the window
    assert "80% of the verdicts of the last 2 steps were masked" in message
    assert "verifier 'code' (13 error: sandbox down; 2 error: container died)" in message
    assert "verifier 'math' (1 timeout: over 3 s)" in message
    assert message.index("'code'") < message.index("'math'")  # the worst first


def test_a_healthy_share_of_masked_verdicts_never_trips():
    guards = RunGuards("grpo", masked_share=0.5, no_signal_share=0.95, window=3)
    for _ in range(20):
        guards.observe_step(10, _masked(2), reward_mean=0.5, signal=True)


def test_steps_without_signal_trip_with_the_reward_level():
    guards = RunGuards("grpo", masked_share=0.5, no_signal_share=0.5, window=4)
    for signal in (True, False, False):
        guards.observe_step(8, [], reward_mean=0.0, signal=signal)
    with pytest.raises(RunHealthError, match=r"75% of the last 4 steps kept no group.*mean reward of scored samples 0"):
        guards.observe_step(8, [], reward_mean=0.0, signal=False)


def test_without_a_signal_measure_only_masking_is_judged():
    guards = RunGuards("ppo", masked_share=0.5, no_signal_share=0.1, window=1)
    guards.observe_step(4, [], reward_mean=0.3)  # PPO has no groups: signal None is not "no signal"
