"""Every metric, defined once: validation (during training) and evaluation (the registry gate) both use it.

The state (`counts`) is a confusion matrix of the arg-max prediction, the count of top-k hits, and, for a binary
task, the confusion of the positive class at a probability threshold. It sums over batches and DDP ranks
(`training.metric.TaskMetrics` does that during validation), and `summarise` turns it into numbers:

- top1, top5: micro (ordinary) accuracy. top5 exists only when there are more than 5 classes.
- balanced_accuracy: the mean recall over the classes present in the targets.
- macro_f1: the mean F1 over the classes present in the targets.
- precision, recall: of the positive class, predicted when its probability >= threshold (binary tasks).
"""

from __future__ import annotations

import math

import torch

from carvision.metric_names import TOP_K, metric_names  # noqa: F401  (re-exported: the names belong here too)


def counts(
    probs: torch.Tensor, target: torch.Tensor, positive_index: int | None = None, threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The state behind every metric, for one batch: (confusion (C, C), top-5 hits (), positive tp/fp/fn (3,)).

    probs: (batch, C) probabilities (only their order matters, except for the threshold); target: (batch,) indices.
    States of several batches (or DDP ranks) add up.
    """
    c = probs.shape[1]
    target = target.long()
    confusion = torch.bincount(target * c + probs.argmax(1), minlength=c * c).reshape(c, c)
    topk_hits = torch.zeros((), dtype=torch.long, device=probs.device)
    if c > TOP_K:
        topk_hits = (probs.topk(TOP_K, dim=1).indices == target[:, None]).any(1).sum()
    positive = torch.zeros(3, dtype=torch.long, device=probs.device)
    if positive_index is not None:
        said, truly = probs[:, positive_index] >= threshold, target == positive_index
        positive = torch.stack([(said & truly).sum(), (said & ~truly).sum(), (~said & truly).sum()])
    return confusion, topk_hits, positive


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
    confusion, topk_hits, positive = counts(probs, targets, positive_index, threshold)
    return summarise(confusion, topk_hits, positive if positive_index is not None else None), confusion
