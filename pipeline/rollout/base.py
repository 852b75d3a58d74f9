"""The rollout contract: prompts in, n sampled completions each out, with sampling log-probs.

An engine either samples from the trainer's own module (`shares_weights`: the `hf` engine,
colocated) or holds weights of its own, in this process or another (a vLLM engine, a server):
then the trainer pushes the policy's tensors after each optimiser step (`sync_weights`). Every
backend passes the same contract tests (tests/pipeline/rollout/test_contract.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

__all__ = ["SamplingParams", "Rollouts", "RolloutEngine", "sync_weights", "policy_tensors", "eos_token_ids"]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 16
    greedy: bool = False
    min_new_tokens: int = 0
    # A seed for this call alone (the same seed gives the same completions); None: the engine's
    # own random state (the trainers seed torch per step instead).
    seed: int | None = None


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
    # True when the engine samples from the trainer's own module: a weight sync has nothing to do.
    shares_weights: bool

    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingParams) -> Rollouts:
        """Sample `n` completions for each tokenised prompt."""
        ...

    def update_weights(self, weights: Iterable[tuple[str, "object"]]) -> None:
        """Load the policy's tensors, by their Hugging Face parameter names, into the engine's
        copy of the model; later generations use them."""
        ...

    def close(self) -> None:
        """Free the engine's resources (a process, a server, memory); safe to call twice."""
        ...


def policy_tensors(model) -> Iterable[tuple[str, "object"]]:
    """The (name, tensor) pairs of a policy as a Hugging Face checkpoint names them, detached; a LoRA
    policy's are its merged weights (`pipeline.lora.merged_tensors`).

    Under FSDP a tensor is a shard (a DTensor): it is gathered whole, which is a collective, so
    every process must iterate the same tensors in the same order."""
    from pipeline.lora import is_lora, merged_tensors

    if is_lora(model):
        yield from merged_tensors(model)
        return
    for name, tensor in model.state_dict().items():
        if hasattr(tensor, "full_tensor"):
            tensor = tensor.full_tensor()
        yield name, tensor.detach()


def sync_weights(engine: RolloutEngine, model) -> None:
    """Make the engine sample from `model`'s current weights (nothing to do when it shares them)."""
    if not engine.shares_weights:
        engine.update_weights(policy_tensors(model))


def eos_token_ids(model, tokenizer) -> list[int]:
    """The ids that end a completion: the model's generation config's EOS ids, plus the tokenizer's."""
    config = getattr(model, "generation_config", None)
    ids = config.eos_token_id if config is not None else None
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the tokenizer and model define no EOS token: generation could never stop")
    return ids
