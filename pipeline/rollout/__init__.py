"""Rollout engines behind one protocol (`base.RolloutEngine`), and `collect`: prompts -> G
rollouts each -> verdicts -> rewards and masks, the middle of every RL step."""

from pipeline.rollout.base import RolloutEngine, Rollouts, SamplingParams, policy_tensors, sync_weights

__all__ = ["RolloutEngine", "Rollouts", "SamplingParams", "make_engine", "sync_weights", "policy_tensors",
           "sampling_params"]


def make_engine(cfg, tokenizer, model=None, model_path: str | None = None) -> RolloutEngine:
    """The engine a rollout config (`cfg.backend`) names. A colocated engine samples from `model`,
    the trainer's module itself; an engine with weights of its own (in this process or another)
    loads them from `model_path`, the directory the stage started from."""
    if cfg.backend == "hf":
        from pipeline.rollout.hf import HFRolloutEngine

        if model is None:
            raise ValueError("the hf engine samples from the trainer's module: pass model=")
        return HFRolloutEngine(model, tokenizer, batch_size=cfg.batch_size, decoder=cfg.decoder,
                               shared_prefix=cfg.shared_prefix, packed_weights=cfg.packed_weights)
    raise ValueError(f"rollout.backend {cfg.backend!r} has no engine")


def sampling_params(cfg, greedy: bool = False, max_new_tokens: int | None = None) -> SamplingParams:
    """The SamplingParams of a rollout config (greedy for evaluation)."""
    return SamplingParams(cfg.temperature, cfg.top_p, max_new_tokens or cfg.max_new_tokens, greedy=greedy,
                          min_new_tokens=0 if greedy else cfg.min_new_tokens)
