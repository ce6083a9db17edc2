"""`make test-slow`: the demo's own settings on the full default sample cross every task's registry gate, and the
filter keeps the non-car photos out."""

from __future__ import annotations

import json

import pytest

from carvision.config import compose
from carvision.sample import generate_filter_set, generate_sample
from carvision.stages import clean, crop, evaluate, filter, filterset, ingest, split, train
from carvision.tracking import connect
from conftest import CONF, TASKS

pytestmark = pytest.mark.slow


def test_demo_configuration_passes_every_gate(tmp_path):
    root = tmp_path
    outputs = {k: root / k for k in ("ingest", "clean", "filter", "crop", "split", "filterset", "models", "reports")}
    cfg = compose(
        [f"paths.{k}={v}" for k, v in outputs.items()]
        + [
            f"data.root={root / 'sample'}",
            f"filterset.root={root / 'sample-filter'}",
            f"filter.model={root / 'models' / 'car_filter' / 'model.ckpt'}",
            f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}",
            f"mlflow.artifact_location={root / 'mlartifacts'}",
        ],
        conf_dir=CONF,
    )
    generate_sample(root / "sample", seed=cfg.sample.seed)
    generate_filter_set(
        root / "sample-filter", seed=cfg.sample.seed, n_car=cfg.sample.filter_photos, n_no_car=cfg.sample.filter_photos
    )
    filterset.main(cfg)
    train.main(cfg, "car_filter")
    for stage in (ingest, clean, filter, crop, split):
        stage.main(cfg)
    truth = json.loads((outputs["reports"] / "filter" / "report.json").read_text())["truth"]
    assert truth["non_car_photos_dropped_share"] >= 0.90 and truth["car_photos_dropped_share"] <= 0.03
    client = connect(cfg.mlflow.tracking_uri)
    for task in TASKS:
        if task != "car_filter":
            train.main(cfg, task)
        scores, reg = evaluate.main(cfg, task)
        assert reg is not None and reg.champion, (task, scores)
        name = cfg.tasks[task].registry_name
        assert str(client.get_model_version_by_alias(name, "champion").version) == reg.version
