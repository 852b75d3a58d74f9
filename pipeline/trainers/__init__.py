"""One module per stage, each runnable alone: `python -m pipeline.trainers.<stage> --config FILE`."""

__all__ = ["sft", "reward_model", "ppo", "dpo", "kto", "grpo"]
