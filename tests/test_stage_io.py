"""Running a stage (carvision.stage_io): save_stage writes data and reports that reconcile, rebase points paths at
the final folder, save_image_stage swaps a complete output into place or leaves the old one whole."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from test_manifest import frame, stage_result

from carvision import manifest, stage_io
from carvision.manifest import ManifestError, StageResult


def test_summary_names_every_reason():
    text = stage_io.summary(stage_result().report())
    assert text == "ingest: kept 3 of 5 rows; dropped: missing_file 2"
    assert stage_io.summary(stage_result(3, 0).report()).endswith("dropped: none")


# --- save_stage -------------------------------------------------------------------------------------------------


def test_save_stage_writes_data_and_reports_that_reconcile(tmp_path: Path):
    r = stage_result(5, 2)
    data_dir, report_dir = tmp_path / "data", tmp_path / "reports" / "ingest"
    report = stage_io.save_stage(r, data_dir, report_dir, [], "label", extra={"threshold": 0.7})

    kept = manifest.read(data_dir / "manifest.parquet", stage="ingest")
    dropped = pd.read_parquet(data_dir / "dropped.parquet")
    assert kept["image_id"].tolist() == r.kept["image_id"].tolist()
    assert kept["bbox"].map(list).tolist() == r.kept["bbox"].tolist()
    assert set(manifest.DROP_COLUMNS) <= set(dropped.columns)
    assert dropped["drop_reason"].tolist() == ["missing_file", "missing_file"]

    on_disk = json.loads((report_dir / "report.json").read_text())
    assert on_disk == report
    # The report is committed with the data it counts, and published as the DVC metric.
    assert json.loads((data_dir / "report.json").read_text()) == report
    assert on_disk["threshold"] == 0.7  # the stage's extra entries reach the report
    assert on_disk["rows_in"] == len(kept) + len(dropped) == 5
    drops = pd.read_csv(report_dir / "drops.csv")
    assert dict(zip(drops["reason"], drops["count"], strict=True)) == {"missing_file": 2}
    classes = pd.read_csv(report_dir / "class_counts.csv")
    assert classes["count"].sum() == on_disk["rows_kept"] == 3
    assert set(classes["class"]) == set(r.kept["label"])
    for png in ("drops.png", "class_counts.png"):
        with Image.open(report_dir / png) as im:
            assert im.format == "PNG"
    assert not list(data_dir.glob(".*")) and not list(report_dir.glob(".*")), "temporary files left behind"


def test_save_stage_without_drops_writes_an_empty_dropped_table(tmp_path: Path):
    r = stage_result(3, 0)
    report = stage_io.save_stage(r, tmp_path / "d", tmp_path / "r", [], "label")
    dropped = pd.read_parquet(tmp_path / "d" / "dropped.parquet")
    assert len(dropped) == 0
    assert set(manifest.DROP_COLUMNS) <= set(dropped.columns)
    assert report["rows_dropped"] == 0 and report["dropped_by_reason"] == {}
    assert pd.read_csv(tmp_path / "r" / "drops.csv").empty


def test_save_stage_refuses_a_broken_result_and_writes_nothing(tmp_path: Path):
    r = stage_result(5, 2)
    r.rows_in = 7
    with pytest.raises(ManifestError):
        stage_io.save_stage(r, tmp_path / "d", tmp_path / "r", [], "label")
    assert not (tmp_path / "d" / "manifest.parquet").exists()
    assert not (tmp_path / "r" / "report.json").exists()


def test_save_stage_refuses_a_result_that_lost_an_input_column(tmp_path: Path):
    r = stage_result(5, 2)
    with pytest.raises(ManifestError, match="note"):
        stage_io.save_stage(r, tmp_path / "d", tmp_path / "r", [*r.kept.columns, "note"], "label")
    assert not (tmp_path / "d").exists()


# --- rebase -----------------------------------------------------------------------------------------------------


def test_rebase_points_paths_of_kept_and_dropped_rows_at_the_final_folder(tmp_path: Path):
    r = stage_result(4, 1)
    staging, final = tmp_path / ".clean.abc.tmp", tmp_path / "clean"
    for f in (r.kept, r.dropped):
        f["path"] = [str(staging / "images" / f"{i}.jpg") for i in range(len(f))]
    r.kept.loc[r.kept.index[0], "path"] = "/elsewhere/raw.jpg"  # a path outside the staging folder is left alone
    stage_io.rebase(r, "path", staging, final)
    assert r.kept["path"].iloc[0] == "/elsewhere/raw.jpg"
    assert r.kept["path"].iloc[1:].tolist() == [str(final / "images" / f"{i}.jpg") for i in range(1, 3)]
    assert r.dropped["path"].tolist() == [str(final / "images" / "0.jpg")]


# --- save_image_stage -------------------------------------------------------------------------------------------


def _crop_build(input_df: pd.DataFrame, fail: bool = False):
    """A stage that writes one image per row into its staging folder (like crop)."""

    def build(staging: Path) -> StageResult:
        kept = input_df.copy()
        paths = []
        for i in range(len(kept)):
            path = staging / "images" / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(path)
            paths.append(str(path))
        if fail:
            raise RuntimeError("killed half way")
        kept["crop_path"] = pd.Series(paths, index=kept.index, dtype="string")
        kept["crop_source"] = pd.Series("full_image", index=kept.index, dtype="string")
        kept["car_box"] = pd.Series([None] * len(kept), index=kept.index, dtype=object)
        kept["car_box_score"] = float("nan")
        return StageResult("crop", len(kept), kept, manifest.empty_dropped(kept))

    return build


def test_save_image_stage_swaps_a_complete_output_into_place(tmp_path: Path):
    input_df = frame("filter", 3)
    out = tmp_path / "crop"
    report = stage_io.save_image_stage(input_df, out, tmp_path / "reports", "crop_path", _crop_build(input_df))
    assert report["rows_kept"] == 3
    kept = manifest.read(out / "manifest.parquet", stage="crop")
    # The manifest names the final folder, and the files are there: no path into the vanished staging folder.
    assert all(Path(p).parent == out / "images" and Path(p).is_file() for p in kept["crop_path"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "staging folder left behind"


def test_save_image_stage_keeps_the_previous_output_when_the_build_fails(tmp_path: Path):
    input_df = frame("filter", 3)
    out = tmp_path / "crop"
    stage_io.save_image_stage(input_df, out, tmp_path / "reports", "crop_path", _crop_build(input_df))
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    with pytest.raises(RuntimeError, match="killed"):
        stage_io.save_image_stage(input_df, out, tmp_path / "reports", "crop_path", _crop_build(input_df, fail=True))
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert len(manifest.read(out / "manifest.parquet", stage="crop")) == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "staging folder left behind"


def test_save_image_stage_writes_nothing_when_the_contract_fails(tmp_path: Path):
    input_df = frame("filter", 3)
    out = tmp_path / "crop"

    def lossy(staging: Path) -> StageResult:
        r = _crop_build(input_df)(staging)
        r.kept = r.kept.drop(columns=["car_prob"])  # a stage that loses a column of its input
        return r

    with pytest.raises(ManifestError, match="car_prob"):
        stage_io.save_image_stage(input_df, out, tmp_path / "reports", "crop_path", lossy)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
