"""Forward helpers: completion log-probs, the scalar head (reward scores, critic values), pair
log-probs, demonstration likelihood, and the RewardModel wrapper."""

import math

import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.forward import (
    RewardModel,
    all_pair_logps,
    completion_logprobs,
    completion_values,
    grouped_completion_logprobs,
    mean_token_logprob,
    sequence_scores,
    vocabulary_fingerprint,
)
from pipeline.models import load_causal_lm, load_tokenizer, resolve_model, scorer_from_causal_lm
from pipeline.tokens import pack, pack_groups


@pytest.fixture(scope="module")
def tiny():
    cfg = ModelConfig()
    source = resolve_model("tiny", cfg)
    tokenizer = load_tokenizer(source)
    return load_causal_lm(source, cfg, tokenizer, seed=0).eval(), tokenizer


def _unpadded_logprobs(model, prompt, completion, temperature=1.0):
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float() / temperature  # (T, V)
    logps = torch.log_softmax(logits, -1)
    return [float(logps[len(prompt) - 1 + t, tok]) for t, tok in enumerate(completion)]


def test_completion_logprobs_equal_an_unpadded_forward(tiny):
    # Two rows of different lengths: left padding of the prompt and right padding of the completion
    # must not change any completion token's log-prob.
    model, tokenizer = tiny
    prompts, completions = [[5, 6, 7], [8, 9]], [[10, 11], [12]]
    batch = pack(prompts, completions, tokenizer.pad_token_id)
    with torch.no_grad():
        got = completion_logprobs(model, batch, temperature=0.7)  # (2, 2)
    for row in range(2):
        expected = _unpadded_logprobs(model, prompts[row], completions[row], temperature=0.7)
        torch.testing.assert_close(got[row, : len(expected)], torch.tensor(expected), atol=1e-5, rtol=0)


