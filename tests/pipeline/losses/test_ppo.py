import pytest
import torch

from pipeline.losses import gae, kl_shaped_rewards, masked_clip_fraction, policy_loss, value_loss, whiten


def test_gae_by_hand_with_the_value_after_the_last_token_zero():
    rewards = torch.tensor([[0.0, 1.0, 5.0]])  # the 5 is padding: ignored
    values = torch.tensor([[0.5, 0.2, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # t=1 (last valid): delta = 1 + 1 * 0 - 0.2 = 0.8; A1 = 0.8
    # t=0: delta = 0 + 0.2 - 0.5 = -0.3; A0 = -0.3 + 1 * 0.5 * 0.8 = 0.1
    torch.testing.assert_close(adv, torch.tensor([[0.1, 0.8, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[0.6, 1.0, 0.0]]))


def test_gae_with_discount_and_rows_of_different_lengths():
    rewards = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    values = torch.tensor([[0.5, 0.2], [1.0, 3.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.95)
    # row 0: A1 = 1 - 0.2 = 0.8; delta0 = 0 + 0.9 * 0.2 - 0.5 = -0.32; A0 = -0.32 + 0.9 * 0.95 * 0.8 = 0.364
    # row 1: one token, V after it 0: A0 = 2 - 1 = 1 (the padded value 3 is never used)
    torch.testing.assert_close(adv, torch.tensor([[0.364, 0.8], [1.0, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[0.864, 1.0], [2.0, 0.0]]))


def test_kl_shaped_rewards_put_the_score_on_the_last_valid_token():
    logprobs = torch.tensor([[-1.0, -2.0, 0.0], [-1.0, 0.0, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, 0.0], [-1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    rewards, kl = kl_shaped_rewards(logprobs, ref, torch.tensor([3.0, -2.0]), mask, beta=0.1)
    # row 0: kl = [0.5, -1]; rewards = [-0.05, +0.1 + 3]; row 1: kl 0, score -2 on its only token
    torch.testing.assert_close(kl, torch.tensor([[0.5, -1.0, 0.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 3.1, 0.0], [-2.0, 0.0, 0.0]]))


def test_whiten_over_the_mask_only():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    # mean 2, unbiased std 1 -> [-1, 0, 1], padding stays 0
    torch.testing.assert_close(whiten(x, mask), torch.tensor([[-1.0, 0.0, 1.0, 0.0]]), atol=1e-6, rtol=0)


def test_policy_loss_by_hand():
    logprobs = torch.log(torch.tensor([[1.5, 0.5, 1.0], [1.5, 0.5, 1.0]]))
    old = torch.zeros(2, 3)
    adv = torch.tensor([[1.0, 1.0, 7.0], [-1.0, -1.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    # A=+1: ratio 1.5 -> min(1.5, 1.2) = 1.2; ratio 0.5 -> min(0.5, 0.8) = 0.5 -> losses -1.2, -0.5
    # A=-1: ratio 1.5 -> min(-1.5, -1.2) = -1.5; ratio 0.5 -> min(-0.5, -0.8) = -0.8 -> losses 1.5, 0.8
    assert policy_loss(logprobs[:1], old[:1], adv[:1], mask[:1], clip=0.2).item() == pytest.approx(-0.85, abs=1e-6)
    assert policy_loss(logprobs[1:], old[1:], adv[1:], mask[1:], clip=0.2).item() == pytest.approx(1.15, abs=1e-6)
    assert policy_loss(logprobs, old, adv, mask, clip=0.2).item() == pytest.approx(0.15, abs=1e-6)


def test_policy_loss_has_no_gradient_where_the_clip_binds():
    logprobs = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_(True)
    policy_loss(logprobs, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), clip=0.2).backward()
    # token 0: ratio 1.5 > 1.2 with A > 0 -> clipped, no gradient; token 1: d(-ratio)/dlogp / 2 = -1.1 / 2
    torch.testing.assert_close(logprobs.grad, torch.tensor([[0.0, -0.55]]))


def test_policy_loss_ignores_padding_that_holds_minus_infinity():
    logprobs = torch.tensor([[0.0, float("-inf")]])
    loss = policy_loss(logprobs, torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(-1.0)


def test_value_loss_by_hand():
    values = torch.tensor([[1.0, 0.0]])
    old = torch.tensor([[0.5, 0.0]])
    returns = torch.tensor([[2.0, 0.3]])
    # token 0: (1 - 2)^2 = 1; clipped V = clamp(1, 0.3, 0.7) = 0.7 -> (0.7 - 2)^2 = 1.69; 0.5 * max = 0.845
    # token 1: (0 - 0.3)^2 = 0.09 both ways -> 0.045; mean 0.445
    assert value_loss(values, old, returns, torch.ones(1, 2), clip=0.2).item() == pytest.approx(0.445, abs=1e-6)
    # V already at the return but far from V_old: the clipped term (0.2 - 2)^2 = 3.24 is the max -> 1.62
    assert value_loss(torch.tensor([[2.0]]), torch.zeros(1, 1), torch.tensor([[2.0]]), torch.ones(1, 1)).item() == pytest.approx(1.62)


def test_clip_fractions():
    new, old, mask = torch.log(torch.tensor([[1.5, 1.1, 0.7]])), torch.zeros(1, 3), torch.ones(1, 3)
    # ratios 1.5, 1.1, 0.7: two of three outside [0.8, 1.2]
    assert masked_clip_fraction(new, old, mask, 0.2, log_space=True).item() == pytest.approx(2 / 3)
    assert masked_clip_fraction(torch.tensor([[0.5, 0.1]]), torch.zeros(1, 2), torch.ones(1, 2), 0.2, log_space=False).item() == 0.5


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        gae(torch.zeros(2, 3), torch.zeros(2, 2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="scores"):
        kl_shaped_rewards(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3), 0.1)
