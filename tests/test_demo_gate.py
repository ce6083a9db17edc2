"""`make test-slow`: the demo's own settings on the full default sample cross the registry gate."""

from __future__ import annotations

import pytest

from carvision.config import compose
from carvision.sample import generate_sample
from carvision.stages import clean, crop, evaluate, ingest, split, train
from carvision.tracking import connect
from conftest import CONF

pytestmark = pytest.mark.slow


def test_demo_configuration_passes_the_gate(tmp_path):
    root = tmp_path
    outputs = {k: root / k for k in ("ingest", "clean", "crop", "split", "models", "reports")}
    cfg = compose(
        [f"paths.{k}={v}" for k, v in outputs.items()]
        + [
            f"data.root={root / 'sample'}",
            f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}",
            f"mlflow.artifact_location={root / 'mlartifacts'}",
        ],
        conf_dir=CONF,
    )
    generate_sample(root / "sample", seed=cfg.sample.seed)
    for stage in (ingest, clean, crop, split, train):
        stage.main(cfg)
    scores, reg = evaluate.main(cfg)
    assert scores.top1 >= cfg.evaluate.min_top1 and scores.top5 >= cfg.evaluate.min_top5
    assert reg is not None and reg.champion
    client = connect(cfg.mlflow.tracking_uri)
    assert client.get_model_version_by_alias("car-classifier", "champion").version == reg.version
