"""The hf engine's KV-cache loop: a shared prefix changes nothing but the cost, its tokens follow
the model's distribution (with temperature, top-p and min_new_tokens), and its greedy decoding is
transformers `generate`'s."""

import copy

import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
from pipeline.rollout import SamplingParams
from pipeline.rollout.hf import HFRolloutEngine
from pipeline.rollout.sampler import sample
from pipeline.tokens import encode_prompt


@pytest.fixture(scope="module")
def tiny():
    cfg = ModelConfig()
    source = resolve_model("tiny", cfg)
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, cfg, tokenizer, seed=0).eval()
    with torch.no_grad():  # EOS about as likely as a digit, so completions end at different lengths
        model.get_output_embeddings().weight[tokenizer.eos_token_id] *= 20
    return model, tokenizer


def _prompts(tokenizer, texts=("1+2=", "33+44=", "5-6=", "123*4=")):
    return [encode_prompt(tokenizer, t) for t in texts]  # of different lengths: left padding matters


SETTINGS = [
    SamplingParams(max_new_tokens=8),
    SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=8),
    SamplingParams(temperature=1.3, max_new_tokens=8, min_new_tokens=5),
]


@pytest.mark.parametrize("sampling", SETTINGS, ids=["plain", "top_p", "min_new_tokens"])
def test_a_shared_prefix_draws_the_same_tokens_as_one_prefill_per_completion(tiny, sampling):
    model, tokenizer = tiny
    eos, pad = [tokenizer.eos_token_id], tokenizer.pad_token_id

    def draw(shared):
        torch.manual_seed(11)
        return sample(model, _prompts(tokenizer), 6, sampling, eos, pad, shared_prefix=shared)

    shared, plain = draw(True), draw(False)
    assert shared.completion_ids == plain.completion_ids
    assert shared.truncated == plain.truncated
    for a, b in zip(shared.logprobs, plain.logprobs):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=1e-5)
    lengths = {len(c) for c in shared.completion_ids}
    assert len(lengths) > 1  # EOS stopped some rows early: the loop kept the others going
    if sampling.min_new_tokens:
        assert min(lengths) >= sampling.min_new_tokens


def test_greedy_decoding_matches_transformers_generate(tiny):
    model, tokenizer = tiny
    greedy = SamplingParams(max_new_tokens=8, greedy=True)
    loop = HFRolloutEngine(model, tokenizer).generate(_prompts(tokenizer), 2, greedy)
    generate = HFRolloutEngine(model, tokenizer, decoder="generate").generate(_prompts(tokenizer), 2, greedy)
    assert loop.completion_ids == generate.completion_ids and loop.truncated == generate.truncated
    for a, b in zip(loop.logprobs, generate.logprobs):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.8, 0.6)])
def test_first_tokens_follow_the_models_distribution(tiny, temperature, top_p):
    model, tokenizer = tiny
    prompt = encode_prompt(tokenizer, "12+7=")
    torch.manual_seed(0)
    n = 4000
    out = sample(model, [prompt], n, SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=1),
                 [tokenizer.eos_token_id], tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt])).logits[0, -1] / temperature
    probs = torch.softmax(logits, -1)
    kept = probs.sort(descending=True)
    nucleus = kept.indices[: int((kept.values.cumsum(0) < top_p).sum()) + 1]  # smallest set reaching top_p
    target = torch.zeros_like(probs)
    target[nucleus] = probs[nucleus] / probs[nucleus].sum()
    counts = torch.bincount(torch.tensor([c[0] for c in out.completion_ids]), minlength=probs.numel()).float()
    assert counts[target == 0].sum() == 0  # nothing outside the nucleus
    assert _chi_square_excess(counts, target * n) < 6  # in standard deviations of the statistic
    # the recorded log-prob is the full distribution's (before top-p), for every draw
    expected = torch.log_softmax(logits, -1)[torch.tensor([c[0] for c in out.completion_ids])]
    torch.testing.assert_close(torch.tensor([lp[0] for lp in out.logprobs]), expected, atol=1e-5, rtol=1e-5)


