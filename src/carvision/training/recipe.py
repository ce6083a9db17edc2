"""The training recipe's parts, built with timm's factories: optimizer, per-step schedule, weight EMA, mixup/cutmix,
and the transfer modes (linear probe, gradual unfreezing). `Classifier` assembles them; docs/training.md explains
each option."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from timm.data import Mixup
from timm.models import group_parameters
from timm.optim import create_optimizer_v2, list_optimizers
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from torch import nn

TRANSFER_MODES = ("full", "linear_probe", "gradual")
SCHEDULES = ("cosine", "tanh", "poly", "step", "constant", "none")
WARMUP_LR = 1e-5  # timm's default start of the warmup (or lr itself, when smaller)
# EMA decay warmup 1 - (1 + step)^-power (crowsonkb's): 3/4 suits runs of up to ~100k steps (0.98 after 240 steps,
# 0.999 after 10k); a fixed 0.9998 would leave a 240-step demo run's average at its random start.
EMA_WARMUP_POWER = 3 / 4


def check_recipe(optimizer: str, sched: str, transfer: str, unfreeze_epochs: list[int]) -> None:
    """Fails at construction, not at the first step, on a name timm does not know or a schedule that cannot run."""
    if optimizer.lower() not in list_optimizers():
        raise ValueError(f"train.optimizer: timm has no optimizer '{optimizer}' (timm.optim.list_optimizers())")
    if sched not in SCHEDULES:
        raise ValueError(f"train.sched: '{sched}' is not one of {SCHEDULES}")
    if transfer not in TRANSFER_MODES:
        raise ValueError(f"train.transfer: '{transfer}' is not one of {TRANSFER_MODES}")
    if transfer == "gradual" and (not unfreeze_epochs or min(unfreeze_epochs) < 1):
        raise ValueError("train.transfer=gradual needs train.unfreeze_epochs, epochs >= 1, e.g. [2, 4, 6]")


def build_optimizer(
    net: nn.Module, name: str, lr: float, weight_decay: float, momentum: float, layer_decay: float | None
) -> torch.optim.Optimizer:
    """timm's optimizer over `net`'s trainable parameters: no weight decay on biases and norm layers; with
    `layer_decay`, one parameter group per layer whose `lr_scale` timm's schedulers apply."""
    return create_optimizer_v2(
        net, opt=name, lr=lr, weight_decay=weight_decay, momentum=momentum, layer_decay=layer_decay
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    sched: str,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float,
    min_lr: float,
    decay_epochs: float,
    decay_rate: float,
):
    """timm's scheduler, counted in optimizer steps (`step_update(num_updates)` after each one): a linear warmup
    to the peak lr, then the decay over the remaining steps, so that cosine ends at `min_lr` on the fit's last
    step. None for `sched: none` (the optimizer's lr throughout).

    Every count is handed to timm in steps (updates_per_epoch=1): the warmup, a fraction of an epoch included,
    is whole steps, and the decay starts where the warmup ends (warmup_prefix) instead of overlapping it, which
    in a short run would drop the lr from mid-warmup straight to a partly decayed value.
    """
    lr = max(g["lr"] for g in optimizer.param_groups)
    total = max(1, epochs * steps_per_epoch)
    warmup = min(round(warmup_epochs * steps_per_epoch), total - 1)
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=sched,
        num_epochs=total - warmup,
        warmup_epochs=warmup,
        warmup_lr=min(WARMUP_LR, lr),
        warmup_prefix=True,
        min_lr=min_lr,
        decay_epochs=max(1, round(decay_epochs * steps_per_epoch)),
        decay_rate=decay_rate,
        step_on_epochs=False,
        updates_per_epoch=1,
    )
    return scheduler


def weight_ema(net: nn.Module, decay: float) -> ModelEmaV3:
    """timm's EMA of every floating tensor of `net`'s state (weights and norm statistics), a frozen copy of it."""
    ema = ModelEmaV3(net, decay=decay, use_warmup=True, warmup_power=EMA_WARMUP_POWER)
    ema.module.requires_grad_(False)  # DDP must not wait for gradients of the average
    # In the module's mode like the rest (Lightning warns of eval-mode modules at the start of a fit); the average
    # never runs a training forward, so its norm statistics move only with the updates.
    ema.module.train(net.training)
    return ema


