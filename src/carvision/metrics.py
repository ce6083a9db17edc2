"""Every metric, defined once: validation (during training) and evaluation (the registry gate) both use it.

The state is a confusion matrix of the arg-max prediction, the count of top-k hits, and, for a binary task, the
confusion of the positive class at a probability threshold. It sums over batches and DDP ranks, and
`summarise` turns it into numbers:

- top1, top5: micro (ordinary) accuracy. top5 exists only when there are more than 5 classes.
- balanced_accuracy: the mean recall over the classes present in the targets.
- macro_f1: the mean F1 over the classes present in the targets.
- precision, recall: of the positive class, predicted when its probability >= threshold (binary tasks).
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric

from carvision.metric_names import TOP_K, metric_names  # noqa: F401  (re-exported: the names belong here too)


class TaskMetrics(Metric):
    """Accumulates the state behind every metric; `compute()` returns `summarise` of it.

    Args:
        num_classes: columns of the probabilities fed to `update`.
        positive_index: the positive class of a binary task, or None.
        threshold: probability of the positive class at and above which it is predicted.
    """

    full_state_update = False

    def __init__(self, num_classes: int, positive_index: int | None = None, threshold: float = 0.5) -> None:
        super().__init__()
        self.num_classes, self.positive_index, self.threshold = num_classes, positive_index, threshold
        self.add_state("confusion", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("topk_hits", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        # tp, fp, fn of the positive class at `threshold`
        self.add_state("positive", torch.zeros(3, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        """probs: (batch, num_classes) probabilities (or logits: only their order matters, but the threshold
        reads probabilities); target: (batch,) class indices."""
        target = target.long()
        pred = probs.argmax(1)
        self.confusion += torch.bincount(target * self.num_classes + pred, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )
        if self.num_classes > TOP_K:
            topk = probs.topk(TOP_K, dim=1).indices
            self.topk_hits += (topk == target[:, None]).any(1).sum()
        if self.positive_index is not None:
            said = probs[:, self.positive_index] >= self.threshold
            truly = target == self.positive_index
            self.positive += torch.stack([(said & truly).sum(), (said & ~truly).sum(), (~said & truly).sum()])

    def compute(self) -> dict[str, float]:
        return summarise(self.confusion, self.topk_hits, self.positive if self.positive_index is not None else None)


def summarise(confusion: torch.Tensor, topk_hits: torch.Tensor, positive: torch.Tensor | None) -> dict[str, float]:
    """The metrics from the accumulated state (see the module doc). NaN where there are no images."""
    c = confusion.double()
    n = float(c.sum())
    nan = math.nan
    support, predicted, hits = c.sum(1), c.sum(0), c.diagonal()
    present = support > 0  # a class with no images has no recall to average
    recall = hits[present] / support[present]
    precision = torch.where(predicted > 0, hits / predicted.clamp(min=1), torch.zeros_like(hits))[present]
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)
    out = {
        "top1": float(hits.sum() / n) if n else nan,
        "balanced_accuracy": float(recall.mean()) if n else nan,
        "macro_f1": float(f1.mean()) if n else nan,
    }
    if len(c) > TOP_K:
        out["top5"] = float(topk_hits) / n if n else nan
    if positive is not None:
        tp, fp, fn = (float(v) for v in positive)
        # Nothing predicted positive: no precision to claim (0), unless there was nothing to predict (NaN).
        out["precision"] = tp / (tp + fp) if tp + fp else (0.0 if n else nan)
        out["recall"] = tp / (tp + fn) if tp + fn else nan
    return out


def score(probs: torch.Tensor, targets: torch.Tensor, positive_index: int | None = None, threshold: float = 0.5):
    """(metrics dict, confusion matrix) of probabilities (n, C) against targets (n,) in one go."""
    m = TaskMetrics(probs.shape[1], positive_index, threshold)
    m.update(probs, targets)
    return m.compute(), m.confusion.clone()
