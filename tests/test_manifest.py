"""The manifest contract (carvision.manifest): schema, validation, StageResult, reading and writing.

Running a stage (save_stage, rebase, summary) is tested in test_stage_io.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from carvision import manifest
from carvision.manifest import SCHEMA, STAGES, ManifestError, StageResult, columns_after, validate

INGEST_COLUMNS = [
    "image_id",
    "path",
    "listing_id",
    "make",
    "model",
    "submodel",
    "year",
    "label",
    "viewpoint",
    "bbox",
    "source_split",
]
CLEAN_COLUMNS = ["width", "height", "sha256", "phash", "format", "orientation", "colour", "frames"]


def _value(col: manifest.Column, i: int):
    if col.dtype == "int":
        return i
    if col.dtype == "float":
        return float(i)
    if col.dtype == "bool":
        return bool(i % 2)
    if col.dtype == "object":
        return [0.0, 0.0, 10.0 + i, 10.0 + i]
    return f"{col.name}-{i}"


def frame(stage: str, n: int = 3) -> pd.DataFrame:
    """A valid manifest with every column the schema requires after `stage`."""
    cols = [c for c in SCHEMA if c.name in columns_after(stage)]
    df = pd.DataFrame({c.name: [_value(c, i) for i in range(n)] for c in cols})
    for c in cols:
        if c.dtype == "string":
            df[c.name] = df[c.name].astype("string")
    return df


# --- schema -------------------------------------------------------------------------------------------------


def test_columns_after_follows_the_stage_order():
    assert columns_after("ingest") == INGEST_COLUMNS
    assert columns_after("clean") == INGEST_COLUMNS + CLEAN_COLUMNS
    assert columns_after("filter") == INGEST_COLUMNS + CLEAN_COLUMNS + ["car_prob"]
    crop_columns = ["crop_path", "crop_source", "car_box", "car_box_score"]
    assert columns_after("crop") == INGEST_COLUMNS + CLEAN_COLUMNS + ["car_prob", *crop_columns]
    assert columns_after("split") == [c.name for c in SCHEMA]
    for earlier, later in zip(STAGES, STAGES[1:], strict=False):
        assert set(columns_after(earlier)) < set(columns_after(later))


def test_columns_after_unknown_stage_raises():
    with pytest.raises(ValueError):
        columns_after("train")


def test_schema_names_are_unique_and_stages_known():
    names = [c.name for c in SCHEMA]
    assert len(names) == len(set(names))
    assert {c.added_by for c in SCHEMA} == set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_validate_accepts_a_complete_frame(stage):
    validate(frame(stage), stage)


@pytest.mark.parametrize(
    ("stage", "column"),
    [("ingest", "image_id"), ("ingest", "bbox"), ("clean", "phash"), ("crop", "crop_source"), ("split", "class_idx")],
)
def test_validate_missing_column_raises(stage, column):
    df = frame(stage).drop(columns=[column])
    with pytest.raises(ManifestError, match=column):
        validate(df, stage)


def test_validate_checks_only_the_columns_of_its_stage():
    df = frame("ingest")
    validate(df, "ingest")
    with pytest.raises(ManifestError, match="sha256"):
        validate(df, "clean")


def test_validate_duplicate_image_id_raises():
    df = frame("ingest")
    df.loc[2, "image_id"] = df.loc[0, "image_id"]
    with pytest.raises(ManifestError, match="unique"):
        validate(df, "ingest")


@pytest.mark.parametrize(
    ("stage", "column", "values"),
    [
        ("clean", "width", [1.5, 2.5, 3.5]),
        ("clean", "height", ["1", "2", "3"]),
        ("ingest", "image_id", [1, 2, 3]),
        ("ingest", "label", [1.0, 2.0, 3.0]),
        ("split", "class_idx", ["a", "b", "c"]),
    ],
)
def test_validate_wrong_dtype_raises(stage, column, values):
    df = frame(stage)
    df[column] = values
    with pytest.raises(ManifestError, match=f"'{column}'"):
        validate(df, stage)


def test_validate_extra_columns_are_allowed():
    df = frame("ingest").assign(note="anything")
    validate(df, "ingest")


# --- StageResult ----------------------------------------------------------------------------------------------


def stage_result(n_in: int = 5, n_dropped: int = 2) -> StageResult:
    df = frame("ingest", n_in)
    reasons = pd.Series([None] * (n_in - n_dropped) + ["missing_file"] * n_dropped, index=df.index, dtype=object)
    dropped = manifest.drop_rows(df, "ingest", reasons)
    return StageResult("ingest", n_in, df.loc[reasons.isna()].copy(), dropped)


def test_drop_rows_marks_only_rows_with_a_reason():
    df = frame("ingest", 4)
    reasons = pd.Series([None, "a", None, "b"], index=df.index, dtype=object)
    details = pd.Series(["", "why a", "", None], index=df.index, dtype=object)
    out = manifest.drop_rows(df, "clean", reasons, details)
    assert out["image_id"].tolist() == [df.loc[1, "image_id"], df.loc[3, "image_id"]]
    assert out["drop_stage"].tolist() == ["clean", "clean"]
    assert out["drop_reason"].tolist() == ["a", "b"]
    assert out["drop_detail"].tolist() == ["why a", ""]


def test_check_passes_when_counts_reconcile():
    r = stage_result()
    r.check(list(r.kept.columns))
    assert r.report() == {
        "stage": "ingest",
        "rows_in": 5,
        "rows_kept": 3,
        "rows_dropped": 2,
        "dropped_by_reason": {"missing_file": 2},
    }


@pytest.mark.parametrize("rows_in", [4, 6, 0])
def test_check_counts_that_do_not_reconcile_raise(rows_in):
    r = stage_result()
    r.rows_in = rows_in
    with pytest.raises(ManifestError, match="rows in"):
        r.check([])


def test_check_removed_input_column_raises():
    r = stage_result()
    input_columns = [*r.kept.columns, "note"]  # the stage read a `note` column and lost it
    with pytest.raises(ManifestError, match="note"):
        r.check(input_columns)


def test_check_renamed_input_column_raises():
    r = stage_result()
    columns = list(r.kept.columns)
    r.kept = r.kept.rename(columns={"viewpoint": "view"})
    with pytest.raises(ManifestError, match="viewpoint"):
        r.check(columns)


def test_check_validates_against_the_schema_stage_when_the_stage_is_not_in_the_pipeline():
    # The filterset stage runs every step itself, and its rows must hold what a split manifest holds.
    df = frame("crop")
    r = StageResult("filterset", len(df), df, manifest.empty_dropped(df), schema_stage="split")
    with pytest.raises(ManifestError, match="class_name"):
        r.check([])
    full = frame("split")
    StageResult("filterset", len(full), full, manifest.empty_dropped(full), schema_stage="split").check([])


def test_check_validates_the_schema_of_kept_rows():
    r = stage_result()
    r.kept.loc[r.kept.index[1], "image_id"] = r.kept["image_id"].iloc[0]
    with pytest.raises(ManifestError, match="unique"):
        r.check([])


# --- read / write --------------------------------------------------------------------------------------------


def test_read_missing_manifest_gives_a_clear_error(tmp_path: Path):
    path = tmp_path / "nowhere" / "manifest.parquet"
    with pytest.raises(FileNotFoundError, match="no manifest at .*nowhere"):
        manifest.read(path)


def test_read_with_stage_validates(tmp_path: Path):
    path = tmp_path / "manifest.parquet"
    manifest.write(frame("ingest"), path)
    assert len(manifest.read(path, stage="ingest")) == 3
    with pytest.raises(ManifestError, match="clean"):
        manifest.read(path, stage="clean")


def test_write_then_read_round_trips_every_column(tmp_path: Path):
    df = frame("split", 4)
    df.loc[1, "bbox"] = None  # a photo without a car box
    path = tmp_path / "deep" / "manifest.parquet"
    manifest.write(df, path)
    back = manifest.read(path, stage="split")
    assert back["image_id"].tolist() == df["image_id"].tolist()
    assert [None if b is None else list(b) for b in back["bbox"]] == df["bbox"].tolist()
    assert back["class_idx"].tolist() == df["class_idx"].tolist()
    assert [p.name for p in path.parent.iterdir()] == ["manifest.parquet"], "temporary files left behind"
