"""Detect the car in many photos: decode reduced, detect in batches, decide with the crop policy.

Used by the crop stage (crop.method: detector); `carvision predict` and a multi-GPU predict will share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tqdm import tqdm

from carvision.detection.policy import CropPolicy, Decision, decide
from carvision.images import ImageRejected, read_image_bytes


@dataclass(frozen=True)
class DetectorRun:
    """How to run the detector (the `crop.detector` settings that are not policy)."""

    name: str
    weights_file: str | None
    detect_side: int  # px; photos decode (reduced) to at least this shorter side for the detector
    min_size: int  # px; the detector's own resize of the shorter side
    max_size: int  # px; ... capped by the longer side
    score_thresh: float  # boxes below this are not returned at all; the policy's min_score decides
    batch_size: int
    half: bool  # fp16 autocast on CUDA


def detect_decisions(
    paths: Sequence[str],
    full_sizes: Sequence[tuple[int, int]],
    run: DetectorRun,
    policy: CropPolicy,
    *,
    device=None,
    progress: str | None = "detect",
) -> list[Decision | ImageRejected]:
    """One decision per photo, in order, or the ImageRejected that reading it raised.

    Args:
        full_sizes: the upright full-resolution (width, height) that clean recorded: a photo that now decodes to
            another size has changed since, and a box found on it would not fit the manifest.
    """
    from carvision.detection.detector import decode_for_detection, detect, load_detector, to_full_resolution

    model = load_detector(
        run.name, run.weights_file, device, min_size=run.min_size, max_size=run.max_size, score_thresh=run.score_thresh
    )
    device = next(model.parameters()).device
    out: list[Decision | ImageRejected | None] = [None] * len(paths)
    bar = tqdm(total=len(paths), desc=progress, unit="img", mininterval=1.0, disable=progress is None)
    for start in range(0, len(paths), run.batch_size):
        batch = []
        for i in range(start, min(start + run.batch_size, len(paths))):
            w, h = full_sizes[i]
            try:
                data = read_image_bytes(paths[i])
                decoded = decode_for_detection(data, max_pixels=w * h, detect_side=run.detect_side)
            except ImageRejected as e:
                out[i] = e
                continue
            if decoded.size != (w, h):
                out[i] = ImageRejected("changed_since_clean", f"{decoded.size[0]}x{decoded.size[1]}, clean saw {w}x{h}")
                continue
            batch.append((i, decoded))
        found = detect(model, [d.image for _, d in batch], device=device, half=run.half) if batch else []
        for (i, decoded), detections in zip(batch, found, strict=True):
            full = to_full_resolution(detections, decoded)
            out[i] = decide(full.boxes, full.scores, full.labels, decoded.size, policy)
        bar.update(min(run.batch_size, len(paths) - start))
    bar.close()
    return out  # type: ignore[return-value]
