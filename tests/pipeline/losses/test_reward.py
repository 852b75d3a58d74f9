import math

import pytest
import torch

from pipeline.losses import bradley_terry_loss, pairwise_accuracy, ranking_to_pairs


def test_bradley_terry_by_hand():
    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0])
    # diffs [1, 0]: -logsigmoid(1) = log(1 + e^-1) = 0.313262, -logsigmoid(0) = log 2 = 0.693147
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx((0.313262 + 0.693147) / 2, abs=1e-6)
    # margin [0.5, 0]: diffs [0.5, 0] -> log(1 + e^-0.5) = 0.474077
    margin = torch.tensor([0.5, 0.0])
    assert bradley_terry_loss(chosen, rejected, margin).item() == pytest.approx((0.474077 + 0.693147) / 2, abs=1e-6)


def test_bradley_terry_margin_none_is_zero_margin_and_gradient_pushes_scores_apart():
    chosen = torch.tensor([0.3, -1.0], requires_grad=True)
    rejected = torch.tensor([0.1, 2.0], requires_grad=True)
    loss = bradley_terry_loss(chosen, rejected)
    assert loss.item() == pytest.approx(bradley_terry_loss(chosen, rejected, torch.zeros(2)).item())
    loss.backward()
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()
    # d/dc of -logsigmoid(c - r) is -(1 - sigmoid(c - r)), divided by N = 2
    assert chosen.grad[1].item() == pytest.approx(-(1 - 1 / (1 + math.exp(3.0))) / 2, abs=1e-6)


def test_bradley_terry_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="share one"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="margin"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(2), torch.zeros(3))


def test_a_ranking_of_four_gives_six_pairs_best_first():
    # responses ranked 2 > 0 > 3 > 1
    assert ranking_to_pairs([2, 0, 3, 1]) == [(2, 0), (2, 3), (2, 1), (0, 3), (0, 1), (3, 1)]
    assert len(ranking_to_pairs(list(range(5)))) == 10
    assert ranking_to_pairs([0]) == []


def test_responses_that_tie_are_never_paired_with_each_other():
    # 2 > {0, 3} > 1: 2 beats both of the tie and 1, each of the tie beats 1; 0 and 3 give no pair
    assert ranking_to_pairs([2, [0, 3], 1]) == [(2, 0), (2, 3), (2, 1), (0, 1), (3, 1)]
    assert ranking_to_pairs([[0, 1], [2]]) == [(0, 2), (1, 2)]
    assert ranking_to_pairs([[0, 1, 2]]) == []  # one tier: all equal, nothing to learn
    with pytest.raises(ValueError, match="permutation"):
        ranking_to_pairs([[0, 1], 1])


def test_a_ranking_that_repeats_an_index_is_refused():
    with pytest.raises(ValueError, match="permutation"):
        ranking_to_pairs([0, 1, 1])


def test_pairwise_accuracy_counts_ties_as_wrong():
    assert pairwise_accuracy(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 3.0])).item() == pytest.approx(1 / 3)
