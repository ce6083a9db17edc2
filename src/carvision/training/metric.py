"""Validation metrics: `carvision.metrics`' state, summed over batches and DDP ranks by torchmetrics."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from carvision.metrics import counts, summarise


class TaskMetrics(Metric):
    """Accumulates `metrics.counts` over batches (and ranks); `compute()` returns `metrics.summarise` of it.

    Args:
        num_classes: columns of the probabilities fed to `update`.
        positive_index: the positive class of a binary task, or None.
        threshold: probability of the positive class at and above which it is predicted.
    """

    full_state_update = False

    def __init__(self, num_classes: int, positive_index: int | None = None, threshold: float = 0.5) -> None:
        super().__init__()
        self.positive_index, self.threshold = positive_index, threshold
        self.add_state("confusion", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("topk_hits", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("positive", torch.zeros(3, dtype=torch.long), dist_reduce_fx="sum")  # tp, fp, fn

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        confusion, topk_hits, positive = counts(probs, target, self.positive_index, self.threshold)
        self.confusion += confusion
        self.topk_hits += topk_hits
        self.positive += positive

    def compute(self) -> dict[str, float]:
        return summarise(self.confusion, self.topk_hits, self.positive if self.positive_index is not None else None)
