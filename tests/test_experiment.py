"""`python train.py`: Hydra sweeps and DDP, run as a user runs them, in subprocesses on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from carvision.tracking import connect
from conftest import REPO, overrides_for


def run_train_py(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def shared_data(prepared) -> list[str]:
    return [f"paths.{k}={prepared.paths[k]}" for k in ("ingest", "clean", "crop", "split")]


def sweep_runs(tmp_path: Path):
    """(the sweep's parent run, its jobs' runs) in the test's MLflow store; every run belongs to the one sweep."""
    client = connect(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("carvision").experiment_id])
    parents = [r for r in runs if "carvision.sweep_dir" in r.data.tags]
    assert len(parents) == 1, [r.data.tags for r in runs]
    parent = parents[0]
    jobs = [r for r in runs if r is not parent]
    assert all(r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in jobs)
    assert parent.info.status == "FINISHED"
    return parent, jobs


@pytest.mark.slow  # the DDP sweep below covers sweeps and their grouping in the default run
def test_sweep_of_the_viewpoint_task_over_two_small_backbones_gives_two_mlflow_runs(prepared, tmp_path: Path):
    # Any task sweeps: `task=viewpoint` selects it, like `python train.py -m task=viewpoint backbone=tiny,...`.
    args = [
        "-m",
        "task=viewpoint",
        "backbone.name=mobilenetv3_small_050,test_efficientnet",
        "train.epochs=1",
        *overrides_for(tmp_path),
        *shared_data(prepared),
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]
    run_train_py(args, tmp_path)
    _, runs = sweep_runs(tmp_path)
    assert sorted(r.data.params["backbone.name"] for r in runs) == ["mobilenetv3_small_050", "test_efficientnet"]
    assert all(r.data.tags["task"] == "viewpoint" and r.data.params["task"] == "viewpoint" for r in runs)
    assert all(r.info.status == "FINISHED" and "test_balanced_accuracy" in r.data.metrics for r in runs)
    # Each job keeps its own checkpoint and evaluation reports.
    for job in ("0", "1"):
        assert (tmp_path / "multirun" / job / "viewpoint" / "model.ckpt").is_file()
        assert (tmp_path / "multirun" / job / "reports" / "evaluate" / "viewpoint" / "metrics.json").is_file()


def test_a_sweep_of_two_jobs_each_on_two_ddp_cpu_processes_is_one_parent_run_with_two_children(
    prepared, tmp_path: Path
):
    # -m with strategy=ddp is the case of Lightning issue 11300: the DDP launcher re-runs the command line,
    # which would re-enter the sweep. Each job must give one run, trained by 2 processes over gloo, and both runs
    # must be filed under the sweep's parent run.
    args = [
        "-m",
        "task=viewpoint",
        "backbone.name=mobilenetv3_small_050,test_efficientnet",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        "train.epochs=1",
        *overrides_for(tmp_path),
        *shared_data(prepared),
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]
    run_train_py(args, tmp_path)
    parent, runs = sweep_runs(tmp_path)
    assert sorted(r.data.params["backbone.name"] for r in runs) == ["mobilenetv3_small_050", "test_efficientnet"]
    for r in runs:
        assert r.data.params["world_size"] == "2" and r.data.params["trainer.strategy"] == "ddp"
        assert r.info.status == "FINISHED"
        assert "val_top1" in r.data.metrics and "test_top1" in r.data.metrics
    assert "backbone.name=mobilenetv3_small_050,test_efficientnet" in parent.data.tags["carvision.sweep"]
    jobs = sorted(p.name for p in (tmp_path / "multirun").iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1"]
