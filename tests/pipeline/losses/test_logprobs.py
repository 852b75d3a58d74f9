import math

import pytest
import torch
from torch.testing import assert_close

from pipeline.losses import masked_mean, token_logprobs


def _reference(logits, targets, temperature):
    """The plain way: full log-softmax, then gather. (B, T, V), (B, T) -> (B, T)."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def test_token_logprobs_by_hand():
    # logits [0, ln 3] -> softmax [1/4, 3/4]: target 1 -> ln .75 = -.287682, target 0 -> ln .25
    # temperature 2: logits [0, ln3 / 2] -> p(1) = sqrt3 / (1 + sqrt3) = .633975 -> -.455746
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])  # (1, 2, 2)
    targets = torch.tensor([[1, 0]])
    assert_close(token_logprobs(logits, targets), torch.tensor([[-0.287682, -1.386294]]))
    assert_close(
        token_logprobs(logits[:, :1], targets[:, :1], temperature=2.0),
        torch.tensor([[-0.455746]]),
    )


@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.3])
@pytest.mark.parametrize("chunk_size", [None, 1024, 3, 1])
def test_token_logprobs_matches_log_softmax_gather(temperature, chunk_size):
    # B * T = 10 rows: chunk 3 leaves a ragged last chunk of 1
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=gen) * 3
    targets = torch.randint(0, 11, (2, 5), generator=gen)
    got = token_logprobs(logits, targets, temperature=temperature, chunk_size=chunk_size)
    assert got.shape == (2, 5)
    assert_close(got, _reference(logits, targets, temperature))


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_token_logprobs_gradient_matches_reference(chunk_size):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 7, generator=gen)
    targets = torch.randint(0, 7, (3, 4), generator=gen)
    weights = torch.randn(3, 4, generator=gen)  # a non-uniform upstream gradient

    ours = logits.clone().requires_grad_()
    (token_logprobs(ours, targets, 0.8, chunk_size) * weights).sum().backward()
    ref = logits.clone().requires_grad_()
    (_reference(ref, targets, 0.8) * weights).sum().backward()
    assert_close(ours.grad, ref.grad)


def test_token_logprobs_bf16_logits_give_float32():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 5, generator=gen).bfloat16()
    targets = torch.randint(0, 5, (2, 3), generator=gen)
    got = token_logprobs(logits, targets, chunk_size=2)
    assert got.dtype == torch.float32
    assert_close(got, _reference(logits, targets, 1.0))  # reference upcasts the same bf16 values


@pytest.mark.parametrize(
    "logits_shape, targets_shape, kwargs",
    [
        ((2, 3, 5), (2, 4), {}),
        ((2, 3, 5), (2, 3), {"temperature": 0.0}),
        ((2, 3, 5), (2, 3), {"chunk_size": 0}),
    ],
)
def test_token_logprobs_rejects_bad_arguments(logits_shape, targets_shape, kwargs):
    targets = torch.zeros(targets_shape, dtype=torch.long)
    with pytest.raises(ValueError):
        token_logprobs(torch.zeros(logits_shape), targets, **kwargs)


def test_masked_mean_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # all: (1 + 2 + 4) / 3 = 2.3333; per row: [(1 + 2) / 2, 4 / 1] = [1.5, 4]
    assert_close(masked_mean(x, mask), torch.tensor(7 / 3))
    assert_close(masked_mean(x, mask.bool(), dim=-1), torch.tensor([1.5, 4.0]))
    # per column: [(1 + 4) / 2, 2 / 1, 0 / clamp(0, 1)] = [2.5, 2, 0]
    assert_close(masked_mean(x, mask, dim=0), torch.tensor([2.5, 2.0, 0.0]))


def test_masked_mean_empty_mask_is_zero_not_nan():
    # denominator clamped at 1: 0 / 1 = 0 rather than 0 / 0 = NaN
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    assert_close(masked_mean(x, torch.zeros(2, 2)), torch.tensor(0.0))
    assert_close(masked_mean(x, mask, dim=1), torch.tensor([0.0, 4.0]))
