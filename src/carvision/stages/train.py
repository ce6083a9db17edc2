"""Train: fit one task's classifier on its split manifest and record the run in MLflow.

python -m carvision.stages.train --task make_model   # DVC stage train@<task>: reads params.yaml, writes models/<task>/
python train.py -m task=viewpoint backbone=tiny,mobilenetv3   # Hydra sweeps compose conf/ instead
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf
from timm.data import resolve_model_data_config

from carvision import manifest, settings, tasks
from carvision.atomic import atomic_path, write_json, write_text
from carvision.config import load_params, task_argument
from carvision.preprocess import Preprocess
from carvision.settings import Settings, TaskSettings, TrainSettings
from carvision.tracking import log_training_artifacts
from carvision.training.backbones import load_pretrained_
from carvision.training.data import TaskDataModule, class_counts
from carvision.training.module import Classifier, load_classifier


@dataclass
class TrainResult:
    checkpoint: Path
    run_id: str
    model_uri: str
    best_val: float


def build_classifier(s: Settings, task: TaskSettings, class_names: list[str], counts: list[int]) -> Classifier:
    """The LightningModule from the task and the backbone, imbalance and train settings it trains with."""
    b, imbalance, t = s.training_of(task)
    module = Classifier(
        backbone=b.name,
        class_names=class_names,
        task=task.name,
        positive_class=task.positive_class,
        threshold=s.filter.threshold,  # binary tasks are measured at the threshold the filter stage applies
        class_counts=counts,
        imbalance=imbalance.strategy,
        focal_gamma=imbalance.focal_gamma,
        label_smoothing=t.label_smoothing,
        lr=t.lr,
        weight_decay=t.weight_decay,
        epochs=t.epochs,
        img_size=b.img_size,
        monitor=task.monitor,
    )
    if b.pretrained:
        load_pretrained_(module.model, b.name, b.weights_file)
    # Normalisation comes from the backbone's own data config, so it is never repeated in YAML.
    data_cfg = resolve_model_data_config(module.model)
    module.hparams.mean, module.hparams.std = tuple(data_cfg["mean"]), tuple(data_cfg["std"])
    # How the training images were cut: `carvision predict` and the service cut photos the same way.
    module.hparams.crop = tasks.crop_spec(s.crop, task).to_hparams()
    return module


def build_trainer(
    s: Settings, t: TrainSettings, monitor: str, logger: MLFlowLogger, staging: Path
) -> tuple[L.Trainer, ModelCheckpoint]:
    tr = s.trainer
    best = ModelCheckpoint(
        dirpath=staging, filename="best", monitor=monitor, mode="max", save_top_k=1, enable_version_counter=False
    )
    callbacks = [best]
    if t.patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=s.train.patience))
    trainer = L.Trainer(
        accelerator=tr.accelerator,
        devices=tr.devices,
        strategy=tr.strategy,
        precision=tr.precision,
        num_nodes=tr.num_nodes,
        max_epochs=t.epochs,
        logger=logger,
        callbacks=callbacks,
        deterministic=False,
        log_every_n_steps=5,
        enable_progress_bar=True,
    )
    return trainer, best


def task_rows(s: Settings, task: TaskSettings):
    """(the task's rows with a `target` column, the label map, the manifest file) of its split manifest."""
    manifest_file = tasks.manifest_path(s.paths, task)
    df = manifest.read(manifest_file, stage="split")
    rows = tasks.select_rows(df, task)
    class_names = tasks.label_map(rows, task)
    rows = rows.assign(target=tasks.targets(rows, task, class_names))
    missing = [split for split in ("train", "val") if not (rows["split"] == split).any()]
    present = rows[task.label_column].nunique()
    if missing or present < 2:
        raise ValueError(
            f"task {task.name}: {len(rows)} of {len(df)} rows of {manifest_file} have a '{task.label_column}' label, "
            f"in {present} classes, with no {missing} rows: a task needs 2 classes and train and val rows"
        )
    return rows, class_names, manifest_file


def run_config(cfg: DictConfig, task: TaskSettings, sections: tuple) -> DictConfig:
    """The config the run logs: it names the task it trained (also under DVC's --task) and the backbone,
    imbalance and train sections it trained with (the task's own ones, when it pins them)."""
    cfg = cfg.copy()
    cfg.task = task.name
    for key, section in zip(("backbone", "imbalance", "train"), sections, strict=True):
        cfg[key] = OmegaConf.create(dataclasses.asdict(section))
    return cfg


def mlflow_logger(s: Settings, task: TaskSettings, backbone_name: str, strategy: str) -> MLFlowLogger:
    return MLFlowLogger(
        experiment_name=s.mlflow.experiment,
        tracking_uri=s.mlflow.tracking_uri,
        run_name=f"{task.name}-{backbone_name}-{strategy}",
        tags={"task": task.name},
        # Absolute, so that the artifacts do not depend on the folder a later process starts in.
        artifact_location=Path(s.mlflow.artifact_location).resolve().as_uri(),
    )


def save(out: Path, best: ModelCheckpoint, class_names: list[str]) -> tuple[Path, Path]:
    """Copies the best epoch's checkpoint to out/model.ckpt (atomically) and writes the label map beside it."""
    checkpoint = out / tasks.CHECKPOINT
    with atomic_path(checkpoint) as tmp:
        shutil.copyfile(best.best_model_path, tmp)
    shutil.rmtree(out / ".staging", ignore_errors=True)
    labels_file = out / tasks.LABELS_FILE
    write_text(labels_file, json.dumps(class_names, indent=1) + "\n")
    return checkpoint, labels_file


def main(cfg: DictConfig, task_name: str | None = None) -> TrainResult | None:
    """Trains, then (on rank 0) writes <models>/<task>/model.ckpt, labels.json and run.json. None on other ranks."""
    s = settings.parse(cfg)
    task = settings.task_named(s, task_name or s.task)
    backbone, imbalance, t = s.training_of(task)
    L.seed_everything(s.seed, workers=True)
    out = tasks.model_dir(s.paths.models, task)
    rows, class_names, manifest_file = task_rows(s, task)
    counts = class_counts(rows.loc[rows["split"] == "train", "target"], len(class_names))
    module = build_classifier(s, task, class_names, counts)
    preprocess = Preprocess(backbone.img_size, module.hparams.mean, module.hparams.std)
    sampled = imbalance.strategy == "weighted_sampler"
    data = TaskDataModule(rows, len(class_names), preprocess, t.batch_size, t.num_workers, sampled, s.seed)
    logger = mlflow_logger(s, task, backbone.name, imbalance.strategy)
    trainer, best = build_trainer(s, t, f"val_{task.monitor}", logger, out / ".staging")
    logger.log_hyperparams({"world_size": trainer.world_size, "num_classes": len(counts), "train_images": sum(counts)})
    trainer.fit(module, datamodule=data)
    if not trainer.is_global_zero:
        return None
    checkpoint, labels_file = save(out, best, class_names)
    # Log the best epoch's weights, not the last epoch's that `module` holds now.
    best_model = load_classifier(checkpoint).model
    logged = run_config(cfg, task, (backbone, imbalance, t))
    dataset = (rows, manifest_file, task.label_column)
    model_uri = log_training_artifacts(
        logger.run_id, logged, best_model, checkpoint, labels_file, backbone.img_size, dataset
    )
    best_val = float(best.best_model_score) if best.best_model_score is not None else float("nan")
    write_json(out / tasks.RUN_FILE, {"run_id": logger.run_id, "model_uri": model_uri, "best_val": best_val})
    print(f"train {task.name}: best val {task.monitor} {best_val:.3f}; checkpoint {checkpoint}; run {logger.run_id}")
    return TrainResult(checkpoint, logger.run_id, model_uri, best_val)


if __name__ == "__main__":
    main(load_params(), task_argument())
