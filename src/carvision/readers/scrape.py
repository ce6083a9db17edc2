"""The scrape layout (`data: scrape`, and the generated `sample`): listings.csv, images/<ad_id>/<file>, annotations.csv.

listings.csv: ad_id, make, model, images (';'-separated file names), and optionally submodel and year.
annotations.csv (optional): ad_id, file, viewpoint, x_min, y_min, x_max, y_max; other columns are ignored.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from carvision.readers.labels import normalise_viewpoint, parse_year
from carvision.readers.records import Found, Row
from carvision.readers.tables import Table, read_table
from carvision.readers.walk import check_file
from carvision.safe_names import is_plain_name

LISTING_COLUMNS = ("ad_id", "make", "model", "submodel", "year", "images")
LISTING_REQUIRED = ("ad_id", "make", "model", "images")
BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")
ANNOTATION_COLUMNS = ("ad_id", "file", "viewpoint", *BOX_COLUMNS)
# A plain decimal number: no units (`120px`), no `inf`/`nan`, no hex or thousands separators.
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class Annotation:
    viewpoint: str  # raw text
    box: tuple[str, str, str, str]  # raw text of x_min, y_min, x_max, y_max
    line: int


def parse_box(raw: tuple[str, ...]) -> tuple[list[float] | None, str | None]:
    """(box, None) for four finite numbers, (None, None) for four blanks, else (None, why) for a bad box."""
    values = [v.strip() for v in raw]
    if not any(values):
        return None, None
    if not all(values):
        return None, "some coordinates are empty"
    if not all(_NUMBER.fullmatch(v) for v in values):
        return None, "not plain numbers"
    box = [float(v) for v in values]
    if not all(math.isfinite(v) for v in box):  # 1e400 parses, to inf
        return None, "not finite"
    return box, None


def _malformed_rows(table: Table) -> list[Row]:
    return [
        Row(image_id=f"{table.name}:{line}", path="", listing_id="", reason="malformed_csv_line", detail=detail)
        for line, detail in table.malformed
    ]


def read_annotations(path: Path, rows: list[Row], notes: dict) -> dict[tuple[str, str], Annotation]:
    """(ad_id, file) -> the first annotation given for it; malformed lines become rows, the rest goes into notes."""
    if not path.is_file():
        return {}
    table = read_table(path, ANNOTATION_COLUMNS, required=("ad_id", "file"))
    _note_table(table, notes)
    if table.ignored_columns:
        notes["annotation_columns_ignored"] = table.ignored_columns
    rows.extend(_malformed_rows(table))
    annotations: dict[tuple[str, str], Annotation] = {}
    duplicates = 0
    for line, rec in table.records:
        key = (rec["ad_id"].strip(), rec["file"].strip())
        if key in annotations:
            duplicates += 1
            continue
        box = tuple(rec.get(c, "") for c in BOX_COLUMNS)
        annotations[key] = Annotation(rec.get("viewpoint", ""), box, line)  # type: ignore[arg-type]
    if duplicates:
        notes["annotation_duplicates_ignored"] = duplicates  # the first row of each photo wins
    return annotations


def _note_table(table: Table, notes: dict) -> None:
    notes.setdefault("csv_encoding", {})[table.name] = table.encoding
    if table.malformed:
        notes.setdefault("malformed_csv_lines", {})[table.name] = len(table.malformed)
    if table.nul_bytes:
        notes.setdefault("csv_nul_bytes_removed", {})[table.name] = table.nul_bytes


def read_scrape(root: Path) -> Found:
    """One row per file named in <root>/listings.csv, with its annotation; placeholders for what is not a file."""
    listings_file = root / "listings.csv"
    if not listings_file.is_file():
        raise FileNotFoundError(f"{listings_file} not found: a scrape needs listings.csv (see conf/data/scrape.yaml)")
    table = read_table(listings_file, LISTING_COLUMNS, required=LISTING_REQUIRED)
    if not table.records and not table.malformed:
        raise ValueError(f"{listings_file} has 0 rows: no listings to ingest")
    notes: dict = {}
    _note_table(table, notes)
    if table.ignored_columns:
        notes["listing_columns_ignored"] = table.ignored_columns
    rows = _malformed_rows(table)
    annotations = read_annotations(root / "annotations.csv", rows, notes)
    listed: set[tuple[str, str]] = set()
    bad_years: Counter[str] = Counter()
    unknown_viewpoints: Counter[str] = Counter()
    for line, rec in table.records:
        ad_id = rec["ad_id"].strip()
        labels = dict(make=rec["make"], model=rec["model"], submodel=rec.get("submodel", ""))
        year = parse_year(rec.get("year", ""))
        if rec.get("year", "").strip() and not year:
            bad_years[rec["year"].strip()] += 1
        files = [f.strip() for f in rec["images"].split(";") if f.strip()]
        if not files:
            detail = f"listings.csv line {line}: no file names in `images`"
            rows.append(
                Row(f"{ad_id}/", "", ad_id, **labels, year=year, reason="listing_without_images", detail=detail)
            )
            continue
        for file in files:
            listed.add((ad_id, file))
            row = Row(f"{ad_id}/{file}", "/".join((str(root), "images", ad_id, file)), ad_id, **labels, year=year)
            rows.append(row)
            if not ad_id:
                row.reason, row.detail = "missing_ad_id", f"listings.csv line {line}"
                continue
            if not (is_plain_name(ad_id) and is_plain_name(file)):
                # A scraped ad_id or file name is one path component: `..`, `/` or `\` is an attack or a bug.
                row.reason, row.detail = "unsafe_path", f"listings.csv line {line}: not a plain file name"
                continue
            if problem := check_file(row.path):
                row.reason, row.detail = problem
                continue
            ann = annotations.get((ad_id, file))
            if ann is None:
                continue
            viewpoint = normalise_viewpoint(ann.viewpoint)
            if viewpoint is None:  # an unknown viewpoint label is unknown, not a reason to lose the photo
                unknown_viewpoints[ann.viewpoint.strip()] += 1
            row.viewpoint = viewpoint or ""
            row.bbox, why = parse_box(ann.box)
            if why:
                row.reason = "invalid_box"
                row.detail = f"annotations.csv line {ann.line}: {why}: {list(ann.box)!r}"
    if unlisted := len(set(annotations) - listed):
        notes["annotations_without_listed_photo"] = unlisted
    if bad_years:
        notes["years_not_four_digits"] = dict(bad_years.most_common(20))
    if unknown_viewpoints:
        notes["viewpoints_unknown"] = dict(unknown_viewpoints.most_common(20))
    return Found(rows, notes, looked_for=f"the files listed in {listings_file}, under {root / 'images'}")
