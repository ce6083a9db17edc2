"""Crop: cut each photo to its car box (plus a margin), pass box-less photos through, bound the size.

python -m carvision.stages.crop        # reads params.yaml (DVC stage `crop`)
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig
from PIL import Image

from carvision import manifest, settings, stage_io
from carvision.config import load_params
from carvision.manifest import StageResult
from carvision.parallel import map_with_progress
from carvision.safe_names import image_output_path
from carvision.settings import CropSettings


def crop_box(
    bbox: list[float] | None, width: int, height: int, margin: float, min_box_side: int
) -> tuple[tuple[int, int, int, int] | None, str | None]:
    """The pixel box to cut (left, top, right, bottom), or None for the whole image, and a drop reason."""
    if bbox is None:
        return None, None
    x0, y0, x1, y1 = bbox
    if not (x1 > x0 and y1 > y0):
        return None, "invalid_box"
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    left, top = max(0, round(x0 - mx)), max(0, round(y0 - my))
    right, bottom = min(width, round(x1 + mx)), min(height, round(y1 + my))
    if right <= left or bottom <= top:
        return None, "box_outside_image"
    if min(right - left, bottom - top) < min_box_side:
        return None, "box_too_small"
    return (left, top, right, bottom), None


def crop_one(
    job: tuple[str, str, list[float] | None],
    *,
    margin: float,
    min_box_side: int,
    max_side: int,
    without_box: str,
    jpeg_quality: int,
) -> tuple[str | None, str | None, str]:
    """Writes the crop of one photo; returns (crop_source, drop_reason, detail)."""
    src, dst, bbox = job
    with Image.open(src) as im:
        im = im.convert("RGB")
        box, reason = crop_box(bbox, im.width, im.height, margin, min_box_side)
        if reason:
            return None, reason, f"{bbox} in {im.width}x{im.height}"
        if box is None and without_box == "drop":
            return None, "no_car_box", ""
        out = im.crop(box) if box else im
        # Shrink only: upscaling adds no detail, the training transform resizes anyway.
        out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    out.save(dst, "JPEG", quality=jpeg_quality)
    return ("bbox" if box else "full_image"), None, ""


def crop(
    df: pd.DataFrame,
    out_dir: Path,
    *,
    margin: float,
    min_box_side: int,
    max_side: int,
    without_box: str = "keep",
    jpeg_quality: int = 95,
    workers: int = 1,
) -> StageResult:
    if without_box not in ("keep", "drop"):
        raise ValueError(f"crop.without_box must be keep or drop, not '{without_box}'")
    df = df.reset_index(drop=True).copy()
    dst = [
        str(image_output_path(out_dir / "images", lid, Path(p).name))
        for lid, p in zip(df["listing_id"], df["path"], strict=True)
    ]
    bboxes = [None if b is None else [float(v) for v in b] for b in df["bbox"]]
    fn = partial(
        crop_one,
        margin=margin,
        min_box_side=min_box_side,
        max_side=max_side,
        without_box=without_box,
        jpeg_quality=jpeg_quality,
    )
    results = map_with_progress(fn, list(zip(df["clean_path"], dst, bboxes, strict=True)), workers, "crop")
    columns = list(zip(*results, strict=True)) or [(), (), ()]  # an empty manifest passes through empty
    source, reason, detail = (pd.Series(col, index=df.index, dtype=object) for col in columns)
    df["crop_path"] = pd.Series(dst, dtype="string")
    df["crop_source"] = source.fillna("").astype("string")
    dropped = manifest.drop_rows(df, "crop", reason, detail)
    return StageResult("crop", len(df), df.loc[reason.isna()].copy(), dropped)


def crop_with(df: pd.DataFrame, out_dir: Path, c: CropSettings, without_box: str | None = None) -> StageResult:
    """`crop` with the crop section's settings (the stage, and the filterset stage, use it); `without_box`
    overrides the section's."""
    return crop(
        df,
        out_dir,
        margin=c.margin,
        min_box_side=c.min_box_side,
        max_side=c.max_side,
        without_box=without_box or c.without_box,
        jpeg_quality=c.jpeg_quality,
        workers=c.workers,
    )


def main(cfg: DictConfig) -> dict:
    s = settings.parse(cfg)
    df = manifest.read(Path(s.paths.filter) / "manifest.parquet", stage="filter")
    return stage_io.save_image_stage(
        df, s.paths.crop, Path(s.paths.reports) / "crop", "crop_path", lambda out: crop_with(df, out, s.crop)
    )


if __name__ == "__main__":
    main(load_params())
