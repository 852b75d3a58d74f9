"""The rollout contract: prompts in, n sampled completions each out, with sampling log-probs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

__all__ = ["SamplingParams", "Rollouts", "RolloutEngine"]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 16
    greedy: bool = False
    min_new_tokens: int = 0


@dataclass
class Rollouts:
    """N = len(prompts) * n completions, grouped: completion i belongs to prompt i // n.

    `completion_ids[i]` ends with the EOS token when the model stopped, and `truncated[i]` is True
    when it ran out of `max_new_tokens` instead. `logprobs[i][t]` is the log-probability of token t
    under the sampling policy, log_softmax(logits / temperature) (before top-p truncation).
    """

    prompt_ids: list[list[int]]  # N entries (each prompt repeated n times)
    completion_ids: list[list[int]]
    logprobs: list[list[float]]
    texts: list[str]
    truncated: list[bool]
    group_size: int


class RolloutEngine(Protocol):
    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingParams) -> Rollouts:
        """Sample `n` completions for each tokenised prompt."""
        ...

    def sync_weights(self, model) -> None:
        """Make later generations use `model`'s current weights."""
        ...
