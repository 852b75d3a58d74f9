"""The compiled Llama decode step (`pipeline/rollout/native_step.c`): transformers' logits token by
token over a cache a prefill filled, at batch sizes that fill, pad and span its 8-row blocks; the
sampler's use of it; its copies following trained weights; and the fallback where no compiler builds it."""

import copy
import ctypes
import logging

import pytest
import torch

from pipeline.rollout import native
from pipeline.rollout.packed import PackedLinears, available
from tests.pipeline.rollout.test_fused import (VARIANTS, _counted, _llama, _prompts, _seeded_sample,
                                               _teacher_forced, _variant)

pytestmark = [
    pytest.mark.skipif(not available(), reason="torch without MKL"),
    pytest.mark.skipif(available() and native.library() is None, reason="no C compiler for the compiled decode step"),
]


def _native_step(model, cache, attention_mask):
    return native.NativeLlamaStep(model, native.pack(model), cache, attention_mask)


VARIANTS = VARIANTS | {
    "untied_odd_vocab": {"tie_word_embeddings": False, "vocab_size": 200},  # fills no whole tile
    "odd_widths": {"hidden_size": 40, "head_dim": 10, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "intermediate_size": 48},  # widths that are not multiples of the 16-float vectors
}


@pytest.mark.parametrize("overrides", list(VARIANTS.values()), ids=list(VARIANTS))
def test_the_compiled_step_gives_transformers_logits(overrides):
    model = _variant(overrides)
    assert native.eligible(model)
    prompts = _prompts(vocab=model.config.vocab_size)
    for plain, fast in _teacher_forced(model, prompts, make_step=_native_step):
        torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("rows", [1, 8, 11, 20])
def test_any_batch_size(rows):
    """Rows pad to blocks of 8 inside the step; padded rows write nothing."""
    model = _llama(seed=2)
    lengths = [2 + (3 * i) % 9 for i in range(rows)]
    for plain, fast in _teacher_forced(model, _prompts(lengths=lengths, seed=rows), steps=5, make_step=_native_step):
        torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)


def test_the_copies_follow_weights_changed_in_place():
    """Trained weights are retiled at every call (fused AdamW leaves their version unchanged);
    a frozen model's tiles are kept until a weight changes."""
    model = _llama()
    linears = PackedLinears()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    for _ in range(2):
        head = linears.native(model).head
        torch.testing.assert_close(head, native.pack(model).head)
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        optimizer.step()
        assert not torch.equal(head, native.pack(model).head)
    frozen = copy.deepcopy(model).requires_grad_(False)
    first = linears.native(frozen)
    assert linears.native(frozen) is first
    with torch.no_grad():
        frozen.lm_head.weight.add_(1.0)
    assert linears.native(frozen) is not first


def test_the_sampler_takes_the_compiled_step_and_samples_its_distribution(monkeypatch):
    """Seeded, the compiled step and the model's own forward draw the same tokens here (their logits
    differ by rounding only); the loop calls the step once per new token after the first; rows
    that end early stop changing."""
    import pipeline.rollout.sampler as sampler_module
    from pipeline.rollout import SamplingParams

    model = _llama()
    calls = _counted(monkeypatch, native.NativeLlamaStep)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=7, min_new_tokens=2)

    def draw():
        return _seeded_sample(model, 3, sampling, [5, 6, 7])

    fast = draw()
    assert 0 < len(calls) <= 6
    monkeypatch.setattr(native, "eligible", lambda m: False)
    monkeypatch.setattr(sampler_module, "fused_eligible", lambda m: False)
    taken = len(calls)
    plain = draw()
    assert len(calls) == taken
    assert fast.completion_ids == plain.completion_ids and fast.truncated == plain.truncated
    for a, b in zip(fast.logprobs, plain.logprobs):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=1e-5)


