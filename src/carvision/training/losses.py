"""Class-imbalance strategies: the training loss of each, and the logit adjustment that `posthoc` applies at
prediction. docs/imbalance.md says when to use which, and compares them on the sample.

Every loss takes logits (batch, C) and either class indices (batch,) or soft targets (batch, C) whose rows sum to 1
(mixup and cutmix make those). A one-hot soft target gives the same loss as its index.

- none: cross-entropy. weighted_sampler: cross-entropy too; its sampler balances the batches (training/data.py).
- weighted_loss: cross-entropy with class weights ∝ 1/count.
- class_balanced: cross-entropy with class weights ∝ 1/effective number (1 - beta^count) / (1 - beta) (Cui et al.
  2019): between no weights (beta = 0) and 1/count (beta -> 1).
- focal: (1 - p)^gamma-scaled cross-entropy (Lin et al. 2017).
- logit_adjusted: cross-entropy on logits + tau * log(prior) (Menon et al. 2021).
- balanced_softmax: cross-entropy on logits + log(count) (Ren et al. 2020); the same gradients as logit_adjusted
  with tau = 1, since log(count) and log(prior) differ by a constant that softmax ignores.
- label_smoothing: cross-entropy against targets mixed with the uniform distribution (`imbalance.smoothing`).
- posthoc: cross-entropy; prediction subtracts tau * log(prior) from the logits (`prediction_adjustment`).
"""

from __future__ import annotations

import typing

import torch
import torch.nn.functional as F
from torch import nn

from carvision.settings import ImbalanceSettings

# The strategies are declared once, as the choices of imbalance.strategy in the settings.
STRATEGIES: tuple[str, ...] = typing.get_args(typing.get_type_hints(ImbalanceSettings)["strategy"])
# A class with no train images counts as this many, so that log(count) and log(prior) stay finite: the class is
# treated as the rarest possible one rather than as impossible (-inf) or, after a post-hoc shift, certain (+inf).
COUNT_FLOOR = 1.0


def inverse_frequency_weights(class_counts: list[int]) -> torch.Tensor:
    """Weight of each class ∝ 1/count, scaled so that the weighted mean over all images stays 1.

    Classes with no train images get weight 0 rather than infinity.
    """
    counts = torch.tensor(class_counts, dtype=torch.float32)
    return _mean_one(torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts)), counts)


