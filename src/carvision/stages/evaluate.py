"""Evaluate: score one task's model on its test split, report it, and register it when it passes the task's gate.

python -m carvision.stages.evaluate --task make_model   # DVC stage evaluate@<task>; `make evaluate` runs them all
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from carvision import manifest, settings, tasks
from carvision.atomic import write_json
from carvision.config import load_params, task_argument
from carvision.inference import Predictor, weights_sha256
from carvision.metrics import score
from carvision.registry import Gate, Registration, register
from carvision.settings import Settings, TaskSettings
from carvision.tracking import config_json, connect, file_sha256, git_commit, store_lock


def score_rows(
    predictor: Predictor, rows: pd.DataFrame, task: TaskSettings, threshold: float
) -> tuple[dict[str, float], np.ndarray, list[str]]:
    """(metrics, confusion matrix, its class names) of the predictor on `rows`.

    Labels the model was not trained on (a champion from older data) become extra classes that it never
    predicts, so they count as errors rather than vanishing from the score.
    """
    labels = rows[task.label_column].astype(str)
    names = predictor.class_names + sorted(set(labels) - set(predictor.class_names))
    probs = predictor.probs_paths(rows[tasks.IMAGE_COLUMN].tolist(), progress=f"score {predictor.task}")
    probs = torch.cat([probs, torch.zeros(len(probs), len(names) - probs.shape[1])], 1)
    targets = torch.tensor(tasks.targets(rows, task, names))
    metrics, confusion = score(probs, targets, predictor.positive_index, threshold)
    return metrics | {"n_images": len(rows)}, confusion.numpy(), names


def test_digest(rows: pd.DataFrame, task: TaskSettings) -> str:
    """Identity of a test split: its photos (by content hash) and their labels."""
    keys = sorted(zip(rows["image_id"], rows["sha256"], rows[task.label_column].astype(str), strict=True))
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()


def per_class_table(confusion: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    support = confusion.sum(1)
    return pd.DataFrame(
        {
            "class": class_names,
            "test_images": support,
            "correct": np.diag(confusion),
            "accuracy": np.divide(
                np.diag(confusion), support, out=np.full(len(confusion), np.nan), where=support > 0
            ).round(4),
        }
    )


def plot_confusion(confusion: np.ndarray, class_names: list[str], title: str, path: Path) -> None:
    from carvision.reports import plt, save_png  # matplotlib is slow to import; only plotting pays for it

    rows = np.maximum(confusion.sum(1, keepdims=True), 1)
    size = min(4 + 0.35 * len(class_names), 40)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(confusion / rows, cmap="Blues", vmin=0, vmax=1)  # row-normalised: each row is one true class's recall
    if len(class_names) <= 40:
        ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=8)
        ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
        for (i, j), v in np.ndenumerate(confusion):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    save_png(fig, path)


def write_reports(scores: dict, confusion: np.ndarray, names: list[str], task: TaskSettings, out: Path) -> None:
    """metrics.json (DVC metrics), per_class_accuracy.csv and confusion_matrix.png (DVC plots) in `out`."""
    from carvision.reports import write_table

    write_json(out / "metrics.json", scores)
    write_table(per_class_table(confusion, names), out / "per_class_accuracy.csv")
    title = f"{task.name}: test confusion matrix (top-1 {scores['top1']:.3f}, n={scores['n_images']})"
    plot_confusion(confusion, names, title, out / "confusion_matrix.png")


def gate_and_register(
    s: Settings,
    cfg: DictConfig,
    task: TaskSettings,
    predictor: Predictor,
    test: pd.DataFrame,
    scores: dict,
    run: dict,
    manifest_file: Path,
) -> Registration | None:
    """Registers the model when it passes the task's gate; the champion is judged on this same test split."""
    failures = Gate(task.gate).failures(scores)
    if failures:
        print(f"evaluate {task.name}: not registered, the gate failed: {'; '.join(failures)}")
        return None

    def rescore(champion) -> dict[str, float]:
        old = Predictor.load(f"models:/{task.registry_name}/{champion.version}", tracking_uri=s.mlflow.tracking_uri)
        return score_rows(old, test, task, s.filter.threshold)[0]

    tags = {"task": task.name, "git_commit": git_commit(), "data_sha256": file_sha256(manifest_file)}
    # Parallel jobs of a sweep evaluate at once: each judges the champion and may move the alias, so judging and
    # moving happen one job at a time, or a worse model could take the alias from a better one.
    with store_lock(s.mlflow.tracking_uri):
        reg = register(
            connect(s.mlflow.tracking_uri),
            name=task.registry_name,
            model_uri=run["model_uri"],
            run_id=run["run_id"],
            # The identity of what answers: a posthoc model's network with its logit adjustment, so that it is not
            # taken for a plain model with the same weights (posthoc trains exactly as imbalance none does).
            weights_sha256=weights_sha256(predictor.served_network()),
            scores={k: v for k, v in scores.items() if k != "n_images"},
            rank_by=list(task.gate),
            test_sha256=test_digest(test, task),
            tags=tags | {"config": config_json(cfg)},
            alias=s.evaluate.champion_alias,
            description=task.description,
            rescore=rescore,
        )
    print(f"evaluate {task.name}: registered {task.registry_name} version {reg.version} ({'; '.join(reg.notes)})")
    return reg


def main(cfg: DictConfig, task_name: str | None = None) -> tuple[dict[str, float], Registration | None]:
    s = settings.parse(cfg)
    task = settings.task_named(s, task_name or s.task)
    model_dir = tasks.model_dir(s.paths.models, task)
    run = json.loads((model_dir / tasks.RUN_FILE).read_text())
    predictor = Predictor.load(model_dir / tasks.CHECKPOINT, batch_size=s.evaluate.batch_size)
    manifest_file = tasks.manifest_path(s.paths, task)
    test = tasks.select_rows(manifest.read(manifest_file, stage="split"), task).query("split == 'test'")
    if test.empty:
        raise ValueError(f"task {task.name}: {manifest_file} has no labelled test rows: check the split fractions")
    scores, confusion, names = score_rows(predictor, test, task, s.filter.threshold)
    reports_dir = Path(s.paths.reports) / "evaluate" / task.name
    write_reports(scores, confusion, names, task, reports_dir)
    print(f"evaluate {task.name}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "n_images"))
    client = connect(s.mlflow.tracking_uri)
    for k, v in scores.items():
        client.log_metric(run["run_id"], f"test_{k}", float(v))
    for f in ("per_class_accuracy.csv", "confusion_matrix.png"):
        client.log_artifact(run["run_id"], str(reports_dir / f), artifact_path="evaluation")
    return scores, gate_and_register(s, cfg, task, predictor, test, scores, run, manifest_file)


if __name__ == "__main__":
    main(load_params(), task_argument())
