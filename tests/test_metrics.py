"""Every metric, checked against confusion matrices computed by hand, and the one-definition rule: validation
(the Classifier's val_metrics, inside a real Lightning loop) and evaluation (metrics.score) give the same numbers."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from carvision.metrics import metric_names, score
from carvision.training.metric import TaskMetrics
from carvision.training.module import Classifier


def one_hot_probs(preds: list[int], num_classes: int) -> torch.Tensor:
    """Probabilities whose arg-max is `preds` (0.9 on the prediction, the rest spread evenly)."""
    p = torch.full((len(preds), num_classes), 0.1 / (num_classes - 1))
    p[torch.arange(len(preds)), torch.tensor(preds)] = 0.9
    return p


def test_multiclass_by_hand():
    # targets 0 0 1 2, predictions 0 1 1 1:
    #   confusion [[1,1,0],[0,1,0],[0,1,0]]; top1 2/4.
    #   recall: class 0 1/2, class 1 1/1, class 2 0/1 -> balanced (0.5 + 1 + 0) / 3 = 0.5
    #   precision: class 0 1/1, class 1 1/3, class 2 0 (never predicted) -> F1 2/3, 1/2, 0 -> macro 7/18
    metrics, confusion = score(one_hot_probs([0, 1, 1, 1], 3), torch.tensor([0, 0, 1, 2]))
    assert confusion.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert metrics == pytest.approx({"top1": 0.5, "balanced_accuracy": 0.5, "macro_f1": 7 / 18})


def test_micro_top1_is_not_balanced_accuracy():
    # 9 images of class 0 all right, 1 image of class 1 wrong: micro 0.9, balanced (1 + 0) / 2 = 0.5.
    metrics, _ = score(one_hot_probs([0] * 10, 2), torch.tensor([0] * 9 + [1]))
    assert metrics["top1"] == pytest.approx(0.9)
    assert metrics["balanced_accuracy"] == pytest.approx(0.5)


def test_balanced_accuracy_and_macro_f1_ignore_classes_absent_from_the_targets():
    # 4 classes; targets only 0 and 1. One image of class 0 is predicted as class 3 (absent from the targets).
    # recall: 1/2 and 2/2 -> balanced 0.75 (not (0.5 + 1 + 0 + 0) / 4)
    # F1: class 0 p=1 r=1/2 -> 2/3; class 1 p=1 r=1 -> 1 -> macro 5/6
    metrics, _ = score(one_hot_probs([0, 3, 1, 1], 4), torch.tensor([0, 0, 1, 1]))
    assert metrics["top1"] == pytest.approx(0.75)
    assert metrics["balanced_accuracy"] == pytest.approx(0.75)
    assert metrics["macro_f1"] == pytest.approx(5 / 6)


def test_top5_by_hand_and_only_for_more_than_5_classes():
    # 7 classes; probabilities rank the classes 0 > 1 > ... > 6 for every image.
    probs = torch.linspace(1.0, 0.1, 7).repeat(4, 1)
    probs = probs / probs.sum(1, keepdim=True)
    # targets 0 (top-1 hit), 4 (5th: a top-5 hit), 5 and 6 (6th and 7th: misses)
    metrics, _ = score(probs, torch.tensor([0, 4, 5, 6]))
    assert metrics["top1"] == pytest.approx(1 / 4)
    assert metrics["top5"] == pytest.approx(2 / 4)
    # 5 classes: top-5 is always 1, so it is neither measured nor offered to a gate.
    five, _ = score(one_hot_probs([0, 1, 2], 5), torch.tensor([0, 1, 3]))
    assert "top5" not in five
    assert "top5" not in metric_names(5, binary=False) and "top5" in metric_names(6, binary=False)


def test_precision_and_recall_of_the_positive_class_depend_on_the_threshold():
    # p(positive) 0.9 0.6 0.8 0.3 0.65, truly positive: yes yes no no yes.
    # at 0.5: predicted positive = 0.9 0.6 0.8 0.65 -> tp 3, fp 1, fn 0 -> precision 3/4, recall 1
    # at 0.7: predicted positive = 0.9 0.8          -> tp 1, fp 1, fn 2 -> precision 1/2, recall 1/3
    pos = torch.tensor([0.9, 0.6, 0.8, 0.3, 0.65])
    probs = torch.stack([1 - pos, pos], 1)
    targets = torch.tensor([1, 1, 0, 0, 1])
    at_05, _ = score(probs, targets, positive_index=1, threshold=0.5)
    at_07, _ = score(probs, targets, positive_index=1, threshold=0.7)
    assert (at_05["precision"], at_05["recall"]) == pytest.approx((3 / 4, 1.0))
    assert (at_07["precision"], at_07["recall"]) == pytest.approx((1 / 2, 1 / 3))
    # The threshold is inclusive: p == threshold counts as positive.
    at_065, _ = score(probs, targets, positive_index=1, threshold=0.65)
    assert at_065["recall"] == pytest.approx(2 / 3)
    # The arg-max metrics do not depend on the threshold: argmax says positive where p > 0.5, right 4 times of 5.
    assert at_05["top1"] == at_07["top1"] == pytest.approx(4 / 5)


def test_precision_is_zero_when_nothing_is_predicted_positive():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2]])
    metrics, _ = score(probs, torch.tensor([1, 0]), positive_index=1, threshold=0.5)
    assert metrics["precision"] == 0.0 and metrics["recall"] == 0.0


def test_empty_input_gives_nan():
    metrics, confusion = score(torch.empty(0, 7), torch.empty(0, dtype=torch.long))
    assert confusion.sum() == 0
    assert set(metrics) == {"top1", "top5", "balanced_accuracy", "macro_f1"}
    assert all(math.isnan(v) for v in metrics.values())
    binary, _ = score(torch.empty(0, 2), torch.empty(0, dtype=torch.long), positive_index=1)
    assert math.isnan(binary["recall"]) and math.isnan(binary["top1"])


def test_empty_input_gives_nan_precision():
    binary, _ = score(torch.empty(0, 2), torch.empty(0, dtype=torch.long), positive_index=1)
    assert math.isnan(binary["precision"])


def test_two_updates_sum_to_one_update_on_the_concatenation():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(40, 8, generator=g).softmax(1)
    targets = torch.randint(0, 8, (40,), generator=g)
    # The positive class and a threshold near the median, so that precision and recall are not trivial.
    threshold = float(probs[:, 2].median())
    split = TaskMetrics(8, positive_index=2, threshold=threshold)
    split.update(probs[:15], targets[:15])
    split.update(probs[15:], targets[15:])
    whole = TaskMetrics(8, positive_index=2, threshold=threshold)
    whole.update(probs, targets)
    assert torch.equal(split.confusion, whole.confusion)
    assert split.confusion.sum() == 40
    assert split.compute() == whole.compute()
    assert 0 < split.compute()["precision"] < 1


def test_reset_clears_the_state():
    m = TaskMetrics(3)
    m.update(one_hot_probs([0, 1], 3), torch.tensor([0, 0]))
    m.reset()
    m.update(one_hot_probs([2], 3), torch.tensor([2]))
    assert m.compute()["top1"] == 1.0


# --- one definition: validation == evaluation --------------------------------------------------------------------


def _validate(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """The val_* numbers a real Lightning validation loop logs, over several batches."""
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (logged,) = trainer.validate(model, DataLoader(TensorDataset(x, y), batch_size=7), verbose=False)
    return {k.removeprefix("val_"): float(v) for k, v in logged.items() if k != "val_loss"}


@pytest.mark.parametrize(
    ("class_names", "positive_class"),
    [([f"c{i}" for i in range(7)], None), (["no_car", "car"], "car")],
)
def test_validation_and_evaluation_metrics_agree_on_the_same_logits(class_names, positive_class):
    torch.manual_seed(0)
    x = torch.randn(30, 3, 32, 32) * torch.linspace(0.2, 3.0, 30)[:, None, None, None]  # varied inputs, varied outputs
    y = torch.arange(30) % len(class_names)
    probe = Classifier("mobilenetv3_small_050", class_names, positive_class=positive_class, img_size=32).eval()
    with torch.no_grad():
        probs = probe(x).softmax(1)
    positive = None if positive_class is None else class_names.index(positive_class)
    # A threshold inside the range of the positive probabilities, so that it matters.
    threshold = 0.5 if positive is None else float(probs[:, positive].median())
    model = Classifier(
        "mobilenetv3_small_050", class_names, positive_class=positive_class, threshold=threshold, img_size=32
    )
    model.load_state_dict(probe.state_dict())

    validated = _validate(model, x, y)
    evaluated, _ = score(probs, y, positive, threshold)
    assert set(validated) == set(evaluated) == metric_names(len(class_names), binary=positive is not None)
    assert validated == pytest.approx(evaluated, rel=1e-6)
