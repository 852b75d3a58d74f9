"""Rollouts with vLLM in the trainer's process (colocated), and what both vLLM engines share.

The engine holds its own copy of the weights (`shares_weights = False`): after each optimiser step
the trainer pushes the policy's tensors, which the worker extension (`vllm_worker.py`) loads in
place with vLLM's `reload_weights` (a tied LM head re-packed), and the prefix cache is reset so no
KV block computed with the old weights is reused.

vLLM runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), so the tensors reach the worker
by reference, never pickled. On a GPU the user installs the `vllm` extra into the trainer's
virtualenv. Here, on CPU, vLLM's CPU build pins another transformers than the project, so the
colocated engine runs from the vLLM virtualenv (`make vllm`) with the project importable: its
tests and the GRPO run with it are run from that interpreter.

Log-probs are vLLM's `processed_logprobs`: log_softmax(logits / temperature) of the sampled token
(after top-p renormalisation when top_p < 1: the sampler's own distribution, which is what the
importance weights need; the trainer recomputes pi_old itself for an engine like this).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any, Iterable, Sequence

from pipeline.rollout.base import Rollouts, SamplingParams

__all__ = ["VLLMRolloutEngine", "EXTENSION", "engine_options", "prompt_seeds", "assemble_rollouts", "sampling_options",
           "engine_model_dir", "engine_dtype"]

EXTENSION = "pipeline.rollout.vllm_worker.WeightSyncExtension"
_CPU_KV_CACHE_GB = 1.0


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def _forget_parallel_state() -> None:
    """Clear vLLM's record of its process groups (in this process) after they were destroyed."""
    from vllm.distributed import parallel_state

    for name, value in list(vars(parallel_state).items()):
        if isinstance(value, parallel_state.GroupCoordinator):
            setattr(parallel_state, name, None)
    parallel_state._NODE_COUNT = None


def engine_options(cfg, model_path: str, dtype: str, seed: int, on_cpu: bool) -> dict[str, Any]:
    """vLLM engine arguments (the keyword names of `vllm.LLM` / `EngineArgs`) of a rollout config.

    The engine never loads a tokenizer: prompts arrive as ids and completions leave as ids (the
    project's tokenizer decodes them), so the engine cannot disagree with the trainer on ids."""
    options: dict[str, Any] = {
        "model": model_path,
        "skip_tokenizer_init": True,
        "dtype": dtype,
        "seed": seed,
        "logprobs_mode": "processed_logprobs",
        "enable_prefix_caching": cfg.enable_prefix_caching,
        "enforce_eager": on_cpu if cfg.enforce_eager is None else cfg.enforce_eager,
        "worker_extension_cls": EXTENSION,
    }
    if cfg.max_model_len:
        options["max_model_len"] = cfg.max_model_len
    if on_cpu:
        # A prompt prefilled in chunks rewinds its seeded generator, which a CPU generator cannot do
        # (vLLM 0.32: "CPU Generator does not use offset"): whole prompts only.
        options["enable_chunked_prefill"] = False
    kv_gb = cfg.kv_cache_gb or (_CPU_KV_CACHE_GB if on_cpu else None)
    if kv_gb:
        # On a CPU, gpu_memory_utilization is a share of the whole machine's memory: a fixed size instead.
        options["kv_cache_memory_bytes"] = int(kv_gb * 2**30)
    else:
        options["gpu_memory_utilization"] = cfg.gpu_memory_utilization
    return options


def engine_dtype(cfg, model) -> str:
    """The engine's dtype: the config's, or the policy's for 'auto'."""
    if cfg.dtype != "auto" or model is None:
        return cfg.dtype
    return str(next(model.parameters()).dtype).removeprefix("torch.")