def build_mixup(mixup_alpha: float, cutmix_alpha: float, prob: float, num_classes: int) -> Mixup | None:
    """timm's batch-wise mixup/cutmix (one of the two per batch, 50/50 when both are on), giving soft targets
    (batch, num_classes) that sum to 1; None when off. Label smoothing stays the loss's (train.label_smoothing)."""
    if prob <= 0 or (mixup_alpha <= 0 and cutmix_alpha <= 0):
        return None
    return Mixup(
        mixup_alpha=mixup_alpha,
        cutmix_alpha=cutmix_alpha,
        prob=prob,
        switch_prob=0.5,
        mode="batch",
        label_smoothing=0.0,
        num_classes=num_classes,
    )


def head_parameters(net: nn.Module) -> list[nn.Parameter]:
    """The classifier head's parameters (timm's `get_classifier()`): what a linear probe trains."""
    return list(net.get_classifier().parameters())


def set_trainable_(net: nn.Module, trainable: list[nn.Parameter]) -> None:
    """Only `trainable` get gradients; every other parameter of `net` is frozen."""
    keep = {id(p) for p in trainable}
    for p in net.parameters():
        p.requires_grad_(id(p) in keep)


def body_parts(net: nn.Module, n: int) -> list[list[nn.Parameter]]:
    """`net` below its classifier head, cut into `n` parts of consecutive layers, the top part first.

    Layers are timm's coarse groups (`group_matcher(coarse=True)`: stem, each stage, the pre-logits head), so a
    part never splits a stage; with more parts than layers, the extra parts are empty."""
    head = {id(p) for p in head_parameters(net)}
    named = dict(net.named_parameters())
    if hasattr(net, "group_matcher"):
        groups = group_parameters(net, net.group_matcher(coarse=True))  # {layer index: [names]}, stem first
        layers = [[named[k] for k in names] for _, names in sorted(groups.items())]
    else:  # not a timm model: its top-level children, in order
        layers = [list(child.parameters()) for child in net.children()]
    layers = [[p for p in layer if id(p) not in head] for layer in layers]
    layers = [layer for layer in layers if layer][::-1]
    bounds = np.linspace(0, len(layers), n + 1).round().astype(int)
    return [[p for layer in layers[a:b] for p in layer] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def freeze_norm_statistics_(net: nn.Module) -> None:
    """Batch-norm layers whose parameters are all frozen run in eval mode, so that a frozen part of the network
    stays the pretrained one: its running mean and variance do not drift to the new data's either."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()


class GradualUnfreezing(L.Callback):
    """transfer=gradual: the classifier head trains alone first; from epoch `unfreeze_epochs[i]` on, the i-th of
    len(unfreeze_epochs) parts of the body from the top (`body_parts`) trains too, so the last listed epoch makes
    the whole network trainable.

    Not Lightning's BaseFinetuning: that one adds a parameter group per unfrozen part, but timm's schedulers read
    their groups' base learning rates once, at construction, and would never warm up or decay the new groups.
    Here the optimizer holds every parameter from the start (it is built before the first epoch's freeze); a frozen
    parameter has no gradient, and torch's optimizers skip those (no update, no weight decay, no momentum).
    Under DDP, a parameter frozen after wrapping gets no gradient: the train stage uses
    `ddp_find_unused_parameters_true` for it.
    """

    def __init__(self, unfreeze_epochs: list[int]) -> None:
        self.unfreeze_epochs = sorted(unfreeze_epochs)

    def trainable_parts(self, epoch: int) -> int:
        """How many body parts, from the top, train in `epoch` (0-based)."""
        return sum(epoch >= e for e in self.unfreeze_epochs)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Recomputed every epoch from the epoch alone, so a resumed run lands on the same state.
        net = pl_module.optimized
        parts = body_parts(net, len(self.unfreeze_epochs))[: self.trainable_parts(trainer.current_epoch)]
        set_trainable_(net, head_parameters(net) + [p for part in parts for p in part])
        # Classifier.on_train_epoch_start, which Lightning calls next, puts the frozen norm layers in eval mode.
