"""One process of tests/test_tracking.py's parallel-store test: the store traffic of a training job and its
evaluation (experiment, run, metrics, params, an artifact, a registration that judges the champion), started at
the same moment as its siblings.

python tests/store_worker.py <tracking uri> <go file> <job index> <top1> <jobs>
"""

import sys
import time
from pathlib import Path

from carvision.registry import register
from carvision.tracking import connect, ensure_experiment, store_lock

uri, go, job, top1, jobs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
(go.parent / f"ready-{job}").touch()
while not go.exists():  # a barrier: every process has imported and waits, then all start at once
    time.sleep(0.005)
client = connect(uri)
experiment = ensure_experiment(uri, "parallel", go.parent / "artifacts")
run_id = client.create_run(experiment, tags={"job": str(job)}).info.run_id
for step in range(40):
    client.log_metric(run_id, "train_loss", 1.0 / (step + 1), step=step)
client.log_param(run_id, "job", job)
client.log_text(run_id, f"weights of job {job}", "model/weights.txt")
# A second barrier: every job judges the champion at the same moment, the case the lock is for.
(go.parent / f"judging-{job}").touch()
while len(list(go.parent.glob("judging-*"))) < jobs:
    time.sleep(0.005)
with store_lock(uri):
    reg = register(
        client,
        name="parallel-model",
        model_uri=f"runs:/{run_id}/model",
        run_id=run_id,
        weights_sha256=f"w{job}",
        scores={"top1": top1},
        rank_by=["top1"],
        test_sha256="one-split",
        tags={"job": str(job)},
    )
client.set_terminated(run_id)
print(reg.version, reg.champion)
