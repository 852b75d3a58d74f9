import math

import pytest
import torch
from torch.testing import assert_close

from pipeline.losses import group_advantages, grpo_loss, masked_group_advantages

LN2 = math.log(2.0)


def _t(values):
    return torch.tensor(values, dtype=torch.float32)


# ---------------------------------------------------------------- group_advantages


def test_group_advantages_std_two_groups():
    # group [1, 0]: mean .5, unbiased std sqrt((.25 + .25) / 1) = .70711 -> +-.5 / .70711 = +-.70711
    # group [0, 0]: mean 0, std 0 -> 0 / (0 + eps) = 0: no signal
    adv = group_advantages(_t([1.0, 0.0, 0.0, 0.0]), group_size=2)
    a = 0.5 / (math.sqrt(0.5) + 1e-6)
    assert_close(adv, _t([a, -a, 0.0, 0.0]))


def test_group_advantages_uses_unbiased_std():
    # group [1, 2, 3]: mean 2, unbiased std sqrt((1 + 0 + 1) / 2) = 1 -> [-1, 0, 1]
    # (the biased std sqrt(2/3) = .8165 would give [-1.2247, 0, 1.2247])
    adv = group_advantages(_t([1.0, 2.0, 3.0]), group_size=3)
    assert_close(adv, _t([-1.0, 0.0, 1.0]) / (1.0 + 1e-6))


def test_group_advantages_scale_none_is_dr_grpo():
    # group [1, 0]: mean .5 -> [.5, -.5]; group [3, 1]: mean 2 -> [1, -1]; no std division
    adv = group_advantages(_t([1.0, 0.0, 3.0, 1.0]), group_size=2, scale="none")
    assert_close(adv, _t([0.5, -0.5, 1.0, -1.0]))


def test_group_advantages_accepts_integer_rewards():
    # [1, 0] as long: same as the float case, returned as float
    adv = group_advantages(torch.tensor([1, 0]), group_size=2, scale="none")
    assert_close(adv, _t([0.5, -0.5]))


@pytest.mark.parametrize(
    "n, group_size, scale",
    [(5, 2, "std"), (4, 0, "std"), (3, 1, "std"), (4, 2, "zscore")],
)
def test_group_advantages_rejects_bad_arguments(n, group_size, scale):
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(n), group_size=group_size, scale=scale)


# ---------------------------------------------------------------- grpo_loss: clipping


def _one_token_each(ratios, advantages):
    """B sequences of one token each, old log-probs 0, so exp(logprobs - old) = ratio."""
    logprobs = torch.log(_t(ratios)).unsqueeze(-1).requires_grad_()  # (B, 1)
    old = torch.zeros_like(logprobs)
    mask = torch.ones_like(logprobs)
    return logprobs, old, mask, _t(advantages)


def test_clip_cases_loss_stats_and_gradients():
    # clip .2 -> ratios are clamped to [.8, 1.2]
    # r=1.5, A=+1: min(1.5, 1.2)    = 1.2   -> pg -1.2, clipped (no gradient)
    # r=1.5, A=-1: min(-1.5, -1.2)  = -1.5  -> pg  1.5, not clipped
    # r=0.5, A=-1: min(-0.5, -0.8)  = -0.8  -> pg  0.8, clipped (no gradient)
    # r=0.5, A=+1: min(0.5, 0.8)    = 0.5   -> pg -0.5, not clipped
    # token mean: (-1.2 + 1.5 + 0.8 - 0.5) / 4 = .15; clip fraction 2/4; ratio mean 4/4 = 1
    logprobs, old, mask, adv = _one_token_each([1.5, 1.5, 0.5, 0.5], [1.0, -1.0, -1.0, 1.0])
    loss, stats = grpo_loss(logprobs, old, None, adv, mask)
    assert_close(loss, torch.tensor(0.15))
    assert_close(stats["pg_loss"], torch.tensor(0.15))
    assert_close(stats["clip_fraction"], torch.tensor(0.5))
    assert_close(stats["ratio_mean"], torch.tensor(1.0))
    assert_close(stats["kl"], torch.tensor(0.0))

    # d(-r * A)/d logprob = -r * A (dr/dlogprob = r), over 4 tokens; clipped tokens get 0:
    # [0, -(1.5 * -1) / 4, 0, -(0.5 * 1) / 4] = [0, .375, 0, -.125]
    loss.backward()
    assert_close(logprobs.grad, _t([[0.0], [0.375], [0.0], [-0.125]]))


