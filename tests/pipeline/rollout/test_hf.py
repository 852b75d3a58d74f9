"""What is particular to the transformers engine (the contract is in test_contract.py)."""

import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
from pipeline.rollout import SamplingParams
from pipeline.rollout.hf import HFRolloutEngine
from pipeline.tokens import encode_prompt


def _tiny():
    cfg = ModelConfig()
    source = resolve_model("tiny", cfg)
    tokenizer = load_tokenizer(source)
    return load_causal_lm(source, cfg, tokenizer, seed=0), tokenizer


def test_sampling_applies_no_hidden_top_k(monkeypatch):
    # transformers fills an unset top_k with 50; the generate decoder must switch it off, or the
    # completions come from a truncated distribution while their log-probs are those of the full one.
    import transformers.generation.utils as generation

    built = []
    original = generation.TopKLogitsWarper.__init__

    def record(self, *args, **kwargs):
        built.append(kwargs.get("top_k", args[0] if args else None))
        original(self, *args, **kwargs)

    monkeypatch.setattr(generation.TopKLogitsWarper, "__init__", record)
    model, tokenizer = _tiny()
    engine = HFRolloutEngine(model, tokenizer, decoder="generate")
    engine.generate([encode_prompt(tokenizer, "1+1=")], 2, SamplingParams(max_new_tokens=3))
    assert built == []


def test_it_shares_the_trainers_module_and_leaves_its_mode_alone():
    model, tokenizer = _tiny()
    engine = HFRolloutEngine(model, tokenizer)
    assert engine.shares_weights and engine.model is model
    model.train()
    engine.generate([encode_prompt(tokenizer, "1+1=")], 1, SamplingParams(max_new_tokens=2))
    assert model.training


def test_a_seeded_call_leaves_the_global_random_state_alone():
    # The trainers seed torch per step; a seeded evaluation call in between must not shift it.
    model, tokenizer = _tiny()
    engine = HFRolloutEngine(model, tokenizer)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    engine.generate([encode_prompt(tokenizer, "1+1=")], 2, SamplingParams(max_new_tokens=3, seed=9))
    assert torch.equal(torch.rand(3), expected)


def test_update_weights_refuses_a_name_it_does_not_have():
    model, tokenizer = _tiny()
    with pytest.raises(KeyError, match="no parameter 'nope'"):
        HFRolloutEngine(model, tokenizer).update_weights([("nope", torch.zeros(1))])
