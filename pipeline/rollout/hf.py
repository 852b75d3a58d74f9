"""Rollouts with transformers models in the trainer's process: the CPU default, colocated with the
policy.

The engine holds the policy module itself (`shares_weights`), so a weight sync is free: it samples
from whatever the optimiser last wrote. `update_weights` copies tensors into that module, for an
engine that was given a module of its own. It decodes with its own KV-cache loop
(`pipeline.rollout.sampler`: one prefill per distinct prompt, shared by its n completions), or with
transformers `generate` (`decoder="generate"`).
"""

from __future__ import annotations

import contextlib

from typing import Iterable, Sequence

import torch
from transformers import GenerationConfig

from pipeline.rollout.base import Rollouts, SamplingParams, eos_token_ids
from pipeline.rollout.packed import PackedLinears
from pipeline.rollout.sampler import sample

__all__ = ["HFRolloutEngine"]


class HFRolloutEngine:
    shares_weights = True

    def __init__(self, model, tokenizer, batch_size: int = 512, decoder: str = "loop", shared_prefix: bool = True,
                 packed_weights: bool = True):
        if decoder not in ("loop", "generate"):
            raise ValueError(f"decoder must be 'loop' or 'generate', got {decoder!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.decoder = decoder
        self.shared_prefix = shared_prefix
        self.linears = PackedLinears() if packed_weights and decoder == "loop" else None
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

    @torch.no_grad()
    def update_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        own = self.model.state_dict()
        for name, tensor in weights:
            if name not in own:
                raise KeyError(f"the rollout model has no parameter {name!r}")
            own[name].copy_(tensor)

    def close(self) -> None:
        pass

    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingParams) -> Rollouts:
        # A sharded module all-gathers its weights into buffers it reuses in training: they must not
        # become inference tensors.
        with torch.no_grad() if _synced_gpus(self.model) else torch.inference_mode():
            return self._generate(prompts, n, sampling)

    def _generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingParams) -> Rollouts:
        expanded = [list(p) for p in prompts for _ in range(n)]
        out = Rollouts(prompt_ids=expanded, completion_ids=[], logprobs=[], texts=[], truncated=[], group_size=n)
        was_training = self.model.training
        self.model.eval()
        rng = torch.random.fork_rng(devices=[]) if sampling.seed is not None else contextlib.nullcontext()
        try:
            with rng:
                if sampling.seed is not None:
                    torch.manual_seed(sampling.seed)
                # A sharded module decodes through transformers generate: every process must keep
                # stepping until all have finished, and outside inference mode (FSDP reuses its
                # gather buffers), which the loop does not do.
                if self.decoder == "loop" and not _synced_gpus(self.model):
                    # Whole groups per chunk (a group shares its prompt's prefill): batch_size
                    # sequences, or one group when n alone exceeds it.
                    per_chunk = max(1, self.batch_size // n)
                    for start in range(0, len(prompts), per_chunk):
                        s = sample(self.model, prompts[start : start + per_chunk], n, sampling, self.eos_ids,
                                   self.pad_id, self.shared_prefix, self.linears)
                        out.completion_ids += s.completion_ids
                        out.logprobs += s.logprobs
                        out.truncated += s.truncated
                else:
                    for start in range(0, len(expanded), self.batch_size):
                        self._generate_chunk(expanded[start : start + self.batch_size], sampling, out)
        finally:
            self.model.train(was_training)
        out.texts = self.tokenizer.batch_decode(out.completion_ids, skip_special_tokens=True)
        return out

    def _generate_chunk(self, prompts: list[list[int]], sampling: SamplingParams, out: Rollouts) -> None:
        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):  # left padding: every prompt ends where generation starts
            input_ids[row, width - len(p) :] = torch.tensor(p)
            attention_mask[row, width - len(p) :] = 1
        config = GenerationConfig(
            do_sample=not sampling.greedy,
            temperature=None if sampling.greedy else sampling.temperature,
            top_p=None if sampling.greedy else sampling.top_p,
            # Unset, top_k falls back to transformers' default of 50; 0 disables it (greedy has none).
            top_k=None if sampling.greedy else 0,
            max_new_tokens=sampling.max_new_tokens,
            min_new_tokens=sampling.min_new_tokens or None,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
        result = self.model.generate(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), generation_config=config,
            synced_gpus=_synced_gpus(self.model),
        )
        generated = result.sequences[:, width:].cpu()  # (B, T_new)
        temperature = 1.0 if sampling.greedy else sampling.temperature
        logits = torch.stack(result.logits, dim=1).float() / temperature  # (B, T_new, V)
        token_logps = logits.gather(-1, generated.unsqueeze(-1).to(logits.device)).squeeze(-1)
        token_logps = (token_logps - torch.logsumexp(logits, dim=-1)).cpu()
        is_eos = torch.isin(generated, torch.tensor(self.eos_ids))
        for row in range(generated.shape[0]):
            stops = is_eos[row].nonzero()
            length = int(stops[0]) + 1 if len(stops) else generated.shape[1]
            out.completion_ids.append(generated[row, :length].tolist())
            out.logprobs.append(token_logps[row, :length].tolist())
            out.truncated.append(len(stops) == 0)


def _synced_gpus(model) -> bool | None:
    """True for a module sharded by torch's FSDP2 (as accelerate applies it) over several processes:
    each decoding step all-gathers the weights, so every process must keep stepping until all have
    finished. None lets transformers decide (it knows DeepSpeed ZeRO-3 and its own FSDP)."""
    import torch.distributed as dist
    from torch.distributed.fsdp import FSDPModule

    sharded = isinstance(model, FSDPModule) and dist.is_initialized() and dist.get_world_size() > 1
    return True if sharded else None
