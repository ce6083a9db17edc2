"""Shared fixtures: a small generated scrape, a composed config pointing into tmp folders, and the data
stages run once per session so that training tests start from a real split manifest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# Tests never reach the hub (CI has no internet): fail fast instead of waiting on network timeouts.
# huggingface_hub reads this when it is imported, so it must be set before anything imports timm.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from carvision.config import compose  # noqa: E402
from carvision.sample import SampleSpec, generate_sample  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SMALL_SAMPLE = SampleSpec(n_listings=80, image_size=(128, 96))

# Settings for a tiny, fast model on the small sample: 32 px mobilenet, 2 epochs, single process.
TINY_TRAIN = [
    "backbone=tiny",
    "backbone.img_size=32",
    "train.epochs=2",
    "train.batch_size=32",
    "split.min_images_per_class=8",
    "clean.workers=1",
    "crop.workers=1",
    "crop.max_side=64",
    "tasks.car_filter.backbone.img_size=32",
    "tasks.car_filter.train.epochs=2",
    "tasks.car_filter.train.batch_size=32",
]


# What a throw-away copy of the project needs to run its DVC pipelines (tests/test_dvc_*.py).
PROJECT_ITEMS = ("conf", "src", "pipelines", "class_merge", ".dvc", "dvc.yaml", ".dvcignore", ".gitignore")


def sh(args: list[str], cwd: Path) -> str:
    """Runs a command (dvc, git, python) with this environment's tools first on PATH; its output, or a failed
    assertion with the output's end."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def copy_project(root: Path) -> Path:
    """Copies the project's pipeline files into `root` (not this checkout's DVC cache and state)."""
    root.mkdir(parents=True, exist_ok=True)
    for item in PROJECT_ITEMS:
        src = REPO / item
        if src.is_dir():
            skip = ("__pycache__", "cache", "tmp") if item == ".dvc" else ("__pycache__",)
            shutil.copytree(src, root / item, ignore=shutil.ignore_patterns(*skip))
        else:
            shutil.copy(src, root / item)
    return root


def commit_project(root: Path) -> None:
    """Composes params.yaml from the copy's conf/ and commits everything in a new git repo."""
    sh([sys.executable, "-m", "carvision.config"], root)
    sh(["git", "init", "-q"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "init"], root)


def overrides_for(root: Path, data_root: Path | None = None) -> list[str]:
    """Hydra overrides that put every output (data, models, reports, MLflow store) under `root`."""
    outputs = dict(
        ingest="data/ingest",
        clean="data/clean",
        filter="data/filter",
        crop="data/crop",
        split="data/split",
        filterset="data/filterset",
        models="models",
        reports="reports",
    )
    out = [*TINY_TRAIN, *(f"paths.{k}={root / v}" for k, v in outputs.items())]
    # The data stages' tests run without a car filter; tests of the filter train or build one themselves.
    out += ["filter.model=none"]
    out += [f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}", f"mlflow.artifact_location={root / 'mlartifacts'}"]
    return out + ([f"data.root={data_root}"] if data_root is not None else [])


def make_cfg(root: Path, overrides: list[str] | None = None, data_root: Path | None = None) -> DictConfig:
    """conf/ composed with the tiny-model settings and every output under `root`."""
    return compose([*overrides_for(root, data_root), *(overrides or [])], conf_dir=CONF)


@pytest.fixture(autouse=True)
def _restore_mlflow_environment():
    """mlflow.set_tracking_uri/set_registry_uri export environment variables; keep them from leaking into the
    next test's subprocesses (the code must not depend on them, and a test must not hide that it does)."""
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {k: os.environ.get(k) for k in keys}
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated scrape (80 listings, ~380 photos), made once per session; treat it as read-only."""
    out = tmp_path_factory.mktemp("scrape") / "sample"
    generate_sample(out, seed=0, spec=SMALL_SAMPLE)
    return out


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> DictConfig:
    """The config of a session folder in which ingest, clean, filter (with no model), crop and split have run on
    the sample."""
    from carvision.stages import clean, crop, filter, ingest, split

    cfg = make_cfg(tmp_path_factory.mktemp("pipeline"), data_root=sample_dir)
    for stage in (ingest, clean, filter, crop, split):
        stage.main(cfg)
    return cfg


def reuse_prepared(prepared_cfg: DictConfig, root: Path, overrides: list[str] | None = None) -> DictConfig:
    """A config reusing the session's prepared data, with its own models, reports and MLflow store under
    `root`, so that tests which train or register do not see each other."""
    cfg = make_cfg(root, overrides, data_root=Path(prepared_cfg.data.root))
    for k in ("ingest", "clean", "filter", "crop", "split"):
        cfg.paths[k] = prepared_cfg.paths[k]
    return cfg


# Every task's gate wide open, so that the tests' tiny models register.
OPEN_GATES = [
    "tasks.car_filter.gate.precision=0",
    "tasks.car_filter.gate.recall=0",
    "tasks.make_model.gate.top1=0",
    "tasks.make_model.gate.top5=0",
    "tasks.viewpoint.gate.top1=0",
    "tasks.viewpoint.gate.balanced_accuracy=0",
]
TASKS = ("car_filter", "make_model", "viewpoint")


@pytest.fixture(scope="session")
def filter_set_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated hand-labelled filter set (car/, no_car/); treat it as read-only."""
    from carvision.sample import generate_filter_set

    out = tmp_path_factory.mktemp("filterset") / "sample-filter"
    generate_filter_set(out, seed=0, n_car=60, n_no_car=60, image_size=(128, 96))
    return out


@pytest.fixture(scope="session")
def trained_tasks(tmp_path_factory: pytest.TempPathFactory, prepared: DictConfig, filter_set_dir: Path) -> DictConfig:
    """A config whose models/<task>/ holds a trained tiny checkpoint of every task, each evaluated and registered
    in its own MLflow store (gates open). Treat it as read-only: copy the config to change it."""
    from carvision.stages import evaluate, filterset, train

    cfg = reuse_prepared(prepared, tmp_path_factory.mktemp("tasks"), [f"filterset.root={filter_set_dir}", *OPEN_GATES])
    filterset.main(cfg)
    for task in TASKS:
        train.main(cfg, task)
        evaluate.main(cfg, task)
    return cfg
