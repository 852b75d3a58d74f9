import pytest
import torch

from pipeline.losses import dpo_loss, kto_loss, sequence_logps


def test_dpo_by_hand():
    pc, pr, rc, rr = (torch.tensor([v]) for v in (-1.0, -3.0, -2.0, -2.0))
    loss, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.5)
    # logits = 0.5 * ((-1 + 3) - (-2 + 2)) = 1 -> -logsigmoid(1) = 0.313262
    assert loss.item() == pytest.approx(0.313262, abs=1e-6)
    assert chosen.item() == pytest.approx(0.5)  # 0.5 * (-1 + 2)
    assert rejected.item() == pytest.approx(-0.5)  # 0.5 * (-3 + 2)


def test_dpo_at_the_reference_is_log_two_and_gradients_separate_the_pair():
    pc = torch.tensor([-4.0, -1.0], requires_grad=True)
    pr = torch.tensor([-2.0, -5.0], requires_grad=True)
    loss, chosen, rejected = dpo_loss(pc, pr, pc.detach().clone(), pr.detach().clone(), beta=0.1)
    assert loss.item() == pytest.approx(0.693147, abs=1e-6)
    assert torch.equal(chosen, torch.zeros(2)) and not chosen.requires_grad
    loss.backward()
    # d/dpc = -beta * sigmoid(-0) / N = -0.1 * 0.5 / 2
    torch.testing.assert_close(pc.grad, torch.tensor([-0.025, -0.025]))
    torch.testing.assert_close(pr.grad, torch.tensor([0.025, 0.025]))


def test_conservative_dpo_label_smoothing():
    one = torch.tensor([0.0])
    loss, _, _ = dpo_loss(torch.tensor([1.0]), one * 0, one * 0, one * 0, beta=1.0, label_smoothing=0.25)
    # logits 1: 0.75 * log(1 + e^-1) + 0.25 * log(1 + e^1) = 0.75 * 0.313262 + 0.25 * 1.313262
    assert loss.item() == pytest.approx(0.563262, abs=1e-6)


def test_kto_by_hand():
    policy, ref = torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -2.0])
    desirable = torch.tensor([True, False])
    # r = [1, -1], beta 1. z0 = max(-0.5, 0) = 0: 1 - sigmoid(1) = 0.268941 for both rows
    loss, rewards = kto_loss(policy, ref, desirable, torch.tensor(-0.5), beta=1.0)
    assert loss.item() == pytest.approx(0.268941, abs=1e-6)
    torch.testing.assert_close(rewards, torch.tensor([1.0, -1.0]))
    # z0 = 0.5: desirable 1 - sigmoid(0.5) = 0.377541; undesirable 1 - sigmoid(0.5 + 1) = 0.182426
    loss, _ = kto_loss(policy, ref, desirable, torch.tensor(0.5), beta=1.0)
    assert loss.item() == pytest.approx((0.377541 + 0.182426) / 2, abs=1e-6)
    # weights scale each kind's term
    loss, _ = kto_loss(policy, ref, desirable, torch.tensor(0.5), beta=1.0, desirable_weight=2.0)
    assert loss.item() == pytest.approx((2 * 0.377541 + 0.182426) / 2, abs=1e-6)


def test_sequence_logps_sum_the_completion_and_skip_padding():
    logps = torch.tensor([[-1.0, -2.0, float("-inf")], [-0.5, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(sequence_logps(logps, mask), torch.tensor([-3.0, -0.5]))


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(N,\)"):
        dpo_loss(torch.zeros(2), torch.zeros(2), torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match=r"\(N,\)"):
        kto_loss(torch.zeros(2), torch.zeros(2), torch.zeros(3, dtype=torch.bool), torch.tensor(0.0))


def test_rpo_adds_the_chosen_per_token_nll():
    pc, pr, rc, rr = (torch.tensor([v]) for v in (-1.0, -3.0, -2.0, -2.0))
    # DPO part as above: 0.313262; NLL of the chosen: 1.0 over 4 tokens = 0.25, times alpha 0.2 = 0.05
    loss, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, nll_coef=0.2, chosen_lengths=torch.tensor([4]))
    assert loss.item() == pytest.approx(0.313262 + 0.05, abs=1e-6)
    with pytest.raises(ValueError, match="chosen_lengths"):
        dpo_loss(pc, pr, rc, rr, nll_coef=0.2)
