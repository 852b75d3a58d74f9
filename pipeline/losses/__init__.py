"""Losses and advantages: pure functions of tensors (see each module for the paper and shapes)."""

from pipeline.losses.correction import CORRECTION_MODES, importance_weights
from pipeline.losses.dpo import dpo_loss, implicit_reward_accuracy, kto_loss, sequence_logps
from pipeline.losses.grpo import group_advantages, grpo_loss, masked_group_advantages
from pipeline.losses.logprobs import masked_mean, token_logprobs
from pipeline.losses.ppo import gae, kl_shaped_rewards, masked_clip_fraction, policy_loss, value_loss, whiten
from pipeline.losses.reward import bradley_terry_loss, pairwise_accuracy, ranking_to_pairs
from pipeline.losses.sft import sft_loss

__all__ = [
    "CORRECTION_MODES",
    "bradley_terry_loss",
    "dpo_loss",
    "gae",
    "group_advantages",
    "implicit_reward_accuracy",
    "importance_weights",
    "grpo_loss",
    "kl_shaped_rewards",
    "kto_loss",
    "masked_group_advantages",
    "masked_clip_fraction",
    "masked_mean",
    "pairwise_accuracy",
    "policy_loss",
    "ranking_to_pairs",
    "sequence_logps",
    "sft_loss",
    "token_logprobs",
    "value_loss",
    "whiten",
]
