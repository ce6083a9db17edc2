"""The manifest: one parquet table, one row per image, that is the only contract between stages.

A stage reads the previous manifest, adds columns or drops rows (each drop with a reason), and writes
`manifest.parquet` (kept rows), `dropped.parquet` (dropped rows with `drop_reason`, `drop_detail`) and a
report whose counts reconcile: rows in = rows kept + rows dropped. See docs/architecture.md.
This module is the contract (schema, validation, reading and writing); `stage_io` runs a stage.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from carvision.atomic import atomic_path


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # pandas dtype family checked by `validate`: string, int, float, bool, object
    added_by: str
    doc: str


SCHEMA: tuple[Column, ...] = (
    Column(
        "image_id",
        "string",
        "ingest",
        "unique, stable key: `<listing_id>/<file>` (scrape); the path under data.root (folder, stanford)",
    ),
    Column("path", "string", "ingest", "the raw file as scraped"),
    Column("listing_id", "string", "ingest", "the ad the photo belongs to; photos of one listing share a split"),
    Column("make", "string", "ingest", "scraped make, e.g. `Toyota`"),
    Column("model", "string", "ingest", "scraped model, e.g. `Corolla`"),
    Column("submodel", "string", "ingest", "scraped submodel (trim, body); empty when unknown"),
    Column("year", "string", "ingest", "model year, four digits; empty when unknown"),
    Column(
        "label",
        "string",
        "ingest",
        "scraped class label, `<make> <model>`; no year (split adds it when split.merge_years is false)",
    ),
    Column("viewpoint", "string", "ingest", "front, front-side, side, back-side, back; empty when unknown"),
    Column("bbox", "object", "ingest", "car box [x_min, y_min, x_max, y_max] in px of the upright image, or None"),
    Column("source_split", "string", "ingest", "the source's own split (Stanford Cars: train, test); empty when none"),
    Column("width", "int", "clean", "upright width in px"),
    Column("height", "int", "clean", "upright height in px"),
    Column("sha256", "string", "clean", "hash of the raw file bytes (exact duplicates)"),
    Column("phash", "string", "clean", "64-bit perceptual hash, 16 hex digits (near duplicates)"),
    Column("format", "string", "clean", "the file's format by its content (JPEG, PNG, HEIF, ...), not its suffix"),
    Column("orientation", "int", "clean", "EXIF orientation (1-8) applied to make the photo upright; 1 when none"),
    Column("colour", "string", "clean", "how the pixels were brought to 8-bit sRGB, e.g. `icc:Adobe RGB (1998)`"),
    Column("frames", "int", "clean", "frames in the file; multi-frame files are read from their first frame"),
    Column("car_prob", "float", "filter", "car-filter probability that the photo shows a car; NaN when not scored"),
    Column("crop_path", "string", "crop", "the crop the model trains on"),
    Column("crop_source", "string", "crop", "`bbox` (annotation box), `detector` (detected box) or `full_image`"),
    Column("car_box", "object", "crop", "the box cropped to, [x_min, y_min, x_max, y_max] in upright full-size px"),
    Column("car_box_score", "float", "crop", "the detector's score of car_box; NaN for annotation boxes and none"),
    Column("class_name", "string", "split", "training class after the class-merge map"),
    Column("class_idx", "int", "split", "index of class_name in the label map (labels.json)"),
    Column("group_id", "string", "split", "listing / near-duplicate group; never straddles two splits"),
    Column("split", "string", "split", "train, val or test"),
)
STAGES = ("ingest", "clean", "filter", "crop", "split")
DROP_COLUMNS = ("drop_stage", "drop_reason", "drop_detail")


def columns_after(stage: str) -> list[str]:
    """The columns a manifest must hold once `stage` has run."""
    upto = STAGES[: STAGES.index(stage) + 1]
    return [c.name for c in SCHEMA if c.added_by in upto]


class ManifestError(ValueError):
    pass


def validate(df: pd.DataFrame, stage: str) -> None:
    """Raises ManifestError when `df` lacks a column the schema requires after `stage`, or breaks a rule."""
    missing = [c for c in columns_after(stage) if c not in df.columns]
    if missing:
        raise ManifestError(f"manifest after '{stage}' lacks columns {missing}")
    if df["image_id"].duplicated().any():
        dups = df.loc[df["image_id"].duplicated(), "image_id"].head(3).tolist()
        raise ManifestError(f"image_id must be unique, repeated: {dups}")
    checks = {
        "string": pd.api.types.is_string_dtype,
        "int": pd.api.types.is_integer_dtype,
        "float": pd.api.types.is_float_dtype,
        "bool": pd.api.types.is_bool_dtype,
        "object": lambda s: True,
    }
    for col in SCHEMA:
        if col.name in df.columns and len(df) and not checks[col.dtype](df[col.name]):
            raise ManifestError(f"column '{col.name}' should be {col.dtype}, is {df[col.name].dtype}")


def read(path: str | Path, stage: str | None = None) -> pd.DataFrame:
    """Reads a manifest; with `stage`, validates it holds what that stage writes."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no manifest at {path}: run the stage that writes it first (dvc repro)")
    df = pd.read_parquet(path)
    if stage is not None:
        validate(df, stage)
    return df


def write(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


@dataclass
class StageResult:
    """What a stage made of its input: kept rows (with new columns) and dropped rows (with reasons)."""

    stage: str
    rows_in: int
    kept: pd.DataFrame
    dropped: pd.DataFrame
    schema_stage: str | None = None  # the stage whose columns `kept` must hold, when `stage` is not in STAGES
    # What the stage wants in its report besides the counts: an encoding it fell back to, labels it merged,
    # columns it ignored. JSON-serialisable.
    notes: dict = field(default_factory=dict)

    def report(self) -> dict:
        reasons = Counter(self.dropped["drop_reason"]) if len(self.dropped) else Counter()
        return {
            "stage": self.stage,
            "rows_in": self.rows_in,
            "rows_kept": len(self.kept),
            "rows_dropped": len(self.dropped),
            "dropped_by_reason": dict(sorted(reasons.items())),
        } | self.notes

    def check(self, input_columns: list[str]) -> None:
        """The contract: counts reconcile (rows in = kept + dropped), no column vanished, the schema holds."""
        if self.rows_in != len(self.kept) + len(self.dropped):
            raise ManifestError(
                f"{self.stage}: rows in {self.rows_in} != kept {len(self.kept)} + dropped {len(self.dropped)}"
            )
        lost = [c for c in input_columns if c not in self.kept.columns]
        if lost:
            raise ManifestError(f"{self.stage}: columns {lost} were removed or renamed")
        validate(self.kept, self.schema_stage or self.stage)


def drop_rows(df: pd.DataFrame, stage: str, reasons: pd.Series, details: pd.Series | None = None) -> pd.DataFrame:
    """The rows of `df` where `reasons` is set, with the drop columns filled in."""
    mask = reasons.notna()
    out = df.loc[mask].copy()
    out["drop_stage"] = stage
    out["drop_reason"] = reasons[mask].astype(str)
    out["drop_detail"] = (details[mask] if details is not None else pd.Series("", index=df.index)[mask]).fillna("")
    return out


def empty_dropped(df: pd.DataFrame) -> pd.DataFrame:
    out = df.iloc[0:0].copy()
    for c in DROP_COLUMNS:
        out[c] = pd.Series(dtype="string")
    return out
