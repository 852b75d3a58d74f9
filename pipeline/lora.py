"""LoRA through peft: low-rank adapters on the policy's linear layers (Hu et al. 2021).

Only the adapters train. The frozen reference is the same module with its adapters switched off
(`AdaptersOff`), so no second copy of the weights sits in memory. Checkpoints hold the adapters
(`checkpoint_adapters_only`); a stage's `final/` is the merged model, a plain Hugging Face
directory (`merged_model`). An engine with weights of its own takes either the merged tensors under
the base model's names (`merged_tensors`: what `policy_tensors` gives for a LoRA policy) or the
adapter tensors alone (`adapter_tensors`, peft's names), for engines that apply adapters themselves.

peft is imported only when a config asks for adapters.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Iterator

import torch

from errors import ConfigError

__all__ = ["apply_lora", "is_lora", "AdaptersOff", "merged_tensors", "adapter_tensors", "merged_model",
           "checkpoint_adapters_only"]

ADAPTER = "default"  # peft's name for the one adapter a stage trains


def apply_lora(model: torch.nn.Module, cfg) -> torch.nn.Module:
    """`model` wrapped with fresh adapters (`cfg`: a `LoRAConfig`): A random, B zero, so the wrapped
    model computes exactly what `model` did until the first update. Every other weight is frozen."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                        target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    try:
        with warnings.catch_warnings():  # peft 0.21 asks transformers 5 a deprecated question
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, config)
    except ValueError as e:  # peft: "Target modules {...} not found in the base model"
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ConfigError(f"field model.lora.target_modules: {e}; this model's linear layers are named "
                          f"{', '.join(names)}") from None


def _inner(model: Any) -> Any:
    """The module under a DDP-style wrapper."""
    return getattr(model, "module", model)


def is_lora(model: Any) -> bool:
    """True for a peft model (also under a DDP wrapper); never imports peft."""
    inner = _inner(model)
    return hasattr(inner, "peft_config") and hasattr(inner, "disable_adapter")


class AdaptersOff:
    """The frozen reference of a LoRA policy: calling it runs the policy with its adapters switched
    off, in eval mode and without gradients, which is exactly the base model. It holds no weights of
    its own, so it follows the policy to any device (`to` is a no-op)."""

    training = False

    def __init__(self, policy: torch.nn.Module):
        self.policy = _inner(policy)

    def __call__(self, *args, **kwargs):
        was_training = self.policy.training
        self.policy.eval()
        try:
            with torch.no_grad(), self.policy.disable_adapter():
                return self.policy(*args, **kwargs)
        finally:
            self.policy.train(was_training)

    @property
    def config(self):
        return self.policy.config

    def parameters(self):
        return self.policy.parameters()

    def to(self, *_, **__) -> "AdaptersOff":
        return self

    def eval(self) -> "AdaptersOff":
        return self

    def train(self, mode: bool = True) -> "AdaptersOff":
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "AdaptersOff":
        return self


def _lora_layers(model) -> Iterator[tuple[str, Any]]:
    """(name in the base model, peft LoRA layer) of every layer that carries the adapter."""
    from peft.tuners.lora import LoraLayer

    for name, module in _inner(model).get_base_model().named_modules():
        if isinstance(module, LoraLayer) and ADAPTER in module.lora_A:
            yield name, module


@torch.no_grad()
def merged_tensors(model) -> Iterator[tuple[str, torch.Tensor]]:
    """The (name, tensor) pairs of the merged model, `W + (alpha / r) B @ A`, under the base model's
    Hugging Face names: what a plain model with the adapters merged in would hold. The module is not
    changed (merging in place and back would let rounding drift into the frozen weights)."""
    base = _inner(model).get_base_model()
    deltas = {f"{name}.weight": layer.get_delta_weight(ADAPTER) for name, layer in _lora_layers(model)}
    for key, tensor in base.state_dict().items():
        if ".lora_" in key:
            continue
        name = key.replace(".base_layer.", ".")
        tensor = tensor.detach()
        if name in deltas:
            tensor = tensor + deltas[name].to(tensor.dtype)
        yield name, tensor


def adapter_tensors(model) -> dict[str, torch.Tensor]:
    """The adapter tensors alone, named as peft saves them (`...q_proj.lora_A.weight`)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach() for k, v in get_peft_model_state_dict(_inner(model), adapter_name=ADAPTER).items()}


def merged_model(model) -> torch.nn.Module:
    """A plain Hugging Face model (a copy) with the adapters merged into its weights."""
    return copy.deepcopy(_inner(model)).merge_and_unload()


def checkpoint_adapters_only(accelerator) -> None:
    """Make `accelerator.save_state` write only the trainable tensors (the adapters) of a LoRA model:
    its frozen base is the model the stage started from, rebuilt on resume. Load such a checkpoint
    with `load_state(..., strict=False)`."""

    def keep_trainable(models, weights, _output_dir) -> None:
        for i, model in enumerate(models):
            if is_lora(model):
                trainable = {name for name, p in model.named_parameters() if p.requires_grad}
                weights[i] = {k: v for k, v in weights[i].items() if k in trainable}

    accelerator.register_save_state_pre_hook(keep_trainable)
