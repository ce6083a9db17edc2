"""`python train.py`: Hydra sweeps and DDP, run as a user runs them, in subprocesses on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
    client = connect(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("carvision").experiment_id])
    assert sorted(r.data.params["backbone.name"] for r in runs) == ["mobilenetv3_small_050", "test_efficientnet"]
    assert all(r.data.tags["task"] == "viewpoint" and r.data.params["task"] == "viewpoint" for r in runs)
    assert all(r.info.status == "FINISHED" and "test_balanced_accuracy" in r.data.metrics for r in runs)
    # Each job keeps its own checkpoint and evaluation reports.
    for job in ("0", "1"):
        assert (tmp_path / "multirun" / job / "viewpoint" / "model.ckpt").is_file()
        assert (tmp_path / "multirun" / job / "reports" / "evaluate" / "viewpoint" / "metrics.json").is_file()


def test_ddp_with_two_cpu_processes_inside_a_sweep(prepared, tmp_path: Path):
    # -m with strategy=ddp is the case of Lightning issue 11300: the DDP launcher re-runs the command line,
    # which would re-enter the sweep. One job must give one run, trained by 2 processes over gloo.
    args = [
        "-m",
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
    client = connect(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("carvision").experiment_id])
    assert len(runs) == 1, [r.data.params.get("world_size") for r in runs]
    assert runs[0].data.params["world_size"] == "2"
    assert runs[0].data.params["trainer.strategy"] == "ddp"
    assert "val_top1" in runs[0].data.metrics and "test_top1" in runs[0].data.metrics
    assert sorted(p.name for p in (tmp_path / "multirun").iterdir() if p.is_dir() and p.name.isdigit()) == ["0"]
