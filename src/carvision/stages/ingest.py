"""Ingest: list every photo of the raw scrape (or folder-per-class tree) as a manifest row.

python -m carvision.stages.ingest      # reads params.yaml (DVC stage `ingest`)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from carvision import manifest, settings, stage_io
from carvision.config import load_params
from carvision.manifest import StageResult
from carvision.safe_names import is_inside

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
VIEWPOINTS = ("front", "front-side", "side", "back-side", "back")
BOX_COLUMNS = ["x_min", "y_min", "x_max", "y_max"]


def _text(series: pd.Series) -> pd.Series:
    return series.fillna("").astype(str).str.strip()


def _is_plain_name(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name


def read_scrape(root: Path) -> pd.DataFrame:
    """One row per image named in <root>/listings.csv, joined with <root>/annotations.csv when present."""
    listings_file = root / "listings.csv"
    if not listings_file.exists():
        raise FileNotFoundError(f"{listings_file} not found: a scrape needs listings.csv (see README)")
    listings = pd.read_csv(listings_file, dtype=str, keep_default_na=False)
    required = {"ad_id", "make", "model", "images"}
    if missing := required - set(listings.columns):
        raise ValueError(f"{listings_file} lacks columns {sorted(missing)}")
    submodel = next((c for c in ("submodel", "year") if c in listings.columns), None)
    listings["submodel"] = _text(listings[submodel]) if submodel else ""
    rows = listings.assign(file=listings["images"].str.split(";")).explode("file")
    rows["file"] = _text(rows["file"])
    rows = rows[rows["file"] != ""]
    rows["listing_id"] = _text(rows["ad_id"])
    rows["path"] = [str(root / "images" / a / f) for a, f in zip(rows["listing_id"], rows["file"], strict=True)]
    rows["viewpoint"], rows["bbox"] = "", None
    ann_file = root / "annotations.csv"
    if ann_file.exists():
        ann = pd.read_csv(ann_file, dtype={"ad_id": str, "file": str, "viewpoint": str})
        ann = ann.rename(columns={"ad_id": "listing_id"}).drop_duplicates(["listing_id", "file"])
        rows = rows.drop(columns=["viewpoint", "bbox"]).merge(ann, on=["listing_id", "file"], how="left")
        rows["viewpoint"] = _text(rows["viewpoint"])
        boxes = rows.reindex(columns=BOX_COLUMNS).to_numpy(dtype=float)
        rows["bbox"] = [None if np.isnan(b).any() else [float(v) for v in b] for b in boxes]
    return rows


def read_folder(root: Path) -> pd.DataFrame:
    """One row per file in <root>/<class name>/; each photo is its own listing."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of <class name>/<image> sub-folders")
    records = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        make, _, model = class_dir.name.partition(" ")
        for f in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            rel = f.relative_to(class_dir).as_posix()
            listing = f"{class_dir.name}/{Path(rel).with_suffix('').as_posix()}"
            records.append(
                dict(
                    listing_id=listing,
                    file=f.name,
                    path=str(f),
                    make=make,
                    model=model,
                    submodel="",
                    viewpoint="",
                    bbox=None,
                    _label=class_dir.name,
                )
            )
    return pd.DataFrame.from_records(records)


def ingest(source: str, root: str | Path) -> StageResult:
    """Builds the first manifest; rows whose file is missing, unsafe or unlabelled are dropped with a reason."""
    root = Path(root)
    if source in ("sample", "scrape"):
        rows = read_scrape(root)
        rows["label"] = (_text(rows["make"]) + " " + _text(rows["model"])).str.strip()
    elif source == "folder":
        rows = read_folder(root).rename(columns={"_label": "label"})
    else:
        raise ValueError(f"unknown data.source '{source}': use sample, scrape or folder")
    if rows.empty:
        raise ValueError(f"no images found under {root}")
    rows["image_id"] = rows["listing_id"] + "/" + rows["file"]
    for col in ("year", "source_split"):
        if col not in rows.columns:
            rows[col] = ""
    for col in ("make", "model", "submodel", "year", "source_split", "label", "viewpoint", "listing_id", "path", "image_id"):
        rows[col] = _text(rows[col]).astype("string")
    rows = rows.reset_index(drop=True)

    paths = [Path(p) for p in rows["path"]]
    reason = pd.Series(None, index=rows.index, dtype=object)
    detail = pd.Series("", index=rows.index, dtype=object)
    # A scraped ad_id or file name is a single path component; ../ or / in it is an attack or a scraper bug.
    plain = [_is_plain_name(lid) and _is_plain_name(f) for lid, f in zip(rows["listing_id"], rows["file"], strict=True)]
    unsafe = np.array(
        [(source != "folder" and not ok) or not is_inside(p, root) for ok, p in zip(plain, paths, strict=True)]
    )
    reason[unsafe] = "unsafe_path"
    missing = np.array([not p.is_file() for p in paths]) & reason.isna().to_numpy()
    reason[missing] = "missing_file"
    bad_suffix = np.array([p.suffix.lower() not in IMAGE_SUFFIXES for p in paths]) & reason.isna().to_numpy()
    reason[bad_suffix] = "not_an_image_file"
    detail[bad_suffix] = [paths[i].suffix for i in np.flatnonzero(bad_suffix)]
    reason[(rows["label"] == "").to_numpy() & reason.isna().to_numpy()] = "missing_label"
    repeated = rows["image_id"].duplicated().to_numpy() & reason.isna().to_numpy()
    reason[repeated] = "listed_twice"
    bad_view = ~rows["viewpoint"].isin(("", *VIEWPOINTS)).to_numpy()
    rows.loc[bad_view, "viewpoint"] = ""  # an unknown viewpoint label is unknown, not a reason to lose the photo

    columns = manifest.columns_after("ingest")
    rows = rows[columns]
    dropped = manifest.drop_rows(rows, "ingest", reason, detail)
    kept = rows.loc[reason.isna()].copy()
    return StageResult("ingest", len(rows), kept, dropped)


def main(cfg: DictConfig) -> dict:
    s = settings.parse(cfg)
    result = ingest(s.data.source, s.data.root)
    report = stage_io.save_stage(result, s.paths.ingest, Path(s.paths.reports) / "ingest", [], "label")
    print(stage_io.summary(report))
    return report


if __name__ == "__main__":
    main(load_params())
