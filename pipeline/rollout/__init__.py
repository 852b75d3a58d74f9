"""Rollout engines behind one protocol (`base.RolloutEngine`), and `collect`: prompts -> G
rollouts each -> verdicts -> rewards and masks, the middle of every RL step."""

from pipeline.rollout.base import RolloutEngine, Rollouts, SamplingParams, eos_token_ids, policy_tensors, sync_weights

__all__ = ["RolloutEngine", "Rollouts", "SamplingParams", "make_engine", "sync_weights", "policy_tensors",
           "sampling_params", "eos_token_ids"]


def make_engine(cfg, tokenizer, model=None, model_path: str | None = None, seed: int = 0,
                pushes_weights: bool = True) -> RolloutEngine:
    """The engine a rollout config (`cfg.backend`) names. A colocated engine samples from `model`,
    the trainer's module itself; an engine with weights of its own (in this process or another)
    loads them from `model_path`, the directory the stage started from (or from a snapshot of
    `model` when that directory holds no weights, as for the `tiny` preset). `pushes_weights`
    False: another process of the run pushes the weights to the same server."""
    if cfg.backend == "hf":
        from pipeline.rollout.hf import HFRolloutEngine

        if model is None:
            raise ValueError("the hf engine samples from the trainer's module: pass model=")
        return HFRolloutEngine(model, tokenizer, batch_size=cfg.batch_size, decoder=cfg.decoder,
                               shared_prefix=cfg.shared_prefix, packed_weights=cfg.packed_weights)
    if cfg.backend in ("vllm", "vllm_server"):
        from pipeline.rollout.vllm import engine_dtype, engine_model_dir

        eos = eos_token_ids(model, tokenizer)
        dtype = engine_dtype(cfg, model)
        if cfg.backend == "vllm_server" and cfg.url:
            from pipeline.rollout.vllm_server import VLLMServerRolloutEngine

            return VLLMServerRolloutEngine(cfg, tokenizer, eos, url=cfg.url, pushes_weights=pushes_weights)
        directory, snapshot = engine_model_dir(model_path, model, tokenizer)
        if cfg.backend == "vllm":
            from pipeline.rollout.vllm import VLLMRolloutEngine

            return VLLMRolloutEngine(cfg, directory, tokenizer, eos, dtype, seed, cleanup=snapshot)
        from pipeline.rollout.vllm_server import VLLMServer, VLLMServerRolloutEngine

        server = VLLMServer.start(cfg, directory, dtype, seed, cleanup=snapshot)
        return VLLMServerRolloutEngine(cfg, tokenizer, eos, server=server)
    raise ValueError(f"rollout.backend {cfg.backend!r} has no engine")


def sampling_params(cfg, greedy: bool = False, max_new_tokens: int | None = None) -> SamplingParams:
    """The SamplingParams of a rollout config (greedy for evaluation)."""
    return SamplingParams(cfg.temperature, cfg.top_p, max_new_tokens or cfg.max_new_tokens, greedy=greedy,
                          min_new_tokens=0 if greedy else cfg.min_new_tokens)