def test_clip_high_is_decoupled_dapo():
    # r=1.25, A=+1: clip_high .2  -> min(1.25, 1.2)  = 1.2  -> pg -1.2,  clipped
    #               clip_high .28 -> min(1.25, 1.25) = 1.25 -> pg -1.25, not clipped
    logprobs, old, mask, adv = _one_token_each([1.25], [1.0])
    loss, stats = grpo_loss(logprobs, old, None, adv, mask, clip_high=0.2)
    assert_close(loss, torch.tensor(-1.2))
    assert_close(stats["clip_fraction"], torch.tensor(1.0))

    loss, stats = grpo_loss(logprobs, old, None, adv, mask, clip_low=0.2, clip_high=0.28)
    assert_close(loss, torch.tensor(-1.25))
    assert_close(stats["clip_fraction"], torch.tensor(0.0))

    # r=0.75, A=-1 sits under 1 - clip_low = .8 whatever clip_high is: min(-.75, -.8) -> pg .8
    logprobs, old, mask, adv = _one_token_each([0.75], [-1.0])
    loss, _ = grpo_loss(logprobs, old, None, adv, mask, clip_low=0.2, clip_high=0.28)
    assert_close(loss, torch.tensor(0.8))


# ---------------------------------------------------------------- grpo_loss: k3 KL


def test_k3_kl_by_hand():
    # ref - logp = +ln2: e^ln2 - ln2 - 1 = 2 - .693147 - 1 = .306853
    # ref - logp = -ln2: .5 + .693147 - 1               = .193147
    # ratio 1 and A = 0 -> pg 0; loss = beta * mean kl = .1 * (.306853 + .193147) / 2 = .025
    logprobs = _t([[-1.0, -2.0]]).requires_grad_()
    ref = _t([[-1.0 + LN2, -2.0 - LN2]])
    mask = torch.ones(1, 2)
    loss, stats = grpo_loss(logprobs, logprobs.detach(), ref, _t([0.0]), mask, beta=0.1)
    assert_close(stats["kl"], torch.tensor(0.25))
    assert_close(stats["pg_loss"], torch.tensor(0.0))
    assert_close(loss, torch.tensor(0.025))

    # d kl / d logp = 1 - e^(ref - logp): [1 - 2, 1 - .5] = [-1, .5]; times beta / 2 tokens
    loss.backward()
    assert_close(logprobs.grad, _t([[-0.05, 0.025]]))


def test_kl_is_reported_but_not_added_when_beta_is_zero():
    # same pair as above, beta 0: loss = pg = 0, stats still report kl .25
    logprobs = _t([[-1.0, -2.0]])
    ref = _t([[-1.0 + LN2, -2.0 - LN2]])
    loss, stats = grpo_loss(logprobs, logprobs, ref, _t([0.0]), torch.ones(1, 2), beta=0.0)
    assert_close(loss, torch.tensor(0.0))
    assert_close(stats["kl"], torch.tensor(0.25))


def test_beta_without_reference_raises():
    lp = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo_loss(lp, lp, None, torch.zeros(2), torch.ones(2, 3), beta=0.04)


# ---------------------------------------------------------------- grpo_loss: aggregation


def _ragged_batch():
    """Two sequences of 3 and 1 completion tokens, ratio 1 on every real token, so pg = -A.

    The padding holds log-ratio 5 (ratio e^5 = 148): any leak through the mask shows.
    """
    logprobs = _t([[-1.0, -1.0, -1.0], [-1.0, 4.0, 4.0]]).requires_grad_()
    old = torch.full((2, 3), -1.0)
    mask = _t([[1, 1, 1], [1, 0, 0]])
    adv = _t([2.0, -1.0])
    return logprobs, old, mask, adv


@pytest.mark.parametrize(
    "aggregation, expected",
    [
        # per-token pg: seq 0 -> [-2, -2, -2], seq 1 -> [1]; masked sum -6 + 1 = -5
        ("token_mean", -1.25),  # -5 / 4 tokens
        ("sequence_mean", -0.5),  # (-6/3 + 1/1) / 2 sequences = (-2 + 1) / 2
        ("constant", -0.625),  # -5 / (B=2 * max_tokens=4)
    ],
)
def test_aggregations_differ_on_ragged_batch(aggregation, expected):
    logprobs, old, mask, adv = _ragged_batch()
    loss, stats = grpo_loss(logprobs, old, None, adv, mask, aggregation=aggregation, max_tokens=4)
    assert_close(loss, torch.tensor(expected))
    assert_close(stats["pg_loss"], torch.tensor(expected))
    assert_close(stats["ratio_mean"], torch.tensor(1.0))  # padding (148) excluded
    assert_close(stats["clip_fraction"], torch.tensor(0.0))


