"""Ingest: list every photo of the raw data (a scrape, a folder-per-class tree, Stanford Cars) as a manifest row.

python -m carvision.stages.ingest      # reads params.yaml (DVC stage `ingest`)

The readers (carvision.readers) find the rows and the reasons of their own (missing_file, unsafe_path,
malformed_csv_line, system_folder, ...). This stage makes every name storable, gives each make and model one
spelling, adds the reasons that need all rows at once (missing_label, listed_twice) and checks that something is
left. What it changed or ignored (encodings, merged spellings, ignored columns) goes into the report.

Drop reasons: missing_file (also a dangling link), unsafe_path (`..`, `/` or `\\` in a listed name),
missing_ad_id, name_too_long, symlink_loop, permission_denied, unreadable_file, not_a_regular_file (a folder,
FIFO, device), folder_too_deep, file_name_not_utf8, malformed_csv_line, listing_without_images, invalid_box,
system_folder, system_file, not_in_class_folder, class_pattern_mismatch, listing_pattern_mismatch,
missing_label (also Stanford test images without labels), listed_twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import fields
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from carvision import manifest, readers, settings, stage_io
from carvision.config import load_params
from carvision.manifest import StageResult
from carvision.readers import Found, Row
from carvision.readers.labels import merge_case_variants, normalise_text
from carvision.safe_names import is_utf8, utf8_safe

TEXT_FIELDS = ("image_id", "path", "listing_id", "make", "model", "submodel", "year", "viewpoint", "source_split")
RENAME_HINT = "rename it to UTF-8, e.g. `convmv -f latin1 -t utf8 -r --notest <folder>`"


def refuse_undecodable_names(rows: list[Row]) -> None:
    """Drops rows whose name is not UTF-8 (file_name_not_utf8) and makes every text of every row storable.

    Python reads such a name from disk with surrogates in it; parquet cannot store those, and the manifest must
    not break for one file. The detail shows the name with `ascii()`, so the report can be read anywhere.
    """
    for row in rows:
        if is_utf8("".join(getattr(row, f) for f in (*TEXT_FIELDS, "detail"))):
            continue  # the usual case: one check per row
        bad = [v for v in (getattr(row, f) for f in TEXT_FIELDS) if not is_utf8(v)]
        if bad and row.reason is None:
            part = next((p for p in row.image_id.split("/") if not is_utf8(p)), bad[0])
            row.reason, row.detail = "file_name_not_utf8", f"{ascii(part)} is not valid UTF-8: {RENAME_HINT}"
        for f in (*TEXT_FIELDS, "detail"):
            setattr(row, f, utf8_safe(getattr(row, f)))


def normalise_labels(rows: list[Row]) -> dict:
    """NFC, single spaces, and one spelling per make (and per model of a make): `toyota` joins `Toyota` when
    `Toyota` is the more frequent. Returns the report's entries about what changed."""
    retyped = 0
    for row in rows:
        before = (row.make, row.model, row.submodel)
        row.make, row.model, row.submodel = (normalise_text(v) for v in before)
        retyped += (row.make, row.model, row.submodel) != before
    makes, merged = merge_case_variants(r.make for r in rows)
    for row in rows:
        row.make = makes.get(row.make, row.make)
    spellings = [{"column": "make"} | m for m in merged]
    by_make: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_make[row.make].append(row)
    for make, group in sorted(by_make.items()):
        models, merged = merge_case_variants(r.model for r in group)
        for row in group:
            row.model = models.get(row.model, row.model)
        spellings += [{"column": "model", "make": make} | m for m in merged]
    notes: dict = {}
    if retyped:
        notes["label_rows_respaced_or_nfc"] = retyped  # rows whose make/model/submodel text changed
    if spellings:
        notes["label_spellings_merged"] = spellings
    return notes


def label_and_deduplicate(rows: list[Row]) -> None:
    """Sets missing_label and listed_twice; the first listing of a photo is the one kept."""
    seen: set[str] = set()
    for row in rows:
        if row.reason is None and not (row.make or row.model):
            row.reason, row.detail = "missing_label", "no make or model"
        elif row.reason is None and row.image_id in seen:
            row.reason, row.detail = "listed_twice", "an earlier row has the same image_id"
        if row.reason is None:
            seen.add(row.image_id)


def to_frame(rows: list[Row]) -> pd.DataFrame:
    """The rows as the ingest manifest's columns (label = `<make> <model>`, without the year)."""
    df = pd.DataFrame.from_records([vars(r) for r in rows], columns=[f.name for f in fields(Row)])
    df["label"] = (df["make"] + " " + df["model"]).str.strip()
    for col in (*TEXT_FIELDS, "label"):
        df[col] = df[col].astype("string")
    return df


def _nothing_kept(root: Path, found: Found, reasons: pd.Series) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in Counter(reasons).most_common())
    seen = f"found {len(reasons)} rows, all dropped ({counts})" if len(reasons) else "found nothing"
    return f"no images to ingest under {root}: looked for {found.looked_for}; {seen}" + (
        f"; {found.seen}" if found.seen else ""
    )


def _storable(value):
    """Notes as JSON-ready text: a folder name with undecodable bytes must not break report.json."""
    if isinstance(value, str):
        return utf8_safe(value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def ingest(
    source: str, root: str | Path, *, listing_pattern: str | None = None, class_pattern: str | None = None
) -> StageResult:
    """Builds the first manifest from data.root; every row the reader found is kept or dropped with a reason.

    Raises ValueError when nothing at all is kept, saying what was looked for and what was found.
    """
    root = Path(root)
    found = readers.read(source, root, listing_pattern=listing_pattern, class_pattern=class_pattern)
    rows = found.rows
    refuse_undecodable_names(rows)
    notes = _storable(found.notes) | normalise_labels(rows)
    label_and_deduplicate(rows)
    df = to_frame(rows)
    reasons = pd.Series([r.reason for r in rows], index=df.index, dtype=object)
    details = pd.Series([r.detail for r in rows], index=df.index, dtype=object)
    columns = manifest.columns_after("ingest")
    kept = df.loc[reasons.isna(), columns].reset_index(drop=True)
    if kept.empty:
        raise ValueError(_nothing_kept(root, found, reasons.dropna()))
    dropped = manifest.drop_rows(df[columns], "ingest", reasons, details)
    return StageResult("ingest", len(df), kept, dropped, notes={"source": source} | notes)


def main(cfg: DictConfig) -> dict:
    s = settings.parse(cfg)
    d = s.data
    result = ingest(d.source, d.root, listing_pattern=d.listing_pattern, class_pattern=d.class_pattern)
    report = stage_io.save_stage(result, s.paths.ingest, Path(s.paths.reports) / "ingest", [], "label")
    print(stage_io.summary(report))
    return report


if __name__ == "__main__":
    main(load_params())
