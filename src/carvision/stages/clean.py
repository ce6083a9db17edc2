"""Clean: decode-verify every photo, make it upright RGB, and drop broken, tiny and duplicate photos.

python -m carvision.stages.clean       # reads params.yaml (DVC stage `clean`)
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from omegaconf import DictConfig

from carvision import manifest, settings, stage_io
from carvision.config import load_params
from carvision.images import ImageRejected, decode_rgb, read_image_bytes
from carvision.manifest import StageResult
from carvision.near_duplicates import close_pairs, connected_groups, hex_to_uint64
from carvision.parallel import map_with_progress
from carvision.safe_names import image_output_path
from carvision.settings import CleanSettings


@dataclass(frozen=True)
class Inspected:
    width: int = 0
    height: int = 0
    sha256: str = ""
    phash: str = ""
    reason: str | None = None
    detail: str = ""


def inspect_one(job: tuple[str, str], *, min_side: int, max_pixels: int, jpeg_quality: int) -> Inspected:
    """Decodes one photo, writes its upright RGB copy to `job[1]` and returns its size and hashes."""
    src, dst = Path(job[0]), Path(job[1])
    try:
        data = read_image_bytes(src)  # read once: the same bytes are hashed and decoded
        im = decode_rgb(data, max_pixels=max_pixels)
    except ImageRejected as e:
        return Inspected(reason=e.reason, detail=e.detail)
    if min(im.size) < min_side:
        return Inspected(*im.size, reason="too_small", detail=f"{im.width}x{im.height}")
    sha = hashlib.sha256(data).hexdigest()
    dst.parent.mkdir(parents=True, exist_ok=True)
    im.save(dst, "JPEG", quality=jpeg_quality)
    return Inspected(im.width, im.height, sha, str(imagehash.phash(im)))


def duplicate_reasons(df: pd.DataFrame, near_bits: int) -> tuple[pd.Series, pd.Series]:
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
    pairs = close_pairs(hex_to_uint64(rest["phash"].tolist()), near_bits)
    groups = connected_groups(len(rest), pairs)
    area = (rest["width"] * rest["height"]).to_numpy()
    # Order by (group, -area, position) so that the first row of each group is the one to keep.
    order = np.lexsort((np.arange(len(rest)), -area, groups))
    keep_pos = {}
    for pos in order:
        keep_pos.setdefault(groups[pos], pos)
    ids = rest["image_id"].to_numpy()
    for pos, g in enumerate(groups):
        if keep_pos[g] != pos:
            reason[rest.index[pos]] = "near_duplicate"
            detail[rest.index[pos]] = f"of {ids[keep_pos[g]]}"
    return reason, detail


def clean(
    df: pd.DataFrame,
    out_dir: Path,
    *,
    min_side: int,
    max_pixels: int,
    near_duplicate_bits: int,
    jpeg_quality: int = 95,
    workers: int = 1,
) -> StageResult:
    """Writes upright RGB copies under out_dir/images and returns the kept and dropped rows."""
    df = df.reset_index(drop=True).copy()
    dst = [
        str(image_output_path(out_dir / "images", lid, Path(p).name))
        for lid, p in zip(df["listing_id"], df["path"], strict=True)
    ]
    inspect = partial(inspect_one, min_side=min_side, max_pixels=max_pixels, jpeg_quality=jpeg_quality)
    results = map_with_progress(inspect, list(zip(df["path"], dst, strict=True)), workers, "clean")
    info = pd.DataFrame([asdict(r) for r in results], index=df.index, columns=[f.name for f in fields(Inspected)])
    df["clean_path"] = pd.Series(dst, dtype="string")
    df["width"], df["height"] = info["width"].astype("int64"), info["height"].astype("int64")
    df["sha256"], df["phash"] = info["sha256"].astype("string"), info["phash"].astype("string")
    reason, detail = info["reason"].astype(object), info["detail"].astype(object)
    decoded = reason.isna()
    dup_reason, dup_detail = duplicate_reasons(df.loc[decoded], near_duplicate_bits)
    dup = dup_reason.dropna().index
    reason.loc[dup], detail.loc[dup] = dup_reason[dup], dup_detail[dup]
    for p in df.loc[dup, "clean_path"]:
        Path(p).unlink(missing_ok=True)  # a dropped duplicate leaves no file behind
    dropped = manifest.drop_rows(df, "clean", reason, detail)
    return StageResult("clean", len(df), df.loc[reason.isna()].copy(), dropped)


def clean_with(df: pd.DataFrame, out_dir: Path, c: CleanSettings) -> StageResult:
    """`clean` with the clean section's settings (the stage, and the filterset stage, use it)."""
    return clean(
        df,
        out_dir,
        min_side=c.min_side,
        max_pixels=c.max_pixels,
        near_duplicate_bits=c.near_duplicate_bits,
        jpeg_quality=c.jpeg_quality,
        workers=c.workers,
    )


def main(cfg: DictConfig) -> dict:
    s = settings.parse(cfg)
    df = manifest.read(Path(s.paths.ingest) / "manifest.parquet", stage="ingest")
    return stage_io.save_image_stage(
        df, s.paths.clean, Path(s.paths.reports) / "clean", "clean_path", lambda out: clean_with(df, out, s.clean)
    )


if __name__ == "__main__":
    main(load_params())
