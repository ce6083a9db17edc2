"""MLflow tracking: what every training run records, and the provenance (git, data, config) of a model."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient


def connect(uri: str) -> MlflowClient:
    """Points this process's MLflow at `uri` (tracking store and registry) and returns a client for it.

    The configured store must win over the environment: `mlflow.set_tracking_uri`/`set_registry_uri` export
    MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI to child processes, and MLflow resolves a `models:/<id>` source
    through the process-wide tracking URI, so a stale variable would register into another store.

    The client is made under `store_lock`: making it creates a new sqlite store's tables (MLflow's schema
    migrations), and processes started together (the jobs of a parallel sweep) would otherwise migrate the same
    new file at once ("duplicate column name: step" seen with 2 processes 0.3 s apart).
    """
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with store_lock(uri):
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` store; None for a server (http, postgresql, ...)."""
    prefix = "sqlite:///"
    return Path(uri.removeprefix(prefix)) if uri.startswith(prefix) else None


_LOCKS: dict = {}  # lock file path -> this process's FileLock on it (see store_lock)


@contextmanager
def store_lock(uri: str, timeout_s: float = 600.0) -> Iterator[None]:
    """Serialises a read-decide-write sequence (creating the store; judging and moving a champion alias) among
    the processes of this machine that share a sqlite store: `<db>.lock`, an OS file lock that a killed process
    releases. SQLite makes each write atomic, not a sequence of reads and writes. Jobs on several machines share
    an `mlflow server` instead (docs/training.md), where this lock does not reach: nothing here for them."""
    db = sqlite_file(uri)
    if db is None:
        yield
        return
    from filelock import FileLock

    db.parent.mkdir(parents=True, exist_ok=True)
    path = str(db.resolve()) + ".lock"
    # One lock object per file in this process, so that a holder may take it again (connect() inside a locked
    # section): a second object would open the file anew and wait for the first one forever.
    lock = _LOCKS.setdefault(path, FileLock(path, timeout=timeout_s))
    with lock:
        yield


def ensure_experiment(uri: str, name: str, artifact_location: str | Path) -> str:
    """The id of experiment `name`, created (with its artifacts under `artifact_location`) when missing. Under
    `store_lock`, so that jobs starting together do not both create it (MLflow's own get-or-create is a read, then
    a write: the second job's create would fail)."""
    client = connect(uri)
    with store_lock(uri):
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        return client.create_experiment(name, artifact_location=Path(artifact_location).resolve().as_uri())


def flat_params(cfg: DictConfig) -> dict[str, str]:
    """The config as dotted MLflow params, e.g. {"backbone.name": "efficientnet_b2"}."""
    out: dict[str, str] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = json.dumps(node) if isinstance(node, dict | list) else str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def config_json(cfg: DictConfig) -> str:
    return json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True, separators=(",", ":"))


def git_commit(cwd: str | Path = ".") -> str:
    """HEAD's commit, with `-dirty` when tracked files differ from it; `unknown` outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def log_training_artifacts(
    run_id: str,
    cfg: DictConfig,
    model,
    checkpoint: Path,
    labels_file: Path,
    img_size: int,
    dataset: tuple[pd.DataFrame, Path, str] | None = None,
) -> str:
    """Logs the resolved config, params, class map, checkpoint, model and training data into run `run_id`.

    Args:
        dataset: (task rows of the split manifest, its file, the label column), logged as the run's dataset
            input so that the UI shows what the model was trained on.
    Returns the logged model's URI.
    """
    import mlflow
    import mlflow.pytorch
    import numpy as np
    import timm
    import torch

    from carvision.registry import CHECKPOINT_ARTIFACT

    connect(cfg.mlflow.tracking_uri)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        mlflow.log_params(flat_params(cfg))
        mlflow.log_artifact(str(labels_file))
        # The checkpoint is what `Predictor.load("models:/...")` downloads: it carries task, labels, preprocessing.
        mlflow.log_artifact(str(checkpoint), CHECKPOINT_ARTIFACT)
        if dataset is not None:
            rows, path, label_column = dataset
            columns = [c for c in ("image_id", "listing_id", "group_id", "split", label_column) if c in rows]
            table = rows[columns].astype(str).reset_index(drop=True)
            ds = mlflow.data.from_pandas(table, source=str(path), name=path.parent.name, targets=label_column)
            mlflow.log_input(ds, context="training")
        info = mlflow.pytorch.log_model(
            model.eval(),
            name="model",
            # pt2 (torch.export) stores a traced graph, not pickled code; tracing needs an example batch, and
            # export fixes any dimension of size 1, so the example has 2 images to keep the batch size free.
            serialization_format="pt2",
            input_example=np.zeros((2, 3, img_size, img_size), dtype=np.float32),
            # Explicit requirements: inferring them imports and probes the whole environment (slow).
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"timm=={timm.__version__}"],
        )
    return info.model_uri
