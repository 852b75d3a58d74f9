"""Run-health guards: checks on each step's logged statistics that stop a stage with a reason
instead of letting it train on nothing, drift away, collapse or carry NaNs forward.

Every guard reads the metrics row a trainer logs for a step (the same numbers metrics.jsonl and
the trackers get): a window guard averages one measure over the last `window` steps and trips
once the window is full and the average passes its threshold; the non-finite check trips at the
first NaN or infinite loss or gradient norm. A tripped guard raises `RunHealthError` (exit 3,
which the round flow does not retry) with one line naming the guard, the numbers and what to do;
for masked verdicts it names the verifiers and their commonest reasons. The stage's checkpoints
stay as they are, for inspection.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import Any, Mapping, Sequence

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
        return self.full and self.threshold is not None and self.mean > self.threshold

    @property
    def full(self) -> bool:
        return len(self.values) == self.values.maxlen

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else 0.0


def _loss_keys(row: Mapping[str, Any]) -> list[str]:
    return [k for k in row if k in ("loss", "grad_norm") or k.endswith("_loss")]


class RunGuards:
    """The guards of one stage, configured by `GuardsConfig`; `observe(row)` after each step."""

    def __init__(self, stage: str, cfg, on_trip=None):
        self.stage, self.cfg, self.window = stage, cfg, cfg.window
        self.on_trip = on_trip  # called before the error propagates (the trainers flush their trackers)
        self.masked = WindowGuard("masked verdicts", cfg.masked_share, cfg.window)
        self.no_signal = WindowGuard("steps without a learning signal", cfg.no_signal_share, cfg.window)
        self.no_signal_groups = WindowGuard("groups without a learning signal", cfg.no_signal_group_share, cfg.window)
        self.truncated = WindowGuard("truncated completions", cfg.truncated_share, cfg.window)
        self.kl = WindowGuard("KL to the reference", cfg.kl_max, cfg.window)
        self.reward = WindowGuard("mean reward", None, cfg.window)
        self.best_reward: float | None = None
        self._reasons: deque[Counter[tuple[str, str, str]]] = deque(maxlen=cfg.window)  # (verifier, status, reason)

    @classmethod
    def from_config(cls, stage: str, guards, on_trip=None) -> "RunGuards":
        return cls(stage, guards, on_trip)

    def observe(self, row: Mapping[str, Any], masked: Sequence[tuple[str, str, str]] | None = None) -> None:
        """One step's metrics row (and, for RL stages, the (verifier, status, reason) of every masked
        verdict of the step, over all processes). Raises RunHealthError when a guard trips; every
        process sees the same numbers, so all of them stop together."""
        try:
            self._judge(row, masked)
        except RunHealthError:
            if self.on_trip is not None:
                self.on_trip()
            raise

    def _judge(self, row: Mapping[str, Any], masked: Sequence[tuple[str, str, str]] | None) -> None:
        if self.cfg.nonfinite:
            bad = {k: row[k] for k in _loss_keys(row) if isinstance(row[k], float) and not math.isfinite(row[k])}
            if bad:
                shown = ", ".join(f"{k}={v}" for k, v in bad.items())
                raise RunHealthError(f"{self.stage} stopped by the run-health guard at step {row.get('step')}: {shown} "
                                     "(the weights are poisoned from here on). Lower the learning rate, check the data "
                                     "for empty or extreme rows, or set guards.nonfinite=false to go on regardless")
        counts = [row.get(f"verdict_{s}") for s in ("ok", "timeout", "error")]
        if all(c is not None for c in counts):
            self._reasons.append(Counter(masked or ()))
            if self.masked.observe((counts[1] + counts[2]) / max(sum(counts), 1)):
                raise RunHealthError(self._masked_reason())
        if row.get("groups"):
            kept = row.get("groups_kept") or 0
            if self.no_signal.observe(0.0 if kept else 1.0):
                raise RunHealthError(self._no_signal_reason())
            if self.no_signal_groups.observe(1 - kept / row["groups"]):
                raise RunHealthError(self._window_reason(
                    self.no_signal_groups, "guards.no_signal_group_share",
                    "of the groups carried no learning signal (every reward in the group equal, or masked)",
                    "make the task fit the model (or raise grpo.group_size)"))
        if row.get("truncated_frac") is not None and self.truncated.observe(row["truncated_frac"]):
            raise RunHealthError(self._window_reason(
                self.truncated, "guards.truncated_share", "of the completions ran out of rollout.max_new_tokens",
                "raise rollout.max_new_tokens, or penalise length (a length verifier, ppo.missing_eos_penalty)"))
        if row.get("kl") is not None and self.kl.observe(row["kl"]):
            raise RunHealthError(
                f"{self.stage} stopped by the run-health guard: the KL to the reference averaged {self.kl.mean:.4g} over "
                f"the last {self.window} steps, above guards.kl_max={self.kl.threshold:g}: the policy drifts away. "
                "Raise the KL coefficient (grpo.beta, ppo.kl_coef / kl_target) or lower the learning rate")
        if row.get("reward_mean") is not None:
            self.reward.observe(row["reward_mean"])
            if self.reward.full and self.cfg.reward_drop is not None:
                best = self.best_reward = max(self.best_reward if self.best_reward is not None else -math.inf,
                                              self.reward.mean)
                if best - self.reward.mean > self.cfg.reward_drop:
                    raise RunHealthError(
                        f"{self.stage} stopped by the run-health guard: the mean reward of the last {self.window} "
                        f"steps, {self.reward.mean:.4g}, fell {best - self.reward.mean:.4g} below its best, {best:.4g} "
                        f"(guards.reward_drop={self.cfg.reward_drop:g}): reward collapse. Lower the learning rate, or "
                        "resume from an earlier checkpoint")

    def _window_reason(self, guard: WindowGuard, field: str, what: str, todo: str) -> str:
        return (f"{self.stage} stopped by the run-health guard: {guard.mean:.0%} {what} over the last {self.window} "
                f"steps, above {field}={guard.threshold:g}. {todo[0].upper() + todo[1:]}")

    def _masked_reason(self) -> str:
        total = sum(self._reasons, Counter())
        by_verifier: dict[str, Counter[tuple[str, str]]] = {}
        for (name, status, reason), count in total.items():
            by_verifier.setdefault(name, Counter())[(status, reason)] += count
        parts = []
        for name, counts in sorted(by_verifier.items(), key=lambda kv: -sum(kv[1].values())):
            top = "; ".join(f"{count} {status}: {_short(reason)}" for (status, reason), count in counts.most_common(3))
            parts.append(f"verifier {name!r} ({top})")
        named = f"; {', '.join(parts)}" if parts else ""
        return (f"{self.stage} stopped by the run-health guard: {self.masked.mean:.0%} of the verdicts of the "
                f"last {self.window} steps were masked (timeout or error), above guards.masked_share="
                f"{self.masked.threshold:g}{named}. Fix the verifier (or its sandbox), or raise guards.masked_share")

    def _no_signal_reason(self) -> str:
        return (f"{self.stage} stopped by the run-health guard: {self.no_signal.mean:.0%} of the last {self.window} "
                f"steps kept no group with a learning signal (every group's rewards equal, or masked)"
                f"{self._reward_level()}, above guards.no_signal_share={self.no_signal.threshold:g}. The task is too "
                "hard or too easy for this model, or the reward is constant: check the verifier's rewards, or raise "
                "grpo.group_size / grpo.prompts_per_step")

    def _reward_level(self) -> str:
        rewards = list(self.reward.values)
        return f"; mean reward {sum(rewards) / len(rewards):.3g}" if rewards else ""


def _short(reason: str, limit: int = 160) -> str:
    reason = " ".join((reason or "(no reason given)").split())
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"
