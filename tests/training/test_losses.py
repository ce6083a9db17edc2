from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from carvision.training.losses import FocalLoss, build_loss, inverse_frequency_weights


def test_inverse_frequency_weights_favour_rare_classes_and_keep_the_mean():
    counts = [500, 50, 5, 0]
    w = inverse_frequency_weights(counts)
    assert w[2] > w[1] > w[0] and w[3] == 0
    n = torch.tensor(counts, dtype=torch.float32)
    assert torch.isclose((w * n).sum() / n.sum(), torch.tensor(1.0))
    assert torch.isclose(w[1] * 50, w[0] * 500)  # every class contributes the same total weight


def test_focal_with_gamma_zero_is_cross_entropy():
    logits, y = torch.randn(16, 5), torch.randint(0, 5, (16,))
    assert torch.isclose(FocalLoss(0.0)(logits, y), F.cross_entropy(logits, y), atol=1e-6)


def test_focal_down_weights_easy_examples():
    y = torch.tensor([0])
    easy, hard = torch.tensor([[5.0, 0.0, 0.0]]), torch.tensor([[0.0, 2.0, 0.0]])
    ratio_ce = F.cross_entropy(easy, y) / F.cross_entropy(hard, y)
    ratio_focal = FocalLoss(2.0)(easy, y) / FocalLoss(2.0)(hard, y)
    assert ratio_focal < ratio_ce / 10


def test_build_loss_per_strategy():
    counts = [10, 1]
    assert isinstance(build_loss("focal", counts, 2.0, 0.0), FocalLoss)
    assert build_loss("none", counts, 2.0, 0.0).weight is None
    assert build_loss("weighted_sampler", counts, 2.0, 0.0).weight is None  # the sampler balances instead
    weighted = build_loss("weighted_loss", counts, 2.0, 0.0).weight
    assert weighted[1] > weighted[0]
    with pytest.raises(ValueError, match="unknown imbalance.strategy"):
        build_loss("oversample", counts, 2.0, 0.0)
