"""The middle of an RL step, one unit: prompts -> n rollouts each -> a verdict for every completion
-> rewards and the mask of scored samples (GRPO then takes group-relative advantages of them; PPO
shapes them per token; preference generation ranks them).

A verdict with status timeout or error is masked (`valid` False): its reward is not a judgement,
so it enters no advantage, no group baseline and no loss.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Sequence

import torch

from pipeline.data import PromptRow
from pipeline.rollout.base import RolloutEngine, Rollouts, SamplingParams
from pipeline.tokens import encode_prompt
from verifiers import Context, Verdict

__all__ = ["Collected", "collect", "score_rollouts"]


@dataclass
class Collected:
    """N = len(rows) * n samples, grouped as in `Rollouts` (sample i answers rows[i // n])."""

    rows: list[PromptRow]
    rollouts: Rollouts
    names: list[str]  # (N,) the verifier of each sample
    verdicts: list[Verdict]  # (N,)
    rewards: torch.Tensor  # (N,) float32, each verdict's reward (meaningless where not valid)
    valid: torch.Tensor  # (N,) bool, verdict scored (status ok)

    @property
    def group_size(self) -> int:
        return self.rollouts.group_size


def collect(engine: RolloutEngine, scorer, tokenizer, rows: Sequence[PromptRow], n: int, sampling: SamplingParams,
            system: str | None = None, vocabulary: str | None = None, watch=None) -> Collected:
    """Sample `n` completions for each row's prompt and score each with its row's verifier.

    `vocabulary` (the policy tokenizer's fingerprint) lets a model-based verifier score the sampled
    ids directly; `watch` (a Stopwatch) times the "generate" and "verify" phases."""
    timed = watch if watch is not None else (lambda phase: nullcontext())
    with timed("generate"):
        rollouts = engine.generate([encode_prompt(tokenizer, r.prompt, system) for r in rows], n, sampling)
    with timed("verify"):
        names, verdicts = score_rollouts(scorer, rows, rollouts, system, vocabulary)
    return Collected(
        rows=list(rows),
        rollouts=rollouts,
        names=names,
        verdicts=verdicts,
        rewards=torch.tensor([v.reward for v in verdicts], dtype=torch.float32),
        valid=torch.tensor([v.scored for v in verdicts], dtype=torch.bool),
    )


def score_rollouts(scorer, rows: Sequence[PromptRow], rollouts: Rollouts, system: str | None = None,
                   vocabulary: str | None = None) -> tuple[list[str], list[Verdict]]:
    """(verifier name, verdict) of every completion of `rollouts`, each against its row."""
    n = rollouts.group_size
    owners = [rows[i // n] for i in range(len(rollouts.completion_ids))]
    names = [r.verifier for r in owners]
    contexts = [
        Context(prompt=r.prompt, system=system, row=r.row, prompt_ids=tuple(p), completion_ids=tuple(c),
                vocabulary=vocabulary)
        for r, p, c in zip(owners, rollouts.prompt_ids, rollouts.completion_ids)
    ]
    verdicts = scorer.score(rollouts.texts, [r.answer for r in owners], names, contexts)
    return names, verdicts