def test_without_a_compiler_the_fused_step_decodes(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path))
    native.library.cache_clear()
    try:
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
        monkeypatch.setattr(native.shutil, "which", lambda name: None)
        with caplog.at_level(logging.WARNING, logger="pipeline.rollout.native"):
            assert native.library() is None
        assert "no C compiler" in caplog.text
        assert not native.eligible(_llama())
        native.library.cache_clear()

        failing = tmp_path / "cc"
        failing.write_text("#!/bin/sh\necho 'cc: cannot compile' >&2\nexit 1\n")
        failing.chmod(0o755)
        monkeypatch.setattr(native.shutil, "which", lambda name: str(failing))
        with caplog.at_level(logging.WARNING, logger="pipeline.rollout.native"):
            assert native.library() is None
        assert "cannot compile" in caplog.text
        assert not list((tmp_path / "native").glob("*.so"))  # nothing half-written left behind
        native.library.cache_clear()

        monkeypatch.setenv("RLVR_NATIVE_DECODE", "0")
        assert native.library() is None
    finally:
        native.library.cache_clear()


def test_the_tiled_layout():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(40, 7, generator=g), torch.randn(9, 7, generator=g)
    tiled = native._tiled([q, k])  # 49 rows: two tiles, the second padded with zero rows
    stacked = torch.cat([q, k, torch.zeros(15, 7)])
    assert tiled.shape == (2, 7, 32)
    torch.testing.assert_close(tiled, stacked.view(2, 32, 7).transpose(1, 2), rtol=0, atol=0)
    gate, up = torch.randn(32, 5, generator=g), torch.randn(32, 5, generator=g)
    pairs = native._tiled([gate, up], pairs=True)
    assert pairs.shape == (2, 5, 32)
    for t in range(2):
        torch.testing.assert_close(pairs[t].t(), torch.cat([gate[16 * t : 16 * t + 16], up[16 * t : 16 * t + 16]]),
                                   rtol=0, atol=0)


@pytest.mark.parametrize("temperature, blocked", [(1.0, None), (0.7, [0, 5]), (1.3, [3])])
def test_the_compiled_draw_is_the_samplers(monkeypatch, temperature, blocked):
    """Seeded, the compiled draw picks the tokens of the sampler's torch draw (one uniform number a
    row, the same stream) with the same log-probs, over logits from peaked to flat, a vocabulary
    that fills no whole block, and blocked ids (min_new_tokens) that are never drawn."""
    import pipeline.rollout.sampler as sampler_module
    from pipeline.rollout import SamplingParams

    g = torch.Generator().manual_seed(7)
    logits = torch.randn(64, 3001, generator=g) * torch.linspace(0.1, 8, 64)[:, None]
    logits[:8, 5] += 30.0  # a blocked id that would be drawn almost surely
    eos = torch.tensor(blocked if blocked is not None else [0])
    sampling = SamplingParams(temperature=temperature, max_new_tokens=4, min_new_tokens=2 if blocked else 0)

    def draws(seed):
        torch.manual_seed(seed)
        return sampler_module._draw(logits, sampling, eos, 0)

    compiled = [draws(seed) for seed in range(30)]
    monkeypatch.setattr(native, "draws", lambda logits: False)
    plain = [draws(seed) for seed in range(30)]
    for (token, logp), (token_ref, logp_ref) in zip(compiled, plain):
        assert torch.equal(token, token_ref)
        torch.testing.assert_close(logp, logp_ref, atol=2e-5, rtol=1e-5)
        if blocked:
            assert not torch.isin(token, eos).any()
    assert len({t for token, _ in compiled for t in token.tolist()}) > 100  # the draws spread


def test_vexp():
    x = torch.cat([torch.linspace(-86, 87, 100_003), torch.randn(10_000) * 5])
    y = torch.empty_like(x)
    native.library().native_exp(ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(y.data_ptr()), ctypes.c_long(x.numel()))
    ref = x.double().exp()
    assert ((y.double() - ref).abs() / ref).max() < 2e-7