def test_groups_are_not_split_across_chunks_and_batches_change_nothing(tiny):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)
    sampling = SamplingParams(max_new_tokens=6, seed=5)
    small = HFRolloutEngine(model, tokenizer, batch_size=3).generate(prompts, 4, sampling)  # one group a chunk
    large = HFRolloutEngine(model, tokenizer, batch_size=512).generate(prompts, 4, sampling)
    assert len(small.completion_ids) == 16 and small.prompt_ids == large.prompt_ids
    # one multinomial draw per step and chunk: other chunks mean other random numbers, the same law
    assert small.completion_ids != large.completion_ids or small.logprobs != large.logprobs


def _chi_square_excess(observed: torch.Tensor, expected: torch.Tensor) -> float:
    """Pearson's chi-square of observed against expected counts, over bins of tokens (by falling
    probability) expecting >= 50 draws each, as (X^2 - df) / sqrt(2 df): about N(0, 1) when the draws
    follow the expected law; a wrong temperature or nucleus gives tens to hundreds."""
    order = expected.argsort(descending=True)
    bins, o, e = [], 0.0, 0.0
    for i in order.tolist():
        if expected[i] == 0:
            continue
        o, e = o + float(observed[i]), e + float(expected[i])
        if e >= 50:
            bins.append((o, e))
            o, e = 0.0, 0.0
    if e:
        last_o, last_e = bins.pop()
        bins.append((last_o + o, last_e + e))
    x2 = sum((o - e) ** 2 / e for o, e in bins)
    df = len(bins) - 1
    return (x2 - df) / (2 * df) ** 0.5


@pytest.mark.parametrize("path", ["native", "fused", "per_layer"])
def test_packed_weights_decode_the_same_and_follow_weight_updates(tiny, path, monkeypatch):
    """Packed copies, through the compiled Llama step, the fused torch step or the model's forward
    with each linear layer packed (the path of other architectures), sample what transformers'
    forward samples."""
    import pipeline.rollout.sampler as sampler_module
    from pipeline.rollout import native
    from pipeline.rollout.packed import PackedLinears, available

    if not available():
        pytest.skip("torch without MKL")
    if path == "native" and native.library() is None:
        pytest.skip("no C compiler for the compiled decode step")
    if path != "native":
        monkeypatch.setattr(native, "eligible", lambda model: False)
    if path == "per_layer":
        monkeypatch.setattr(sampler_module, "fused_eligible", lambda model: False)
    fused = path != "per_layer"
    model, tokenizer = tiny
    model = copy.deepcopy(model)
    eos, pad, prompts = [tokenizer.eos_token_id], tokenizer.pad_token_id, _prompts(tokenizer)
    linears = PackedLinears()
    sampling = SamplingParams(temperature=0.9, max_new_tokens=8)

    def draw(packed):
        torch.manual_seed(4)
        return sample(model, prompts, 3, sampling, eos, pad, linears=linears if packed else None)

    # The trainer's optimiser: fused AdamW changes the weights in place without bumping their version.
    # The updates are sized to move every completion's log-probs (copies left stale would show) while
    # the logits stay of the size training sees: larger weights amplify float rounding until a seeded
    # draw near a token boundary can fall either way between kernels that sum in different orders.
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.02, fused=True)
    previous = None
    for round_ in range(3):  # later rounds run on weights changed in place, by hand, then by the optimiser
        packed, plain = draw(True), draw(False)
        assert packed.completion_ids == plain.completion_ids
        for a, b in zip(packed.logprobs, plain.logprobs):
            torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=1e-5)
        assert all(type(m).forward is m.forward.__func__ for m in model.modules()
                   if isinstance(m, torch.nn.Linear))  # nothing left patched
        if previous is not None:  # the weights moved every completion
            assert all(abs(a[0] - b[0]) > 1e-3 for a, b in zip(packed.logprobs, previous.logprobs))
        previous = packed
        if round_ == 0:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.05)
        else:
            for p in model.parameters():
                p.grad = torch.randn_like(p)
            optimizer.step()
    if fused:
        assert linears._fused is not None and not linears._packed
    else:
        assert linears._fused is None
        assert len(linears._packed) == sum(isinstance(m, torch.nn.Linear) for m in model.modules())
