"""Train: fit a classifier on the split manifest and record the run in MLflow.

python -m carvision.stages.train       # reads params.yaml (DVC stage `train`), writes models/model.ckpt
python train.py -m backbone=tiny imbalance=none,focal   # Hydra sweeps compose conf/ instead
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig
from timm.data import resolve_model_data_config

from carvision import manifest
from carvision.atomic import atomic_path, write_json
from carvision.config import load_params
from carvision.tracking import log_training_artifacts
from carvision.training.backbones import load_pretrained_
from carvision.training.data import CarDataModule, class_counts
from carvision.training.module import CarClassifier, load_classifier

CHECKPOINT = "model.ckpt"
RUN_FILE = "run.json"  # MLflow run id and model URI of the checkpoint beside it, for `evaluate`


@dataclass
class TrainResult:
    checkpoint: Path
    run_id: str
    model_uri: str
    best_val_top1: float


def build_classifier(cfg: DictConfig, class_names: list[str], class_counts: list[int]) -> CarClassifier:
    """The LightningModule from the backbone, imbalance and train sections, unpacked into plain values."""
    b, t = cfg.backbone, cfg.train
    module = CarClassifier(
        backbone=b.name,
        class_names=class_names,
        class_counts=class_counts,
        imbalance=cfg.imbalance.strategy,
        focal_gamma=float(cfg.imbalance.focal_gamma),
        label_smoothing=float(t.label_smoothing),
        lr=float(t.lr),
        weight_decay=float(t.weight_decay),
        epochs=int(t.epochs),
        img_size=int(b.img_size),
    )
    if b.pretrained:
        load_pretrained_(module.model, b.name, b.weights_file)
    # Normalisation comes from the backbone's own data config, so it is never repeated in YAML.
    data_cfg = resolve_model_data_config(module.model)
    module.hparams.mean, module.hparams.std = tuple(data_cfg["mean"]), tuple(data_cfg["std"])
    return module


def build_trainer(cfg: DictConfig, logger: MLFlowLogger, staging: Path) -> tuple[L.Trainer, ModelCheckpoint]:
    tr = cfg.trainer
    best = ModelCheckpoint(
        dirpath=staging, filename="best", monitor="val_top1", mode="max", save_top_k=1, enable_version_counter=False
    )
    callbacks = [best]
    if cfg.train.patience > 0:
        callbacks.append(EarlyStopping(monitor="val_top1", mode="max", patience=cfg.train.patience))
    trainer = L.Trainer(
        accelerator=tr.accelerator,
        devices=tr.devices,
        strategy=tr.strategy,
        precision=tr.precision,
        num_nodes=tr.num_nodes,
        max_epochs=cfg.train.epochs,
        logger=logger,
        callbacks=callbacks,
        deterministic=False,
        log_every_n_steps=5,
        enable_progress_bar=True,
    )
    return trainer, best


def main(cfg: DictConfig) -> TrainResult | None:
    """Trains, then (on rank 0) writes paths.models/model.ckpt and run.json. Returns None on other ranks."""
    L.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.models)
    split_dir = Path(cfg.paths.split)
    df = manifest.read(split_dir / "manifest.parquet", stage="split")
    labels_file = split_dir / "labels.json"
    class_names = json.loads(labels_file.read_text())
    train_counts = class_counts(df, len(class_names))
    module = build_classifier(cfg, class_names, train_counts)
    data = CarDataModule(
        df,
        len(class_names),
        cfg.backbone.img_size,
        module.hparams.mean,  # the backbone's own normalisation, resolved in build_classifier
        module.hparams.std,
        batch_size=cfg.train.batch_size,
        num_workers=cfg.train.num_workers,
        balanced_sampling=cfg.imbalance.strategy == "weighted_sampler",
        seed=cfg.seed,
    )

    logger = MLFlowLogger(
        experiment_name=cfg.mlflow.experiment,
        tracking_uri=cfg.mlflow.tracking_uri,
        run_name=f"{cfg.backbone.name}-{cfg.imbalance.strategy}",
        # Absolute, so that the artifacts do not depend on the folder a later process starts in.
        artifact_location=Path(cfg.mlflow.artifact_location).resolve().as_uri(),
    )
    staging = out / ".staging"
    trainer, best = build_trainer(cfg, logger, staging)
    logger.log_hyperparams(
        {
            "world_size": trainer.world_size,
            "num_classes": len(class_names),
            "train_images": sum(train_counts),
        }
    )
    trainer.fit(module, datamodule=data)
    if not trainer.is_global_zero:
        return None

    with atomic_path(out / CHECKPOINT) as tmp:
        shutil.copyfile(best.best_model_path, tmp)
    shutil.rmtree(staging, ignore_errors=True)
    checkpoint = out / CHECKPOINT
    # Log the best epoch's weights, not the last epoch's that `module` holds now.
    best_model = load_classifier(checkpoint).model
    model_uri = log_training_artifacts(logger.run_id, cfg, best_model, checkpoint, labels_file)
    best_top1 = float(best.best_model_score) if best.best_model_score is not None else float("nan")
    write_json(out / RUN_FILE, {"run_id": logger.run_id, "model_uri": model_uri, "best_val_top1": best_top1})
    print(f"train: best val top-1 {best_top1:.3f}; checkpoint {checkpoint}; MLflow run {logger.run_id}")
    return TrainResult(checkpoint, logger.run_id, model_uri, best_top1)


if __name__ == "__main__":
    main(load_params())
