"""train.resume: a training killed with kill -9 in the middle of an epoch resumes from its last checkpoint, ends with
the same number of optimizer steps as an uninterrupted run, and continues its MLflow run instead of opening another."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from carvision import tasks
from carvision.config import to_params_yaml
from carvision.stages import train
from carvision.tracking import connect
from conftest import reuse_prepared

EPOCHS, BATCH = 3, 16


def config(prepared, root: Path):
    return reuse_prepared(
        prepared,
        root,
        [
            "task=viewpoint",
            f"train.epochs={EPOCHS}",
            f"train.batch_size={BATCH}",
            "train.checkpoint_every_n_steps=1",
            f"train.state_dir={root / 'state'}",
        ],
    )


def steps_per_epoch(cfg) -> int:
    rows = pd.read_parquet(Path(cfg.paths.split) / "manifest.parquet")
    # The train loader drops the last partial batch.
    return int(((rows["split"] == "train") & (rows["viewpoint"].fillna("") != "")).sum()) // BATCH


def last_step(state: Path) -> int | None:
    """The global step of the newest resume checkpoint, or None while there is none (or it is being written)."""
    for ckpt in state.glob("*/last.ckpt"):
        try:
            return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])
        except Exception:  # a checkpoint half-written at the moment we read it
            return None
    return None


def kill_mid_epoch(cfg, root: Path, per_epoch: int) -> int:
    """Runs the DVC stage's command in a subprocess and kills it (-9) once a checkpoint inside epoch 2 exists; the
    step it was killed at."""
    (root / "params.yaml").write_text(to_params_yaml(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "carvision.stages.train", "--task", "viewpoint"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            step = last_step(root / "state")
            if step is not None and step > per_epoch and step % per_epoch:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return step
            assert proc.poll() is None, "the training finished before it could be killed mid-epoch"
            time.sleep(0.05)
        raise AssertionError("no mid-epoch checkpoint within 300 s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def runs_of(cfg):
    client = connect(cfg.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    return client, client.search_runs([experiment.experiment_id], filter_string="tags.task = 'viewpoint'")


def test_a_run_killed_mid_epoch_resumes_to_the_same_steps_in_the_same_mlflow_run(prepared, tmp_path):
    reference = config(prepared, tmp_path / "reference")
    train.main(reference)
    expected = json.loads((Path(reference.paths.models) / "viewpoint" / tasks.RUN_FILE).read_text())
    per_epoch = steps_per_epoch(reference)
    assert expected["optimizer_steps"] == EPOCHS * per_epoch

    root = tmp_path / "killed"
    root.mkdir()
    cfg = config(prepared, root)
    killed_at = kill_mid_epoch(cfg, root, per_epoch)
    assert per_epoch < killed_at < EPOCHS * per_epoch
    _, runs = runs_of(cfg)
    assert len(runs) == 1 and runs[0].info.status == "RUNNING"  # killed: MLflow never heard it end
    killed_run = runs[0].info.run_id

    result = train.main(cfg)  # resume: auto, the default
    done = json.loads((Path(cfg.paths.models) / "viewpoint" / tasks.RUN_FILE).read_text())
    assert done["optimizer_steps"] == expected["optimizer_steps"]
    client, runs = runs_of(cfg)
    assert [r.info.run_id for r in runs] == [killed_run] == [result.run_id]  # one run, continued
    assert runs[0].info.status == "FINISHED"
    # Each epoch's validation was logged once, across the two processes.
    assert len(client.get_metric_history(killed_run, "val_top1")) == EPOCHS
    assert not any((root / "state").iterdir())  # finished: nothing left to resume

    # A finished run leaves nothing to resume: the next run trains afresh, in a new MLflow run.
    again = train.main(cfg)
    assert again.run_id != killed_run


def test_resume_from_a_file_that_is_not_there_says_so(prepared, tmp_path):
    cfg = config(prepared, tmp_path)
    cfg.train.resume = str(tmp_path / "nope.ckpt")
    with pytest.raises(FileNotFoundError, match="train.resume: no checkpoint at"):
        train.main(cfg)


@pytest.mark.slow  # three DDP process pairs on 2 cores: minutes
def test_a_ddp_run_killed_mid_epoch_resumes_in_the_same_mlflow_run(prepared, tmp_path):
    """Under DDP (2 CPU processes over gloo) the MLflow run id reaches every rank from the state folder, so the
    resumed run neither opens a second run nor hangs (Lightning issue 19932)."""
    root = tmp_path / "ddp"
    root.mkdir()
    cfg = config(prepared, root)
    cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.strategy = "cpu", 2, "ddp"
    rows = pd.read_parquet(Path(cfg.paths.split) / "manifest.parquet")
    train_rows = int(((rows["split"] == "train") & (rows["viewpoint"].fillna("") != "")).sum())
    per_rank = math.ceil(train_rows / 2)  # each rank's share, padded by the DistributedSampler
    per_epoch = per_rank // BATCH  # the train loader drops the last partial batch
    killed_at = kill_mid_epoch(cfg, root, per_epoch)
    assert per_epoch < killed_at < EPOCHS * per_epoch
    _, runs = runs_of(cfg)
    killed_run = runs[0].info.run_id
    proc = subprocess.run(
        [sys.executable, "-m", "carvision.stages.train", "--task", "viewpoint"],
        cwd=root, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stdout
    done = json.loads((Path(cfg.paths.models) / "viewpoint" / tasks.RUN_FILE).read_text())
    assert done["optimizer_steps"] == EPOCHS * per_epoch
    _, runs = runs_of(cfg)
    assert [r.info.run_id for r in runs] == [killed_run] and runs[0].info.status == "FINISHED"
