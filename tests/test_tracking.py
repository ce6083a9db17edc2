"""The MLflow store under parallel jobs: several processes (the jobs of a parallel sweep) write one sqlite store."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from carvision.registry import alias_moves
from carvision.tracking import connect, sqlite_file, store_lock

WORKER = Path(__file__).with_name("store_worker.py")


def test_parallel_jobs_write_one_new_sqlite_store_without_errors_or_lost_records(tmp_path: Path):
    # A store that does not exist yet: the jobs race to create it, its experiment and its registered model, then
    # log and register at the same moment. The best job must end as champion whatever order they finish in.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    go = tmp_path / "go"
    scores = [0.60, 0.90, 0.70, 0.80]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), uri, str(go), str(i), str(s), str(len(scores))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i, s in enumerate(scores)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < len(scores) and time.monotonic() < deadline:
        time.sleep(0.05)  # every process has imported mlflow and waits at the barrier
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(scores), [err[-2000:] for _, err in outs]

    client = connect(uri)
    experiment = client.get_experiment_by_name("parallel")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(int(r.data.params["job"]) for r in runs) == list(range(len(scores)))
    for r in runs:
        assert r.info.status == "FINISHED"
        assert len(client.get_metric_history(r.info.run_id, "train_loss")) == 40
    versions = client.search_model_versions("name='parallel-model'")
    assert sorted(int(v.version) for v in versions) == list(range(1, len(scores) + 1))
    champion = client.get_model_version_by_alias("parallel-model", "champion")
    assert champion.tags["weights_sha256"] == "w1"  # 0.90, the best
    # Each recorded alias move starts where the previous one ended: no two jobs judged the same champion.
    moves = alias_moves(client, "parallel-model")
    assert moves[0]["from_version"] is None and moves[-1]["to_version"] == str(champion.version)
    assert all(b["from_version"] == a["to_version"] for a, b in zip(moves, moves[1:], strict=False))
    scored = {str(v.version): float(v.tags["test_top1"]) for v in versions}
    assert all(scored[b["to_version"]] > scored[a["to_version"]] for a, b in zip(moves, moves[1:], strict=False))
    assert sqlite_file(uri).with_name("mlflow.db.lock").exists()  # the lock file stays; the OS lock does not


def test_the_store_lock_can_be_taken_again_by_its_holder_and_excludes_other_processes(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = threading.Event()

    def nested() -> None:
        with store_lock(uri), store_lock(uri):  # connect() inside a locked section takes it again
            done.set()

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done.is_set(), "a holder taking the lock again waited for itself"
    probe = "from carvision.tracking import store_lock\nwith store_lock(__import__('sys').argv[1], timeout_s=0.5): pass"
    with store_lock(uri):
        other = subprocess.run([sys.executable, "-c", probe, uri], capture_output=True, text=True, timeout=60)
    assert other.returncode != 0 and "Timeout" in other.stderr  # another process waits for it
    assert subprocess.run([sys.executable, "-c", probe, uri], timeout=60).returncode == 0  # and gets it after
