"""`python train.py`: Hydra sweeps and DDP, run as a user runs them, in subprocesses on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from carvision.tracking import connect
from conftest import OPEN_GATES, REPO, overrides_for


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


# --- cluster and parallel launchers ---------------------------------------------------------------------------


def slurm_batch_script(overrides: list[str], sweep_dir: Path) -> str:
    """The sbatch script that `hydra/launcher=slurm` submits for one job: conf/ composed with `overrides`, the
    launcher's parameters resolved and handed to submitit as the submitit launcher hands them."""
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose("config", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True)
    cfg.hydra.sweep.dir = str(sweep_dir)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params.pop("_target_").endswith("SlurmLauncher")
    executor = submitit.AutoExecutor(
        folder=params.pop("submitit_folder"), cluster="slurm", slurm_max_num_timeout=params.pop("max_num_timeout")
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    return executor._executor._make_submission_file_text("python -u -m submitit.core._submit x", "uid")


def test_the_slurm_launcher_asks_for_one_task_per_gpu_on_every_node(tmp_path: Path, monkeypatch):
    # submitit refuses to build a SLURM executor where there is no srun; the script itself is what is checked.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    script = slurm_batch_script(
        ["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", "hydra.launcher.partition=gpu"], tmp_path
    )
    lines = set(script.splitlines())
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu", "--time=1440"):
        assert f"#SBATCH {line}" in lines, script
    # One process per task, each a DDP rank that Lightning finds through SLURM's variables (it launches none).
    assert any(line.startswith("srun ") for line in lines)
    # submitit's own time-limit warning is USR2; Lightning's SLURM requeue listens on USR1: they do not collide.
    assert "#SBATCH --signal=USR2@120" in lines


def test_a_slurm_sweep_that_cannot_size_its_tasks_stops_before_submitting(tmp_path: Path):
    # trainer=ddp alone means devices -1 ("all GPUs"), which SLURM cannot be asked for.
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "-m", "hydra/launcher=slurm", "trainer=ddp", *overrides_for(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "trainer.devices=8" in proc.stderr and "tasks_per_node: -1" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing was opened, nothing submitted


@pytest.mark.slow  # two trainings at once through submitit's processes: ~1 min on 2 cores
def test_parallel_jobs_on_the_submitit_launcher_share_one_store_and_crown_the_better_model(prepared, tmp_path: Path):
    # hydra/launcher=submitit_local runs the jobs of a sweep at the same time, as SLURM would: each trains,
    # evaluates and registers into the one sqlite store.
    args = [
        "-m",
        "hydra/launcher=submitit_local",
        "task=viewpoint",
        "backbone.name=mobilenetv3_small_050,test_efficientnet",
        "train.epochs=1",
        *overrides_for(tmp_path),
        *shared_data(prepared),
        *OPEN_GATES,
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]
    run_train_py(args, tmp_path)
    parent, runs = sweep_runs(tmp_path)
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    client = connect(f"sqlite:///{tmp_path / 'mlflow.db'}")
    versions = client.search_model_versions("name='car-viewpoint'")
    assert len(versions) == 2
    champion = client.get_model_version_by_alias("car-viewpoint", "champion")
    rank = {str(v.version): (float(v.tags["test_top1"]), float(v.tags["test_balanced_accuracy"])) for v in versions}
    assert rank[str(champion.version)] == max(rank.values())
    logs = list((tmp_path / "multirun" / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2  # one submitit job per sweep point
