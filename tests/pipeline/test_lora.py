"""LoRA on the tiny preset: only adapters train, the adapters-off reference is the base model, and
the merged tensors are peft's merge (tests/pipeline/trainers/test_lora_stages.py trains each stage)."""

import copy

import pytest
import torch

from errors import ConfigError
from pipeline.config import LoRAConfig, ModelConfig
from pipeline.forward import completion_logprobs
from pipeline.lora import AdaptersOff, adapter_tensors, apply_lora, is_lora, merged_model, merged_tensors
from pipeline.models import frozen_reference, load_causal_lm, load_tokenizer, resolve_model
from pipeline.rollout import policy_tensors
from pipeline.tokens import encode_prompt, pack

def _tiny(seed: int = 0):
    cfg = ModelConfig()
    source = resolve_model("tiny", cfg)
    tokenizer = load_tokenizer(source)
    return load_causal_lm(source, cfg, tokenizer, seed=seed), tokenizer


def _batch(tokenizer):
    prompts = [encode_prompt(tokenizer, p) for p in ("1+2=", "33+44=", "5-6=")]
    completions = [tokenizer("3", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id],
                   tokenizer("77", add_special_tokens=False)["input_ids"], [tokenizer.eos_token_id]]
    return pack(prompts, completions, tokenizer.pad_token_id)


def _nudged(policy, seed: int = 1):
    """Random non-zero adapters (B starts at zero, so a fresh policy equals its base exactly)."""
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return policy


def test_only_the_adapters_train_and_an_update_moves_only_them():
    base, tokenizer = _tiny()
    before = copy.deepcopy(base.state_dict())
    policy = apply_lora(base, LoRAConfig(rank=4, alpha=8))
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)

    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    batch = _batch(tokenizer)
    loss = -completion_logprobs(policy, batch).mean()
    loss.backward()
    optimizer.step()
    # The base weights are bit for bit what they were; every B matrix moved (from zero).
    after = {k.replace(".base_layer.", "."): v for k, v in policy.get_base_model().state_dict().items() if ".lora_" not in k}
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    moved_b = [n for n, p in policy.named_parameters() if "lora_B" in n and p.abs().sum() > 0]
    assert len(moved_b) == len([n for n in trainable if "lora_B" in n])


def test_the_adapters_off_reference_equals_the_base_model():
    base, tokenizer = _tiny()
    untouched = copy.deepcopy(base).eval()
    policy = _nudged(apply_lora(base, LoRAConfig(rank=4, alpha=8)))
    policy.train()  # as in a trainer: the reference must still run in eval mode, without gradients
    reference = frozen_reference(policy)
    assert isinstance(reference, AdaptersOff)
    batch = _batch(tokenizer)
    with torch.no_grad():
        expected = completion_logprobs(untouched, batch)
        policy_logps = completion_logprobs(policy, batch)
    got = completion_logprobs(reference, batch)
    assert not got.requires_grad
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
    assert not torch.allclose(policy_logps, expected, atol=1e-3)  # the adapters do change the policy
    assert policy.training and all(not m.disable_adapters for m in policy.modules() if hasattr(m, "lora_A"))


def test_a_full_fine_tuning_reference_is_a_frozen_copy():
    base, _ = _tiny()
    reference = frozen_reference(base)
    assert reference is not base and not reference.training
    assert not any(p.requires_grad for p in reference.parameters())


def test_merged_tensors_equal_peft_merge_and_drive_an_engine():
    base, tokenizer = _tiny()
    policy = _nudged(apply_lora(base, LoRAConfig(rank=4, alpha=8)))
    merged = dict(merged_tensors(policy))
    reference = merged_model(policy).state_dict()
    assert merged.keys() == reference.keys()
    for name in merged:
        torch.testing.assert_close(merged[name], reference[name], atol=0, rtol=0)
    assert is_lora(policy) and not is_lora(merged_model(policy))
    # An engine with weights of its own, loaded through policy_tensors, samples the LoRA policy.
    from pipeline.config import HFRolloutConfig
    from pipeline.rollout import SamplingParams, make_engine

    plain, _ = _tiny(seed=5)
    engine = make_engine(HFRolloutConfig(), tokenizer, model=plain)
    engine.update_weights(policy_tensors(policy))
    prompts = [encode_prompt(tokenizer, p) for p in ("1+2=", "33+44=")]
    out = engine.generate(prompts, 1, SamplingParams(max_new_tokens=5, greedy=True))
    with torch.no_grad():
        expected = completion_logprobs(policy.eval(), pack(out.prompt_ids, out.completion_ids, tokenizer.pad_token_id))
    for row, got in enumerate(out.logprobs):
        torch.testing.assert_close(expected[row, : len(got)], torch.tensor(got), atol=1e-4, rtol=1e-4)
    names = adapter_tensors(policy)
    assert names and all(".lora_A." in k or ".lora_B." in k for k in names)


def test_an_unknown_target_module_names_the_field_and_the_layers():
    base, _ = _tiny()
    with pytest.raises(ConfigError, match="model.lora.target_modules.*q_proj"):
        apply_lora(base, LoRAConfig(target_modules=["query_key_value"]))
