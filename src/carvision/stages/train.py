"""Train: fit one task's classifier on its split manifest and record the run in MLflow.

python -m carvision.stages.train --task make_model   # DVC stage train@<task>: reads params.yaml, writes models/<task>/
python train.py -m task=viewpoint backbone=tiny,mobilenetv3   # Hydra sweeps compose conf/ instead
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf

from carvision import settings, sweeps, tasks
from carvision.atomic import atomic_path, write_json, write_text
from carvision.config import load_params, task_argument
from carvision.preprocess import Preprocess
from carvision.settings import Settings, TaskSettings, TrainSettings
from carvision.tracking import config_json, ensure_experiment, file_sha256, log_training_artifacts
from carvision.training import resume
from carvision.training.backbones import input_config, load_pretrained_
from carvision.training.data import TaskDataModule, class_counts, open_pack, packed_location, task_rows
from carvision.training.module import Classifier, load_classifier
from carvision.training.resume import RunState


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
        logit_tau=imbalance.tau,
        cb_beta=imbalance.beta,
        imbalance_smoothing=imbalance.smoothing,
        lr=t.lr,
        weight_decay=t.weight_decay,
        epochs=t.epochs,
        img_size=b.img_size,
        monitor=task.monitor,
        optimizer=t.optimizer,
        momentum=t.momentum,
        sched=t.sched,
        warmup_epochs=t.warmup_epochs,
        min_lr=t.min_lr,
        decay_epochs=t.decay_epochs,
        decay_rate=t.decay_rate,
        layer_decay=t.layer_decay,
        ema=t.ema,
        ema_decay=t.ema_decay,
        mixup_alpha=t.mixup_alpha,
        cutmix_alpha=t.cutmix_alpha,
        mixup_prob=t.mixup_prob,
        compile=t.compile,
        transfer=t.transfer,
        unfreeze_epochs=t.unfreeze_epochs,
    )
    if b.pretrained:
        load_pretrained_(module.optimized, b.name, b.weights_file)
    # The input size and normalisation come from the backbone's pretrained config, so they are never repeated in
    # YAML; backbone.img_size overrides the size. The checkpoint records all three (inference reads them).
    module.hparams.img_size, module.hparams.mean, module.hparams.std = input_config(module.optimized, b.img_size)
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
        callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=t.patience))
    strategy = tr.strategy
    if t.transfer == "gradual" and strategy == "ddp":
        strategy = "ddp_find_unused_parameters_true"  # parameters frozen after DDP wrapped them get no gradient
    trainer = L.Trainer(
        accelerator=tr.accelerator,
        devices=tr.devices,
        strategy=strategy,
        precision=tr.precision,
        num_nodes=tr.num_nodes,
        max_epochs=t.epochs,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val or None,  # global L2 norm (Lightning's default algorithm)
        benchmark=True,  # cuDNN picks the fastest convolution algorithms for the fixed input size (GPU only)
        logger=logger,
        callbacks=callbacks,
        deterministic=False,
        log_every_n_steps=5,
        enable_progress_bar=True,
    )
    share_cores(trainer)
    return trainer, best


def share_cores(trainer: L.Trainer) -> None:
    """DDP on the CPU: each of this machine's processes computes on its share of the cores.

    torch starts one thread per core in every process, so n processes on n cores run n² threads that mostly wait
    for each other (2 processes on 2 cores measured 3-7x slower per step). torchrun sets OMP_NUM_THREADS=1 for
    this reason; Lightning's own launcher does not. An OMP_NUM_THREADS set by the user wins.
    """
    if trainer.num_devices < 2 or "OMP_NUM_THREADS" in os.environ:
        return
    if not isinstance(trainer.accelerator, CPUAccelerator):
        return
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // trainer.num_devices))


def run_config(cfg: DictConfig, task: TaskSettings, sections: tuple) -> DictConfig:
    """The config the run logs: it names the task it trained (also under DVC's --task) and the backbone,
    imbalance and train sections it trained with (the task's own ones, when it pins them)."""
    cfg = cfg.copy()
    cfg.task = task.name
    for key, section in zip(("backbone", "imbalance", "train"), sections, strict=True):
        cfg[key] = OmegaConf.create(dataclasses.asdict(section))
    return cfg


def mlflow_logger(
    s: Settings, task: TaskSettings, backbone_name: str, strategy: str, run_id: str | None = None
) -> MLFlowLogger:
    """The run's MLflow logger: a new run, or with `run_id` the run a resumed training continues. A job of a sweep
    (`python train.py -m`) is filed under its sweep's parent run (`carvision.sweeps`)."""
    tags = {"task": task.name}
    # Created here, under the store's lock, rather than by the logger: jobs of a parallel sweep start together.
    ensure_experiment(s.mlflow.tracking_uri, s.mlflow.experiment, s.mlflow.artifact_location)
    parent = sweeps.parent_run_id()
    if parent:
        tags["mlflow.parentRunId"] = parent
    return MLFlowLogger(
        experiment_name=s.mlflow.experiment,
        tracking_uri=s.mlflow.tracking_uri,
        run_name=f"{task.name}-{backbone_name}-{strategy}",
        tags=tags,
        run_id=run_id,
        # Absolute, so that the artifacts do not depend on the folder a later process starts in.
        artifact_location=Path(s.mlflow.artifact_location).resolve().as_uri(),
    )


def run_state(s: Settings, task: TaskSettings, logged: DictConfig, manifest_file: Path) -> RunState:
    """Where this training keeps its resume checkpoints: keyed on everything that makes it this training (the
    config it logs, bar the resume settings, and the data it reads)."""
    identity = logged.copy()
    identity.train.resume = None
    identity.train.state_dir = None
    key = resume.config_hash(config_json(identity) + file_sha256(manifest_file))
    return RunState.of(s.train.state_dir, task.name, key)


class RememberRun(L.Callback):
    """Notes the MLflow run id beside the resume checkpoints once training starts, so that a resumed run continues
    this MLflow run instead of opening a second one (rank 0 owns the run; the other ranks log nothing)."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.state.remember_run(trainer.logger.run_id)


def save(out: Path, best: ModelCheckpoint, class_names: list[str]) -> tuple[Path, Path]:
    """Copies the best epoch's checkpoint to out/model.ckpt (atomically) and writes the label map beside it."""
    checkpoint = out / tasks.CHECKPOINT
    with atomic_path(checkpoint) as tmp:
        shutil.copyfile(best.best_model_path, tmp)
    labels_file = out / tasks.LABELS_FILE
    write_text(labels_file, json.dumps(class_names, indent=1) + "\n")
    return checkpoint, labels_file


def resume_checkpoint(t: TrainSettings, state: RunState) -> ModelCheckpoint:
    """The checkpoint a killed run resumes from: `last.ckpt` in the run's state folder, every
    `checkpoint_every_n_steps` optimizer steps (mid-epoch) and at each epoch's end."""
    every = t.checkpoint_every_n_steps or None
    return ModelCheckpoint(
        dirpath=state.folder, filename="last", every_n_train_steps=every, save_top_k=0, save_last=True,
        enable_version_counter=False,
    )  # fmt: skip


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
    packed = packed_location(s, task) if s.data.format == "litdata" else None
    if packed is not None:
        open_pack(packed, task.name, manifest_file, class_names)  # refuses shards packed from another manifest
    data = TaskDataModule(
        rows,
        len(class_names),
        preprocess,
        t.batch_size,
        t.num_workers,
        sampled,
        s.seed,
        shuffle=t.shuffle,
        packed=packed,
    )
    logged = run_config(cfg, task, (backbone, imbalance, t))
    state = run_state(s, task, logged, manifest_file)
    ckpt_path = state.checkpoint_to_resume(t.resume)
    run_id = state.run_id() if ckpt_path is not None else None
    if ckpt_path is not None:
        print(f"train {task.name}: resuming from {ckpt_path} (MLflow run {run_id})")
    logger = mlflow_logger(s, task, backbone.name, imbalance.strategy, run_id)
    trainer, best = build_trainer(s, t, f"val_{task.monitor}", logger, state.folder)
    trainer.callbacks.extend([resume_checkpoint(t, state), RememberRun(state)])
    if run_id is None:
        logger.log_hyperparams(
            {"world_size": trainer.world_size, "num_classes": len(counts), "train_images": sum(counts)}
        )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    if not trainer.is_global_zero:
        return None
    checkpoint, labels_file = save(out, best, class_names)
    # Log the best epoch's weights, not the last epoch's that `module` holds now.
    best_model = load_classifier(checkpoint).model
    dataset = (rows, manifest_file, task.label_column)
    model_uri = log_training_artifacts(
        logger.run_id, logged, best_model, checkpoint, labels_file, backbone.img_size, dataset
    )
    best_val = float(best.best_model_score) if best.best_model_score is not None else float("nan")
    steps = trainer.global_step
    write_json(
        out / tasks.RUN_FILE,
        {"run_id": logger.run_id, "model_uri": model_uri, "best_val": best_val, "optimizer_steps": steps},
    )
    state.clear()  # finished and saved: a re-run trains afresh
    print(f"train {task.name}: best val {task.monitor} {best_val:.3f}; checkpoint {checkpoint}; run {logger.run_id}")
    return TrainResult(checkpoint, logger.run_id, model_uri, best_val)


if __name__ == "__main__":
    main(load_params(), task_argument())
