"""Crop: read each raw photo, cut it to its car box (plus a margin), pass box-less photos through, bound the size.
The cutting itself is `carvision.cropping`, which `carvision predict` and the service use too.

python -m carvision.stages.crop        # reads params.yaml (DVC stage `crop`)
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from carvision import manifest, settings, stage_io
from carvision.config import load_params
from carvision.cropping import cut, margin_box
from carvision.images import ImageRejected, read_image_bytes, tune_allocator
from carvision.manifest import StageResult
from carvision.parallel import map_with_progress
from carvision.safe_names import image_output_path
from carvision.settings import CropSettings, DetectorSettings


def crop_one(
    job: tuple[str, str, list[float] | None, int, int],
    *,
    margin: float,
    min_box_side: int,
    max_side: int,
    without_box: str,
    jpeg_quality: int,
) -> tuple[str | None, str | None, str]:
    """Reads the raw photo, cuts its car box and writes the small training image; returns
    (crop_source, drop_reason, detail).

    job: (raw path, output path, box in upright full-resolution px or None, upright width, height from clean).
    """
    src, dst, bbox, width, height = job
    box, reason = margin_box(bbox, width, height, margin, min_box_side)
    if reason:
        return None, reason, f"{bbox} in {width}x{height}"
    if box is None and without_box == "drop":
        return None, "no_car_box", ""
    try:
        # max_pixels: exactly what clean verified; a file swapped for a larger one since is refused.
        im = cut(read_image_bytes(src), box, (width, height), max_side, max_pixels=width * height)
    except ImageRejected as e:
        return None, e.reason, e.detail
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    im.save(dst, "JPEG", quality=jpeg_quality)
    return ("bbox" if box else "full_image"), None, ""


def detector_decisions(df: pd.DataFrame, d: DetectorSettings, shard_dir: Path) -> list | None:
    """The detector's decision for every row, in order: in this process, or as a Lightning predict under DDP when
    the settings ask for more than one device or node (then None on every rank but 0)."""
    from carvision.detection.run import DetectorRun, detect_decisions, policy_from_settings

    policy, run = policy_from_settings(d), DetectorRun.from_settings(d)
    sizes = list(zip(df["width"].tolist(), df["height"].tolist(), strict=True))
    paths = df["path"].tolist()
    if d.devices != 1 or d.num_nodes != 1:
        from carvision.detection.distributed import cluster_of, detect_distributed

        return detect_distributed(paths, sizes, run, policy, cluster_of(d), shard_dir)
    return detect_decisions(paths, sizes, run, policy)


def detector_boxes(df: pd.DataFrame, decisions: list) -> tuple[list, list[float], pd.Series, pd.Series]:
    """(box or None per row, its score (NaN for none), drop reason, detail) from the detector's decisions."""
    boxes, scores = [], []
    reason = pd.Series(None, index=df.index, dtype=object)
    detail = pd.Series("", index=df.index, dtype=object)
    for i, dec in zip(df.index, decisions, strict=True):
        if isinstance(dec, ImageRejected):
            reason[i], detail[i] = dec.reason, dec.detail
            boxes.append(None)
            scores.append(math.nan)
            continue
        if dec.reason:
            reason[i], detail[i] = dec.reason, dec.detail
        kept_box = dec.detected_box if dec.source == "detector" else None
        boxes.append(None if kept_box is None else [float(v) for v in kept_box])
        scores.append(math.nan if dec.score is None else float(dec.score))
    return boxes, scores, reason, detail


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
    method: str = "boxes",
    detector: DetectorSettings | None = None,
    decisions: list | None = None,
) -> StageResult:
    """Crops every photo to its car: the annotation box (method boxes), the detector's (detector), or none (full).

    Args:
        decisions: method detector: the detector's decisions for the rows, when already made (`detector_decisions`);
            None: made here, in this process.
    """
    if without_box not in ("keep", "drop"):
        raise ValueError(f"crop.without_box must be keep or drop, not '{without_box}'")
    if method not in ("boxes", "detector", "full"):
        raise ValueError(f"crop.method must be boxes, detector or full, not '{method}'")
    df = df.reset_index(drop=True).copy()
    dst = [
        # Keyed on image_id, which is unique: two files of one listing may share a name in different folders.
        str(image_output_path(out_dir / "images", lid, image_id.removeprefix(f"{lid}/")))
        for lid, image_id in zip(df["listing_id"], df["image_id"], strict=True)
    ]
    reason = pd.Series(None, index=df.index, dtype=object)
    detail = pd.Series("", index=df.index, dtype=object)
    scores = [math.nan] * len(df)
    if method == "detector":
        if decisions is None:
            decisions = detector_decisions(df, detector or DetectorSettings(), out_dir / ".detect-shards")
        boxes, scores, reason, detail = detector_boxes(df, decisions)
        without_box = "keep"  # a kept photo without a box is one the policy keeps whole (without_car: keep)
    elif method == "full":
        boxes = [None] * len(df)
    else:
        boxes = [None if b is None else [float(v) for v in b] for b in df["bbox"]]
    todo = reason.isna().to_numpy().nonzero()[0]
    jobs = [(df.at[i, "path"], dst[i], boxes[i], int(df.at[i, "width"]), int(df.at[i, "height"])) for i in todo]
    fn = partial(
        crop_one,
        margin=margin,
        min_box_side=min_box_side,
        max_side=max_side,
        without_box=without_box,
        jpeg_quality=jpeg_quality,
    )
    # Crops of large boxes decode at full resolution: let Pillow reuse its freed buffers (see tune_allocator).
    results = map_with_progress(fn, jobs, workers, "crop", setup=tune_allocator)
    source = pd.Series("", index=df.index, dtype=object)
    for i, (src, why, more) in zip(todo, results, strict=True):
        source[i], reason[i], detail[i] = src or "", why, more
    if method == "detector":
        source = source.replace("bbox", "detector")
    df["crop_path"] = pd.Series(dst, dtype="string")
    df["crop_source"] = source.astype("string")
    df["car_box"] = pd.Series(
        [b if src in ("bbox", "detector") else None for b, src in zip(boxes, source, strict=True)], dtype=object
    )
    df["car_box_score"] = pd.Series(scores, dtype="float64")
    dropped = manifest.drop_rows(df, "crop", reason, detail)
    return StageResult("crop", len(df), df.loc[reason.isna()].copy(), dropped)


