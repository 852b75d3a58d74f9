"""Losses and advantages: pure functions of tensors (see each module for the paper and shapes)."""

from pipeline.losses.grpo import group_advantages, grpo_loss
from pipeline.losses.logprobs import masked_mean, token_logprobs
from pipeline.losses.sft import sft_loss

__all__ = ["group_advantages", "grpo_loss", "masked_mean", "sft_loss", "token_logprobs"]
