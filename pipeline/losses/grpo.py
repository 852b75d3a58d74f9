"""GRPO: group-relative advantages and the clipped policy-gradient loss with a k3 KL penalty.

References:
- GRPO: Shao et al. 2024, "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open
  Language Models", eq. 3 (objective) and section 4.1.2 (outcome-supervised advantages).
- Dr. GRPO: Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective":
  drop the std division and the per-sequence length normalisation (`scale="none"`,
  `aggregation="constant"`).
- DAPO: Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at Scale":
  decoupled clip range ("clip-higher", `clip_high > clip_low`) and token-level averaging
  (`aggregation="token_mean"`).
"""

from __future__ import annotations

import torch

from pipeline.losses.logprobs import masked_mean

__all__ = ["group_advantages", "masked_group_advantages", "grpo_loss"]

_SCALES = ("std", "none")
_AGGREGATIONS = ("token_mean", "sequence_mean", "constant")


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: str = "std", eps: float = 1e-6
) -> torch.Tensor:
    """Advantage of each completion relative to the other completions of its prompt.

    rewards `(N,)`, laid out as `N / group_size` consecutive groups (one per prompt) -> `(N,)`.

    `A_i = r_i - mean(group)`, divided by `std(group) + eps` when `scale="std"` (DeepSeekMath,
    section 4.1.2; unbiased std, torch's default) or left as is when `scale="none"` (Dr. GRPO,
    which argues the std division over-weights prompts that are nearly always solved or failed).
    A group whose rewards are all equal gets advantage 0: it carries no learning signal.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (N,), got shape {tuple(rewards.shape)}")
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of {_SCALES}, got {scale!r}")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"{rewards.numel()} rewards do not split into groups of {group_size}; "
            "expected group_size >= 1 dividing N (prompts * completions per prompt)"
        )
    if scale == "std" and group_size < 2:
        raise ValueError("scale='std' needs group_size >= 2 (the unbiased std of one reward is NaN)")

    groups = rewards.float().view(-1, group_size)  # (N / G, G)
    adv = groups - groups.mean(dim=1, keepdim=True)
    if scale == "std":
        adv = adv / (groups.std(dim=1, keepdim=True) + eps)
    return adv.view(-1)


def masked_group_advantages(
    rewards: torch.Tensor, valid: torch.Tensor, group_size: int, scale: str = "std", drop_equal: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group-relative advantages over the valid members of each group. rewards `(N,)`, valid `(N,)`
    bool -> advantages `(N,)`, keep `(N,)` bool.

    A masked sample (a timeout or error verdict) neither gets an advantage nor shifts its group's
    mean and std. A group with fewer than two valid members has no baseline; with `drop_equal`, a
    group whose valid rewards are all equal carries no signal either; their samples are not kept.
    """
    advantages = torch.zeros_like(rewards)
    keep = torch.zeros_like(valid)
    for start in range(0, rewards.numel(), group_size):
        members = torch.arange(start, start + group_size)[valid[start : start + group_size]]
        r = rewards[members]
        if r.numel() < 2 or (drop_equal and bool((r == r[0]).all())):
            continue
        advantages[members] = group_advantages(r, r.numel(), scale=scale)
        keep[members] = True
    return advantages, keep


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    beta: float = 0.0,
    aggregation: str = "token_mean",
    max_tokens: int | None = None,
    is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate loss of GRPO (DeepSeekMath, eq. 3), to be minimised.

    logprobs, old_logprobs, ref_logprobs, mask: `(B, T)`; advantages: `(B,)`, one per sequence,
    shared by its tokens. `mask` (bool or 0/1 float) is 1 on completion tokens. `old_logprobs`
    and `ref_logprobs` are treated as constants (detached); gradients flow into `logprobs` only.

    Per token, with `r = exp(logprobs - old_logprobs)`:
        pg = -min(r * A, clamp(r, 1 - clip_low, 1 + clip_high) * A)
        kl = exp(ref - logprobs) - (ref - logprobs) - 1      (k3, Schulman 2020; always >= 0)
        loss_t = pg + beta * kl
    `clip_high > clip_low` is DAPO's clip-higher. Reduction over the masked tokens:
        token_mean:    sum(loss_t) / number of tokens in the batch      (DAPO)
        sequence_mean: mean over sequences of each one's token mean    (DeepSeekMath's 1/|o_i|)
        constant:      sum(loss_t) / (B * max_tokens)                   (Dr. GRPO; no length bias)

    `is_weights` `(B, T)` (constants), when given, multiply each token's `pg` term: the correction
    for a sampler other than the trainer (`pipeline.losses.correction`); the KL term is not
    reweighted. `ref_logprobs` may be None only when `beta == 0`. Returns `(loss, stats)`: loss is a scalar;
    stats holds detached scalars: `pg_loss` (pg reduced the same way as the loss), `kl` (token mean
    of k3, 0 without a reference), `clip_fraction` (token fraction where clipping zeroed the
    gradient: `r < 1 - clip_low` with A < 0, or `r > 1 + clip_high` with A > 0), `ratio_mean`.
    """
    if logprobs.dim() != 2 or old_logprobs.shape != logprobs.shape or mask.shape != logprobs.shape:
        raise ValueError(
            "logprobs, old_logprobs and mask must share one (B, T) shape; got "
            f"{tuple(logprobs.shape)}, {tuple(old_logprobs.shape)}, {tuple(mask.shape)}"
        )
    if advantages.shape != logprobs.shape[:1]:
        raise ValueError(
            f"advantages must be (B,) = {tuple(logprobs.shape[:1])}, got {tuple(advantages.shape)}"
        )
    if ref_logprobs is None and beta > 0:
        raise ValueError(f"beta={beta} needs ref_logprobs; pass them, or set beta=0")
    if ref_logprobs is not None and ref_logprobs.shape != logprobs.shape:
        raise ValueError(
            f"ref_logprobs must be (B, T) = {tuple(logprobs.shape)}, got {tuple(ref_logprobs.shape)}"
        )
    if is_weights is not None and is_weights.shape != logprobs.shape:
        raise ValueError(f"is_weights must be (B, T) = {tuple(logprobs.shape)}, got {tuple(is_weights.shape)}")
    if aggregation not in _AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {_AGGREGATIONS}, got {aggregation!r}")
    if aggregation == "constant" and (max_tokens is None or max_tokens < 1):
        raise ValueError(
            f"aggregation='constant' needs max_tokens >= 1 (the generation budget), got {max_tokens}"
        )

    mask = mask.to(logprobs.dtype)
    # Padding may hold anything (0, -inf, a sentinel). Zero its log-ratios before exp(), or an
    # inf there becomes 0 * inf = NaN in the masked sum and in the gradient.
    valid = mask > 0
    adv = advantages.to(logprobs.dtype).unsqueeze(-1)  # (B, 1), broadcast over tokens
    ratio = torch.exp(torch.where(valid, logprobs - old_logprobs.detach(), 0.0))  # (B, T)
    clipped_ratio = torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    pg = -torch.min(ratio * adv, clipped_ratio * adv)  # (B, T)
    if is_weights is not None:
        pg = pg * is_weights.detach()

    if ref_logprobs is not None:
        log_ref_ratio = torch.where(valid, ref_logprobs.detach() - logprobs, 0.0)
        kl = torch.exp(log_ref_ratio) - log_ref_ratio - 1  # (B, T)
    else:
        kl = torch.zeros_like(pg)
    # Add the KL term only when it is used, so a huge kl cannot turn into 0 * inf = NaN.
    per_token = pg + beta * kl if beta != 0 else pg

    def reduce(x: torch.Tensor) -> torch.Tensor:
        if aggregation == "token_mean":
            return masked_mean(x, mask)
        if aggregation == "sequence_mean":
            return masked_mean(x, mask, dim=-1).mean()
        return (x * mask).sum() / (x.shape[0] * max_tokens)

    loss = reduce(per_token)

    with torch.no_grad():  # stats are for logging: detached, no graph kept
        clipped = ((ratio < 1 - clip_low) & (adv < 0)) | ((ratio > 1 + clip_high) & (adv > 0))
        stats = {
            "pg_loss": reduce(pg),
            "kl": masked_mean(kl, mask),
            "clip_fraction": masked_mean(clipped.to(mask.dtype), mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return loss, stats
