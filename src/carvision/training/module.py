"""The LightningModule: a timm classifier that carries its label map and preprocessing in its checkpoint."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from carvision.training.backbones import create_backbone
from carvision.training.losses import build_loss


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """top1/top5 are micro (ordinary) accuracy, the registry gate's numbers; torchmetrics defaults to macro."""
    return MetricCollection(
        {
            "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
            "top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
            "balanced_acc": MulticlassAccuracy(num_classes, average="macro"),
            "macro_f1": MulticlassF1Score(num_classes, average="macro"),
        },
        prefix=prefix,
    )


class CarClassifier(L.LightningModule):
    """Make/model classifier over a timm backbone.

    Takes plain values only, so `CarClassifier.load_from_checkpoint(path)` rebuilds it without Hydra. It never
    downloads weights itself: the train stage loads pretrained weights into `self.model` before fitting.

    Args:
        backbone: timm model name.
        class_names: the label map; index i is class_idx i of the split manifest.
        class_counts: train images per class, for the weighted loss.
        img_size, mean, std: the preprocessing the model was trained with (px, RGB in [0, 1]).
    """

    def __init__(
        self,
        backbone: str,
        class_names: list[str],
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
    ) -> None:
        super().__init__()
        # logger=False: a 512-class label map is longer than an MLflow param may be; it is logged as a file.
        self.save_hyperparameters(logger=False)
        n = len(class_names)
        self.model = create_backbone(backbone, n)
        self.criterion = build_loss(imbalance, class_counts or [1] * n, focal_gamma, label_smoothing)
        self.val_metrics = classification_metrics(n, "val_")

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 3, img_size, img_size) normalised images -> (batch, num_classes) logits."""
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.criterion(logits, y), prog_bar=True, sync_dist=True)
        self.val_metrics.update(logits, y)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.hparams.epochs))
        return {"optimizer": opt, "lr_scheduler": sched}


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> CarClassifier:
    """Rebuilds a trained classifier from its checkpoint alone: no Hydra, no config files, no downloads.

    The file is read with `weights_only=True`, so a checkpoint cannot run code when it is loaded.
    """
    ckpt = torch.load(Path(path), map_location=map_location, weights_only=True)
    model = CarClassifier(**ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
