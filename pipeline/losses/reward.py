"""Reward-model loss: Bradley-Terry on preference pairs, and rankings expanded into pairs.

References:
- Bradley & Terry 1952; as a reward-model loss: Ouyang et al. 2022, "Training language models to
  follow instructions with human feedback" (InstructGPT), eq. 1, which also expands a ranking of
  K responses into its K(K-1)/2 comparisons.
- Margin: Touvron et al. 2023, "Llama 2", eq. 2: `-log sigmoid(r_c - r_r - m(r))`, a larger
  margin for pairs rated further apart.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["bradley_terry_loss", "ranking_to_pairs", "pairwise_accuracy"]


def bradley_terry_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of `-logsigmoid(chosen - rejected - margin)`. `(N,)`, `(N,)`, `(N,)` or None -> scalar.

    chosen, rejected: the reward model's scalar scores of the preferred and the dispreferred
    response of each pair. `margin` (Llama 2) demands the chosen score lead by at least that much
    before the loss flattens out; None means 0 (plain InstructGPT).
    """
    if chosen.shape != rejected.shape or chosen.dim() != 1:
        raise ValueError(
            f"chosen and rejected must share one (N,) shape; got {tuple(chosen.shape)} and {tuple(rejected.shape)}"
        )
    diff = chosen.float() - rejected.float()
    if margin is not None:
        if margin.shape != diff.shape:
            raise ValueError(f"margin must be (N,) = {tuple(diff.shape)}, got {tuple(margin.shape)}")
        diff = diff - margin.to(diff.dtype)
    return -F.logsigmoid(diff).mean()


def ranking_to_pairs(ranking: Sequence[int | Sequence[int]]) -> list[tuple[int, int]]:
    """Every ordered (better, worse) pair of a ranking of K item indices, best first.

    `[2, 0, 1]` -> `[(2, 0), (2, 1), (0, 1)]`: K(K-1)/2 pairs, ordered by the better item's rank
    and then the worse item's. An entry may be a tier of items that rank equal (a tie): they are
    never ordered against each other, `[[2, 0], 1]` -> `[(2, 1), (0, 1)]`. A ranking that repeats
    an index is an error.
    """
    tiers = [list(t) if isinstance(t, (list, tuple)) else [t] for t in ranking]
    items = [i for tier in tiers for i in tier]
    if len(set(items)) != len(items):
        raise ValueError(f"ranking {list(ranking)} repeats an index; expected a permutation of the responses")
    return [(a, b) for i, better in enumerate(tiers) for worse in tiers[i + 1 :] for a in better for b in worse]


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs whose chosen score is strictly higher. `(N,)`, `(N,)` -> scalar.

    A tie counts as wrong: a model that scores everything the same has accuracy 0, not 0.5.
    """
    if chosen.shape != rejected.shape:
        raise ValueError(f"shapes differ: {tuple(chosen.shape)} and {tuple(rejected.shape)}")
    return (chosen > rejected).float().mean()
