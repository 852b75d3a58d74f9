"""The piece of the project that runs inside vLLM's worker process: loading the policy's tensors in
place, for the colocated engine (`vllm.py`, tensors from an iterator) and for the server
(`vllm_server.py`, tensors from a safetensors directory, reached through `POST /collective_rpc`).

vLLM mixes `WeightSyncExtension` into its worker class when started with
`worker_extension_cls="pipeline.rollout.vllm_worker.WeightSyncExtension"`. It imports torch and
safetensors only, so a server in another virtualenv needs no more of the project than this file's
package on its path.

Two traps, both measured on vLLM 0.32 (CPU build):
- the model's own `load_weights` fails half-way on a CPU (linear layers are repacked at load time
  and lose their `weight_loader`) and leaves the engine half-updated; the worker's
  `reload_weights` re-runs the layer-wise processing and is exact;
- a tied LM head (`tie_word_embeddings`) is not reloaded itself ("ParallelLMHead: Failed to load
  weights"): on a CPU it keeps its packed copy of the *old* embedding, and every log-prob is off
  (by 0.37 nats on the tiny model). The head's GEMM is re-dispatched from the new embedding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

__all__ = ["WeightSyncExtension", "read_safetensors_dir"]


def read_safetensors_dir(path: str | Path) -> Iterator[tuple[str, "object"]]:
    """(name, tensor) of every `*.safetensors` file of a directory, in file order."""
    from safetensors.torch import safe_open

    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path}: no .safetensors file to load weights from")
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                yield name, f.get_tensor(name)


class WeightSyncExtension:
    """Methods vLLM adds to its worker (reached by `collective_rpc(method_name, kwargs=...)`)."""

    def rlvr_load_weights(self, weights: Iterable[tuple[str, "object"]] | None = None,
                          path: str | None = None) -> int:
        """Load tensors by their Hugging Face names, from `weights` (an in-process iterator) or
        from the safetensors files of the directory `path`. Returns how many were loaded."""
        if (weights is None) == (path is None):
            raise ValueError("give either weights or path")
        count = 0

        def counted(pairs):
            nonlocal count
            for pair in pairs:
                count += 1
                yield pair

        source = weights if weights is not None else read_safetensors_dir(path)
        self.reload_weights(weights_iterator=counted(source))  # the worker's, never the model's load_weights
        _refresh_tied_heads(self.model_runner.get_model())
        return count


def _refresh_tied_heads(model) -> None:
    """Re-dispatch the CPU GEMM of every LM head that shares its embedding's weight, so the packed
    copy it computes with is made from the new weight (no-op on a GPU: no `cpu_linear` there)."""
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead

    for module in model.modules():
        if isinstance(module, ParallelLMHead) and hasattr(module, "cpu_linear") and module.weight.numel():
            dispatch_cpu_unquantized_gemm(module, remove_weight=False)
