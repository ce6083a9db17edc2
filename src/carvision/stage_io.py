"""Running a stage: build in a staging folder, check the contract, write manifests and reports, swap into place.

`manifest` holds the contract itself (schema, validation, reading and writing).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from carvision.atomic import atomic_dir
from carvision.manifest import StageResult, empty_dropped, write


def summary(report: dict) -> str:
    """One line for the console: what a stage kept and why it dropped the rest."""
    drops = ", ".join(f"{k} {v}" for k, v in report["dropped_by_reason"].items()) or "none"
    return f"{report['stage']}: kept {report['rows_kept']} of {report['rows_in']} rows; dropped: {drops}"


def rebase(result: StageResult, column: str, staging_dir: Path, final_dir: Path) -> None:
    """Points `column` of kept and dropped rows at final_dir: a stage builds in a staging folder that is
    renamed into place only once complete (see atomic_dir)."""
    for frame in (result.kept, result.dropped):
        frame[column] = frame[column].str.replace(str(staging_dir), str(final_dir), regex=False)


def save_stage(
    result: StageResult,
    data_dir: str | Path,
    report_dir: str | Path,
    input_columns: list[str],
    class_column: str,
    extra: dict | None = None,
) -> dict:
    """Checks the contract, writes manifest.parquet and dropped.parquet into data_dir, and the report
    (metrics, drops by reason, class distribution, as JSON, CSV and PNG) into report_dir.

    Args:
        extra: stage-specific entries for report.json (the model used, a threshold, a comparison with truth).
    """
    from carvision import reports  # matplotlib is slow to import; only stages that write reports pay for it

    result.check(input_columns)
    data_dir = Path(data_dir)
    write(result.kept.reset_index(drop=True), data_dir / "manifest.parquet")
    dropped = result.dropped if len(result.dropped) else empty_dropped(result.kept)
    write(dropped.reset_index(drop=True), data_dir / "dropped.parquet")
    report = result.report() | (extra or {})
    reports.write_stage_report(report, result.kept[class_column], report_dir)
    return report


def save_image_stage(
    input_df: pd.DataFrame,
    out_dir: str | Path,
    report_dir: str | Path,
    path_column: str,
    build: Callable[[Path], StageResult],
) -> dict:
    """Runs a stage that writes images: `build(staging_dir)` fills a staging folder that replaces out_dir only
    once the manifest is written too, so a killed run leaves the previous output whole (or none)."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as staging:
        result = build(staging)
        rebase(result, path_column, staging, out_dir)
        report = save_stage(result, staging, report_dir, list(input_df.columns), "label")
    print(summary(report))
    return report