def test_sequence_mean_gradient_weights_short_sequences_more():
    # d loss / d logp = -A * r / (|o_i| * B) with r = 1:
    # seq 0: -2 / (3 * 2) = -1/3 per token; seq 1: 1 / (1 * 2) = .5; padding 0
    logprobs, old, mask, adv = _ragged_batch()
    loss, _ = grpo_loss(logprobs, old, None, adv, mask, aggregation="sequence_mean")
    loss.backward()
    assert_close(logprobs.grad, _t([[-1 / 3, -1 / 3, -1 / 3], [0.5, 0.0, 0.0]]))


def test_bool_mask_equals_float_mask():
    logprobs, old, mask, adv = _ragged_batch()
    loss_float, _ = grpo_loss(logprobs, old, None, adv, mask)
    loss_bool, _ = grpo_loss(logprobs, old, None, adv, mask.bool())
    assert_close(loss_bool, loss_float)
    assert_close(loss_bool, torch.tensor(-1.25))


def test_infinite_padding_does_not_make_nan():
    # old log-probs padded with -inf would give ratio inf there; the loss must still be -1.25
    logprobs, old, mask, adv = _ragged_batch()
    old = torch.where(mask.bool(), old, -math.inf)
    ref = torch.where(mask.bool(), old, math.inf)
    loss, stats = grpo_loss(logprobs, old, ref, adv, mask, beta=0.1)
    assert_close(loss, torch.tensor(-1.25))  # kl 0 on real tokens (ref == logp)
    loss.backward()
    assert torch.isfinite(logprobs.grad).all()
    assert torch.isfinite(stats["ratio_mean"])


@pytest.mark.parametrize("kwargs", [{"aggregation": "constant"}, {"aggregation": "seq_mean"}])
def test_bad_aggregation_arguments_raise(kwargs):
    logprobs, old, mask, adv = _ragged_batch()
    with pytest.raises(ValueError, match="aggregation"):
        grpo_loss(logprobs, old, None, adv, mask, **kwargs)


def test_shape_mismatch_raises():
    lp = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="advantages"):
        grpo_loss(lp, lp, None, torch.zeros(2, 1), torch.ones(2, 3))
    with pytest.raises(ValueError, match="mask"):
        grpo_loss(lp, lp, None, torch.zeros(2), torch.ones(2, 4))


# ---------------------------------------------------------------- grpo_loss: gradient


def test_positive_advantage_pushes_logprobs_up():
    # on-policy (old = logp, r = 1): loss = -mean(A) -> d loss / d logp = -A / tokens = -1/2 each;
    # a gradient-descent step raises the log-probs of the rewarded completion
    logprobs = _t([[-0.5, -0.7]]).requires_grad_()
    loss, stats = grpo_loss(logprobs, logprobs.detach(), None, _t([1.0]), torch.ones(1, 2))
    assert_close(loss, torch.tensor(-1.0))
    assert not stats["pg_loss"].requires_grad
    loss.backward()
    assert_close(logprobs.grad, _t([[-0.5, -0.5]]))


def test_old_logprobs_get_no_gradient():
    logprobs = _t([[-0.5, -0.7]]).requires_grad_()
    old = _t([[-0.6, -0.6]]).requires_grad_()
    loss, _ = grpo_loss(logprobs, old, None, _t([1.0]), torch.ones(1, 2))
    loss.backward()
    assert old.grad is None


def test_masked_samples_neither_get_advantages_nor_shift_their_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    valid = torch.tensor([True, True, False, True, True, True, True, False])
    adv, keep = masked_group_advantages(rewards, valid, 4, "std", drop_equal=True)
    # group 1, valid [1, 0, 1]: mean 2/3, unbiased std 0.5774 -> [+0.5774, -1.1547, 0, +0.5774]
    torch.testing.assert_close(adv[:4], torch.tensor([0.57735, -1.15470, 0.0, 0.57735]), atol=1e-4, rtol=0)
    # group 2, valid [1, 1, 0]: mean 2/3 -> same numbers, the masked 0 is not a zero reward
    torch.testing.assert_close(adv[4:], torch.tensor([0.57735, 0.57735, -1.15470, 0.0]), atol=1e-4, rtol=0)
    assert keep.tolist() == [True, True, False, True, True, True, True, False]


def test_groups_without_signal_are_dropped_only_when_asked():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0])
    valid = torch.tensor([True, True, True, False])  # group 2 has one valid member: no baseline
    adv, keep = masked_group_advantages(rewards, valid, 2, "none", drop_equal=True)
    assert keep.tolist() == [False, False, False, False] and adv.abs().sum() == 0
    adv, keep = masked_group_advantages(rewards, valid, 2, "none", drop_equal=False)
    assert keep.tolist() == [True, True, False, False]
