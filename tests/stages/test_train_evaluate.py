"""Train and evaluate every task on the prepared sample, with a real MLflow sqlite store and registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from carvision import manifest, settings, tasks
from carvision.stages import evaluate, train
from carvision.tracking import connect
from carvision.training.module import Classifier, load_classifier
from conftest import TASKS


def _task(cfg, name: str):
    return settings.task_named(settings.parse(cfg), name)


@pytest.mark.parametrize("name", TASKS)
def test_each_task_writes_checkpoint_labels_and_run_file(trained_tasks, name):
    out = Path(trained_tasks.paths.models) / name
    run = json.loads((out / "run.json").read_text())
    labels = json.loads((out / "labels.json").read_text())
    assert (out / "model.ckpt").is_file() and not (out / ".staging").exists()
    assert run["model_uri"].startswith("models:/") and run["run_id"]
    model = load_classifier(out / "model.ckpt")
    assert model.hparams.task == name and model.class_names == labels
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, len(labels))


@pytest.mark.parametrize("name", TASKS)
def test_checkpoint_reloads_without_hydra(trained_tasks, name):
    path = Path(trained_tasks.paths.models) / name / "model.ckpt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["task"] == name and hp["img_size"] == 32 and len(hp["mean"]) == 3
    again = Classifier.load_from_checkpoint(path, map_location="cpu").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(load_classifier(path)(x), again(x))


def test_label_maps_follow_each_tasks_declaration(trained_tasks):
    s = settings.parse(trained_tasks)
    models = Path(trained_tasks.paths.models)
    assert load_classifier(models / "viewpoint" / "model.ckpt").class_names == s.tasks["viewpoint"].classes
    f = load_classifier(models / "car_filter" / "model.ckpt")
    assert f.class_names == ["no_car", "car"] and f.positive_index == 1
    split = json.loads((Path(trained_tasks.paths.split) / "labels.json").read_text())
    assert load_classifier(models / "make_model" / "model.ckpt").class_names == split


def test_viewpoint_trains_only_on_rows_with_a_known_viewpoint(trained_tasks):
    s = settings.parse(trained_tasks)
    rows, names, _ = train.task_rows(s, s.tasks["viewpoint"])
    df = manifest.read(Path(s.paths.split) / "manifest.parquet", stage="split")
    assert 0 < len(rows) < len(df)  # the sample has photos whose viewpoint is unknown
    assert len(rows) == (df["viewpoint"] != "").sum() and set(rows["viewpoint"]) <= set(names)


def test_mlflow_run_records_task_config_metrics_data_and_model(trained_tasks):
    client = connect(trained_tasks.mlflow.tracking_uri)
    run_id = json.loads((Path(trained_tasks.paths.models) / "viewpoint" / "run.json").read_text())["run_id"]
    run = client.get_run(run_id)
    assert run.data.tags["task"] == "viewpoint" and run.data.params["task"] == "viewpoint"
    assert run.data.params["backbone.name"] == "mobilenetv3_small_050"
    assert len(client.get_metric_history(run_id, "val_balanced_accuracy")) == trained_tasks.train.epochs
    assert {"train_loss", "val_loss", "val_top1", "test_top1", "test_balanced_accuracy"} <= set(run.data.metrics)
    assert {"config.yaml", "labels.json", "checkpoint", "evaluation"} <= {a.path for a in client.list_artifacts(run_id)}
    # The split manifest is the run's dataset input, so the UI shows what the model learnt from.
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.source and "viewpoint" in inputs[0].dataset.schema


@pytest.mark.parametrize(
    ("name", "metrics"),
    [
        ("make_model", {"top1", "top5", "balanced_accuracy", "macro_f1"}),
        ("viewpoint", {"top1", "balanced_accuracy", "macro_f1"}),  # 5 classes: a top-5 would always be 1
        ("car_filter", {"top1", "balanced_accuracy", "macro_f1", "precision", "recall"}),
    ],
)
def test_evaluate_reports_each_tasks_metrics_and_registers_once(trained_tasks, name, metrics):
    reports = Path(trained_tasks.paths.reports) / "evaluate" / name
    written = json.loads((reports / "metrics.json").read_text())
    assert set(written) == metrics | {"n_images"} and all(0 <= written[m] <= 1 for m in metrics)
    assert Image.open(reports / "confusion_matrix.png").size[0] > 100
    task = _task(trained_tasks, name)
    client = connect(trained_tasks.mlflow.tracking_uri)
    mv = client.get_model_version_by_alias(task.registry_name, "champion")
    assert mv.tags["task"] == name and {"weights_sha256", "test_data_sha256", "git_commit", "config"} <= set(mv.tags)
    _, again = evaluate.main(trained_tasks, name)  # the same weights again: no second version
    assert again is not None and not again.created and again.version == str(mv.version)
    assert len(client.search_model_versions(f"name='{task.registry_name}'")) == 1


def test_gate_refuses_a_model_below_the_task_thresholds(trained_tasks):
    strict = trained_tasks.copy()
    strict.tasks.viewpoint.registry_name = "strict-viewpoint"
    strict.tasks.viewpoint.gate = {"top1": 1.01, "balanced_accuracy": 0.0}
    scores, reg = evaluate.main(strict, "viewpoint")
    assert reg is None and scores["top1"] <= 1
    assert connect(trained_tasks.mlflow.tracking_uri).search_model_versions("name='strict-viewpoint'") == []


def test_a_task_without_train_or_val_rows_fails_with_a_clear_message(trained_tasks, tmp_path):
    cfg = trained_tasks.copy()
    cfg.tasks.viewpoint.classes = ["front", "nowhere"]  # 'nowhere' matches no row: one class only
    cfg.paths.models = str(tmp_path)
    with pytest.raises(ValueError, match="a task needs 2 classes"):
        train.main(cfg, "viewpoint")
    assert not (tmp_path / "viewpoint" / tasks.CHECKPOINT).exists()
