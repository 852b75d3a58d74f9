"""A Llama decode step compiled for this machine: every layer and the LM head of one new token in one
call (`native_step.c`), where `pipeline.rollout.fused.FusedLlamaStep` makes ~150 torch calls.

On this project's 2-core CPUs a decode step of SmolLM2-135M at batch 8 through the fused torch
step spends ~54 ms in MKL's products and ~25 ms more in the other operators and in waking OpenMP's
worker thread once per operator (passive waiting, `pipeline/__init__.py`). The compiled step wakes
it once per token and meets at spin barriers inside; its products stream each weight tile once for
8 rows (~40 ms of its ~45-50 ms a token). Measured per sampler call (8 rows x 64 new tokens, calls
alternating): 2.8-3.2 s against 4.3-4.7 s through the fused torch step; `bench/grpo_step.py`
measures the whole GRPO step with it.

The source is compiled on first use with the machine's C compiler (`$CC`, else `cc`; `-O3
-march=native -fopenmp`) into the project's cache (`$RLVR_CACHE/native/`), keyed by the source, the
compiler's version and the CPU's flags, written to a temporary name and renamed into place. Without
a compiler, or where it fails, a warning says so once and the fused torch step decodes instead.
`RLVR_NATIVE_DECODE=0` turns it off.

Eligible: what `FusedLlamaStep` takes (`pipeline.rollout.fused.eligible`), with an even head
dimension of at most 512 and an intermediate size divisible by 16.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

from pipeline.rollout.fused import _head_dim, _stacked_bias

__all__ = ["library", "eligible", "NativeWeights", "pack", "NativeLlamaStep"]

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native_step.c")
ABI = 1
TILE, ROWS = 32, 8  # the source's TILE and MB
_DRAW_LIMIT = 1024 * 4096  # the source's DRAW_BLOCK x DRAW_BLOCKS


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return ""


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The compiled step, built on first use; None (with one warning) where it cannot be built."""
    if os.environ.get("RLVR_NATIVE_DECODE", "1") == "0":
        return None
    from pipeline.models import cache_root

    compiler = _compiler()
    if compiler is None:
        log.warning("no C compiler (cc or gcc): decoding through the fused torch step")
        return None
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        key = hashlib.sha256(SOURCE.read_bytes() + version.encode() + _cpu_flags().encode()).hexdigest()[:16]
        target = cache_root() / "native" / f"llama_step-{key}.so"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as tmp:
                partial = Path(tmp.name)
            try:
                built = subprocess.run(
                    [compiler, "-O3", "-march=native", "-fopenmp", "-std=gnu11", "-shared", "-fPIC",
                     str(SOURCE), "-o", str(partial), "-lm"],
                    capture_output=True, text=True, timeout=300)
                if built.returncode != 0:
                    log.warning("compiling %s failed, decoding through the fused torch step:\n%s",
                                SOURCE, built.stderr[-2000:])
                    return None
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        lib = ctypes.CDLL(str(target))
        if lib.native_step_abi() != ABI:
            log.warning("%s is not the step this code expects: decoding through the fused torch step", target)
            return None
        lib.native_step.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.native_step.restype = None
        lib.native_tile.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                    ctypes.c_void_p, ctypes.c_int]
        lib.native_tile.restype = None
        lib.native_draw.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_float, ctypes.c_void_p,
                                    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_int]
        lib.native_draw.restype = None
        return lib
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("the compiled decode step is unavailable (%s): decoding through the fused torch step", exc)
        return None


def draws(logits: torch.Tensor) -> bool:
    """Whether `draw` takes these logits: float32 `(B, V)` on the CPU, V below the step's limit."""
    return (logits.dtype == torch.float32 and logits.device.type == "cpu" and logits.dim() == 2
            and logits.shape[1] <= _DRAW_LIMIT and library() is not None)


