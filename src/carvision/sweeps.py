"""Sweeps in MLflow: the jobs of one `python train.py -m ...` are grouped under one parent run.

A Hydra callback (conf/config.yaml, `hydra.callbacks.mlflow_sweep`) opens the parent run once, in the process that
launches the sweep and before any job starts, so parallel jobs never race to create it. It leaves the parent's id in
the environment (inherited by local jobs, their DDP ranks and the subprocesses that run DDP jobs) and in
`<sweep dir>/mlflow_parent_run.json` (read by jobs that a cluster launcher starts elsewhere, e.g. submitit on SLURM).
Each job's run is tagged `mlflow.parentRunId`, which the MLflow UI shows as a tree. The parent is ended when the
sweep ends, FAILED if a job failed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

ENV = "CARVISION_MLFLOW_PARENT_RUN"
FILE = "mlflow_parent_run.json"


def parent_run_id() -> str | None:
    """The sweep's parent run, when this process runs a sweep job; None for a single run or a DVC stage."""
    if os.environ.get(ENV):
        return os.environ[ENV]
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return None
        return json.loads((Path(hc.sweep.dir) / FILE).read_text())["run_id"]
    except (ValueError, FileNotFoundError, KeyError, json.JSONDecodeError, ImportError):
        return None  # ValueError: HydraConfig is not set (a DVC stage, a test)


def check_cluster_launcher(config: DictConfig) -> None:
    """Stops a SLURM sweep before it submits anything when its allocation cannot be right: conf/hydra/launcher/
    slurm.yaml asks for one task per GPU (trainer.devices), and Lightning needs exactly that many ranks."""
    launcher = config.hydra.launcher
    if not str(launcher.get("_target_", "")).endswith("SlurmLauncher"):
        return
    tasks = launcher.get("tasks_per_node")
    if not isinstance(tasks, int) or tasks < 1:
        raise ValueError(
            f"hydra/launcher=slurm starts one SLURM task per GPU (tasks_per_node: {tasks}): give trainer.devices as "
            "a number of GPUs per node, e.g. trainer.devices=8, not -1 ('all', which only a running job can know)"
        )


class SweepCallback(Callback):
    """Opens the sweep's parent MLflow run at the start of a multirun and ends it at its end."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.uri: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from carvision.tracking import connect, ensure_experiment

        try:
            check_cluster_launcher(config)
        except ValueError as e:
            # SystemExit: Hydra turns a callback's Exception into a warning and would go on to submit the jobs.
            raise SystemExit(f"train.py: {e}") from None
        self.uri = str(config.mlflow.tracking_uri)
        name = str(config.mlflow.experiment)
        experiment_id = ensure_experiment(self.uri, name, str(config.mlflow.artifact_location))
        client = connect(self.uri)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        overrides = list(config.hydra.overrides.task)
        run = client.create_run(
            experiment_id,
            run_name=f"sweep {sweep_dir.name}",
            tags={"carvision.sweep_dir": str(sweep_dir.resolve()), "carvision.sweep": " ".join(overrides)},
        )
        self.run_id = run.info.run_id
        os.environ[ENV] = self.run_id
        sweep_dir.mkdir(parents=True, exist_ok=True)
        from carvision.atomic import write_json

        write_json(sweep_dir / FILE, {"run_id": self.run_id, "tracking_uri": self.uri})
        print(f"sweep: MLflow parent run {self.run_id} ({name})")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.run_id is None:
            return
        from carvision.tracking import connect

        client = connect(self.uri)
        children = client.search_runs(
            [client.get_run(self.run_id).info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.run_id}'",
        )
        failed = any(r.info.status == "FAILED" for r in children)
        client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")
        os.environ.pop(ENV, None)
