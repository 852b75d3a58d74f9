"""Run-health guards: checks on each step's statistics that stop a stage with a reason instead of
letting it train on nothing (a verifier that fails every sample, a batch with no learning signal).

A guard watches one per-step measure over a sliding window of steps and trips when the window is
full and the measure's mean is above its threshold; the stage then raises `RunHealthError`
(exit 3, which the round flow does not retry), naming the guard, the numbers and, for masked
verdicts, the verifiers and their most common reasons.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Sequence

from errors import RunHealthError

__all__ = ["WindowGuard", "RunGuards"]


class WindowGuard:
    """Trips when the mean of the last `window` values is above `threshold` (None: never)."""

    def __init__(self, name: str, threshold: float | None, window: int):
        self.name, self.threshold = name, threshold
        self.values: deque[float] = deque(maxlen=window)

    def observe(self, value: float) -> bool:
        """Record one step's value; True when the guard trips."""
        self.values.append(value)
        if self.threshold is None or len(self.values) < (self.values.maxlen or 0):
            return False
        return self.mean > self.threshold

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else 0.0


class RunGuards:
    """The guards of an RL stage (GRPO, PPO): masked verdicts and steps without a learning signal.
    The reasons of the masked verdicts over the window are kept, so the error can say what went wrong."""

    def __init__(self, stage: str, masked_share: float | None, no_signal_share: float | None, window: int):
        self.stage, self.window = stage, window
        self.masked = WindowGuard("masked verdicts", masked_share, window)
        self.no_signal = WindowGuard("steps without a learning signal", no_signal_share, window)
        self._reasons: deque[Counter[tuple[str, str, str]]] = deque(maxlen=window)  # (verifier, status, reason)
        self._rewards: deque[float | None] = deque(maxlen=window)

    @classmethod
    def from_config(cls, stage: str, guards) -> "RunGuards":
        return cls(stage, guards.masked_share, guards.no_signal_share, guards.window)

    def observe_step(self, verdicts: int, masked: Sequence[tuple[str, str, str]], reward_mean: float | None,
                     signal: bool | None = None) -> None:
        """One step, counted over every process: its number of verdicts, the (verifier, status,
        reason) of each masked one, the mean reward of the scored ones, and (GRPO) whether any
        group was kept. Raises RunHealthError when a guard trips; every process sees the same
        numbers, so all of them stop together."""
        self._reasons.append(Counter(masked))
        self._rewards.append(reward_mean)
        if self.masked.observe(len(masked) / max(verdicts, 1)):
            raise RunHealthError(self._masked_reason())
        if signal is not None and self.no_signal.observe(0.0 if signal else 1.0):
            raise RunHealthError(self._no_signal_reason())

    def _masked_reason(self) -> str:
        total = sum(self._reasons, Counter())
        by_verifier: dict[str, Counter[tuple[str, str]]] = {}
        for (name, status, reason), count in total.items():
            by_verifier.setdefault(name, Counter())[(status, reason)] += count
        parts = []
        for name, counts in sorted(by_verifier.items(), key=lambda kv: -sum(kv[1].values())):
            top = "; ".join(f"{count} {status}: {_short(reason)}" for (status, reason), count in counts.most_common(3))
            parts.append(f"verifier {name!r} ({top})")
        return (f"{self.stage} stopped by the run-health guard: {self.masked.mean:.0%} of the verdicts of the "
                f"last {self.window} steps were masked (timeout or error), above guards.masked_share="
                f"{self.masked.threshold:g}; {', '.join(parts)}. Fix the verifier (or its sandbox), or raise "
                "guards.masked_share")

    def _no_signal_reason(self) -> str:
        rewards = [r for r in self._rewards if r is not None]
        level = f"; mean reward of scored samples {sum(rewards) / len(rewards):.3g}" if rewards else "; nothing was scored"
        return (f"{self.stage} stopped by the run-health guard: {self.no_signal.mean:.0%} of the last {self.window} "
                f"steps kept no group with a learning signal (every group's rewards equal, or masked){level}, "
                f"above guards.no_signal_share={self.no_signal.threshold:g}. The task is too hard or too easy "
                "for this model, or the reward is constant: check the verifier's rewards, or raise "
                "grpo.group_size / grpo.prompts_per_step")


def _short(reason: str, limit: int = 160) -> str:
    reason = " ".join((reason or "(no reason given)").split())
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"