def engine_model_dir(model_path: str | None, model, tokenizer) -> tuple[str, str | None]:
    """A directory vLLM can start from: `model_path` when it holds a Hugging Face model, else a
    snapshot of `model` written to a temporary directory (the `tiny` preset has no weights on
    disk). Returns (directory, the temporary directory to remove at close or None)."""
    import tempfile
    from pathlib import Path

    if model_path and (Path(model_path) / "config.json").is_file() and any(Path(model_path).glob("*.safetensors")):
        return model_path, None
    if model is None:
        raise ValueError(f"{model_path!r} holds no Hugging Face model and no module was given to snapshot")
    from safetensors.torch import save_file

    from pipeline.rollout.base import policy_tensors

    tensors = {name: t.contiguous().clone() for name, t in policy_tensors(model)}  # clone: tied tensors share storage
    root = Path(os.environ.get("RLVR_ENGINE_DIR") or (Path("/dev/shm") if Path("/dev/shm").is_dir() else tempfile.gettempdir()))
    directory = tempfile.mkdtemp(prefix="rlvr-engine-", dir=root)
    save_file(tensors, str(Path(directory) / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(directory)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory, directory


_SEED_STRIDE = 2**20  # vLLM seeds the k-th of a request's n samples with seed + k


def prompt_seeds(sampling: SamplingParams, count: int) -> list[int | None]:
    """One seed per prompt. vLLM seeds each request's sampler alone (sample k of n with seed + k),
    so one seed for every prompt would give every prompt the same random draws: the prompts'
    seeds are `_SEED_STRIDE` apart. Without `sampling.seed` the base comes from torch's generator,
    which the trainers seed per step: a resumed run samples what the killed one would have."""
    if sampling.greedy:
        return [None] * count
    if sampling.seed is not None:
        base = sampling.seed * 1_000_003
    else:
        import torch

        base = int(torch.randint(0, 2**62, (1,)))
    return [(base + i * _SEED_STRIDE) % 2**63 for i in range(count)]


def assemble_rollouts(prompts: Sequence[list[int]], n: int, samples: Sequence[Sequence[tuple[list[int], list[float]]]],
                      eos_ids: Sequence[int], tokenizer) -> Rollouts:
    """Rollouts from each prompt's n samples, (completion ids, their log-probs) each, in order."""
    out = Rollouts(prompt_ids=[], completion_ids=[], logprobs=[], texts=[], truncated=[], group_size=n)
    eos = set(eos_ids)
    for prompt, group in zip(prompts, samples):
        if len(group) == 1 < n:  # greedy: every one of the n completions is this one
            group = list(group) * n
        if len(group) != n:
            raise RuntimeError(f"the engine returned {len(group)} completions for a prompt, not {n}")
        for ids, logps in group:
            out.prompt_ids.append(list(prompt))
            out.completion_ids.append(list(ids))
            out.logprobs.append(list(logps))
            out.truncated.append(not ids or ids[-1] not in eos)
    out.texts = tokenizer.batch_decode(out.completion_ids, skip_special_tokens=True)
    return out


def sampling_options(sampling: SamplingParams, n: int, eos_ids: Sequence[int]) -> dict[str, Any]:
    """vLLM sampling parameters (names shared by `vllm.SamplingParams` and `/v1/completions`).
    EOS is given as stop ids (the engine has no tokenizer); they end the completion and stay in it."""
    return {
        "n": 1 if sampling.greedy else n,  # vLLM refuses n > 1 when greedy: the one completion is repeated
        "temperature": 0.0 if sampling.greedy else sampling.temperature,
        "top_p": 1.0 if sampling.greedy else sampling.top_p,
        "top_k": -1,
        "max_tokens": sampling.max_new_tokens,
        "min_tokens": 0 if sampling.greedy else sampling.min_new_tokens,
        "stop_token_ids": list(eos_ids),
        "logprobs": 0,
    }


class VLLMRolloutEngine:
    """`vllm.LLM` in this process. Built by `make_engine` for `rollout.backend: vllm`."""

    shares_weights = False

    def __init__(self, cfg, model_path: str, tokenizer, eos_ids: Sequence[int], dtype: str, seed: int = 0,
                 cleanup: str | None = None):
        # In-process engine core: the tensors of a sync reach the worker without pickling.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        on_cpu = _on_cpu()
        if on_cpu:
            # Binding OpenMP threads to cores would pin the trainer's threads too (same process).
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
            if cfg.sleep_level:
                from errors import ConfigError

                raise ConfigError("rollout.sleep_level needs a GPU (vLLM ignores sleep on a CPU); set it to 0")
        try:
            from vllm import LLM
        except ImportError as e:
            from errors import ConfigError

            raise ConfigError(
                f"rollout.backend 'vllm' runs vLLM in the trainer's process, and vLLM does not import in {sys.executable} "
                f"({e}): run the stage from the vLLM virtualenv (`make vllm`: .venv-vllm/bin/python -m ...), install "
                "the `vllm` extra here, or use rollout.backend=vllm_server") from None

        options = engine_options(cfg, model_path, dtype, seed, on_cpu)
        if cfg.sleep_level:
            options["enable_sleep_mode"] = True
        self.llm = LLM(**options)
        self.tokenizer = tokenizer
        self.eos_ids = list(eos_ids)
        self.sleep_level = cfg.sleep_level
        self._asleep = self._weights_awake = False
        self._cleanup = cleanup  # a snapshot directory the engine started from
        if cleanup:
            import shutil
            import weakref

            weakref.finalize(self, shutil.rmtree, cleanup, True)  # also when a stage raised

    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingParams) -> Rollouts:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt

        self._wake()
        common = sampling_options(sampling, n, self.eos_ids)
        params = [VLLMSamplingParams(**common, seed=seed) for seed in prompt_seeds(sampling, len(prompts))]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False)
        samples = []
        for request in outputs:
            group = []
            for c in sorted(request.outputs, key=lambda c: c.index):
                ids = list(c.token_ids)
                group.append((ids, [step[token].logprob for token, step in zip(ids, c.logprobs)]))
            samples.append(group)
        rollouts = assemble_rollouts(prompts, n, samples, self.eos_ids, self.tokenizer)
        if self.sleep_level:  # the trainer has the GPU's memory until the next sync or generation
            self.llm.sleep(level=self.sleep_level)
            self._asleep = True
        return rollouts

    def update_weights(self, weights: Iterable[tuple[str, Any]]) -> None:
        if self._asleep and not self._weights_awake:
            # Weights first (level 2 freed them: every tensor is rewritten now), the KV cache later.
            self.llm.wake_up(tags=["weights"])
            self._weights_awake = True
        self.llm.collective_rpc("rlvr_load_weights", kwargs={"weights": iter(weights)})
        if not self._asleep:
            self.llm.reset_prefix_cache()

    def _wake(self) -> None:
        if self._asleep:
            self.llm.wake_up(tags=["kv_cache", "scheduling"] if self._weights_awake else None)
            self.llm.reset_prefix_cache()
            self._asleep = self._weights_awake = False

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        self.llm = None
        try:
            llm.llm_engine.engine_core.shutdown()
        except ValueError:
            # The trainer's accelerator ended first (a tripped guard): ending training destroys every
            # process group of this process, vLLM's own too, and vLLM's clean-up then finds its
            # groups gone. Forget them, so that a later engine in this process starts afresh.
            _forget_parallel_state()
        del llm
        gc.collect()
        if self._cleanup:
            import shutil

            shutil.rmtree(self._cleanup, ignore_errors=True)
