"""The contract every rollout engine passes, whatever its backend: groups in order, EOS and
truncation flags, sampling log-probs equal to a training forward's, seeded reproducibility, and
weights that arrive. A new backend adds itself to `ENGINES` (with a marker when it needs one).

The model is the tiny preset with 2 heads of width 32 (vLLM's CPU attention needs a head size of
at least 32). An engine that takes seconds to start is started once per backend (module scope);
each test then loads the weights it needs into it, which the contract requires to be exact.
"""


import pytest
import torch

from pipeline.config import HFRolloutConfig, ModelConfig, TinyModelConfig, VLLMRolloutConfig, VLLMServerRolloutConfig
from pipeline.forward import completion_logprobs
from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
from pipeline.rollout import SamplingParams, make_engine, policy_tensors, sync_weights
from pipeline.tokens import encode_prompt, pack
from tests.conftest import VLLM_TEST_OPTIONS


def _tiny(seed: int = 0, eos_scale: float = 1.0):
    """The tiny preset (head size 32); `eos_scale` stretches the EOS row of the (tied) output
    embedding so that an untrained model stops about half the time instead of almost never."""
    cfg = ModelConfig(tiny=TinyModelConfig(num_heads=2))
    source = resolve_model("tiny", cfg)
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, cfg, tokenizer, seed=seed)
    with torch.no_grad():
        model.get_output_embeddings().weight[tokenizer.eos_token_id] *= eos_scale
    return model, tokenizer


# backend -> (its rollout config from (batch size, the fixture it needs), that fixture, started once per module)
ENGINES = {
    "hf": (lambda batch_size, _: HFRolloutConfig(batch_size=batch_size), None, False),
    "hf-generate": (lambda batch_size, _: HFRolloutConfig(batch_size=batch_size, decoder="generate"), None, False),
    "vllm": (lambda _, __: VLLMRolloutConfig(**VLLM_TEST_OPTIONS), "vllm_in_process", True),
    "vllm_server": (lambda _, python: VLLMServerRolloutConfig(**VLLM_TEST_OPTIONS, python=python), "vllm_server_python",
                    True),
}
_MARKS = {"vllm": [pytest.mark.vllm], "vllm_server": [pytest.mark.vllm]}


@pytest.fixture(scope="module", params=[pytest.param(name, marks=_MARKS.get(name, [])) for name in sorted(ENGINES)])
def backend(request):
    """(name, the module's shared engine or None)."""
    name = request.param
    config, requirement, shared = ENGINES[name]
    needed = request.getfixturevalue(requirement) if requirement else None
    if not shared:
        yield name, None
        return
    model, tokenizer = _tiny()
    engine = make_engine(config(512, needed), tokenizer, model=model)
    yield name, engine
    engine.close()
    engine.close()  # closing twice is harmless


@pytest.fixture
def build(backend):
    """(engine, model, tokenizer) for a backend; the model is the trainer's copy of the weights."""
    name, shared = backend
    made = []

    def _build(batch_size: int = 512, seed: int = 0, eos_scale: float = 1.0):
        model, tokenizer = _tiny(seed, eos_scale)
        if shared is None:
            engine = make_engine(ENGINES[name][0](batch_size, None), tokenizer, model=model)
            made.append(engine)
        else:
            engine = shared
            engine.update_weights(policy_tensors(model))
        return engine, model, tokenizer

    yield _build
    for engine in made:
        engine.close()
        engine.close()  # closing twice is harmless


def _prompts(tokenizer, texts=("1+2=", "33+44=", "5-6=")):
    return [encode_prompt(tokenizer, p) for p in texts]


