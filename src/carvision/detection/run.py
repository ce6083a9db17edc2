"""Detect the car in many photos: decode reduced, detect in batches, decide with the crop policy.

    finder = CarFinder(DetectorRun.from_settings(s.crop.detector), policy)
    finder.decide([photo_bytes, ...])           # one Decision (or ImageRejected) per photo, in order

The crop stage (crop.method: detector), `carvision predict` and the service all find the car here, so the box a model
was trained on and the box it is served with come from the same code and settings.
"""

from __future__ import annotations

import dataclasses
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

    @classmethod
    def from_settings(cls, d) -> DetectorRun:
        """From `carvision.settings.DetectorSettings`, or the dict of it that a checkpoint records."""
        d = d if isinstance(d, dict) else dataclasses.asdict(d)
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


def policy_from_settings(d, margin: float = 0.0) -> CropPolicy:
    """The box policy of `crop.detector` settings (a dataclass or its dict). margin 0: the crop adds crop.margin
    itself (`carvision.cropping.margin_box`), as it does to annotation boxes."""
    d = d if isinstance(d, dict) else dataclasses.asdict(d)
    keys = ("include_bus", "min_score", "rank", "min_box_fraction", "without_car")
    return CropPolicy(**{k: d[k] for k in keys}, margin=margin)


class CarFinder:
    """A loaded detector and its policy: photo bytes in, crop decisions out, in batches of `run.batch_size`."""

    def __init__(self, run: DetectorRun, policy: CropPolicy, device=None) -> None:
        from carvision.detection.detector import load_detector

        self.run, self.policy = run, policy
        self.model = load_detector(
            run.name, run.weights_file, device, min_size=run.min_size, max_size=run.max_size,
            score_thresh=run.score_thresh,
        )  # fmt: skip
        self.device = next(self.model.parameters()).device

    def decide(
        self,
        photos: Sequence[bytes],
        full_sizes: Sequence[tuple[int, int]] | None = None,
        *,
        max_pixels: int | Sequence[int],
    ) -> list[Decision | ImageRejected]:
        """One decision per photo, in order, or the ImageRejected that decoding it raised.

        Args:
            full_sizes: the upright full-resolution (width, height) each photo is expected to have (what clean
                recorded): a photo that decodes to another size has changed since, and its box would not fit.
            max_pixels: refuse photos with more pixels (decompression bombs); one limit, or one per photo.
        """
        from carvision.detection.detector import decode_for_detection, detect, to_full_resolution

        out: list[Decision | ImageRejected | None] = [None] * len(photos)
        limits = [max_pixels] * len(photos) if isinstance(max_pixels, int) else list(max_pixels)
        batch = []
        for i, data in enumerate(photos):
            try:
                decoded = decode_for_detection(data, max_pixels=limits[i], detect_side=self.run.detect_side)
            except ImageRejected as e:
                out[i] = e
                continue
            if full_sizes is not None and decoded.size != tuple(full_sizes[i]):
                w, h = full_sizes[i]
                out[i] = ImageRejected("changed_since_clean", f"{decoded.size[0]}x{decoded.size[1]}, expected {w}x{h}")
                continue
            batch.append((i, decoded))
        for start in range(0, len(batch), self.run.batch_size):
            part = batch[start : start + self.run.batch_size]
            found = detect(self.model, [d.image for _, d in part], device=self.device, half=self.run.half)
            for (i, decoded), detections in zip(part, found, strict=True):
                full = to_full_resolution(detections, decoded)
                out[i] = decide(full.boxes, full.scores, full.labels, decoded.size, self.policy)
        return out  # type: ignore[return-value]


def detect_decisions(
    paths: Sequence[str],
    full_sizes: Sequence[tuple[int, int]],
    run: DetectorRun,
    policy: CropPolicy,
    *,
    device=None,
    progress: str | None = "detect",
) -> list[Decision | ImageRejected]:
    """One decision per photo file, in order, or the ImageRejected that reading it raised.

    Args:
        full_sizes: the upright full-resolution (width, height) that clean recorded (see `CarFinder.decide`).
    """
    finder = CarFinder(run, policy, device)
    out: list[Decision | ImageRejected] = []
    bar = tqdm(total=len(paths), desc=progress, unit="img", mininterval=1.0, disable=progress is None)
    for start in range(0, len(paths), run.batch_size):
        chunk = range(start, min(start + run.batch_size, len(paths)))
        photos: list[bytes] = []
        read_errors: dict[int, ImageRejected] = {}
        for i in chunk:
            try:
                photos.append(read_image_bytes(paths[i]))
            except ImageRejected as e:
                read_errors[i] = e
                photos.append(b"")
        sizes = [tuple(full_sizes[i]) for i in chunk]
        # max_pixels: exactly what clean verified; a file swapped for a larger one since is refused unread.
        decided = finder.decide(photos, sizes, max_pixels=[w * h for w, h in sizes])
        out.extend(read_errors.get(i, d) for i, d in zip(chunk, decided, strict=True))
        bar.update(len(chunk))
    bar.close()
    return out
