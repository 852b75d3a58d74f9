"""The `hf` engine's sampling loop, written out: a KV-cache decode with one prefill per distinct
prompt, shared by its n completions.

Per call: the distinct prompts go through the model once (left-padded, positions from the mask),
their KV cache is repeated n times along the batch, and then every new token of every completion
costs one forward of one position. The sampling distribution is transformers' `generate`'s with the
same settings (min_new_tokens, then temperature, then top-p), but each token is drawn by inverse
CDF from one uniform number per row, so a seeded call draws the same tokens whether the prefix is
shared or not (tests/pipeline/rollout/test_sampler.py). The log-prob of each sampled token comes
from `log_softmax(logits / temperature)` before top-p and min_new_tokens touch the logits, as the
rollout contract says.

The cache writes each step's keys and values into buffers allocated once for the whole call
(`_GrowingLayer`) instead of concatenating a new tensor per token and layer, and the decode steps
can run on packed weight copies (`pipeline.rollout.packed`): for a Llama model, through a step
compiled for the machine (`pipeline.rollout.native`) or, without a C compiler, a torch step over
fused packed matrices (`pipeline.rollout.fused`); for others through the model's own forward with
each linear layer packed. Where the compiled library is built, a draw without top-p is one call of
it (`native.draw`: the same inverse-CDF draw from the same uniform number, ~0.7 ms a token at
8 x 49k against ~4.7 ms for its seven torch operators in the decode loop).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from pipeline.rollout import native
from pipeline.rollout.fused import FusedLlamaStep, eligible as fused_eligible
from pipeline.rollout.base import SamplingParams
from pipeline.rollout.packed import PackedLinears

__all__ = ["Samples", "sample"]


@dataclass
class Samples:
    """Completions in group order (completion i answers prompt i // n), each cut after its EOS."""

    completion_ids: list[list[int]]
    logprobs: list[list[float]]
    truncated: list[bool]


@torch.inference_mode()
def sample(model, prompts: Sequence[list[int]], n: int, sampling: SamplingParams, eos_ids: Sequence[int],
           pad_id: int, shared_prefix: bool = True, linears: PackedLinears | None = None) -> Samples:
    """Sample `n` completions of each tokenised prompt from `model` (a causal LM in eval mode);
    `linears`: decode with its packed weight copies."""
    device = next(model.parameters()).device
    rows = [list(p) for p in prompts] if shared_prefix else [list(p) for p in prompts for _ in range(n)]
    width = max(len(p) for p in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, p in enumerate(rows):  # left padding: every prompt ends where its completion starts
        input_ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        attention_mask[row, width - len(p) :] = 1
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)

    steps = sampling.max_new_tokens
    cache = _kv_cache(model, width + steps)
    logits = _last_logits(model, input_ids, attention_mask, positions, cache)  # (R, V)
    if shared_prefix and n > 1:  # the n completions of a prompt share its prefill
        cache.batch_repeat_interleave(n)
        logits = logits.repeat_interleave(n, dim=0)
        attention_mask = attention_mask.repeat_interleave(n, dim=0)
    batch = logits.shape[0]
    next_position = attention_mask.sum(-1, keepdim=True)  # (B, 1): the first new token's position
    attention_mask = torch.cat([attention_mask, attention_mask.new_ones((batch, steps))], dim=-1)

    eos = torch.tensor(list(eos_ids), device=device)
    tokens = torch.full((batch, steps), pad_id, dtype=torch.long, device=device)
    logps = torch.zeros((batch, steps), device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    step = None  # the compiled or the fused decode step, for the models they cover
    if linears is not None and steps > 1 and _fusable(cache):
        if native.eligible(model):
            step = native.NativeLlamaStep(model, linears.native(model), cache, attention_mask)
        elif fused_eligible(model):
            step = FusedLlamaStep(model, linears.fused(model, batch), cache, attention_mask)
    with linears.decoding(model, batch) if linears is not None and step is None else nullcontext():
        for t in range(steps):
            token, logp = _draw(logits, sampling, eos, t)
            token = torch.where(finished, pad_id, token)
            tokens[:, t], logps[:, t] = token, logp
            lengths += ~finished
            finished |= torch.isin(token, eos)
            if t == steps - 1 or bool(finished.all()):
                break
            if step is not None:
                logits = step(token, next_position + t)
            else:
                logits = _last_logits(model, token[:, None], attention_mask[:, : width + t + 1], next_position + t,
                                      cache)

    tokens, logps, lengths, finished = tokens.cpu(), logps.cpu(), lengths.tolist(), finished.tolist()
    return Samples(
        completion_ids=[tokens[i, : lengths[i]].tolist() for i in range(batch)],
        logprobs=[logps[i, : lengths[i]].tolist() for i in range(batch)],
        truncated=[not f for f in finished],
    )


def _last_logits(model, input_ids, attention_mask, position_ids, cache) -> torch.Tensor:
    """One forward through the cache; the logits `(B, V)` float32 of the last position only."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                past_key_values=cache, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1].float()


def _draw(logits: torch.Tensor, sampling: SamplingParams, eos: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row from `(B, V)` logits, and its log-prob under log_softmax(logits / T)."""
    if sampling.greedy:
        token = logits.argmax(-1)
        return token, _picked_logprob(logits, token)
    if sampling.top_p >= 1.0 and native.draws(logits):  # the same draw, in one compiled call
        uniform = torch.rand(logits.shape[0], 1, dtype=torch.float64, device=logits.device)
        return native.draw(logits, sampling.temperature, eos if t < sampling.min_new_tokens else None, uniform)
    scaled = logits / sampling.temperature if sampling.temperature != 1.0 else logits
    filtered = scaled
    if t < sampling.min_new_tokens:
        filtered = filtered.index_fill(-1, eos, float("-inf"))
    if sampling.top_p < 1.0:
        filtered = _top_p(filtered, sampling.top_p)
    token = _inverse_cdf(torch.softmax(filtered, dim=-1))
    return token, _picked_logprob(scaled, token)


def _inverse_cdf(probs: torch.Tensor) -> torch.Tensor:
    """One draw per row of `(B, V)` probabilities: the first token whose cumulative probability
    exceeds a uniform number. One random number a row, where `torch.multinomial` draws an
    exponential per vocabulary entry (~20 ms a step at 8 x 49k on this CPU, ~0.3 ms this way).
    Zero-probability tokens (cut by top-p or min_new_tokens) have empty intervals and are never drawn."""
    cdf = probs.double().cumsum(dim=-1)  # (B, V); float64 so the total's rounding is negligible
    u = torch.rand(probs.shape[0], 1, dtype=torch.float64, device=probs.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp(max=probs.shape[-1] - 1)


def _picked_logprob(scaled: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """log_softmax(scaled)[token] per row, without materialising the whole log-softmax."""
    return scaled.gather(-1, token[:, None]).squeeze(-1) - torch.logsumexp(scaled, dim=-1)


def _top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering as transformers' TopPLogitsWarper: drop the tokens outside the smallest set
    whose probability reaches `top_p` (the most likely token always stays)."""
    sorted_scores, order = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[..., -1:] = False
    return scores.masked_fill(remove.scatter(1, order, remove), float("-inf"))


def _fusable(cache: DynamicCache) -> bool:
    """Every layer one of ours, filled in float32: a prefill under autocast (accelerate wraps the
    model's forward in it for bf16 runs) wrote bf16, and then the decode stays in the model's forward,
    in the training forward's precision."""
    return all(type(layer) is _GrowingLayer and layer.is_initialized
               and layer._keys.dtype == layer._values.dtype == torch.float32
               for layer in cache.layers)


def _kv_cache(model, capacity: int) -> DynamicCache:
    """The model's own dynamic cache, with each full-attention layer replaced by one that writes
    into buffers of `capacity` positions allocated once (sliding-window and other special layers
    keep transformers' own)."""
    cache = DynamicCache(config=model.config)
    cache.layers = [_GrowingLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


class _GrowingLayer(DynamicLayer):
    """A full-attention cache layer whose keys and values live in buffers of `capacity` positions:
    an update writes in place and returns views of the filled part."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        batch, heads = key_states.shape[:2]
        self._keys = key_states.new_empty((batch, heads, self.capacity, key_states.shape[-1]))
        self._values = value_states.new_empty((batch, heads, self.capacity, value_states.shape[-1]))
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded")
        self._keys[:, :, self.length : end] = key_states
        self._values[:, :, self.length : end] = value_states
        self.length = end
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._keys = self._keys.repeat_interleave(repeats, dim=0)
            self._values = self._values.repeat_interleave(repeats, dim=0)
            self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self._views()

    def _views(self) -> None:
        self.keys, self.values = self._keys[:, :, : self.length], self._values[:, :, : self.length]