def class_balanced_weights(class_counts: list[int], beta: float) -> torch.Tensor:
    """Weight of each class ∝ 1 / effective number of its images, (1 - beta) / (1 - beta^count) (Cui et al. 2019),
    scaled like `inverse_frequency_weights` (weighted mean over all images 1; 0 for classes with no images).

    beta = 0 weighs every class alike; beta -> 1 tends to 1/count. With counts much smaller than 1 / (1 - beta)
    the effective number is close to the count itself (beta = 0.999: 100 images count as 95).
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"imbalance.beta must be in [0, 1), got {beta}")
    counts = torch.tensor(class_counts, dtype=torch.float64)
    effective = (1.0 - beta**counts) / (1.0 - beta)  # (C,); beta**0 = 1 gives 0 for an empty class
    w = torch.where(counts > 0, 1.0 / effective.clamp(min=1e-12), torch.zeros_like(counts))
    return _mean_one(w, counts).float()


def _mean_one(w: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    return w * counts.sum() / (w * counts).sum()


def log_prior(class_counts: list[int]) -> torch.Tensor:
    """(C,) log of the train class frequencies, each count floored at COUNT_FLOOR (never -inf)."""
    counts = torch.tensor(class_counts, dtype=torch.float64).clamp(min=COUNT_FLOOR)
    return (counts / counts.sum()).log().float()


def prediction_adjustment(strategy: str, class_counts: list[int] | None, tau: float) -> torch.Tensor | None:
    """(C,) what prediction adds to the network's logits: -tau * log(prior) for `posthoc`, else None.

    Subtracting the log prior divides each class's probability by its train frequency (to the power tau), so a
    classifier fit to the long-tailed train split answers as if the classes were balanced (Menon et al. 2021, eq. 3).
    Every consumer of a checkpoint (carvision.inference.Predictor, validation, an ONNX export) uses this one function.
    """
    if strategy != "posthoc" or not class_counts:
        return None
    return -tau * log_prior(class_counts)


def soft_targets(target: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """(batch, C) float targets: one-hot rows for indices (batch,), soft rows kept; mixed with the uniform
    distribution by `smoothing` (label smoothing: (1 - s) * q + s / C)."""
    q = F.one_hot(target.long(), num_classes).float() if target.ndim == 1 else target.float()
    return q * (1.0 - smoothing) + smoothing / num_classes if smoothing > 0 else q


class AdjustedCrossEntropy(nn.Module):
    """Cross-entropy on logits + `offset`, with optional class weights and label smoothing.

    loss = sum_i sum_c w_c q_ic (-log softmax(z_i + offset)_c) / sum_i sum_c w_c q_ic, with q the (smoothed) target
    rows and w = 1 without weights. For index targets without smoothing this is torch's weighted cross-entropy
    (a mean weighted by the targets' class weights); without weights it is the plain mean over the batch.

    Args:
        offset: (C,) added to the logits before the softmax in training only (logit_adjusted, balanced_softmax);
            None adds nothing.
        weight: (C,) class weights (weighted_loss, class_balanced), or None.
        label_smoothing: share of each target moved to the uniform distribution.
    """

    def __init__(
        self, offset: torch.Tensor | None = None, weight: torch.Tensor | None = None, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        # Buffers, so that they follow the module to the GPU; `weight` keeps the state-dict key (criterion.weight)
        # that nn.CrossEntropyLoss gave older weighted_loss checkpoints.
        self.register_buffer("offset", offset)
        self.register_buffer("weight", weight)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = logits.float()
        if self.offset is not None:
            z = z + self.offset
        q = soft_targets(target, z.shape[1], self.label_smoothing)  # (batch, C)
        if self.weight is not None:
            q = q * self.weight
        # (batch, C) * (batch, C), summed over images and classes; the denominator is the batch's total weight.
        return -(q * F.log_softmax(z, dim=1)).sum() / q.sum().clamp(min=1e-12)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p)^gamma, mean over the batch.

    Per image, -sum_c w_c q_c (1 - p_c)^gamma log p_c: for an index target, -(1 - p_true)^gamma log p_true (times its
    class weight); soft targets spread it over their classes.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.gamma, self.label_smoothing = gamma, label_smoothing
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=-1)  # (batch, C)
        q = soft_targets(target, log_p.shape[1], self.label_smoothing)
        if self.weight is not None:
            q = q * self.weight
        return -(q * (1 - log_p.exp()) ** self.gamma * log_p).sum(1).mean()


def build_loss(
    strategy: str,
    class_counts: list[int],
    focal_gamma: float,
    label_smoothing: float,
    *,
    tau: float = 1.0,
    beta: float = 0.999,
    smoothing: float = 0.1,
) -> nn.Module:
    """The training loss of an imbalance strategy (see the module doc).

    Args:
        class_counts: train images per class.
        focal_gamma: focal's exponent.
        label_smoothing: `train.label_smoothing`, applied on top of every strategy but `label_smoothing`.
        tau: logit_adjusted's (and posthoc's, at prediction) weight of log(prior).
        beta: class_balanced's effective-number parameter.
        smoothing: the `label_smoothing` strategy's own smoothing (`imbalance.smoothing`).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown imbalance.strategy '{strategy}': use one of {STRATEGIES}")
    if strategy == "label_smoothing":
        if label_smoothing > 0:
            raise ValueError(
                "imbalance.strategy label_smoothing takes its smoothing from imbalance.smoothing; "
                f"leave train.label_smoothing at 0 (it is {label_smoothing})"
            )
        label_smoothing = smoothing
    if strategy == "focal":
        return FocalLoss(focal_gamma, label_smoothing=label_smoothing)
    weight = offset = None
    if strategy == "weighted_loss":
        weight = inverse_frequency_weights(class_counts)
    elif strategy == "class_balanced":
        weight = class_balanced_weights(class_counts, beta)
    elif strategy == "logit_adjusted":
        offset = tau * log_prior(class_counts)
    elif strategy == "balanced_softmax":
        offset = torch.tensor(class_counts, dtype=torch.float32).clamp(min=COUNT_FLOOR).log()
    return AdjustedCrossEntropy(offset, weight, label_smoothing)
