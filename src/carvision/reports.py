"""Stage reports: numbers as DVC metrics (JSON), tables as DVC plots (CSV), and the same tables as PNG charts."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run under DVC and CI with no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from carvision.atomic import atomic_path, write_json, write_text  # noqa: E402


def save_png(fig: plt.Figure, path: str | Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def bar_chart(counts: pd.Series, title: str, xlabel: str, path: str | Path) -> None:
    """Horizontal bars, largest on top, one bar per index entry of `counts`."""
    counts = counts.sort_values()
    fig, ax = plt.subplots(figsize=(7, 0.3 * max(len(counts), 3) + 1))
    if counts.empty:  # still write the chart: DVC tracks it as an output, and "nothing" is an answer too
        ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
    ax.barh([str(i) for i in counts.index], counts.to_numpy(), color="#3b6ea5")
    for y, v in enumerate(counts.to_numpy()):
        ax.text(v, y, f" {v}", va="center", fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    save_png(fig, path)


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    write_text(path, df.to_csv(index=False))


def write_stage_report(report: dict, classes: pd.Series, report_dir: str | Path) -> None:
    """report.json (metrics), drops.csv/png (drops by reason), class_counts.csv/png (kept rows per class)."""
    report_dir = Path(report_dir)
    stage = report["stage"]
    write_json(report_dir / "report.json", report)
    drops = pd.Series(report["dropped_by_reason"], dtype="int64")
    write_table(drops.rename_axis("reason").reset_index(name="count"), report_dir / "drops.csv")
    bar_chart(drops, f"{stage}: dropped rows by reason", "rows", report_dir / "drops.png")
    counts = classes.value_counts()
    write_table(counts.rename_axis("class").reset_index(name="count"), report_dir / "class_counts.csv")
    bar_chart(counts, f"{stage}: images per class (kept)", "images", report_dir / "class_counts.png")
