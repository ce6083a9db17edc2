"""Tasks are data: what each task trains on, which rows count, its label map, and where its model lives.

make_model, viewpoint and car_filter differ only in their config (conf/task/*.yaml): the same training,
evaluation and registry code serves them all.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from carvision.cropping import CropSpec
from carvision.settings import CropSettings, PathSettings, TaskSettings

IMAGE_COLUMN = "crop_path"  # every task trains on the crop stage's images (the filter set's are whole photos)
CHECKPOINT = "model.ckpt"
RUN_FILE = "run.json"  # MLflow run id and model URI of the checkpoint beside it, for `evaluate`
LABELS_FILE = "labels.json"


def manifest_path(paths: PathSettings, task: TaskSettings) -> Path:
    """The split manifest the task trains on: the scrape's (paths.split) or the filter set's (paths.filterset)."""
    folder = {"scrape": paths.split, "filterset": paths.filterset}[task.dataset]
    return Path(folder) / "manifest.parquet"


def model_dir(models_root: str | Path, task: TaskSettings) -> Path:
    return Path(models_root) / task.name


def select_rows(df: pd.DataFrame, task: TaskSettings) -> pd.DataFrame:
    """The rows that count for the task: a non-empty label, and one of `task.classes` when those are fixed."""
    if task.label_column not in df.columns:
        raise ValueError(f"task {task.name}: the manifest has no column '{task.label_column}'")
    labels = df[task.label_column].fillna("").astype(str)
    keep = labels != ""
    if task.classes:
        keep &= labels.isin(task.classes)
    return df.loc[keep]


def label_map(rows: pd.DataFrame, task: TaskSettings) -> list[str]:
    """Class names in index order: the task's fixed classes, or every label of its rows, sorted."""
    return list(task.classes) if task.classes else sorted(rows[task.label_column].astype(str).unique())


def targets(rows: pd.DataFrame, task: TaskSettings, class_names: list[str]) -> list[int]:
    """Each row's class index in `class_names`; a label the model does not know is an error, not a guess."""
    index = {c: i for i, c in enumerate(class_names)}
    labels = rows[task.label_column].astype(str)
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"task {task.name}: labels {unknown[:5]} are not in the model's label map: re-run train")
    return [index[v] for v in labels]


def crop_spec(crop: CropSettings, task: TaskSettings) -> CropSpec:
    """How the task's training images are cut, for its checkpoint to carry: predict and the service cut the same way.
    The scrape's tasks train on the crop stage's output; the filter set is cropped whole (stages/filterset.py)."""
    method = crop.method if task.dataset == "scrape" else "full"
    detector = dataclasses.asdict(crop.detector) if method == "detector" else None
    return CropSpec(method, crop.margin, crop.max_side, crop.min_box_side, detector)
