"""Where an unfinished training run keeps what it needs to resume: its checkpoints and its MLflow run id.

    state = RunState.of(".train-state", "make_model", config_hash)
    state.checkpoint_to_resume("auto")     # <state>/last.ckpt when a killed run left one, else None
    state.run_id()                         # that run's MLflow run id: the resumed run continues it

The folder is keyed on the task and a hash of the run's config, so `resume: auto` only ever continues the same
training (a changed config starts afresh). It sits outside the stage's DVC output (models/<task>), which DVC deletes
before it re-runs a stage, and is removed once the run has finished and its model is saved.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from carvision.atomic import write_json

LAST = "last.ckpt"
RUN_FILE = "mlflow_run.json"


@dataclass(frozen=True)
class RunState:
    folder: Path

    @classmethod
    def of(cls, root: str | Path, task: str, config_hash: str) -> RunState:
        return cls(Path(root) / f"{task}-{config_hash[:12]}")

    def checkpoint_to_resume(self, resume: str | bool) -> Path | None:
        """The checkpoint to resume from: `auto` the run's own last checkpoint when there is one; a path that file
        (which must exist); `false` none.

        Raises:
            FileNotFoundError: `resume` names a file that is not there.
        """
        if resume is False or str(resume).lower() in ("false", "none", "null", ""):
            return None
        if resume == "auto":
            last = self.folder / LAST
            return last if last.is_file() else None
        path = Path(str(resume))
        if not path.is_file():
            raise FileNotFoundError(f"train.resume: no checkpoint at {path} (use auto, false, or a .ckpt path)")
        return path

    def run_id(self) -> str | None:
        """The MLflow run that the checkpoints in this folder belong to."""
        try:
            return json.loads((self.folder / RUN_FILE).read_text())["run_id"]
        except (FileNotFoundError, KeyError, json.JSONDecodeError):
            return None

    def remember_run(self, run_id: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(self.folder / RUN_FILE, {"run_id": run_id})

    def clear(self) -> None:
        """The run finished and its model is saved: nothing is left to resume."""
        shutil.rmtree(self.folder, ignore_errors=True)


def config_hash(config_json: str) -> str:
    return hashlib.sha256(config_json.encode()).hexdigest()
