"""The fused Llama decode step: the logits of transformers' forward, token by token over a cache a
prefill filled (left padding, grouped-query heads, biases, scaled RoPE, weights changed in place),
and the models it must leave to transformers' forward."""

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from pipeline.rollout import fused
from pipeline.rollout.packed import PackedLinears, available
from pipeline.rollout.sampler import _kv_cache, _last_logits

pytestmark = pytest.mark.skipif(not available(), reason="torch without MKL")


def _llama(seed=0, **overrides) -> LlamaForCausalLM:
    config = dict(vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=6,
                  num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**(config | overrides))).eval()


def _prompts(lengths=(5, 9, 2, 7), vocab=97, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]


def _counted(monkeypatch, step_class) -> list:
    """The calls of `step_class` instances, one entry each."""
    calls = []
    original = step_class.__call__
    monkeypatch.setattr(step_class, "__call__", lambda self, *a: (calls.append(1), original(self, *a))[1])
    return calls


def _seeded_sample(model, n, sampling, eos):
    from pipeline.rollout.sampler import sample

    torch.manual_seed(3)
    return sample(model, _prompts(), n, sampling, eos, 0, linears=PackedLinears())


def _fused_step(model, cache, attention_mask):
    return fused.FusedLlamaStep(model, fused.fuse(model, attention_mask.shape[0]), cache, attention_mask)


def _teacher_forced(model, prompts, steps=6, make_step=_fused_step):
    """Logits of `steps` decode steps through transformers' forward and through `make_step`'s step
    (the fused one unless given), both fed the same tokens (the forward's argmax), from one prefill each."""
    width = max(len(p) for p in prompts)
    b = len(prompts)
    ids = torch.zeros((b, width), dtype=torch.long)
    mask = torch.zeros((b, width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    full = torch.cat([mask, mask.new_ones((b, steps))], dim=-1)
    start = mask.sum(-1, keepdim=True)
    with torch.inference_mode():
        plain_cache, fused_cache = _kv_cache(model, width + steps), _kv_cache(model, width + steps)
        plain = _last_logits(model, ids, mask, positions, plain_cache)
        _last_logits(model, ids, mask, positions, fused_cache)
        step = make_step(model, fused_cache, full)
        out = []
        for t in range(steps - 1):
            token = plain.argmax(-1)
            plain = _last_logits(model, token[:, None], full[:, : width + t + 1], start + t, plain_cache)
            out.append((plain, step(token, start + t).clone()))  # a step may reuse its buffer
    return out


# Llama variants a decode step must follow (tests/pipeline/rollout/test_native.py adds two)
VARIANTS = {
    "gqa": {},
    "mha": {"num_key_value_heads": 6},  # no grouping
    "biases_mqa": {"num_key_value_heads": 1, "attention_bias": True, "mlp_bias": True},
    "linear_rope": {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}},
    "head_dim": {"head_dim": 16, "num_attention_heads": 4, "num_key_value_heads": 2},  # heads x head_dim != hidden
    "untied": {"tie_word_embeddings": False},
}


def _variant(overrides) -> LlamaForCausalLM:
    model = _llama(**overrides)
    if overrides.get("attention_bias"):  # biases start at zero: make them count
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("overrides", list(VARIANTS.values()), ids=list(VARIANTS))
def test_the_fused_step_gives_transformers_logits(overrides):
    model = _variant(overrides)
    assert fused.eligible(model)
    for plain, fast in _teacher_forced(model, _prompts()):
        torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)


def test_the_fused_copies_follow_weights_changed_in_place():
    """A trained weight is repacked at every call, even when the fused AdamW step leaves its version
    unchanged; a frozen model's copies are kept until a weight changes."""
    model = _llama()
    linears = PackedLinears()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    prompts = _prompts()

    def logits(m):
        head = linears.fused(m, len(prompts))[1]
        plain = fused.fuse(m, len(prompts))[1]
        x = torch.randn(len(prompts), m.config.hidden_size, generator=torch.Generator().manual_seed(0))
        return fused._product(x, head), fused._product(x, plain)

    for _ in range(2):
        packed, fresh = logits(model)
        torch.testing.assert_close(packed, fresh)
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        optimizer.step()
    frozen = copy.deepcopy(model).requires_grad_(False)
    first = linears.fused(frozen, 4)
    assert linears.fused(frozen, 4) is first  # unchanged weights: the same copies
    with torch.no_grad():
        frozen.lm_head.weight.add_(1.0)  # bumps the version
    assert linears.fused(frozen, 4) is not first


def test_other_models_decode_through_transformers_forward():
    model = _llama()
    assert fused.eligible(model)
    assert not fused.eligible(copy.deepcopy(model).to(torch.bfloat16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fused.eligible(model)
    silu_free = _llama(hidden_act="gelu")
    assert not fused.eligible(silu_free)

    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(copy.deepcopy(model), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert not fused.eligible(lora) and not fused.eligible(lora.get_base_model())  # q_proj is a LoRA layer


def test_the_sampler_takes_the_fused_step_for_llama_and_samples_its_distribution(monkeypatch):
    """Seeded, the fused step and the model's own forward draw the same tokens here (their logits
    differ by rounding only); the loop calls the fused step once per new token after the first
    (where the compiled step is off)."""
    import pipeline.rollout.sampler as sampler_module
    from pipeline.rollout import SamplingParams, native

    monkeypatch.setattr(native, "eligible", lambda m: False)
    model = _llama()
    calls = _counted(monkeypatch, fused.FusedLlamaStep)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=6, min_new_tokens=6)

    def draw():
        return _seeded_sample(model, 2, sampling, [0])

    fast = draw()
    assert len(calls) == 5
    monkeypatch.setattr(sampler_module, "fused_eligible", lambda m: False)
    plain = draw()
    assert len(calls) == 5
    assert fast.completion_ids == plain.completion_ids
    for a, b in zip(fast.logprobs, plain.logprobs):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=1e-5)
