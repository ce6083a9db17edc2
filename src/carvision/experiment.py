"""One Hydra job of `python train.py [-m]`: train the config's `task`, then evaluate and register it, in the job's
output folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from carvision.stages import evaluate, train


def run_job(cfg: DictConfig) -> float | None:
    """Returns the test top-1 (what a Hydra sweeper would optimise), or None on non-zero DDP ranks."""
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    is_ddp = str(cfg.trainer.strategy).startswith("ddp")
    if hc.mode == RunMode.MULTIRUN and is_ddp and not launched_per_rank():
        return _run_in_subprocess(list(hc.overrides.task), out, str(cfg.task))
    # Each job keeps its checkpoint and reports in its own output folder; the data stages' outputs are shared.
    cfg.paths.models = str(out)
    cfg.paths.reports = str(out / "reports")
    if train.main(cfg) is None:
        return None
    scores, _ = evaluate.main(cfg)
    return scores["top1"]


def launched_per_rank() -> bool:
    """Whether something outside Lightning started this process as one DDP rank: SLURM's srun (a sweep on the
    submitit SLURM launcher, one task per GPU), torchrun, or Lightning's own launcher re-running a single run.
    Lightning then launches nothing, so running the job here cannot re-enter the sweep."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    return "LOCAL_RANK" in os.environ or SLURMEnvironment.detect() or TorchElasticEnvironment.detect()


def _run_in_subprocess(overrides: list[str], out: Path, task: str) -> float:
    """Runs one sweep job as a single (non-multirun) `train.py` process.

    Lightning's DDP launcher starts the other ranks by re-running the command line; under `-m` that re-enters
    the whole sweep (Lightning issue 11300). A single run is what the launcher knows how to re-run.
    """
    cmd = [sys.executable, sys.argv[0], *overrides, f"hydra.run.dir={out}"]
    subprocess.run(cmd, check=True)
    metrics = json.loads((out / "reports" / "evaluate" / task / "metrics.json").read_text())
    return float(metrics["top1"])
