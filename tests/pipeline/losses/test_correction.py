import math

import pytest
import torch
from torch.testing import assert_close

from pipeline.losses import grpo_loss, importance_weights, policy_loss

LN2 = math.log(2.0)


def _t(values):
    return torch.tensor(values, dtype=torch.float32)


def test_truncated_weights_by_hand():
    # log rho = trainer - sampler: [ln 4, ln .5, 0 | ln 3, (padding: 7 and 50, ignored)]
    trainer = _t([[LN2 * 2, -LN2, -1.0], [math.log(3.0), 7.0, 0.0]])
    sampler = _t([[0.0, 0.0, -1.0], [0.0, 0.0, -50.0]])
    mask = _t([[1, 1, 1], [1, 0, 0]])
    w, stats = importance_weights(trainer, sampler, mask, mode="truncate", cap=2.0)
    # rho = [4, .5, 1 | 3, -, -] -> min(rho, 2) = [2, .5, 1 | 2, 0, 0] (padding 0)
    assert_close(w, _t([[2.0, 0.5, 1.0], [2.0, 0.0, 0.0]]))
    # 2 of the 4 tokens were bounded (rho 4 and 3); mean weight (2 + .5 + 1 + 2) / 4 = 1.375
    assert stats["is_clipped_fraction"].item() == pytest.approx(0.5)
    assert stats["is_weight_mean"].item() == pytest.approx(1.375)
    # mean |log rho| = (2 ln2 + ln2 + 0 + ln3) / 4
    assert stats["mismatch_abs"].item() == pytest.approx((3 * LN2 + math.log(3)) / 4, rel=1e-6)
    # k3 = rho - log rho - 1: [4 - 2ln2 - 1, .5 + ln2 - 1, 0, 3 - ln3 - 1] -> mean
    k3 = [3 - 2 * LN2, LN2 - 0.5, 0.0, 2 - math.log(3)]
    assert stats["mismatch_kl"].item() == pytest.approx(sum(k3) / 4, rel=1e-6)


def test_masked_weights_keep_rho_inside_the_band_and_drop_the_rest():
    # rho = [4, .5, .25, 1.5] with cap 2: band [.5, 2] -> [0, .5, 0, 1.5] (.5 sits on the bound: kept)
    trainer = torch.log(_t([[4.0, 0.5, 0.25, 1.5]]))
    w, stats = importance_weights(trainer, torch.zeros(1, 4), torch.ones(1, 4), mode="mask", cap=2.0)
    assert_close(w, _t([[0.0, 0.5, 0.0, 1.5]]))
    assert stats["is_clipped_fraction"].item() == pytest.approx(0.5)


def test_equal_logprobs_give_unit_weights_and_zero_mismatch():
    logps = -torch.rand(3, 5)
    w, stats = importance_weights(logps, logps.clone(), torch.ones(3, 5))
    assert_close(w, torch.ones(3, 5))
    assert stats["mismatch_kl"].item() == 0 and stats["mismatch_abs"].item() == 0
    assert stats["is_clipped_fraction"].item() == 0


def test_padding_with_minus_inf_gives_no_nan():
    trainer = _t([[-1.0, float("-inf")]])
    sampler = _t([[-1.0, 0.0]])
    w, stats = importance_weights(trainer, sampler, _t([[1, 0]]))
    assert_close(w, _t([[1.0, 0.0]]))
    assert all(torch.isfinite(v) for v in stats.values())


def test_mode_none_measures_the_mismatch_and_weights_every_token_one():
    trainer = torch.log(_t([[4.0, 0.5]]))
    w, stats = importance_weights(trainer, torch.zeros(1, 2), torch.ones(1, 2), mode="none")
    assert_close(w, torch.ones(1, 2))
    assert stats["is_clipped_fraction"].item() == 0
    assert stats["mismatch_abs"].item() == pytest.approx(1.5 * LN2)  # (ln 4 + ln 2) / 2


@pytest.mark.parametrize("mode,cap", [("clip", 2.0), ("truncate", 1.0)])
def test_bad_mode_or_cap_is_refused(mode, cap):
    with pytest.raises(ValueError):
        importance_weights(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), mode=mode, cap=cap)


def test_grpo_loss_reweights_the_policy_term_only():
    # One sequence, two tokens, ratio 1 (logprobs == old), A = 1: pg = [-1, -1]. Weights [2, 0.5]
    # -> pg [-2, -0.5], token mean -1.25. beta 1 with ref == logprobs adds k3 = 0 per token.
    logps = _t([[-1.0, -2.0]]).requires_grad_(True)
    loss, stats = grpo_loss(logps, logps.detach(), logps.detach(), _t([1.0]), torch.ones(1, 2), beta=1.0,
                            is_weights=_t([[2.0, 0.5]]))
    assert loss.item() == pytest.approx(-1.25)
    loss.backward()
    # d/dlogp of -w * exp(logp - old) * A at ratio 1 is -w, divided by 2 tokens
    assert_close(logps.grad, _t([[-1.0, -0.25]]))
    unweighted, _ = grpo_loss(logps, logps.detach(), None, _t([1.0]), torch.ones(1, 2))
    assert unweighted.item() == pytest.approx(-1.0)


def test_policy_loss_with_weights_by_hand():
    # ratios [1.5, .5] with A = +1 -> clipped terms [-1.2, -.5]; weights [.5, 2] -> [-.6, -1] -> mean -.8
    logps = torch.log(_t([[1.5, 0.5]]))
    loss = policy_loss(logps, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), clip=0.2,
                       is_weights=_t([[0.5, 2.0]]))
    assert loss.item() == pytest.approx(-0.8, abs=1e-6)
