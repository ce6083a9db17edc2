"""The names of the metrics a task reports, and so may gate on: torch-free, so that checking the config at the start
of every stage costs no torch import. `metrics.py` computes them."""

from __future__ import annotations

TOP_K = 5  # top-k accuracy reads the k best classes; it only means something with more than k classes


def metric_names(num_classes: int | None, binary: bool) -> set[str]:
    """The metrics a task reports; num_classes None means not known yet (it comes from the data)."""
    names = {"top1", "balanced_accuracy", "macro_f1"}
    if num_classes is None or num_classes > TOP_K:
        names.add("top5")
    if binary:
        names |= {"precision", "recall"}
    return names
