"""Offline preference optimisation against a frozen reference: DPO and KTO.

References:
- Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is Secretly a Reward
  Model", eq. 7; the implicit reward `beta * log(pi / pi_ref)` of section 5.
- Mitchell 2023, "A note on DPO with noisy preferences" (conservative DPO, `label_smoothing`).
- Pang et al. 2024, "Iterative Reasoning Preference Optimization", eq. 1 (RPO), and Llama 3
  (Dubey et al. 2024, section 4.1.4): a negative log-likelihood term on the chosen completions,
  normalised by their length, so that DPO does not push the chosen completions down too.
- Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization", eq. 8, with
  the reference point z0 estimated from mismatched (prompt, completion) pairs of the batch.

Log-probabilities here are per sequence: the sum of the completion's token log-probs, `(N,)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.losses.reward import pairwise_accuracy

__all__ = ["dpo_loss", "kto_loss", "sequence_logps", "implicit_reward_accuracy"]


def sequence_logps(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of the completion's token log-probs. `(B, T)`, `(B, T)` -> `(B,)`; padding may hold -inf."""
    if token_logps.shape != mask.shape or mask.dim() != 2:
        raise ValueError(f"token_logps and mask must share one (B, T) shape; got {tuple(token_logps.shape)}, {tuple(mask.shape)}")
    return torch.where(mask.bool(), token_logps, 0.0).sum(-1)


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    nll_coef: float = 0.0,
    chosen_lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO (eq. 7): `logits = beta * ((pc - pr) - (rc - rr))`, loss = mean of `-logsigmoid(logits)`.

    All inputs `(N,)` sequence log-probs; the reference ones are constants. Returns
    `(loss, chosen_rewards = beta * (pc - rc), rejected_rewards = beta * (pr - rr))`, the rewards
    `(N,)` and detached (the implicit reward model, for logging and accuracy).
    With `label_smoothing = eps > 0` (cDPO): `-(1 - eps) * logsigmoid(logits) - eps * logsigmoid(-logits)`.
    With `nll_coef = alpha > 0` (RPO): plus `alpha * mean(-pc / chosen_lengths)`, the chosen
    completions' mean per-token negative log-likelihood (`chosen_lengths` `(N,)`: their token counts).
    """
    shapes = {tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)}
    if len(shapes) != 1 or policy_chosen_logps.dim() != 1:
        raise ValueError(f"all four log-prob tensors must share one (N,) shape; got {sorted(shapes)}")
    chosen_ratio = policy_chosen_logps - ref_chosen_logps.detach()
    rejected_ratio = policy_rejected_logps - ref_rejected_logps.detach()
    logits = beta * (chosen_ratio - rejected_ratio)
    losses = -F.logsigmoid(logits)
    if label_smoothing:
        losses = (1 - label_smoothing) * losses - label_smoothing * F.logsigmoid(-logits)
    if nll_coef:
        if chosen_lengths is None or chosen_lengths.shape != policy_chosen_logps.shape:
            raise ValueError("nll_coef needs chosen_lengths, the (N,) token counts of the chosen completions")
        losses = losses - nll_coef * policy_chosen_logps / chosen_lengths.clamp(min=1)
    return losses.mean(), (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach()


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    kl_estimate: torch.Tensor,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """KTO (eq. 8). policy_logps, ref_logps `(N,)` sequence log-probs; desirable `(N,)` bool;
    kl_estimate: scalar estimate of KL(pi || pi_ref), treated as a constant and clamped at 0 (z0).

    With `r = log(pi / pi_ref)` per row:
        desirable:   lambda_D * (1 - sigmoid(beta * (r - z0)))
        undesirable: lambda_U * (1 - sigmoid(beta * (z0 - r)))
    Loss: the mean over all N rows. Returns `(loss, rewards = beta * r)` (rewards `(N,)`, detached).
    """
    if policy_logps.shape != ref_logps.shape or desirable.shape != policy_logps.shape or policy_logps.dim() != 1:
        raise ValueError(
            f"policy_logps, ref_logps and desirable must share one (N,) shape; got {tuple(policy_logps.shape)}, "
            f"{tuple(ref_logps.shape)}, {tuple(desirable.shape)}"
        )
    z0 = kl_estimate.detach().clamp(min=0)
    ratio = policy_logps - ref_logps.detach()
    good = desirable.bool()
    losses = torch.where(
        good,
        desirable_weight * (1 - torch.sigmoid(beta * (ratio - z0))),
        undesirable_weight * (1 - torch.sigmoid(beta * (z0 - ratio))),
    )
    return losses.mean(), (beta * ratio).detach()


def implicit_reward_accuracy(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> dict[str, float]:
    """Held-out view of the implicit reward model: `(N, 2)` policy and reference log-probs -> accuracy
    (chosen reward strictly higher), mean margin, mean chosen and rejected rewards."""
    rewards = beta * (policy - reference)  # (N, 2)
    return {
        "eval_accuracy": float(pairwise_accuracy(rewards[:, 0], rewards[:, 1])),
        "eval_margin": float((rewards[:, 0] - rewards[:, 1]).mean()),
        "eval_chosen_reward": float(rewards[:, 0].mean()),
        "eval_rejected_reward": float(rewards[:, 1].mean()),
    }
