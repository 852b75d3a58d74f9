"""Rollout engines: `generate(prompts, n, sampling) -> Rollouts`."""

from pipeline.rollout.base import RolloutEngine, Rollouts, SamplingParams

__all__ = ["RolloutEngine", "Rollouts", "SamplingParams", "make_engine"]


def make_engine(cfg, model, tokenizer) -> RolloutEngine:
    """The engine a RolloutConfig names, colocated with `model`."""
    if cfg.backend == "hf":
        from pipeline.rollout.hf import HFRolloutEngine

        return HFRolloutEngine(model, tokenizer, batch_size=cfg.batch_size)
    raise ValueError(f"rollout.backend {cfg.backend!r} is not available")
