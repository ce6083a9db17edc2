"""Evaluate: score the trained model on the test split, report it, and register it when it passes the gate.

python -m carvision.stages.evaluate    # reads params.yaml (DVC stage `evaluate`; `make evaluate`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy
from tqdm import tqdm

from carvision import manifest
from carvision.atomic import write_json
from carvision.config import load_params
from carvision.registry import Gate, Registration, register
from carvision.stages.train import CHECKPOINT, RUN_FILE
from carvision.tracking import config_json, connect, file_sha256, git_commit
from carvision.training.data import ManifestDataset, build_transforms
from carvision.training.module import CarClassifier, load_classifier


@dataclass
class Scores:
    top1: float
    top5: float
    balanced_accuracy: float
    macro_f1: float
    n_images: int
    confusion: np.ndarray  # (num_classes, num_classes), rows = true class, columns = predicted class

    def metrics(self) -> dict:
        return {
            "top1": self.top1,
            "top5": self.top5,
            "balanced_accuracy": self.balanced_accuracy,
            "macro_f1": self.macro_f1,
            "n_images": self.n_images,
        }


@torch.no_grad()
def predict(model: CarClassifier, paths: list[str], batch_size: int) -> torch.Tensor:
    """(n_images, num_classes) logits, with the model's own preprocessing from its checkpoint."""
    hp = model.hparams
    transform = build_transforms(hp.img_size, tuple(hp.mean), tuple(hp.std), train=False)
    loader = DataLoader(ManifestDataset(paths, [0] * len(paths), transform), batch_size=batch_size)
    return torch.cat([model(x) for x, _ in tqdm(loader, desc="evaluate", unit="batch")])


def score(logits: torch.Tensor, targets: torch.Tensor) -> Scores:
    """Micro top-1/top-5 (the gate) and the balanced metrics, over the classes present in `targets`."""
    n = logits.shape[1]
    top1 = MulticlassAccuracy(n, top_k=1, average="micro")(logits, targets).item()
    top5 = MulticlassAccuracy(n, top_k=min(5, n), average="micro")(logits, targets).item()
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (targets.numpy(), logits.argmax(1).numpy()), 1)
    support, predicted, hits = confusion.sum(1), confusion.sum(0), np.diag(confusion)
    present = support > 0  # a class with no test images has no recall to average
    recall = hits[present] / support[present]
    precision = np.divide(hits, predicted, out=np.zeros(n), where=predicted > 0)[present]
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(recall), where=precision + recall > 0)
    return Scores(top1, top5, float(recall.mean()), float(f1.mean()), int(len(targets)), confusion)


def per_class_table(scores: Scores, class_names: list[str]) -> pd.DataFrame:
    c = scores.confusion
    support = c.sum(1)
    return pd.DataFrame(
        {
            "class": class_names,
            "test_images": support,
            "correct": np.diag(c),
            "accuracy": np.divide(np.diag(c), support, out=np.full(len(c), np.nan), where=support > 0).round(4),
        }
    )


def plot_confusion(scores: Scores, class_names: list[str], path: Path) -> None:
    from carvision.reports import plt, save_png  # matplotlib is slow to import; only plotting pays for it

    c = scores.confusion
    rows = np.maximum(c.sum(1, keepdims=True), 1)
    size = min(4 + 0.35 * len(class_names), 40)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(c / rows, cmap="Blues", vmin=0, vmax=1)  # row-normalised: each row is one true class's recall
    if len(class_names) <= 40:
        ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=8)
        ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
        for (i, j), v in np.ndenumerate(c):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test confusion matrix (top-1 {scores.top1:.3f}, n={scores.n_images})")
    save_png(fig, path)


def main(cfg: DictConfig) -> tuple[Scores, Registration | None]:
    model_dir = Path(cfg.paths.models)
    checkpoint = model_dir / CHECKPOINT
    run = json.loads((model_dir / RUN_FILE).read_text())
    model = load_classifier(checkpoint)
    split_file = Path(cfg.paths.split) / "manifest.parquet"
    test = manifest.read(split_file, stage="split").query("split == 'test'")
    if test.empty:
        raise ValueError(f"{split_file} has no test rows: check the split fractions")
    unknown = sorted(set(test["class_name"]) - set(model.class_names))
    if unknown:
        raise ValueError(f"the test split has classes the model was not trained on ({unknown[:5]}): re-run train")
    # Map by name, not index: the model's label map is the truth, whatever the manifest's indices are.
    index = {c: i for i, c in enumerate(model.class_names)}
    targets = torch.tensor(test["class_name"].map(index).to_numpy())
    scores = score(predict(model, test["crop_path"].tolist(), cfg.evaluate.batch_size), targets)

    from carvision.reports import write_table

    reports_dir = Path(cfg.paths.reports) / "evaluate"
    write_json(reports_dir / "metrics.json", scores.metrics())
    write_table(per_class_table(scores, model.class_names), reports_dir / "per_class_accuracy.csv")
    plot_confusion(scores, model.class_names, reports_dir / "confusion_matrix.png")
    print("evaluate: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.metrics().items() if k != "n_images"))

    client = connect(cfg.mlflow.tracking_uri)
    for k, v in scores.metrics().items():
        client.log_metric(run["run_id"], f"test_{k}", float(v))
    for f in ("per_class_accuracy.csv", "confusion_matrix.png"):
        client.log_artifact(run["run_id"], str(reports_dir / f), artifact_path="evaluation")

    failures = Gate(cfg.evaluate.min_top1, cfg.evaluate.min_top5).failures(scores.top1, scores.top5)
    if failures:
        print(f"evaluate: not registered, the gate failed: {'; '.join(failures)}")
        return scores, None
    tags = {"git_commit": git_commit(), "data_sha256": file_sha256(split_file), "config": config_json(cfg)}
    reg = register(
        client,
        cfg.evaluate.model_name,
        run["model_uri"],
        run["run_id"],
        file_sha256(checkpoint),
        scores.top1,
        scores.top5,
        tags,
        alias=cfg.evaluate.champion_alias,
    )
    print(f"evaluate: registered {cfg.evaluate.model_name} version {reg.version} ({'; '.join(reg.notes)})")
    return scores, reg


if __name__ == "__main__":
    main(load_params())
