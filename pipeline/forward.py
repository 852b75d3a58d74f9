"""Forward passes shared by the trainers and the verifiers: completion log-probs, a scalar head's
outputs (reward scores, critic values), sequence log-probs of preference pairs, and `RewardModel`,
the trained reward model as PPO and the `reward_model` verifier both use it.

Every function takes a packed batch (`pipeline.tokens.pack`: left-padded prompt | right-padded
completion, explicit positions) and goes through the module it is given, so a DDP/FSDP wrapper
sees the forward.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import torch

from pipeline.tokens import GroupedBatch, PackedBatch, encode_demonstration, pack

__all__ = [
    "completion_logprobs",
    "grouped_completion_logprobs",
    "head_outputs",
    "sequence_scores",
    "completion_values",
    "pair_logps",
    "all_pair_logps",
    "mean_token_logprob",
    "vocabulary_fingerprint",
    "RewardModel",
]


def _forward(model, batch: PackedBatch, **kwargs):
    """One forward of a packed batch, with its explicit positions and no KV cache."""
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                 use_cache=False, **kwargs)


def completion_logprobs(model, batch: PackedBatch, temperature: float = 1.0) -> torch.Tensor:
    """Log-probs `(B, Tc)` of the completion tokens under `model` (logits divided by temperature).

    Only the last Tc + 1 positions go through the LM head: the prompt's logits are never needed.
    """
    from pipeline.losses import token_logprobs

    t, tc = batch.input_ids.shape[1], batch.completion_ids.shape[1]
    # Positions T-Tc-1 .. T-2 predict the completion tokens. An index tensor (not an int) makes the
    # model return exactly those rows, contiguous, so no (B, Tc, V) copy is made to drop one.
    keep = torch.arange(t - tc - 1, t - 1, device=batch.input_ids.device)
    logits = _forward(model, batch, logits_to_keep=keep).logits  # (B, Tc, V)
    return token_logprobs(logits, batch.completion_ids, temperature=temperature)


def grouped_completion_logprobs(model, batch: GroupedBatch, temperature: float = 1.0) -> torch.Tensor:
    """`completion_logprobs` of completions that share prompts, each prompt run once: `(B, Tc)`.

    Two forwards through `model`: the P distinct prompts, keeping their KV cache, then the B
    completions on the cache rows of their prompts (gradients flow back through the cache into the
    prompts' forward). A group of G completions costs one prompt instead of G, for the same numbers
    up to float rounding."""
    from transformers import DynamicCache

    from pipeline.losses import token_logprobs

    config = getattr(model, "module", model).config
    if _tree_pays(model, config, batch):
        return _tree_completion_logprobs(model, batch, temperature)
    cache = DynamicCache(config=config)
    positions = (batch.prompt_mask.cumsum(-1) - 1).clamp(min=0)
    last = model(input_ids=batch.prompt_ids, attention_mask=batch.prompt_mask, position_ids=positions,
                 past_key_values=cache, use_cache=True, logits_to_keep=1).logits  # (P, 1, V)
    first = token_logprobs(last[batch.owner], batch.completion_ids[:, :1], temperature)  # (B, 1)
    tc = batch.completion_ids.shape[1]
    if tc == 1:
        return first
    cache.batch_select_indices(batch.owner)  # (P, ...) -> (B, ...)
    # Completion tokens 0..Tc-2 go in; their logits predict tokens 1..Tc-1.
    mask = torch.cat([batch.prompt_mask[batch.owner], batch.completion_mask[:, :-1].long()], dim=-1)
    start = batch.prompt_mask.sum(-1)[batch.owner, None]  # (B, 1): each prompt's length
    positions = start + torch.arange(tc - 1, device=start.device)
    logits = model(input_ids=batch.completion_ids[:, :-1], attention_mask=mask, position_ids=positions,
                   past_key_values=cache, use_cache=True).logits  # (B, Tc - 1, V)
    return torch.cat([first, token_logprobs(logits, batch.completion_ids[:, 1:], temperature)], dim=1)


# Attention implementations that take a custom 4D boolean mask as it is (transformers passes a 4D
# mask through unchanged; eager attention adds it, as a float mask, and flash-attention kernels take
# none): the others keep the two forwards.
_TREE_ATTENTION = ("sdpa",)


def _tree_pays(model, config, batch: GroupedBatch) -> bool:
    """Whether `_tree_completion_logprobs` takes the batch: an attention that takes its mask, and a
    row short enough that attending over all of it (every completion's queries meet every key of
    the row, masked or not) adds at most a quarter of the linear layers' arithmetic. SmolLM2-135M:
    rows up to ~980 tokens (4 completions of 64 tokens after a 36-token prompt make 288)."""
    if batch.completion_ids.shape[1] < 2 or getattr(config, "_attn_implementation", None) not in _TREE_ATTENTION:
        return False
    counts = torch.bincount(batch.owner)
    length = batch.prompt_ids.shape[1] + int(counts.max()) * (batch.completion_ids.shape[1] - 1)
    params = sum(p.numel() for p in model.parameters())
    attention = 4 * length * config.hidden_size * config.num_hidden_layers  # per token: scores and sums
    return attention <= 0.25 * 2 * params


def _tree_completion_logprobs(model, batch: GroupedBatch, temperature: float) -> torch.Tensor:
    """`grouped_completion_logprobs` in one forward: each row holds a prompt once, then its
    completions one after another, and a 4D mask lets every completion token see the prompt and
    the earlier tokens of its own completion only (positions restart after the prompt for each).

    Against two forwards (the prompts, then the completions on their repeated cache) the linear
    layers run once per layer on all tokens instead of twice, so their weight gradients need no
    accumulating sum, and the prompts' cache is neither repeated nor concatenated; the numbers are
    the same up to float rounding."""
    from pipeline.losses import token_logprobs

    device = batch.prompt_ids.device
    prompts, width = batch.prompt_ids.shape
    b, tc = batch.completion_ids.shape
    span = tc - 1  # completion tokens 0..Tc-2 go in; their logits predict tokens 1..Tc-1
    owner = batch.owner
    # each completion's slot in its prompt's row: its rank among the completions of that prompt
    same = owner[:, None] == owner[None, :]
    slot = (same & torch.ones_like(same).tril(-1)).sum(-1)  # (B,)
    slots = int(slot.max()) + 1
    length = width + slots * span
    columns = width + slot[:, None] * span + torch.arange(span, device=device)  # (B, span)
    rows = owner[:, None].expand(b, span)

    input_ids = batch.prompt_ids.new_zeros((prompts, length))
    input_ids[:, :width] = batch.prompt_ids
    input_ids[rows, columns] = batch.completion_ids[:, :-1]
    valid = torch.zeros((prompts, length), dtype=torch.bool, device=device)
    valid[:, :width] = batch.prompt_mask.bool()
    valid[rows, columns] = batch.completion_mask[:, :-1].bool()
    prompt_length = batch.prompt_mask.sum(-1)  # (P,)
    positions = (batch.prompt_mask.cumsum(-1) - 1).clamp(min=0)
    positions = torch.cat([positions, (prompt_length[:, None] + torch.arange(span, device=device)).repeat(1, slots)], 1)
    # segment 0: the prompt; segment k + 1: slot k's completion
    segment = torch.cat([torch.zeros(width, dtype=torch.long, device=device),
                         torch.arange(1, slots + 1, device=device).repeat_interleave(span)])
    causal = torch.ones((length, length), dtype=torch.bool, device=device).tril()
    visible = causal & ((segment[None, :] == 0) | (segment[None, :] == segment[:, None]))  # (query, key)
    mask = visible[None] & valid[:, None, :]
    mask |= torch.eye(length, dtype=torch.bool, device=device)  # a padding query sees itself, not nothing
    keep = torch.cat([torch.tensor([width - 1], device=device), torch.arange(width, length, device=device)])
    logits = model(input_ids=input_ids, attention_mask=mask[:, None], position_ids=positions,
                   use_cache=False, logits_to_keep=keep).logits  # (P, 1 + slots * span, V)
    first = token_logprobs(logits[owner, :1], batch.completion_ids[:, :1], temperature)  # (B, 1)
    targets = batch.completion_ids.new_zeros((prompts, slots * span))
    targets[rows, columns - width] = batch.completion_ids[:, 1:]
    rest = token_logprobs(logits, torch.cat([targets[:, :1], targets], 1), temperature)[:, 1:]  # (P, slots * span)
    return torch.cat([first, rest[rows, columns - width]], dim=1)


def head_outputs(model, batch: PackedBatch) -> torch.Tensor:
    """A sequence scorer's scalar head applied at every position: `(B, T)` float32.

    The forward goes through `model` itself (so a DDP or FSDP wrapper sees it). The sequence-
    classification model applies its head at every position before pooling one: that output is
    taken with a hook, so the head runs inside the wrapped forward (under FSDP its weight exists
    whole only there)."""
    head = getattr(model, "module", model).score  # (H -> 1); "score" in every HF *ForSequenceClassification LM
    outputs = []
    hook = head.register_forward_hook(lambda module, args, output: outputs.append(output))
    try:
        _forward(model, batch)
    finally:
        hook.remove()
    return outputs[-1].squeeze(-1).float()  # (B, T)


def sequence_scores(model, batch: PackedBatch) -> torch.Tensor:
    """Score of each (prompt, completion): the head at the completion's last token. `(B,)`."""
    values = head_outputs(model, batch)  # (B, T)
    t, tc = batch.input_ids.shape[1], batch.completion_ids.shape[1]
    last = (t - tc - 1 + batch.completion_mask.sum(-1).long()).clamp(min=0)  # (B,)
    return values.gather(1, last.unsqueeze(-1)).squeeze(-1)


def completion_values(model, batch: PackedBatch) -> torch.Tensor:
    """A critic's V(s_t) for each completion token t: the head at the position that predicts it
    (the state before the token is chosen), aligned with `completion_logprobs`. `(B, Tc)`."""
    values = head_outputs(model, batch)  # (B, T)
    t, tc = batch.input_ids.shape[1], batch.completion_ids.shape[1]
    return values[:, t - tc - 1 : t - 1]


def pair_logps(model, encoded, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence log-probs `(N,)`, `(N,)` of the chosen and the rejected completions of preference
    pairs (`pipeline.preference.EncodedPair`), in one forward of 2N rows."""
    from pipeline.losses import sequence_logps
    from pipeline.preference import pack_pairs

    batch = pack_pairs(encoded, pad_id).to(device)
    logps = sequence_logps(completion_logprobs(model, batch), batch.completion_mask)  # (2N,)
    return logps[: len(encoded)], logps[len(encoded) :]


@torch.no_grad()
def all_pair_logps(model, encoded, pad_id: int, batch_size: int) -> torch.Tensor:
    """`(N, 2)` log-probs (chosen, rejected) of every pair, on the CPU, `batch_size` pairs per forward."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(encoded), batch_size):
        chosen, rejected = pair_logps(model, encoded[start : start + batch_size], pad_id, device)
        out.append(torch.stack([chosen, rejected], dim=-1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros((0, 2))


@torch.no_grad()
def mean_token_logprob(model, examples: Sequence[tuple[list[int], list[int]]], pad_id: int, batch_size: int) -> float:
    """Mean per-token log-likelihood of demonstrations (prompt ids, completion ids) under `model`:
    how much of its SFT behaviour a policy keeps (the alignment tax)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0.0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = pack([e[0] for e in chunk], [e[1] for e in chunk], pad_id).to(device)
        logps = completion_logprobs(model, batch)
        total += float(torch.where(batch.completion_mask.bool(), logps, 0.0).sum())
        count += float(batch.completion_mask.sum())
    model.train(was_training)
    return total / max(count, 1.0)


def vocabulary_fingerprint(tokenizer) -> str:
    """A short hash of a tokenizer's vocabulary: equal fingerprints map text to the same ids."""
    blob = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class RewardModel:
    """A trained reward model (the reward_model stage's `final/` directory) with its tokenizer.

    `score_ids` scores token sequences in its own vocabulary; `score_texts` tokenises (prompt,
    completion) texts as the stage trained on them: the chat template's prompt, then the
    assistant's turn ending with its end token.
    """

    def __init__(self, path: str | Path, dtype: str = "float32", device: str = "auto", batch_size: int = 64,
                 max_length: int = 512):
        from pipeline.models import load_reward_model

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.path = Path(path)
        self.device = torch.device(device)
        self.batch_size, self.max_length = batch_size, max_length
        model, self.tokenizer = load_reward_model(self.path, dtype)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.vocabulary = vocabulary_fingerprint(self.tokenizer)

    def score_ids(self, prompt_ids: Sequence[list[int]], completion_ids: Sequence[list[int]]) -> torch.Tensor:
        """Scores `(N,)` (float32, on the CPU) of token sequences in this model's vocabulary."""
        out = []
        with torch.inference_mode():
            for start in range(0, len(prompt_ids), self.batch_size):
                batch = pack(prompt_ids[start : start + self.batch_size], completion_ids[start : start + self.batch_size],
                             self.tokenizer.pad_token_id)
                out.append(sequence_scores(self.model, batch.to(self.device)).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def score_texts(self, prompts: Sequence[str], completions: Sequence[str],
                    systems: Sequence[str | None]) -> torch.Tensor:
        """Scores `(N,)` of completion texts after their prompts (each with its system message)."""
        encoded = [encode_demonstration(self.tokenizer, p, c, self.max_length, s)
                   for p, c, s in zip(prompts, completions, systems)]
        return self.score_ids([p for p, _ in encoded], [c for _, c in encoded])
