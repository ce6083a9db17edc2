"""The LightningModule: one generic classifier for every task, whose checkpoint carries the task, the label map
and the preprocessing, and loads without Hydra."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from carvision.training.backbones import create_backbone
from carvision.training.losses import build_loss
from carvision.training.metric import TaskMetrics


class Classifier(L.LightningModule):
    """A timm classifier for one task.

    Takes plain values only, so `Classifier.load_from_checkpoint(path)` (or `load_classifier`) rebuilds it
    without Hydra. It never downloads weights itself: the train stage loads pretrained weights into
    `self.model` before fitting.

    Args:
        backbone: timm model name.
        class_names: the label map; index i is target i.
        task: the task's name (make_model, viewpoint, car_filter, ...).
        positive_class: binary tasks: the class whose precision/recall at `threshold` is measured.
        class_counts: train images per class, for the weighted loss.
        img_size, mean, std: the preprocessing the model was trained with (px, RGB in [0, 1]).
        monitor: the validation metric that picks the best epoch (logged as val_<monitor>).
        crop: how the training images were cut (`carvision.cropping.CropSpec.to_hparams()`), so that prediction
            cuts photos the same way.
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
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        epochs: int = 10,
        img_size: int = 224,
        mean: tuple[float, ...] = (0.485, 0.456, 0.406),
        std: tuple[float, ...] = (0.229, 0.224, 0.225),
        monitor: str = "top1",
        crop: dict | None = None,
    ) -> None:
        super().__init__()
        # logger=False: a 512-class label map is longer than an MLflow param may be; it is logged as a file.
        self.save_hyperparameters(logger=False)
        n = len(class_names)
        # channels_last: convolutions run about 1.9x faster on CPU (mobilenetv3_small_050, 64 px) and use
        # tensor cores on GPU; the weights and their state dict are the same.
        self.model = create_backbone(backbone, n).to(memory_format=torch.channels_last)
        self.criterion = build_loss(imbalance, class_counts or [1] * n, focal_gamma, label_smoothing)
        self.val_metrics = TaskMetrics(n, self.positive_index, threshold)

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    @property
    def positive_index(self) -> int | None:
        p = self.hparams.positive_class
        return None if p is None else self.class_names.index(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 3, img_size, img_size) normalised images -> (batch, num_classes) logits."""
        return self.model(x.contiguous(memory_format=torch.channels_last))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.criterion(logits, y), prog_bar=True, sync_dist=True)
        self.val_metrics.update(logits.float().softmax(1), y)

    def on_validation_epoch_end(self) -> None:
        # compute() already sums the state over DDP ranks: every rank logs the same numbers.
        values = self.val_metrics.compute()
        self.log_dict({f"val_{k}": v for k, v in values.items()}, prog_bar=True)
        self.val_metrics.reset()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.hparams.epochs))
        return {"optimizer": opt, "lr_scheduler": sched}


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> Classifier:
    """Rebuilds a trained classifier from its checkpoint alone: no Hydra, no config files, no downloads.

    The file is read with `weights_only=True`, so a checkpoint cannot run code when it is loaded.
    """
    ckpt = torch.load(Path(path), map_location=map_location, weights_only=True)
    model = Classifier(**ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
