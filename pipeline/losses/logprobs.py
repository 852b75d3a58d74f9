"""Per-token log-probabilities from logits, and the masked mean every loss reduces with."""

from __future__ import annotations

import torch

__all__ = ["token_logprobs", "masked_mean"]


def token_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    chunk_size: int | None = 1024,
) -> torch.Tensor:
    """Log-probability of each target token under softmax(logits / temperature).

    logits `(B, T, V)`, targets `(B, T)` long -> `(B, T)` float32, differentiable w.r.t. logits.

    Computed as `logits[target] / temperature - logsumexp(logits / temperature)`, so the full
    `(B, T, V)` log-softmax is never materialised. The `B * T` rows are processed `chunk_size`
    rows at a time (None: all at once), each upcast to float32, which bounds the forward pass's
    extra memory to one `(chunk_size, V)` block even when the logits are bf16.
    The temperature must match the one used to sample, or the ratio against the sampler's
    log-probs is biased.
    """
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(
            f"expected logits (B, T, V) and targets (B, T); got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")

    B, T, V = logits.shape
    flat_logits = logits.reshape(B * T, V)  # (N, V), a view when logits are contiguous
    flat_targets = targets.reshape(B * T, 1)  # (N, 1)
    step = B * T if chunk_size is None else chunk_size
    out = []
    for start in range(0, B * T, max(step, 1)):
        rows = flat_logits[start : start + step].float()  # (n, V); no copy if already float32
        picked = rows.gather(-1, flat_targets[start : start + step]).squeeze(-1)  # (n,)
        if temperature != 1.0:
            rows = rows / temperature
            picked = picked / temperature
        out.append(picked - torch.logsumexp(rows, dim=-1))  # (n,)
    if not out:  # B * T == 0
        return logits.new_zeros((B, T), dtype=torch.float32)
    return torch.cat(out).view(B, T)


def masked_mean(
    x: torch.Tensor, mask: torch.Tensor, dim: int | None = None
) -> torch.Tensor:
    """`sum(x * mask) / sum(mask)`, over all elements (dim=None) or along `dim`.

    x `(B, T)` (or any shape), mask of the same shape (bool or 0/1 float) -> scalar, or x with
    `dim` removed. The denominator is clamped at 1, so an all-masked input (a batch or a row with
    no completion tokens) gives 0 instead of 0/0 = NaN; with a 0/1 mask any non-empty count is
    already >= 1, so the clamp changes nothing else.
    """
    mask = torch.broadcast_to(mask.to(x.dtype), x.shape)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)
