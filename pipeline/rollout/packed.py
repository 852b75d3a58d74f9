"""Decode-time copies of a model's linear weights in MKL's packed-GEMM layout.

A decode step multiplies a few rows (the batch) by every weight of the model, so its speed is how
fast the weights stream through the cores. On this project's CPUs MKL's plain sgemm streams a
(N, K) weight at about half the rate its packed layout reaches for a fixed row count (measured
with SmolLM2-135M: the 211 linear layers of one decode step at batch 8 took ~1.5x longer plain).
`PackedLinears.decoding` routes every eligible `nn.Linear` of the model through packed copies for
the duration of a decode loop. A weight that trains is repacked at every decode loop: the
optimiser changes it in place, and the fused AdamW step does so without bumping the tensor's
version counter, so a version check alone would keep sampling from the weights of the first
rollout. A frozen weight (a LoRA base, an evaluated model) is packed once per version (an
engine's `update_weights` copies in place and does bump it). With full fine-tuning that is one
repack per rollout; with LoRA none (the adapters run as before). The result is the same linear map
up to float rounding (the rollout contract tests hold).

Eligible: plain (not sharded) float32 weights on the CPU, a torch built with MKL, float32 inputs and no autocast (under
bf16 autocast, entered around the call or inside the model's forward as accelerate does, a layer
takes the plain path, so sampling stays in the training forward's precision).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

__all__ = ["PackedLinears", "available"]


def available() -> bool:
    return torch.backends.mkl.is_available() and hasattr(torch.ops.mkl, "_mkl_linear")


class PackedLinears:
    """Packed weights, kept between calls (an engine holds one) and refreshed as weights change."""

    def __init__(self) -> None:
        # id(module) -> (weight data pointer, weight version, rows, packed tensor)
        self._packed: dict[int, tuple[int, int, int, torch.Tensor]] = {}
        self._fused: tuple | None = None  # (key, `pipeline.rollout.fused.fuse`'s result)

    def fused(self, model: torch.nn.Module, rows: int):
        """`pipeline.rollout.fused.fuse(model, rows)`, kept while no weight changes (the same
        refresh rule as the per-layer copies: a weight that trains is refused the cache)."""
        from pipeline.rollout.fused import fuse

        return self._kept("fused", model, rows, fuse)

    def native(self, model: torch.nn.Module):
        """`pipeline.rollout.native.pack(model)`, kept by the same rule as `fused`; a refresh
        overwrites the previous copies in place (same model, same shapes) instead of allocating."""
        from pipeline.rollout.native import pack

        held = self._fused
        reuse = held[1] if held is not None and held[0][:2] == ("native", id(model)) else None
        return self._kept("native", model, 0, lambda m, rows: pack(m, reuse))

    def _kept(self, kind: str, model: torch.nn.Module, rows: int, build):
        params = list(model.parameters())
        key = (kind, id(model), rows, tuple((p.data_ptr(), p._version) for p in params))
        if self._fused is None or self._fused[0] != key or any(p.requires_grad for p in params):
            self._fused = None  # the old copies go before the new ones are made (or are rewritten)
            self._fused = (key, build(model, rows))
        return self._fused[1]

    @contextmanager
    def decoding(self, model: torch.nn.Module, rows: int):
        """Inside: every eligible linear layer of `model` computes with its packed copy for `rows`."""
        if not available() or torch.is_autocast_enabled("cpu"):
            yield
            return
        patched = []
        try:
            for module in model.modules():
                if type(module) is torch.nn.Linear and _eligible(module.weight):
                    module.forward = _packed_forward(module, self._pack(module, rows), rows)
                    patched.append(module)
            yield
        finally:
            for module in patched:
                del module.forward  # back to the class's forward

    def _pack(self, module: torch.nn.Linear, rows: int) -> torch.Tensor:
        weight = module.weight
        key = (weight.data_ptr(), weight._version, rows)
        held = self._packed.get(id(module))
        if held is None or held[:3] != key or weight.requires_grad:  # see the module docstring
            packed = torch.ops.mkl._mkl_reorder_linear_weight(weight.detach(), rows)
            self._packed[id(module)] = (*key, packed)
            return packed
        return held[3]


def _eligible(weight: torch.Tensor) -> bool:
    # A plain tensor only: a sharded one (FSDP's DTensor) holds a shard, not the layer's weight, and
    # an inference tensor cannot be reordered.
    return (type(weight) in (torch.Tensor, torch.nn.Parameter) and not weight.is_inference()
            and weight.dtype == torch.float32 and weight.device.type == "cpu" and weight.dim() == 2)


def _packed_forward(module: torch.nn.Linear, packed: torch.Tensor, rows: int):
    weight, bias = module.weight, module.bias

    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or torch.is_autocast_enabled("cpu"):
            # autocast entered inside the model's forward (accelerate wraps it): transformers' path
            return torch.nn.functional.linear(x, weight, bias)
        return torch.ops.mkl._mkl_linear(x, packed, weight, bias, rows)

    return forward
