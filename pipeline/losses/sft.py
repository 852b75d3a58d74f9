"""Supervised fine-tuning loss: negative log-likelihood of the completion tokens."""

from __future__ import annotations

import torch

from pipeline.losses.logprobs import masked_mean

__all__ = ["sft_loss"]


def sft_loss(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token mean of `-logprobs` over the completion tokens. `(B, T)`, `(B, T)` -> scalar.

    logprobs: log-probability of each target token (see `token_logprobs`); mask: bool or 0/1
    float, 1 on completion tokens only, so the prompt and padding are not trained on. Averaging
    over tokens (not sequences) weights every completion token equally. An all-zero mask gives 0.
    """
    if mask.shape != logprobs.shape or logprobs.dim() != 2:
        raise ValueError(
            f"logprobs and mask must share one (B, T) shape; got {tuple(logprobs.shape)} and "
            f"{tuple(mask.shape)}"
        )
    # Padding may hold -inf; pick 0 there so 0 * inf cannot make the sum NaN.
    nll = torch.where(mask.bool(), -logprobs, 0.0)
    return masked_mean(nll, mask)
