"""Train and evaluate on the prepared sample with a real MLflow sqlite store and registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from carvision.stages import evaluate, train
from carvision.tracking import connect
from carvision.training.module import CarClassifier, load_classifier
from conftest import reuse_prepared


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    cfg = reuse_prepared(prepared, tmp_path_factory.mktemp("train"), ["evaluate.min_top1=0", "evaluate.min_top5=0"])
    return cfg, train.main(cfg)


def test_train_writes_checkpoint_and_run_file(trained):
    cfg, result = trained
    assert result.checkpoint == Path(cfg.paths.models) / "model.ckpt" and result.checkpoint.is_file()
    run = json.loads((Path(cfg.paths.models) / "run.json").read_text())
    assert run["run_id"] == result.run_id and run["model_uri"] == result.model_uri
    assert not (Path(cfg.paths.models) / ".staging").exists()


def test_checkpoint_reloads_without_hydra_and_carries_the_label_map(trained):
    cfg, result = trained
    labels = json.loads((Path(cfg.paths.split) / "labels.json").read_text())
    model = load_classifier(result.checkpoint)
    assert model.class_names == labels
    assert model.hparams.img_size == 32 and len(model.hparams.mean) == 3
    # Lightning's own loader agrees, with no config object anywhere.
    again = CarClassifier.load_from_checkpoint(result.checkpoint, map_location="cpu").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), again(x))
    assert model(x).shape == (2, len(labels))


def test_checkpoint_loads_with_weights_only(trained):
    _, result = trained
    ckpt = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["class_names"]


def test_mlflow_run_records_config_params_metrics_class_map_and_model(trained):
    cfg, result = trained
    client = connect(cfg.mlflow.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.params["backbone.name"] == "mobilenetv3_small_050"
    assert run.data.params["imbalance.strategy"] == "none"
    history = client.get_metric_history(result.run_id, "val_top1")
    assert len(history) == cfg.train.epochs  # one point per epoch
    assert {"train_loss", "val_loss", "val_top5", "val_balanced_acc", "val_macro_f1"} <= set(run.data.metrics)
    names = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "labels.json"} <= names
    assert result.model_uri.startswith("models:/")
    import mlflow.pytorch

    logged = mlflow.pytorch.load_model(result.model_uri)
    n_classes = len(load_classifier(result.checkpoint).class_names)
    assert logged(torch.zeros(3, 3, 32, 32)).shape == (3, n_classes)  # any batch size, not only the example's


def test_evaluate_reports_registers_once_and_moves_champion(trained):
    cfg, result = trained
    scores, reg = evaluate.main(cfg)
    reports = Path(cfg.paths.reports) / "evaluate"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert set(metrics) >= {"top1", "top5", "balanced_accuracy", "macro_f1"}
    assert 0 <= metrics["top1"] <= metrics["top5"] <= 1
    assert Image.open(reports / "confusion_matrix.png").size[0] > 100
    per_class = (reports / "per_class_accuracy.csv").read_text().splitlines()
    assert per_class[0] == "class,test_images,correct,accuracy" and len(per_class) == 1 + len(scores.confusion)

    client = connect(cfg.mlflow.tracking_uri)
    assert reg is not None and reg.created and reg.champion
    mv = client.get_model_version_by_alias(cfg.evaluate.model_name, "champion")
    assert mv.version == reg.version
    assert {"git_commit", "data_sha256", "config", "model_sha256"} <= set(mv.tags)
    assert json.loads(mv.tags["config"])["backbone"]["name"] == "mobilenetv3_small_050"
    assert client.get_run(result.run_id).data.metrics["test_top1"] == pytest.approx(scores.top1)

    _, again = evaluate.main(cfg)  # the same checkpoint again: no second version
    assert again is not None and not again.created and again.version == reg.version
    assert len(client.search_model_versions(f"name='{cfg.evaluate.model_name}'")) == 1


def test_gate_refuses_a_model_below_the_thresholds(trained):
    cfg, _ = trained
    strict = cfg.copy()
    strict.evaluate.model_name = "strict-classifier"
    strict.evaluate.min_top1 = 1.01
    _, reg = evaluate.main(strict)
    assert reg is None
    client = connect(cfg.mlflow.tracking_uri)
    assert client.search_model_versions("name='strict-classifier'") == []