def crop_with(
    df: pd.DataFrame,
    out_dir: Path,
    c: CropSettings,
    without_box: str | None = None,
    method: str | None = None,
    decisions: list | None = None,
) -> StageResult:
    """`crop` with the crop section's settings (the stage, and the filterset stage, use it); `without_box` and
    `method` override the section's."""
    return crop(
        df,
        out_dir,
        margin=c.margin,
        min_box_side=c.min_box_side,
        max_side=c.max_side,
        without_box=without_box or c.without_box,
        jpeg_quality=c.jpeg_quality,
        workers=c.workers,
        method=method or c.method,
        detector=c.detector,
        decisions=decisions,
    )


def main(cfg: DictConfig) -> dict:
    s = settings.parse(cfg)
    df = manifest.read(Path(s.paths.filter) / "manifest.parquet", stage="filter")
    decisions = None
    d = s.crop.detector
    if s.crop.method == "detector" and (d.devices != 1 or d.num_nodes != 1):
        # Every rank detects its share before anything is staged; rank 0 alone crops and writes the stage.
        shards = Path(s.paths.crop).parent / f".{Path(s.paths.crop).name}-detect-shards"
        decisions = detector_decisions(df.reset_index(drop=True), d, shards)
        if decisions is None:
            return {}
    return stage_io.save_image_stage(
        df,
        s.paths.crop,
        Path(s.paths.reports) / "crop",
        "crop_path",
        lambda out: crop_with(df, out, s.crop, decisions=decisions),
    )


if __name__ == "__main__":
    main(load_params())
