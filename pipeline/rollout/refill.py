"""Dynamic sampling with refill (DAPO, Yu et al. 2025, section 3.2): a group whose rewards are all
equal has no advantage, so it teaches nothing. Instead of training on a batch shrunk by those
groups, sample more prompts until the step holds its full quota of groups with a signal, with a
cap on the extra generation.

Each refill asks for the groups still missing divided by the share of groups that had a signal so
far (at least 1/8, and a quarter more for luck), never past the cap. A step that reaches the cap
trains on the groups it has; the shortfall is reported, never hidden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from pipeline.data import PromptRow
from pipeline.losses import masked_group_advantages
from pipeline.rollout.base import RolloutEngine, Rollouts, SamplingParams
from pipeline.rollout.collect import Collected, collect

__all__ = ["Refilled", "collect_with_refill", "groups_with_signal", "refill_size"]

# A refill never asks for more than 8x the missing groups, however rare the signal was so far.
_MIN_RATE = 1 / 8
_MARGIN = 1.25


@dataclass
class Refilled:
    collected: Collected  # every group sampled this step, in sampling order
    trained: torch.Tensor  # (N,) bool: the samples of the groups the step trains on
    quota: int  # groups with a signal the step wanted
    prompts_sampled: int  # prompts generated for, refills included
    refills: int  # generation rounds after the first

    @property
    def groups_trained(self) -> int:
        return int(self.trained.view(-1, self.collected.group_size).any(dim=1).sum())

    @property
    def groups_short(self) -> int:
        return self.quota - self.groups_trained


def groups_with_signal(c: Collected) -> torch.Tensor:
    """`(P,)` bool: the groups whose scored rewards are not all equal (at least two scored)."""
    _, keep = masked_group_advantages(c.rewards, c.valid, c.group_size, drop_equal=True)
    return keep.view(-1, c.group_size).any(dim=1)


def refill_size(missing: int, found: int, sampled: int, room: int) -> int:
    """Prompts to sample next: the missing groups over the signal rate so far (at least 1/8), a
    quarter more, capped by the room left under the cap."""
    rate = max(found / sampled if sampled else 0.0, _MIN_RATE)
    return max(0, min(room, math.ceil(missing / rate * _MARGIN)))


def collect_with_refill(engine: RolloutEngine, scorer, tokenizer, draw: Callable[[int, int], Sequence[PromptRow]],
                        quota: int, n: int, sampling: SamplingParams, system: str | None = None,
                        vocabulary: str | None = None, watch=None, max_extra: float = 2.0) -> Refilled:
    """Collect `draw(0, quota)`'s prompts, then `draw(r, size)` for refills r = 1, 2, ... until
    `quota` groups have a signal or `max_extra * quota` extra prompts have been sampled. The first
    `quota` groups with a signal, in sampling order, are the ones trained on."""
    parts = [collect(engine, scorer, tokenizer, draw(0, quota), n, sampling, system, vocabulary, watch)]
    found, sampled, refills = int(groups_with_signal(parts[0]).sum()), quota, 0
    cap = int(max_extra * quota)
    while found < quota:
        size = refill_size(quota - found, found, sampled, cap - (sampled - quota))
        if size == 0:
            break
        refills += 1
        part = collect(engine, scorer, tokenizer, draw(refills, size), n, sampling, system, vocabulary, watch)
        parts.append(part)
        found += int(groups_with_signal(part).sum())
        sampled += size
    collected = _concat(parts)
    signal = groups_with_signal(collected)
    chosen = signal & (signal.cumsum(0) <= quota)  # the first `quota` groups with a signal
    return Refilled(collected, chosen.repeat_interleave(n), quota, sampled, refills)


def _concat(parts: list[Collected]) -> Collected:
    if len(parts) == 1:
        return parts[0]
    field = lambda name: [x for p in parts for x in getattr(p.rollouts, name)]  # noqa: E731
    rollouts = Rollouts(prompt_ids=field("prompt_ids"), completion_ids=field("completion_ids"),
                        logprobs=field("logprobs"), texts=field("texts"), truncated=field("truncated"),
                        group_size=parts[0].group_size)
    return Collected(rows=[r for p in parts for r in p.rows], rollouts=rollouts,
                     names=[x for p in parts for x in p.names], verdicts=[v for p in parts for v in p.verdicts],
                     rewards=torch.cat([p.rewards for p in parts]), valid=torch.cat([p.valid for p in parts]))
