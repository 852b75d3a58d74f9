"""Proof that a weight sync arrived: the check users of every RL framework asked for after weights
silently failed to reach their rollout engine.

After a sync, the engine samples a few tokens after a fixed probe prompt (a fixed seed) and
returns their log-probs; the trainer recomputes them with its own forward. Equal weights agree to
numerical noise (~1e-6 in fp32 between vLLM and transformers); a sync that did not arrive, a stale
tied LM head or a half-loaded model differ by orders of magnitude more. A difference above the
tolerance stops the run with `RunHealthError` (exit 3), which the flow does not retry.
"""

from __future__ import annotations

import torch

from errors import RunHealthError
from pipeline.rollout.base import RolloutEngine, SamplingParams

__all__ = ["WeightArrivalCheck", "arrival_check"]

_PROBE_SEED = 20_241_105


class WeightArrivalCheck:
    """Compares the engine's log-probs of a probe with the trainer's, every `every`-th call."""

    def __init__(self, probe_prompt: list[int], pad_id: int, tolerance: float = 1e-3, new_tokens: int = 16,
                 every: int = 1):
        if not probe_prompt:
            raise ValueError("the probe prompt is empty")
        self.probe_prompt, self.pad_id = list(probe_prompt), pad_id
        self.tolerance, self.new_tokens, self.every = tolerance, new_tokens, every
        self.calls = 0

    def __call__(self, engine: RolloutEngine, model) -> float | None:
        """The largest |log p| difference over the probe's sampled tokens (None when not due or
        the engine samples from the trainer's module itself). Raises RunHealthError above the
        tolerance."""
        self.calls += 1
        if engine.shares_weights or not self.every or (self.calls - 1) % self.every:
            return None
        diff = probe_difference(engine, model, self.probe_prompt, self.pad_id, self.new_tokens)
        if not diff <= self.tolerance:  # NaN fails too
            raise RunHealthError(
                f"the rollout engine's weights are not the trainer's after weight sync {self.calls}: its log-probs "
                f"of a probe differ from the trainer's by up to {diff:.3g} nats (tolerance {self.tolerance:g}). The "
                "sync did not arrive, or arrived in part; the samples would train the policy on another model's "
                "behaviour. Check the engine's log; for a low-precision engine raise rollout.weight_check.tolerance"
            )
        return diff


def probe_difference(engine: RolloutEngine, model, prompt: list[int], pad_id: int, new_tokens: int) -> float:
    """max |engine log p - trainer log p| over `new_tokens` tokens the engine samples after `prompt`
    (temperature 1, a fixed seed)."""
    from pipeline.forward import completion_logprobs
    from pipeline.tokens import pack

    out = engine.generate([prompt], 1, SamplingParams(temperature=1.0, max_new_tokens=new_tokens, seed=_PROBE_SEED))
    sampled = out.logprobs[0]
    device = next(model.parameters()).device
    batch = pack(out.prompt_ids, out.completion_ids, pad_id).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            trainer = completion_logprobs(model, batch)[0, : len(sampled)].float().cpu()
    finally:
        model.train(was_training)
    return float((trainer - torch.tensor(sampled)).abs().max()) if sampled else 0.0


def arrival_check(rollout_cfg, probe_prompt: list[int], pad_id: int) -> WeightArrivalCheck | None:
    """The check a rollout config asks for (None for an engine without `weight_check`, or `every: 0`)."""
    check = getattr(rollout_cfg, "weight_check", None)
    if check is None or not check.every:
        return None
    return WeightArrivalCheck(probe_prompt, pad_id, check.tolerance, check.probe_tokens, check.every)
