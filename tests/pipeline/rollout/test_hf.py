import torch

from pipeline.config import ModelConfig
from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
from pipeline.rollout import SamplingParams
from pipeline.rollout.hf import HFRolloutEngine
from pipeline.tokens import completion_logprobs, encode_prompt, pack


def _tiny():
    cfg = ModelConfig()
    source = resolve_model("tiny", cfg)
    tokenizer = load_tokenizer(source)
    return load_causal_lm(source, cfg, tokenizer, seed=0), tokenizer


def test_generate_groups_completions_and_flags_truncation():
    model, tokenizer = _tiny()
    engine = HFRolloutEngine(model, tokenizer, batch_size=5)  # forces several chunks
    prompts = [encode_prompt(tokenizer, p) for p in ["1+2=", "33+44=", "5-6="]]
    torch.manual_seed(0)
    out = engine.generate(prompts, n=4, sampling=SamplingParams(max_new_tokens=5))
    assert len(out.completion_ids) == len(out.texts) == len(out.logprobs) == 12 and out.group_size == 4
    assert out.prompt_ids[4] == prompts[1] and out.prompt_ids[11] == prompts[2]
    for ids, logps, truncated in zip(out.completion_ids, out.logprobs, out.truncated):
        assert len(ids) == len(logps) and 1 <= len(ids) <= 5
        ends_with_eos = ids[-1] == tokenizer.eos_token_id
        assert truncated == (not ends_with_eos) and (not truncated or len(ids) == 5)
        assert tokenizer.eos_token_id not in ids[:-1]
        assert all(lp <= 0 for lp in logps)


def test_sampling_logprobs_match_a_training_forward():
    # The trainer uses the sampler's log-probs as pi_old: they must equal what a padded training
    # forward computes for the same tokens, or the first ratio is not 1.
    model, tokenizer = _tiny()
    engine = HFRolloutEngine(model, tokenizer)
    prompts = [encode_prompt(tokenizer, p) for p in ["1+2=", "123+456=", "7*8="]]
    torch.manual_seed(1)
    sampling = SamplingParams(temperature=0.7, max_new_tokens=6)
    out = engine.generate(prompts, n=3, sampling=sampling)
    batch = pack(out.prompt_ids, out.completion_ids, tokenizer.pad_token_id)
    with torch.no_grad():
        logps = completion_logprobs(model, batch, temperature=0.7)
    for row, expected in enumerate(out.logprobs):
        torch.testing.assert_close(logps[row, : len(expected)], torch.tensor(expected), atol=1e-4, rtol=1e-4)


def test_greedy_is_deterministic():
    model, tokenizer = _tiny()
    engine = HFRolloutEngine(model, tokenizer)
    prompts = [encode_prompt(tokenizer, "12+7=")]
    a = engine.generate(prompts, 2, SamplingParams(max_new_tokens=4, greedy=True))
    b = engine.generate(prompts, 2, SamplingParams(max_new_tokens=4, greedy=True))
    assert a.completion_ids[0] == a.completion_ids[1] == b.completion_ids[0]


def test_sampling_applies_no_hidden_top_k(monkeypatch):
    # transformers fills an unset top_k with 50; the sampler must switch it off, or the completions
    # come from a truncated distribution while their log-probs are those of the full one.
    import transformers.generation.utils as generation

    built = []
    original = generation.TopKLogitsWarper.__init__

    def record(self, *args, **kwargs):
        built.append(kwargs.get("top_k", args[0] if args else None))
        original(self, *args, **kwargs)

    monkeypatch.setattr(generation.TopKLogitsWarper, "__init__", record)
    model, tokenizer = _tiny()
    HFRolloutEngine(model, tokenizer).generate([encode_prompt(tokenizer, "1+1=")], 2, SamplingParams(max_new_tokens=3))
    assert built == []