def test_critic_values_read_the_state_before_each_completion_token(tiny):
    model, tokenizer = tiny
    scorer = scorer_from_causal_lm(model).eval()
    batch = pack([[5, 6, 7], [8, 9]], [[10, 11], [12]], tokenizer.pad_token_id)
    with torch.no_grad():
        values = completion_values(scorer, batch)  # (2, 2)
        # Row 1 alone: prompt [8, 9] then completion token 12; V for token 12 reads the state at token 9.
        alone = scorer(input_ids=torch.tensor([[8, 9]])).logits.squeeze(-1)
        # Row 0's score is the head at its last completion token, 11: the state after [5, 6, 7, 10, 11].
        whole = scorer(input_ids=torch.tensor([[5, 6, 7, 10, 11]])).logits.squeeze(-1)
        scores = sequence_scores(scorer, batch)
    assert values.shape == (2, 2)
    torch.testing.assert_close(values[1, 0], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(scores[0], whole[0], atol=1e-5, rtol=0)


def test_pair_logps_are_sums_over_each_completion(tiny):
    model, tokenizer = tiny
    pairs = [([5, 6], [7, 8], [9]), ([10], [11], [12, 13, 14])]  # (prompt, chosen, rejected) ids
    got = all_pair_logps(model, pairs, tokenizer.pad_token_id, batch_size=1)  # (2, 2)
    for i, (prompt, chosen_ids, rejected_ids) in enumerate(pairs):
        chosen = sum(_unpadded_logprobs(model, prompt, chosen_ids))
        rejected = sum(_unpadded_logprobs(model, prompt, rejected_ids))
        torch.testing.assert_close(got[i], torch.tensor([chosen, rejected]), atol=1e-4, rtol=0)


def test_mean_token_logprob_weighs_every_token_once(tiny):
    model, tokenizer = tiny
    examples = [([5, 6], [7, 8, 9]), ([10], [11])]
    tokens = [lp for p, c in examples for lp in _unpadded_logprobs(model, p, c)]
    expected = sum(tokens) / len(tokens)  # 4 tokens, not a mean of the two rows' means
    assert math.isclose(mean_token_logprob(model, examples, tokenizer.pad_token_id, batch_size=1), expected, abs_tol=1e-5)


def test_vocabulary_fingerprint_tells_tokenizers_apart(tiny):
    _, tokenizer = tiny
    assert vocabulary_fingerprint(tokenizer) == vocabulary_fingerprint(tokenizer)
    other = ModelConfig(tiny={"vocab_size": 300})
    other_tokenizer = load_tokenizer(resolve_model("tiny", other))
    assert vocabulary_fingerprint(other_tokenizer) != vocabulary_fingerprint(tokenizer)


def test_reward_model_scores_ids_and_texts_alike(tiny, tmp_path):
    model, tokenizer = tiny
    scorer = scorer_from_causal_lm(model, seed=0)
    torch.nn.init.normal_(scorer.score.weight, std=1.0)
    scorer.config.pad_token_id = tokenizer.pad_token_id
    scorer.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    rm = RewardModel(tmp_path / "rm", device="cpu", batch_size=2)
    assert rm.vocabulary == vocabulary_fingerprint(tokenizer)
    from pipeline.tokens import encode_demonstration

    texts = rm.score_texts(["12+7=", "3-5=", "1+1="], ["19", "-2", "2"], [None, None, None])
    encoded = [encode_demonstration(tokenizer, p, c, 512) for p, c in [("12+7=", "19"), ("3-5=", "-2"), ("1+1=", "2")]]
    ids = rm.score_ids([e[0] for e in encoded], [e[1] for e in encoded])
    assert texts.shape == (3,) and torch.equal(texts, ids)
    assert texts.unique().numel() == 3


def _groups(tokenizer):
    """Two prompts of different lengths, groups of 3 and 2 completions of lengths 1 to 4, in an
    order that interleaves the groups (as GRPO's kept samples may)."""
    a, b = tokenizer("12+7=")["input_ids"], tokenizer("123+456=")["input_ids"]
    completions = [[5, 6, 7], [8], [9, 10, 11, 12], [13, 14], [15, 16, 17]]
    return [a, b, a, b, a], completions


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("layout", ["one_forward", "prompt_cache"])
def test_grouped_logprobs_and_gradients_equal_one_packed_sequence_per_completion(tiny, temperature, layout,
                                                                                 monkeypatch):
    """Both layouts: one forward over each prompt and its completions under a 4D mask (sdpa
    attention), and two forwards, the completions on the prompts' repeated cache (others)."""
    import pipeline.forward as forward_module

    if layout == "prompt_cache":
        monkeypatch.setattr(forward_module, "_TREE_ATTENTION", ())
    model, tokenizer = tiny
    prompts, completions = _groups(tokenizer)
    packed = pack(prompts, completions, tokenizer.pad_token_id)
    grouped = pack_groups(prompts, completions, tokenizer.pad_token_id)
    assert grouped.prompt_ids.shape[0] == 2 and grouped.owner.tolist() == [0, 1, 0, 1, 0]
    assert torch.equal(grouped.completion_ids * grouped.completion_mask.long(), packed.completion_ids * packed.completion_mask.long())

    def loss_and_grads(logps, mask):
        model.zero_grad()
        loss = (logps * mask * torch.linspace(1, 2, logps.shape[1])).sum()
        loss.backward()
        return logps.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    expected, expected_grads = loss_and_grads(completion_logprobs(model, packed, temperature), packed.completion_mask)
    got, grads = loss_and_grads(grouped_completion_logprobs(model, grouped, temperature), grouped.completion_mask)
    mask = packed.completion_mask.bool()
    torch.testing.assert_close(got[mask], expected[mask], atol=1e-5, rtol=1e-5)
    for name, grad in expected_grads.items():  # the gradient reaches the prompts through the cache
        torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    assert any(g.abs().sum() > 0 for g in grads.values())