def test_n_completions_per_prompt_in_group_order(build):
    engine, _, tokenizer = build(batch_size=5)  # forces several chunks
    prompts = _prompts(tokenizer)
    out = engine.generate(prompts, n=4, sampling=SamplingParams(max_new_tokens=5, seed=0))
    assert out.group_size == 4
    assert len(out.prompt_ids) == len(out.completion_ids) == len(out.texts) == len(out.logprobs) == len(out.truncated) == 12
    assert all(out.prompt_ids[i] == prompts[i // 4] for i in range(12))
    assert out.texts == tokenizer.batch_decode(out.completion_ids, skip_special_tokens=True)


def test_eos_ends_a_completion_and_truncation_is_flagged(build):
    engine, _, tokenizer = build(eos_scale=20.0)
    out = engine.generate(_prompts(tokenizer), n=8, sampling=SamplingParams(max_new_tokens=3, seed=1))
    eos = tokenizer.eos_token_id
    for ids, logps, truncated in zip(out.completion_ids, out.logprobs, out.truncated):
        assert len(ids) == len(logps) and 1 <= len(ids) <= 3
        assert eos not in ids[:-1]  # nothing after an EOS
        assert truncated == (ids[-1] != eos)
        assert not truncated or len(ids) == 3
        assert all(lp <= 0 for lp in logps)
    # With EOS made likely, both kinds occur over 24 samples of up to 3 tokens.
    assert any(out.truncated) and not all(out.truncated)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampling_logprobs_equal_a_training_forward(build, temperature):
    # The trainer takes the sampler's log-probs as pi_old: they must equal what a padded training
    # forward computes for the same tokens (fp32), or the first ratio is not 1.
    engine, model, tokenizer = build()
    out = engine.generate(_prompts(tokenizer, ("1+2=", "123+456=", "7*8=")), n=3,
                          sampling=SamplingParams(temperature=temperature, max_new_tokens=6, seed=2))
    batch = pack(out.prompt_ids, out.completion_ids, tokenizer.pad_token_id)
    with torch.no_grad():
        logps = completion_logprobs(model, batch, temperature=temperature)
    for row, expected in enumerate(out.logprobs):
        torch.testing.assert_close(logps[row, : len(expected)], torch.tensor(expected), atol=1e-4, rtol=1e-4)


def test_a_seed_reproduces_the_completions_and_another_changes_them(build):
    engine, _, tokenizer = build()
    prompts = _prompts(tokenizer)

    def sample(seed):
        return engine.generate(prompts, n=4, sampling=SamplingParams(max_new_tokens=6, seed=seed)).completion_ids

    assert sample(3) == sample(3)
    assert sample(3) != sample(4)


def test_the_same_prompt_twice_in_one_call_gets_independent_samples(build):
    # Each prompt of a call draws its own random numbers (an engine that seeds per request must
    # not give every prompt the same seed, nor overlap one prompt's n seeds with the next's).
    engine, _, tokenizer = build()
    prompt = _prompts(tokenizer, ("1+2=",))[0]
    for seed in (5, None):
        out = engine.generate([prompt] * 4, n=2, sampling=SamplingParams(max_new_tokens=8, seed=seed))
        assert len({tuple(ids) for ids in out.completion_ids}) == 8


def test_greedy_decoding_is_deterministic(build):
    engine, _, tokenizer = build()
    prompts = _prompts(tokenizer, ("12+7=",))
    a = engine.generate(prompts, 2, SamplingParams(max_new_tokens=4, greedy=True))
    b = engine.generate(prompts, 2, SamplingParams(max_new_tokens=4, greedy=True))
    assert a.completion_ids[0] == a.completion_ids[1] == b.completion_ids[0]


def test_weights_round_trip_a_b_a(build):
    # The engine samples from A, then from B once B's tensors are pushed, then from A again.
    engine, model_a, tokenizer = build()
    model_b, _ = _tiny(seed=1)
    a_tensors = {k: v.clone() for k, v in policy_tensors(model_a)}
    prompts = _prompts(tokenizer)
    greedy = SamplingParams(max_new_tokens=6, greedy=True)

    def logps():
        return engine.generate(prompts, 1, greedy).logprobs

    first = logps()
    engine.update_weights(policy_tensors(model_b))
    second = logps()
    engine.update_weights(a_tensors.items())
    third = logps()
    assert first == third and first != second


def test_sync_weights_makes_the_engine_follow_the_trainer(build):
    engine, model, tokenizer = build()
    prompts = _prompts(tokenizer)
    greedy = SamplingParams(max_new_tokens=6, greedy=True)
    before = engine.generate(prompts, 1, greedy).logprobs
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    sync_weights(engine, model)
    after = engine.generate(prompts, 1, greedy)
    assert after.logprobs != before
    batch = pack(after.prompt_ids, after.completion_ids, tokenizer.pad_token_id)
    with torch.no_grad():
        expected = completion_logprobs(model, batch)
    for row, got in enumerate(after.logprobs):
        torch.testing.assert_close(expected[row, : len(got)], torch.tensor(got), atol=1e-4, rtol=1e-4)


def test_a_skipped_sync_is_caught_by_the_arrival_check(build):
    # The trainer takes a step the engine never hears of: the probe's log-probs give it away.
    from errors import RunHealthError
    from pipeline.rollout.weight_check import WeightArrivalCheck

    engine, model, tokenizer = build()
    check = WeightArrivalCheck(_prompts(tokenizer)[0], tokenizer.pad_token_id, tolerance=1e-4)
    first = check(engine, model)
    if engine.shares_weights:  # it samples from the trainer's module: nothing can go stale
        assert first is None
        return
    assert first < 1e-5
    with torch.no_grad():  # about one AdamW step at lr 5e-4
        for p in model.parameters():
            p.add_(torch.randn_like(p).sign() * 5e-4)
    with pytest.raises(RunHealthError, match="weights are not the trainer's"):
        check(engine, model)
    sync_weights(engine, model)
    assert check(engine, model) < 1e-5