def draw(logits: torch.Tensor, temperature: float, blocked: torch.Tensor | None,
         uniform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampler's `_draw` without top-p, in one call: a token per row from softmax(logits / T)
    with the `blocked` ids at probability 0, the first whose cumulative probability exceeds
    `uniform` `(B, 1)` float64 times the total; and its log-prob under log_softmax(logits / T)."""
    logits = logits.contiguous()
    batch, vocab = logits.shape
    blocked = (torch.empty(0, dtype=torch.int64) if blocked is None else blocked.to(torch.int64)).contiguous()
    uniform = uniform.to(torch.float64).contiguous()
    token = torch.empty(batch, dtype=torch.int64)
    logp = torch.empty(batch, dtype=torch.float32)
    scratch = torch.empty((batch, vocab), dtype=torch.float32)
    library().native_draw(logits.data_ptr(), batch, vocab, temperature, blocked.data_ptr(), blocked.numel(),
                          uniform.data_ptr(), token.data_ptr(), logp.data_ptr(), scratch.data_ptr(),
                          torch.get_num_threads())
    return token, logp


def eligible(model) -> bool:
    """Whether `model` decodes through `NativeLlamaStep`."""
    from pipeline.rollout.fused import eligible as fused_eligible

    if not fused_eligible(model):
        return False
    config = model.config
    head_dim = _head_dim(config)
    return (head_dim % 2 == 0 and head_dim <= 512 and config.intermediate_size % 16 == 0
            and library() is not None)


class _Layer(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in (
        "qkv", "qkv_bias", "o", "o_bias", "gate_up", "gate_bias", "up_bias", "down", "down_bias",
        "norm_in", "norm_post")] + [("eps_in", ctypes.c_float), ("eps_post", ctypes.c_float),
                                    ("keys", ctypes.c_void_p), ("values", ctypes.c_void_p)]


class _Step(ctypes.Structure):
    _fields_ = ([(name, ctypes.c_int) for name in (
        "batch", "rows", "hidden", "heads", "kv_heads", "head_dim", "inter", "vocab", "layers", "capacity",
        "threads")]
        + [("scaling", ctypes.c_float), ("eps", ctypes.c_float), ("layer", ctypes.POINTER(_Layer))]
        + [(name, ctypes.c_void_p) for name in (
            "norm", "head", "head_bias", "mask", "cos", "sin", "h", "xn", "qkv", "att", "act", "scores", "logits")]
        + [("arrived", ctypes.c_int), ("phase", ctypes.c_int)])


def _tiled(weights: list[torch.Tensor], pairs: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
    """The rows of `weights` (each (N_i, K)) stacked and tiled: (ceil(N / 32), K, 32), zero rows
    padding N; `pairs`: (gate, up), tile t holding gate rows 16t..16t+15, then the same up rows.
    Written into `out` where it has the shape (an earlier call's buffer: no fresh pages to fault in)."""
    weights = [w.detach().contiguous() for w in weights]
    cols, rows = weights[0].shape[1], sum(w.shape[0] for w in weights)
    shape = (-(-rows // TILE), cols, TILE)
    if out is None or out.shape != shape:
        out = torch.empty(shape, dtype=torch.float32)
    parts = (ctypes.c_void_p * len(weights))(*[w.data_ptr() for w in weights])
    counts = (ctypes.c_int * len(weights))(*[w.shape[0] for w in weights])
    library().native_tile(parts, counts, len(weights), int(pairs), cols, ctypes.c_void_p(out.data_ptr()),
                          torch.get_num_threads())
    return out


def _ptr(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


class NativeWeights:
    """The model's matrices in the step's tiled layout, norms and biases; holds the tensors alive.
    `reuse`: an earlier copy whose buffers are overwritten (it must not be used afterwards)."""

    def __init__(self, model, reuse: "NativeWeights | None" = None):
        detach = lambda t: None if t is None else t.detach().contiguous()  # noqa: E731
        old = list(reuse.layers) if reuse is not None and len(reuse.layers) == len(model.model.layers) else None
        self.layers = []
        for index, layer in enumerate(model.model.layers):
            held = old[index] if old else {}
            a, m = layer.self_attn, layer.mlp
            qkv = [a.q_proj, a.k_proj, a.v_proj]
            self.layers.append(dict(
                qkv=_tiled([p.weight for p in qkv], out=held.get("qkv")),
                qkv_bias=_stacked_bias([p.weight for p in qkv], [p.bias for p in qkv]),
                o=_tiled([a.o_proj.weight], out=held.get("o")), o_bias=detach(a.o_proj.bias),
                gate_up=_tiled([m.gate_proj.weight, m.up_proj.weight], pairs=True, out=held.get("gate_up")),
                gate_bias=detach(m.gate_proj.bias), up_bias=detach(m.up_proj.bias),
                down=_tiled([m.down_proj.weight], out=held.get("down")), down_bias=detach(m.down_proj.bias),
                norm_in=detach(layer.input_layernorm.weight), norm_post=detach(layer.post_attention_layernorm.weight),
                eps_in=layer.input_layernorm.variance_epsilon, eps_post=layer.post_attention_layernorm.variance_epsilon,
            ))
        self.norm, self.eps = detach(model.model.norm.weight), model.model.norm.variance_epsilon
        self.head = _tiled([model.lm_head.weight], out=reuse.head if reuse is not None else None)
        self.head_bias = detach(model.lm_head.bias)


def pack(model, reuse: NativeWeights | None = None) -> NativeWeights:
    """`PackedLinears.native`'s builder for this step (the layout does not depend on the row count)."""
    return NativeWeights(model, reuse)


class NativeLlamaStep:
    """Decode steps over a cache of `pipeline.rollout.sampler._GrowingLayer`s that a prefill filled;
    the same call as `FusedLlamaStep`.

    `attention_mask` `(B, capacity)`: 1 on real positions (prompt and new tokens), 0 on left padding.
    """

    def __init__(self, model, weights: NativeWeights, cache, attention_mask: torch.Tensor):
        config = model.config
        self.lib = library()
        self.weights, self.cache = weights, cache.layers
        self.embedding = model.model.embed_tokens.weight
        self.rotary = model.model.rotary_emb
        batch, capacity = attention_mask.shape
        rows = -(-batch // ROWS) * ROWS
        heads, kv = config.num_attention_heads, config.num_key_value_heads
        head_dim = _head_dim(config)
        hidden, inter, vocab = config.hidden_size, config.intermediate_size, model.lm_head.out_features
        threads = torch.get_num_threads()
        for cached in self.cache:
            if not (cached._keys.is_contiguous() and cached._values.is_contiguous()
                    and cached._keys.shape == (batch, kv, capacity, head_dim)):
                raise ValueError(f"cache buffers of shape {tuple(cached._keys.shape)} do not fit the step "
                                 f"({batch}, {kv}, {capacity}, {head_dim})")
        zeros = lambda *shape: torch.zeros(shape, dtype=torch.float32)  # noqa: E731
        self.mask = attention_mask.to(torch.int64).contiguous()
        self.cos, self.sin = zeros(batch, head_dim), zeros(batch, head_dim)
        self.h, self.xn = zeros(rows, hidden), zeros(threads, rows, hidden)
        self.qkv = zeros(rows, (heads + 2 * kv) * head_dim)
        self.att, self.act = zeros(rows, heads * head_dim), zeros(rows, inter)
        self.scores, self.logits = zeros(threads, capacity), zeros(batch, vocab)
        self.layers = (_Layer * len(weights.layers))()
        for slot, (w, cached) in enumerate(zip(weights.layers, self.cache)):
            self.layers[slot] = _Layer(
                **{name: _ptr(w[name]) for name in ("qkv", "qkv_bias", "o", "o_bias", "gate_up", "gate_bias",
                                                     "up_bias", "down", "down_bias", "norm_in", "norm_post")},
                eps_in=w["eps_in"], eps_post=w["eps_post"],
                keys=cached._keys.data_ptr(), values=cached._values.data_ptr())
        self.step = _Step(
            batch=batch, rows=rows, hidden=hidden, heads=heads, kv_heads=kv, head_dim=head_dim, inter=inter,
            vocab=vocab, layers=len(weights.layers), capacity=capacity, threads=threads,
            scaling=model.model.layers[0].self_attn.scaling, eps=weights.eps, layer=self.layers,
            norm=_ptr(weights.norm), head=_ptr(weights.head), head_bias=_ptr(weights.head_bias),
            mask=self.mask.data_ptr(), cos=self.cos.data_ptr(), sin=self.sin.data_ptr(), h=self.h.data_ptr(),
            xn=self.xn.data_ptr(), qkv=self.qkv.data_ptr(), att=self.att.data_ptr(), act=self.act.data_ptr(),
            scores=self.scores.data_ptr(), logits=self.logits.data_ptr(), arrived=0, phase=0)

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits `(B, V)` float32 of one new token per row at `positions` `(B, 1)`; the cache grows by one.
        The tensor is the step's own buffer: valid until the next call."""
        batch = tokens.shape[0]
        n = self.cache[0].length  # positions already cached
        if n >= self.mask.shape[1]:
            raise RuntimeError(f"KV cache capacity {self.mask.shape[1]} exceeded")
        embedded = torch.nn.functional.embedding(tokens, self.embedding)
        self.h[:batch].copy_(embedded)
        cos, sin = self.rotary(embedded, positions)  # (B, 1, D)
        self.cos.copy_(cos[:, 0])
        self.sin.copy_(sin[:, 0])
        self.lib.native_step(ctypes.byref(self.step), n)
        for cached in self.cache:
            cached.length = n + 1
            cached._views()
        return self.logits
