"""Run-health guards: each reads a step's metrics row, averages over a window, trips with one line."""

import math

import pytest

from errors import RunHealthError
from pipeline.config import GuardsConfig
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


def _guards(**settings) -> RunGuards:
    return RunGuards("grpo", GuardsConfig(**settings))


def _row(step=1, ok=8, timeout=0, error=0, **more):
    return {"step": step, "verdict_ok": ok, "verdict_timeout": timeout, "verdict_error": error, **more}


def _masked(n, verifier="code", status="error", reason="sandbox down"):
    return [(verifier, status, reason)] * n


def test_masked_verdicts_trip_with_the_verifier_and_its_commonest_reasons():
    guards = _guards(masked_share=0.5, window=2)
    guards.observe(_row(ok=2, error=8), _masked(6) + _masked(2, reason="container died"))
    with pytest.raises(RunHealthError) as info:
        guards.observe(_row(ok=2, error=7, timeout=1), _masked(7) + _masked(1, "math", "timeout", "over 3 s"))
    message = str(info.value)
    # steps at 8/10 and 8/10 masked: 80% over the window
    assert "80% of the verdicts of the last 2 steps were masked" in message
    assert "verifier 'code' (13 error: sandbox down; 2 error: container died)" in message
    assert "verifier 'math' (1 timeout: over 3 s)" in message
    assert message.index("'code'") < message.index("'math'")  # the worst first
    assert "\n" not in message


def test_a_healthy_run_trips_nothing_with_the_defaults():
    guards = _guards(window=3)
    for step in range(1, 30):
        guards.observe(_row(step, ok=8, error=2, groups=16, groups_kept=5, truncated_frac=0.9, kl=5.0,
                            reward_mean=1.0 / step, loss=0.1, grad_norm=1.0), _masked(2))


def test_steps_without_any_signal_trip_with_the_reward_level():
    guards = _guards(no_signal_share=0.5, window=4)
    for step, kept in enumerate((3, 0, 0), start=1):
        guards.observe(_row(step, groups=4, groups_kept=kept, reward_mean=0.0))
    with pytest.raises(RunHealthError, match=r"75% of the last 4 steps kept no group.*mean reward 0\b"):
        guards.observe(_row(4, groups=4, groups_kept=0, reward_mean=0.0))


def test_groups_without_signal_trip_on_their_share():
    guards = _guards(no_signal_group_share=0.7, window=2)
    guards.observe(_row(1, groups=10, groups_kept=2))  # 80% without signal
    with pytest.raises(RunHealthError, match=r"75% of the groups carried no learning signal.*no_signal_group_share=0.7"):
        guards.observe(_row(2, groups=10, groups_kept=3))  # 70%: mean 75% > 70%


def test_truncation_trips_on_its_share():
    guards = _guards(truncated_share=0.5, window=2)
    guards.observe(_row(1, truncated_frac=0.4))
    with pytest.raises(RunHealthError, match=r"55% of the completions ran out of rollout.max_new_tokens"):
        guards.observe(_row(2, truncated_frac=0.7))


def test_kl_trips_on_its_mean():
    guards = _guards(kl_max=0.1, window=2)
    guards.observe(_row(1, kl=0.05))
    with pytest.raises(RunHealthError, match=r"KL to the reference averaged 0.125 .* above guards.kl_max=0.1"):
        guards.observe(_row(2, kl=0.2))


def test_reward_collapse_trips_when_the_mean_falls_from_its_best():
    guards = _guards(reward_drop=0.35, window=2)
    # window means: .5 (best .5), .75 (best .75), .6, .45 (.30 below .75: not more than .35), .3 -> trips
    for step, r in enumerate((0.4, 0.6, 0.9, 0.3, 0.6), start=1):
        guards.observe(_row(step, reward_mean=r))
    with pytest.raises(RunHealthError, match=r"mean reward of the last 2 steps, 0.3, fell 0.45 below its best, 0.75"):
        guards.observe(_row(6, reward_mean=0.0))


@pytest.mark.parametrize("key", ["loss", "grad_norm", "value_loss"])
def test_a_non_finite_loss_trips_at_once(key):
    guards = RunGuards("sft", GuardsConfig())
    guards.observe({"step": 1, "loss": 0.5, "grad_norm": 1.0})
    with pytest.raises(RunHealthError, match=rf"sft stopped by the run-health guard at step 2: {key}=nan"):
        guards.observe({"step": 2, "loss": 0.5, "grad_norm": 1.0, key: math.nan})
    RunGuards("sft", GuardsConfig(nonfinite=False)).observe({"step": 2, key: math.inf})


def test_stages_without_verdicts_or_groups_are_judged_only_on_what_they_log():
    guards = _guards(masked_share=0.1, no_signal_share=0.1, window=1)
    guards.observe({"step": 1, "loss": 0.3, "reward_accuracy": 0.5})  # a DPO row
