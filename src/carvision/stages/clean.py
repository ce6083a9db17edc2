"""Clean: verify every photo by decoding it, record how it reads, and drop broken, tiny and duplicate photos.

python -m carvision.stages.clean       # reads params.yaml (DVC stage `clean`)
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from omegaconf import DictConfig

from carvision import manifest, settings, stage_io
from carvision.config import load_params
from carvision.images import ImageRejected, decode, read_image_bytes
from carvision.manifest import StageResult
from carvision.near_duplicates import groups_within, hex_to_uint64
from carvision.parallel import map_with_progress
from carvision.settings import CleanSettings


@dataclass(frozen=True)
class Inspected:
    width: int = 0
    height: int = 0
    sha256: str = ""
    phash: str = ""
    format: str = ""
    orientation: int = 1
    colour: str = ""
    frames: int = 0
    reason: str | None = None
    detail: str = ""


def inspect_one(path: str, *, min_side: int, max_pixels: int, decode_side: int = 64) -> Inspected:
    """Verifies one photo by decoding it and returns its upright size, hashes and how it reads; writes nothing.

    The decode is reduced (a JPEG's DCT scaling to the smallest scale whose shorter side is >= decode_side):
    it still reads every byte of the file, so truncation shows, and the 32x32 pHash loses nothing by it.
    The crop stage reads the raw file again and writes only the small training image.
    """
    try:
        data = read_image_bytes(path)  # read once: the same bytes are hashed and decoded
        d = decode(data, max_pixels=max_pixels, min_side=decode_side)
    except ImageRejected as e:
        return Inspected(reason=e.reason, detail=e.detail)
    width, height = d.size  # upright, full resolution
    facts = dict(format=d.format, orientation=d.orientation, colour=d.colour, frames=d.frames)
    if min(width, height) < min_side:
        return Inspected(width, height, **facts, reason="too_small", detail=f"{width}x{height}")
    return Inspected(width, height, hashlib.sha256(data).hexdigest(), str(imagehash.phash(d.image)), **facts)


def duplicate_reasons(df: pd.DataFrame, near_bits: int, workers: int = 1) -> tuple[pd.Series, pd.Series]:
    """Drop reasons for exact duplicates (same file bytes) and near duplicates (phash within near_bits).

    The first photo of an exact-duplicate set is kept; of a near-duplicate group, the one with the most
    pixels (the least degraded copy). Returns (reason, detail) aligned with df.index, None where kept.
    """
    reason = pd.Series(None, index=df.index, dtype=object)
    detail = pd.Series("", index=df.index, dtype=object)
    first = df.groupby("sha256", sort=False)["image_id"].transform("first")
    exact = df["image_id"] != first
    reason[exact] = "exact_duplicate"
    detail[exact] = "of " + first[exact]
    rest = df.loc[~exact]
    if rest.empty:
        return reason, detail
    groups = groups_within(hex_to_uint64(rest["phash"].tolist()), near_bits, workers=workers)
    area = (rest["width"] * rest["height"]).to_numpy()
    # Order by (group, -area, position): the first row of each group is the one to keep.
    order = np.lexsort((np.arange(len(rest)), -area, groups))
    first_in_group = np.r_[True, groups[order][1:] != groups[order][:-1]]
    keeper_of_group = pd.Series(order[first_in_group], index=groups[order][first_in_group])
    keeper = keeper_of_group.reindex(groups).to_numpy()  # per row: the position of its group's keeper
    near = keeper != np.arange(len(rest))
    ids = rest["image_id"].to_numpy()
    reason[rest.index[near]] = "near_duplicate"
    detail[rest.index[near]] = ["of " + i for i in ids[keeper[near]]]
    return reason, detail


def clean(
    df: pd.DataFrame,
    *,
    min_side: int,
    max_pixels: int,
    near_duplicate_bits: int,
    decode_side: int = 64,
    workers: int = 1,
) -> StageResult:
    """Inspects every photo (in `workers` processes) and returns the kept rows, with their facts, and the
    dropped ones: unreadable, broken, too small, or a duplicate of a kept photo."""
    df = df.reset_index(drop=True).copy()
    inspect = partial(inspect_one, min_side=min_side, max_pixels=max_pixels, decode_side=decode_side)
    results = map_with_progress(inspect, df["path"].tolist(), workers, "clean")
    info = pd.DataFrame([asdict(r) for r in results], index=df.index, columns=[f.name for f in fields(Inspected)])
    for col in ("width", "height", "orientation", "frames"):
        df[col] = info[col].astype("int64")
    for col in ("sha256", "phash", "format", "colour"):
        df[col] = info[col].astype("string")
    reason, detail = info["reason"].astype(object), info["detail"].astype(object)
    decoded = reason.isna()
    dup_reason, dup_detail = duplicate_reasons(df.loc[decoded], near_duplicate_bits, workers)
    dup = dup_reason.dropna().index
    reason.loc[dup], detail.loc[dup] = dup_reason[dup], dup_detail[dup]
    dropped = manifest.drop_rows(df, "clean", reason, detail)
    kept = df.loc[reason.isna()].copy()
    notes = {
        "formats": dict(sorted(Counter(kept["format"]).items())),
        "colour_conversions": dict(sorted(Counter(c for c in kept["colour"] if c != "sRGB").items())),
        "rotated_by_exif": int((kept["orientation"] != 1).sum()),
        "multi_frame_first_frame_used": int((kept["frames"] > 1).sum()),
    }
    return StageResult("clean", len(df), kept, dropped, notes=notes)


def clean_with(df: pd.DataFrame, c: CleanSettings) -> StageResult:
    """`clean` with the clean section's settings (the stage, and the filterset stage, use it)."""
    return clean(
        df,
        min_side=c.min_side,
        max_pixels=c.max_pixels,
        near_duplicate_bits=c.near_duplicate_bits,
        decode_side=c.decode_side,
        workers=c.workers,
    )


def main(cfg: DictConfig) -> dict:
    s = settings.parse(cfg)
    df = manifest.read(Path(s.paths.ingest) / "manifest.parquet", stage="ingest")
    result = clean_with(df, s.clean)
    report = stage_io.save_stage(result, s.paths.clean, Path(s.paths.reports) / "clean", list(df.columns), "label")
    print(stage_io.summary(report))
    return report


if __name__ == "__main__":
    main(load_params())
