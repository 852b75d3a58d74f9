"""Helpers of the preference-stage tests (DPO, KTO), as fixtures."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pipeline.models import load_causal_lm, load_tokenizer, resolve_model


def _small_preference_run(cfg, stage, **changes):
    """Few pairs (8 prompts), one batch of all of them, a high learning rate."""
    return cfg.model_copy(update={
        "preference": cfg.preference.model_copy(update={"size": 8, "eval_size": 4}),
        stage: getattr(cfg, stage).model_copy(update={"steps": 8, "batch_size": 48, "micro_batch_size": 24,
                                                      "lr": 3e-3, "eval_every": 4, "checkpoint_every": 4, **changes}),
    })


def _moved_from_start(cfg, final: str) -> bool:
    """Every weight of the final model differs from the tiny policy the stage started from."""
    source = resolve_model("tiny", cfg.model)
    start = load_causal_lm(source, cfg.model, load_tokenizer(source), seed=cfg.seed).state_dict()
    end = load_file(str(Path(final) / "model.safetensors"))
    return all(not torch.equal(start[k], end[k]) for k in end)


@pytest.fixture
def small_preference_run():
    return _small_preference_run


@pytest.fixture
def moved_from_start():
    return _moved_from_start
