"""Importance weights for the mismatch between the sampler's log-probs and the trainer's.

When the rollouts come from another engine (vLLM, a server), the tokens were drawn from the
sampler's distribution `q`, not from the trainer's `pi_old`, even with identical weights: other
kernels, other precision, another attention implementation. The trainer recomputes `pi_old` and
reweights each token's policy-gradient term by `rho = pi_old / q` (Yao et al. 2025, "Your
Efficient RL Framework Secretly Brings You Off-Policy RL Training": truncated importance
sampling; Liu et al. 2025, "When Speed Kills Stability": masked importance sampling), bounded so
that a rare token the sampler over-weighted cannot blow the update up:

    truncate:  w = min(rho, C)                        (TIS)
    mask:      w = rho if 1/C <= rho <= C, else 0     (MIS: the token leaves the update)
    none:      w = 1                                  (the mismatch measured, not corrected)
"""

from __future__ import annotations

import math

import torch

from pipeline.losses.logprobs import masked_mean

__all__ = ["importance_weights", "CORRECTION_MODES"]

CORRECTION_MODES = ("truncate", "mask", "none")


def importance_weights(
    trainer_logprobs: torch.Tensor,
    sampler_logprobs: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "truncate",
    cap: float = 2.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token importance weights `(B, T)` of the trainer's old policy over the sampler.

    trainer_logprobs, sampler_logprobs, mask: `(B, T)`; `mask` is 1 on completion tokens. Both
    log-prob tensors are treated as constants. With `log_rho = trainer - sampler`:

        truncate: w = min(exp(log_rho), cap)
        mask:     w = exp(log_rho) where exp(log_rho) is in [1/cap, cap], else 0
        none:     w = 1

    Padding gets weight 0. Returns `(weights, stats)`, stats detached scalars over the masked
    tokens: `mismatch_kl`, the k3 estimate of KL(q || pi_old) (`exp(l) - l - 1` with
    `l = log_rho`, Schulman 2020; unbiased for samples from q, never negative), `mismatch_abs`
    (mean |log_rho|), `is_clipped_fraction` (share of tokens whose weight the bound changed) and
    `is_weight_mean`.
    """
    if trainer_logprobs.dim() != 2 or sampler_logprobs.shape != trainer_logprobs.shape or mask.shape != trainer_logprobs.shape:
        raise ValueError(
            "trainer_logprobs, sampler_logprobs and mask must share one (B, T) shape; got "
            f"{tuple(trainer_logprobs.shape)}, {tuple(sampler_logprobs.shape)}, {tuple(mask.shape)}"
        )
    if mode not in CORRECTION_MODES:
        raise ValueError(f"mode must be one of {CORRECTION_MODES}, got {mode!r}")
    if not cap > 1:
        raise ValueError(f"cap must be > 1 (the bound on pi_old / q), got {cap}")
    with torch.no_grad():
        mask = mask.to(trainer_logprobs.dtype)
        valid = mask > 0
        # Padding may hold anything: its log-ratio is zeroed before exp().
        log_rho = torch.where(valid, trainer_logprobs.float() - sampler_logprobs.float(), 0.0)  # (B, T)
        rho = torch.exp(log_rho)
        if mode == "truncate":
            weights = torch.clamp(rho, max=cap)
            changed = rho > cap
        elif mode == "none":
            weights, changed = torch.ones_like(rho), torch.zeros_like(valid)
        else:
            inside = (log_rho >= -math.log(cap)) & (log_rho <= math.log(cap))
            weights = torch.where(inside, rho, 0.0)
            changed = ~inside
        weights = torch.where(valid, weights, 0.0).to(trainer_logprobs.dtype)
        stats = {
            # expm1 in float64: rho - log_rho - 1 cancels to noise (even below 0) when rho is near 1
            "mismatch_kl": masked_mean(torch.expm1(log_rho.double()) - log_rho.double(), mask).float(),
            "mismatch_abs": masked_mean(log_rho.abs(), mask),
            "is_clipped_fraction": masked_mean(changed.to(mask.dtype), mask),
            "is_weight_mean": masked_mean(weights, mask),
        }
    return weights, stats
