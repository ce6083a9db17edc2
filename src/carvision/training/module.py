"""The LightningModule: one generic classifier for every task, whose checkpoint carries the task, the label map
and the preprocessing, and loads without Hydra."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch

from carvision.training import recipe
from carvision.training.backbones import create_backbone
from carvision.training.losses import build_loss, prediction_adjustment
from carvision.training.metric import TaskMetrics


class Classifier(L.LightningModule):
    """A timm classifier for one task.

    Takes plain values only, so `Classifier.load_from_checkpoint(path)` (or `load_classifier`) rebuilds it
    without Hydra. It never downloads weights itself: the train stage loads pretrained weights into
    `self.optimized` before fitting.

    `self.model` is the network that is validated, checkpointed (`model.*` in the state dict, which
    `inference.read_checkpoint` reads) and exported. With `ema`, it is timm's EMA of the network the optimizer
    updates, `self.raw_model` (`raw_model.*`, kept for resuming); without, the optimizer updates `self.model`.

    Args:
        backbone: timm model name.
        class_names: the label map; index i is target i.
        task: the task's name (make_model, viewpoint, car_filter, ...).
        positive_class: binary tasks: the class whose precision/recall at `threshold` is measured.
        class_counts: train images per class, for the imbalance strategies (and `posthoc` prediction).
        imbalance: the strategy (carvision.training.losses.STRATEGIES); focal_gamma, logit_tau, cb_beta and
            imbalance_smoothing are its parameters (imbalance.focal_gamma, .tau, .beta, .smoothing).
        img_size, mean, std: the preprocessing the model was trained with (px, RGB in [0, 1]).
        monitor: the validation metric that picks the best epoch (logged as val_<monitor>).
        crop: how the training images were cut (`carvision.cropping.CropSpec.to_hparams()`), so that prediction
            cuts photos the same way.
        optimizer ... unfreeze_epochs: the recipe, as in the train settings (`carvision.settings.TrainSettings`,
            docs/training.md); lr, weight_decay and epochs too.
    """

    def __init__(
        self,
        backbone: str,
        class_names: list[str],
        task: str = "make_model",
        positive_class: str | None = None,
        threshold: float = 0.5,
        class_counts: list[int] | None = None,
        imbalance: str = "none",
        focal_gamma: float = 2.0,
        label_smoothing: float = 0.0,
        logit_tau: float = 1.0,
        cb_beta: float = 0.999,
        imbalance_smoothing: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        epochs: int = 10,
        img_size: int = 224,
        mean: tuple[float, ...] = (0.485, 0.456, 0.406),
        std: tuple[float, ...] = (0.229, 0.224, 0.225),
        monitor: str = "top1",
        crop: dict | None = None,
        optimizer: str = "adamw",
        momentum: float = 0.9,
        sched: str = "cosine",
        warmup_epochs: float = 0.0,
        min_lr: float = 0.0,
        decay_epochs: float = 30.0,
        decay_rate: float = 0.1,
        layer_decay: float | None = None,
        ema: bool = False,
        ema_decay: float = 0.9998,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mixup_prob: float = 1.0,
        compile: bool = False,
        transfer: str = "full",
        unfreeze_epochs: list[int] | None = None,
    ) -> None:
        super().__init__()
        # logger=False: a 512-class label map is longer than an MLflow param may be; it is logged as a file.
        self.save_hyperparameters(logger=False)
        n = len(class_names)
        # channels_last: convolutions run about 1.9x faster on CPU (mobilenetv3_small_050, 64 px) and use
        # tensor cores on GPU; the weights and their state dict are the same.
        net = create_backbone(backbone, n).to(memory_format=torch.channels_last)
        recipe.check_recipe(optimizer, sched, transfer, unfreeze_epochs or [])
        if transfer == "linear_probe":
            recipe.set_trainable_(net, recipe.head_parameters(net))
        if ema:
            self.raw_model = net
            ema_of_net = recipe.weight_ema(net, ema_decay)
            self.model = ema_of_net.module
            # Outside the module tree: its `.module` is registered once, as `model`, so the state dict (and the
            # checkpoint) hold each averaged tensor once.
            object.__setattr__(self, "_ema", ema_of_net)
        else:
            self.model = net
        self.mixup = recipe.build_mixup(mixup_alpha, cutmix_alpha, mixup_prob, n)
        counts = class_counts or [1] * n
        self.criterion = build_loss(
            imbalance, counts, focal_gamma, label_smoothing, tau=logit_tau, beta=cb_beta, smoothing=imbalance_smoothing
        )
        # posthoc: validation scores the adjusted logits that prediction will serve, so the best epoch is picked on
        # them. Not persistent: the checkpoint's class_counts and logit_tau rebuild it (inference.Predictor does).
        self.register_buffer("logit_adjustment", prediction_adjustment(imbalance, counts, logit_tau), persistent=False)
        self.val_metrics = TaskMetrics(n, self.positive_index, threshold)

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    @property
    def positive_index(self) -> int | None:
        p = self.hparams.positive_class
        return None if p is None else self.class_names.index(p)

    @property
    def optimized(self) -> torch.nn.Module:
        """The network the optimizer updates: `raw_model` with EMA, else `model` itself."""
        return self.raw_model if self.hparams.ema else self.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 3, img_size, img_size) normalised images -> (batch, num_classes) logits of `model` (the EMA
        when on): what validation, the checkpoint and prediction use."""
        return self.model(x.contiguous(memory_format=torch.channels_last))

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        if mode:  # frozen parts (linear_probe, gradual) keep their pretrained norm statistics
            recipe.freeze_norm_statistics_(self.optimized)
        return self

    def on_train_epoch_start(self) -> None:
        # Lightning keeps each module's mode as it finds it (and restores it after validation); this sets the
        # frozen norm layers' after GradualUnfreezing, whose hook runs first, has chosen what trains this epoch.
        self.train()

    def configure_callbacks(self) -> list[L.Callback]:
        if self.hparams.transfer == "gradual":
            return [recipe.GradualUnfreezing(self.hparams.unfreeze_epochs)]
        return []

    def on_fit_start(self) -> None:
        if self.hparams.ema and self.trainer.ckpt_path is None:
            # A fresh run's average starts at the weights training starts from (pretrained ones included);
            # a resumed run has both networks from its checkpoint.
            self.model.load_state_dict(self.raw_model.state_dict())
        if self.hparams.compile:
            self.optimized.compile()  # in place: the state dict keeps its names

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        target = y
        if self.mixup is not None and len(x) % 2 == 0:  # timm's Mixup pairs image i with image n-1-i
            x, target = self.mixup(x, y)  # target: (batch, num_classes) probabilities
        loss = self.criterion(self.optimized(x.contiguous(memory_format=torch.channels_last)), target)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def on_train_epoch_end(self) -> None:
        # Once an epoch, not per step: logging a Python float copies it to the GPU, which waits for the queue.
        # The peak group's lr (layer_decay scales the lower layers' down) at the epoch's end.
        self.log("lr", max(g["lr"] for g in self.trainer.optimizers[0].param_groups), sync_dist=True)

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        if self.hparams.ema:
            # Lightning counts this step in global_step once it returns: this is optimizer step global_step + 1.
            self._ema.update(self.raw_model, step=self.global_step + 1)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.criterion(logits, y), prog_bar=True, sync_dist=True)
        if self.logit_adjustment is not None:
            logits = logits.float() + self.logit_adjustment
        self.val_metrics.update(logits.float().softmax(1), y)

    def on_validation_epoch_end(self) -> None:
        # compute() already sums the state over DDP ranks: every rank logs the same numbers.
        values = self.val_metrics.compute()
        self.log_dict({f"val_{k}": v for k, v in values.items()}, prog_bar=True)
        self.val_metrics.reset()

    def configure_optimizers(self):
        hp = self.hparams
        opt = recipe.build_optimizer(self.optimized, hp.optimizer, hp.lr, hp.weight_decay, hp.momentum, hp.layer_decay)
        epochs, steps_per_epoch = self.schedule_length()
        sched = recipe.build_scheduler(
            opt, hp.sched, epochs, steps_per_epoch, hp.warmup_epochs, hp.min_lr, hp.decay_epochs, hp.decay_rate
        )
        if sched is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def schedule_length(self) -> tuple[int, int]:
        """(epochs, optimizer steps per epoch) of the fit: the schedule is counted in steps, after accumulation
        and across DDP ranks as Lightning estimates them."""
        trainer = self._trainer
        if trainer is None:
            return self.hparams.epochs, 1
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else self.hparams.epochs
        return epochs, max(1, math.ceil(trainer.estimated_stepping_batches / epochs))

    def lr_scheduler_step(self, scheduler, metric) -> None:
        # timm's schedulers take the count of optimizer steps done; Lightning calls this after each one
        # (interval "step", never within an accumulation).
        scheduler.step_update(num_updates=self.global_step)


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> Classifier:
    """Rebuilds a trained classifier from its checkpoint alone: no Hydra, no config files, no downloads.

    The file is read with `weights_only=True`, so a checkpoint cannot run code when it is loaded.
    """
    ckpt = torch.load(Path(path), map_location=map_location, weights_only=True)
    model = Classifier(**ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
