import math

import pytest
import torch
from torch.testing import assert_close

from pipeline.losses import sft_loss


def _batch():
    # completion tokens: p = [.5, .25] in row 0, [.5] in row 1; prompt/padding hold junk (-100)
    logprobs = torch.tensor(
        [[-100.0, math.log(0.5), math.log(0.25)], [-100.0, math.log(0.5), -100.0]]
    ).requires_grad_()
    mask = torch.tensor([[0, 1, 1], [0, 1, 0]])
    return logprobs, mask


def test_sft_loss_is_token_mean_nll():
    # NLL: ln2 + ln4 + ln2 = 4 ln2 over 3 tokens -> 4 * .693147 / 3 = .924196
    logprobs, mask = _batch()
    loss = sft_loss(logprobs, mask)
    assert_close(loss, torch.tensor(4 * math.log(2.0) / 3))

    # d loss / d logp = -1/3 on each of the 3 completion tokens, 0 on prompt and padding
    loss.backward()
    assert_close(logprobs.grad, torch.tensor([[0.0, -1 / 3, -1 / 3], [0.0, -1 / 3, 0.0]]))


def test_sft_loss_float_and_bool_masks_agree():
    logprobs, mask = _batch()
    assert_close(sft_loss(logprobs, mask.bool()), sft_loss(logprobs, mask.float()))


def test_sft_loss_ignores_infinite_padding():
    logprobs, mask = _batch()
    padded = torch.where(mask.bool(), logprobs, -math.inf)
    loss = sft_loss(padded, mask)
    assert_close(loss, torch.tensor(4 * math.log(2.0) / 3))
    loss.backward()
    assert torch.isfinite(logprobs.grad).all()


def test_sft_loss_empty_mask_is_zero():
    assert_close(sft_loss(torch.full((2, 3), -1.0), torch.zeros(2, 3)), torch.tensor(0.0))


def test_sft_loss_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        sft_loss(torch.zeros(2, 3), torch.ones(2, 4))
