"""A decode step of a Llama model written out over fused, packed weights: the `hf` engine's loop
calls it for every new token after the prefill, in place of transformers' forward, where the
compiled step (`pipeline.rollout.native`, ~40% less time a token) cannot be built or is turned off.

On this project's 2-core CPUs a decode step of SmolLM2-135M at batch 8 spends ~40-50 ms in its
211 matrix products and, through transformers' forward, ~35 ms more. Most of that is not Python:
with OpenMP's passive waiting (`pipeline/__init__.py`) every parallel region wakes the sleeping
worker thread, and a step has one per product. This step does the same arithmetic in fewer regions:
- q, k and v are one packed matrix, gate and up another: 4 products per layer instead of 7;
- RoPE is applied to q and k at once, and the new position attends through one SDPA call over the
  cache filled so far, with an additive mask for the prompts' left padding (the same attention
  written as two small matmuls and a softmax took ~8% longer per decode call: three parallel
  regions instead of one).
Measured on SmolLM2-135M, batch 8, 64 new tokens, 4 calls a run, runs alternating: 5.0-5.5 s per
call against 6.0-6.7 s through transformers' forward with each linear layer packed;
`bench/grpo_step.py` measures the whole step.

The logits are the model's up to float rounding (~1e-5 on logits of ~10; tests/pipeline/rollout/
test_fused.py). RMSNorm keeps the model's order of operations: folding its weight into the next
matrix saves two small operations per norm but moved the rounding enough that a seeded draw near a
token boundary came out differently from transformers' path.

Eligible: a `LlamaForCausalLM` whose linear layers are plain float32 `nn.Linear`s on the CPU (no
LoRA wrapper, no sharding), SiLU, no tensor-parallel split, a torch with MKL, no autocast, and a
prefill that wrote float32 keys and values (`sampler._fusable`); anything else decodes through
transformers' forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["FusedLayer", "eligible", "fuse", "FusedLlamaStep"]


@dataclass
class FusedLayer:
    """One decoder layer's packed matrices (qkv, o, gate|up, down), each with its bias or None."""

    qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # (packed, stand-in, bias or None)
    o: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
    gate_up: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
    down: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
    norm_in: torch.Tensor
    norm_post: torch.Tensor
    eps_in: float
    eps_post: float


def _layers(model):
    return model.model.layers


def eligible(model) -> bool:
    """Whether `model` decodes through `FusedLlamaStep`."""
    from transformers.models.llama.modeling_llama import LlamaForCausalLM, LlamaRMSNorm

    from pipeline.rollout.packed import _eligible, available

    if type(model) is not LlamaForCausalLM or not available() or torch.is_autocast_enabled("cpu"):
        return False
    config = model.config
    if getattr(config, "pretraining_tp", 1) != 1 or config.hidden_act != "silu":
        return False
    if type(model.model.embed_tokens) is not torch.nn.Embedding or model.model.embed_tokens.weight.dtype != torch.float32:
        return False
    linears, norms = [model.lm_head], [model.model.norm]
    for layer in _layers(model):
        a, m = layer.self_attn, layer.mlp
        linears += [a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj]
        norms += [layer.input_layernorm, layer.post_attention_layernorm]
    return (all(type(m) is torch.nn.Linear and _eligible(m.weight) for m in linears)
            and all(type(n) is LlamaRMSNorm for n in norms))


def _packed(weights: list[torch.Tensor], biases: list[torch.Tensor | None], rows: int):
    """The rows of `weights` stacked and packed for `rows`; a stand-in of the stacked shape that
    holds no memory (MKL's call reads only its sizes when the row count is the packed one, as it
    always is here); the stacked biases or None."""
    stacked = torch.cat([w.detach() for w in weights]) if len(weights) > 1 else weights[0].detach()
    packed = torch.ops.mkl._mkl_reorder_linear_weight(stacked, rows)
    stand_in = stacked.new_empty((1, 1)).expand(stacked.shape)
    return packed, stand_in, _stacked_bias(weights, biases)


def _stacked_bias(weights: list[torch.Tensor], biases: list[torch.Tensor | None]) -> torch.Tensor | None:
    """The biases of stacked linear layers as one vector (zeros for a layer without one); None if none has one."""
    if all(b is None for b in biases):
        return None
    return torch.cat([b.detach() if b is not None else w.new_zeros(w.shape[0]) for w, b in zip(weights, biases)])


