"""Class-imbalance strategies: plain, inverse-frequency weighted, and focal cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STRATEGIES = ("none", "weighted_loss", "weighted_sampler", "focal")


def inverse_frequency_weights(class_counts: list[int]) -> torch.Tensor:
    """Weight of each class ∝ 1/count, scaled so that the weighted mean over all images stays 1.

    Classes with no train images get weight 0 rather than infinity.
    """
    counts = torch.tensor(class_counts, dtype=torch.float32)
    w = torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))
    return w * counts.sum() / (w * counts).sum()


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_true)^gamma, mean over the batch."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=-1).gather(1, target[:, None]).squeeze(1)  # (batch,)
        loss = -((1 - log_p.exp()) ** self.gamma) * log_p
        if self.weight is not None:
            loss = loss * self.weight[target]
        return loss.mean()


def build_loss(strategy: str, class_counts: list[int], focal_gamma: float, label_smoothing: float) -> nn.Module:
    """The training loss for an imbalance strategy (weighted_sampler balances batches, not the loss)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown imbalance.strategy '{strategy}': use one of {STRATEGIES}")
    if strategy == "focal":
        return FocalLoss(focal_gamma)
    weight = inverse_frequency_weights(class_counts) if strategy == "weighted_loss" else None
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
