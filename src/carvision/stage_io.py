"""Running a stage: build in a staging folder, check the contract, write manifests and reports, swap into place.

`manifest` holds the contract itself (schema, validation, reading and writing).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from carvision.atomic import atomic_dir, write_json
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


def write_stage_data(result: StageResult, data_dir: Path, input_columns: list[str], extra: dict | None = None) -> dict:
    """Checks the contract and writes manifest.parquet, dropped.parquet and report.json into data_dir (a staging
    folder: the caller swaps it into place), so that the report is committed together with the data it counts."""
    result.check(input_columns)
    write(result.kept.reset_index(drop=True), data_dir / "manifest.parquet")
    dropped = result.dropped if len(result.dropped) else empty_dropped(result.kept)
    write(dropped.reset_index(drop=True), data_dir / "dropped.parquet")
    report = result.report() | (extra or {})
    write_json(data_dir / "report.json", report)
    return report


def publish_reports(report: dict, classes: pd.Series, report_dir: str | Path) -> None:
    """The report as DVC metrics and plots (JSON, CSV, PNG) in report_dir, replaced as a whole.

    Called once the data folder is in place: a run killed before that leaves the old data and the old reports.
    """
    from carvision import reports  # matplotlib is slow to import; only stages that write reports pay for it

    with atomic_dir(report_dir) as staging:
        reports.write_stage_report(report, classes, staging)


def save_stage(
    result: StageResult,
    data_dir: str | Path,
    report_dir: str | Path,
    input_columns: list[str],
    class_column: str,
    extra: dict | None = None,
) -> dict:
    """Writes the stage's data folder (manifest, dropped rows, report.json) in one swap, then its reports
    (metrics, drops by reason, class distribution, as JSON, CSV and PNG).

    Args:
        extra: stage-specific entries for report.json (the model used, a threshold, a comparison with truth).
    """
    with atomic_dir(data_dir) as staging:
        report = write_stage_data(result, staging, input_columns, extra)
    publish_reports(report, result.kept[class_column], report_dir)
    return report


def save_image_stage(
    input_df: pd.DataFrame,
    out_dir: str | Path,
    report_dir: str | Path,
    path_column: str,
    build: Callable[[Path], StageResult],
) -> dict:
    """Runs a stage that writes images: `build(staging_dir)` fills a staging folder that replaces out_dir only
    once the manifest and report are written too, so a killed run leaves the previous output whole (or none)."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as staging:
        result = build(staging)
        rebase(result, path_column, staging, out_dir)
        report = write_stage_data(result, staging, list(input_df.columns))
    publish_reports(report, result.kept["label"], report_dir)
    print(summary(report))
    return report