def _head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def fuse(model, rows: int) -> tuple[list[FusedLayer], tuple]:
    """Every layer's fused, packed matrices for a batch of `rows`, and the LM head's."""
    layers = []
    for layer in _layers(model):
        a, m = layer.self_attn, layer.mlp
        norm_in, norm_post = layer.input_layernorm, layer.post_attention_layernorm
        qkv = [a.q_proj, a.k_proj, a.v_proj]
        layers.append(FusedLayer(
            qkv=_packed([l.weight for l in qkv], [l.bias for l in qkv], rows),
            o=_packed([a.o_proj.weight], [a.o_proj.bias], rows),
            gate_up=_packed([m.gate_proj.weight, m.up_proj.weight], [m.gate_proj.bias, m.up_proj.bias], rows),
            down=_packed([m.down_proj.weight], [m.down_proj.bias], rows),
            norm_in=norm_in.weight.detach(), norm_post=norm_post.weight.detach(),
            eps_in=norm_in.variance_epsilon, eps_post=norm_post.variance_epsilon,
        ))
    head = _packed([model.lm_head.weight], [model.lm_head.bias], rows)
    return layers, head


def _product(x: torch.Tensor, matrix) -> torch.Tensor:
    """x W^T + b with a packed matrix."""
    packed, stand_in, bias = matrix
    return torch.ops.mkl._mkl_linear(x, packed, stand_in, bias, x.shape[0])


def _rms(h: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm, in its order of operations (float32 activations)."""
    return weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps))


class FusedLlamaStep:
    """Decode steps over a cache of `pipeline.rollout.sampler._GrowingLayer`s that a prefill filled.

    `attention_mask` `(B, capacity)`: 1 on real positions (prompt and new tokens), 0 on left padding.
    """

    def __init__(self, model, fused: tuple[list[FusedLayer], tuple], cache, attention_mask: torch.Tensor):
        config = model.config
        self.layers, self.head = fused
        self.cache = cache.layers
        self.embedding = model.model.embed_tokens.weight
        self.rotary = model.model.rotary_emb
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = _head_dim(config)
        self.scaling = _layers(model)[0].self_attn.scaling
        self.norm, self.eps = model.model.norm.weight.detach(), model.model.norm.variance_epsilon
        blocked = torch.zeros(attention_mask.shape, dtype=torch.float32, device=attention_mask.device)
        self.bias = blocked.masked_fill_(attention_mask == 0, float("-inf"))[:, None, None, :]  # (B, 1, 1, C)

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits `(B, V)` float32 of one new token per row at `positions` `(B, 1)`; the cache grows by one.
        Called under the sampler's inference mode (the cache's buffers are inference tensors)."""
        b, heads, kv, d = tokens.shape[0], self.heads, self.kv_heads, self.head_dim
        qk_width = (heads + kv) * d
        n = self.cache[0].length  # positions already cached
        h = torch.nn.functional.embedding(tokens, self.embedding)  # (B, H)
        cos, sin = self.rotary(h, positions)  # (B, 1, D)
        half = d // 2
        bias = self.bias[..., : n + 1]
        for layer, cached in zip(self.layers, self.cache):
            qkv = _product(_rms(h, layer.norm_in, layer.eps_in), layer.qkv)  # (B, (H + 2KV) D)
            qk = qkv[:, :qk_width].view(b, heads + kv, d)
            rotated = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), dim=-1) * sin
            cached._keys[:, :, n] = rotated[:, heads:]
            cached._values[:, :, n] = qkv[:, qk_width:].view(b, kv, d)
            cached.length = n + 1
            keys, values = cached._keys[:, :, : n + 1], cached._values[:, :, : n + 1]  # (B, KV, n+1, D)
            attended = torch.nn.functional.scaled_dot_product_attention(  # (B, H, 1, D)
                rotated[:, :heads, None], keys, values, attn_mask=bias, scale=self.scaling, enable_gqa=True)
            h = h + _product(attended.reshape(b, heads * d), layer.o)
            gate_up = _product(_rms(h, layer.norm_post, layer.eps_post), layer.gate_up)
            gate, up = gate_up.chunk(2, dim=-1)
            h = h + _product(torch.nn.functional.silu(gate).mul_(up), layer.down)
        return _product(_rms(h, self.norm, self.eps), self.head)
