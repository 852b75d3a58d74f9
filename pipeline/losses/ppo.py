"""PPO for language models: KL-shaped per-token rewards, GAE, whitening, clipped policy and value losses.

References:
- Schulman et al. 2017, "Proximal Policy Optimization Algorithms": clipped surrogate, eq. 7.
- Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
  Estimation": GAE, eqs. 11-16.
- Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences", and Ouyang et al.
  2022 (InstructGPT), eq. 2: reward = RM score - beta * log(pi / pi_ref), the KL charged per
  token and the score paid on the last one.
- Huang et al. 2022/2024, "The N+ Implementation Details of RLHF with PPO": value clipping, the
  0.5 factor, whitening over masked tokens.

Every function takes `(B, T)` tensors over the completion tokens; `mask` (bool or 0/1 float) is 1
on real tokens and 0 on padding after a completion's end.
"""

from __future__ import annotations

import torch

from pipeline.losses.logprobs import masked_mean

__all__ = ["kl_shaped_rewards", "gae", "whiten", "policy_loss", "value_loss", "masked_clip_fraction"]


def _check(name: str, x: torch.Tensor, like: torch.Tensor) -> None:
    if x.shape != like.shape or like.dim() != 2:
        raise ValueError(f"{name} must be (B, T) = {tuple(like.shape)}, got {tuple(x.shape)}")


def kl_shaped_rewards(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards `r_t = -beta * (logp_t - ref_logp_t)`, plus `scores` on each row's last
    valid token. logprobs, ref_logprobs, mask `(B, T)`; scores `(B,)` -> `(rewards (B, T), kl (B, T))`.

    `kl` is the per-token estimate `logp - ref_logp` (k1; its sum over a sequence is an unbiased
    estimate of KL(pi || pi_ref) for samples of pi). Both are 0 where the mask is 0. A row with no
    valid token gets no score.
    """
    _check("ref_logprobs", ref_logprobs, logprobs)
    _check("mask", mask, logprobs)
    if scores.shape != logprobs.shape[:1]:
        raise ValueError(f"scores must be (B,) = {tuple(logprobs.shape[:1])}, got {tuple(scores.shape)}")
    valid = mask.bool()
    kl = torch.where(valid, logprobs.float() - ref_logprobs.float(), 0.0)
    rewards = -beta * kl
    lengths = valid.sum(-1)  # (B,)
    has_tokens = lengths > 0
    last = (lengths - 1).clamp(min=0)
    rows = torch.arange(logprobs.shape[0], device=logprobs.device)
    bonus = torch.where(has_tokens, scores.to(rewards.dtype), 0.0)
    rewards = rewards.index_put((rows, last), rewards[rows, last] + bonus)
    return rewards, kl


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, backwards over each row's valid tokens. `(B, T)` x3 ->
    `(advantages (B, T), returns (B, T))`.

    `delta_t = r_t + gamma * V_{t+1} - V_t`, with V after the last valid token taken as 0 (the
    episode ends there), and `A_t = delta_t + gamma * lam * A_{t+1}`; returns = A + V (the value
    targets). Both are 0 where the mask is 0. Valid tokens must come first in a row (right padding).
    """
    _check("values", values, rewards)
    _check("mask", mask, rewards)
    m = mask.to(torch.float32)
    r, v = rewards.float() * m, values.float() * m
    T = rewards.shape[1]
    advantages = torch.zeros_like(r)
    next_value = torch.zeros_like(r[:, 0])
    next_adv = torch.zeros_like(r[:, 0])
    for t in reversed(range(T)):
        # Beyond a row's end the mask is 0: next_value and next_adv stay 0 there, so the last
        # valid token bootstraps from 0.
        delta = r[:, t] + gamma * next_value - v[:, t]
        adv = (delta + gamma * lam * next_adv) * m[:, t]
        advantages[:, t] = adv
        next_value = v[:, t]
        next_adv = adv
    returns = (advantages + v) * m
    return advantages, returns


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """`(x - mean) / std` over the masked elements (std with Bessel's correction). `(B, T)` -> `(B, T)`, 0 off the mask.

    `shift_mean=False` only rescales (keeps the sign of every element's offset from 0).
    """
    _check("mask", mask, x)
    m = mask.to(x.dtype)
    mean = masked_mean(x, m)
    n = m.sum()
    var = ((x - mean) ** 2 * m).sum() / (n - 1).clamp(min=1)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * m


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
    is_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Clipped surrogate (PPO eq. 7), to be minimised: masked token mean of
    `-min(ratio * A, clamp(ratio, 1 - clip, 1 + clip) * A)`, `ratio = exp(logprobs - old_logprobs)`,
    each token's term times its importance weight when `is_weights` is given (the sampler-mismatch
    correction, `pipeline.losses.correction`).

    All `(B, T)`; old_logprobs, advantages and is_weights are constants (detached). -> scalar.
    """
    _check("old_logprobs", old_logprobs, logprobs)
    _check("advantages", advantages, logprobs)
    _check("mask", mask, logprobs)
    valid = mask.bool()
    # Zero the log-ratio on padding before exp(): padding may hold -inf, and 0 * inf is NaN.
    ratio = torch.exp(torch.where(valid, logprobs - old_logprobs.detach(), 0.0))
    adv = advantages.detach()
    per_token = -torch.min(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)
    if is_weights is not None:
        _check("is_weights", is_weights, logprobs)
        per_token = per_token * is_weights.detach()
    return masked_mean(per_token, mask.to(per_token.dtype))


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
) -> torch.Tensor:
    """Clipped value loss: masked token mean of
    `0.5 * max((V - R)^2, (clamp(V, V_old - clip, V_old + clip) - R)^2)`.

    All `(B, T)`; old_values and returns are constants. The clip keeps one batch from moving the
    critic far from the values the advantages were computed with. -> scalar.
    """
    _check("old_values", old_values, values)
    _check("returns", returns, values)
    _check("mask", mask, values)
    old, target = old_values.detach(), returns.detach()
    clipped = old + torch.clamp(values - old, -clip, clip)
    per_token = 0.5 * torch.max((values - target) ** 2, (clipped - target) ** 2)
    return masked_mean(per_token, mask.to(per_token.dtype))


def masked_clip_fraction(
    new: torch.Tensor, old: torch.Tensor, mask: torch.Tensor, clip: float, log_space: bool
) -> torch.Tensor:
    """Fraction of masked tokens outside the trust region: `|exp(new - old) - 1| > clip` for a policy
    (log_space=True), `|new - old| > clip` for a critic. `(B, T)` -> scalar, for logging."""
    diff = torch.exp(new - old) - 1 if log_space else new - old
    outside = (diff.abs() > clip).to(torch.float32)
    return masked_mean(outside, mask.to(torch.float32))
