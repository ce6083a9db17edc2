"""The crop policy for detector boxes: one photo's detections in, the crop decision out (issue #7).

Pure numpy, no torch: the detector module turns a photo into (boxes, scores, labels), this module decides what to
cut, and the crop stage cuts it. Every box is [x_min, y_min, x_max, y_max] float px in the upright full-resolution
image (`carvision.images.Decoded.size`), the same frame as the manifest's `bbox`.

The listing's car is taken to be the largest car box in the photo: other cars in a street photo are further away
and smaller. A photo whose chosen box covers too little of the image shows a detail (a wheel, a badge, a door) or a
far-away car, and is dropped as `partial_car`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Literal

import numpy as np

# COCO category ids in torchvision's 91-id scheme (the detection models' `labels`), not YOLO's 80-class ids.
COCO_CAR = 3
COCO_BUS = 6
COCO_TRUCK = 8

RANKS = ("area", "area_score")
WITHOUT_CAR = ("drop", "keep")

Box = tuple[float, float, float, float]


def _doc(default: Any, text: str) -> Any:
    """A dataclass field with its default and a one-line doc (the same shape as `carvision.settings.doc`)."""
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class CropPolicy:
    """Which detection is the listing's car, and when a photo is not worth a crop. Validated on construction."""

    include_bus: bool = _doc(False, "count COCO 'bus' as a car (vans and minibuses are often detected as buses)")
    min_score: float = _doc(0.5, "detections scoring below this are ignored; in [0, 1]")
    rank: Literal["area", "area_score"] = _doc("area", "choose the largest box, or the largest area x score")
    min_box_fraction: float = _doc(0.1, "chosen box area / image area below this: dropped as partial_car; in [0, 1)")
    without_car: Literal["drop", "keep"] = _doc("drop", "photos without a car box: drop (no_car_found) or keep whole")
    margin: float = _doc(0.05, "fraction of the box width/height added on each side, clipped to the image")

    def __post_init__(self) -> None:
        if not isinstance(self.include_bus, bool):
            raise ValueError(f"include_bus must be true or false, not {self.include_bus!r}")
        if not (isinstance(self.min_score, Real) and 0.0 <= self.min_score <= 1.0):
            raise ValueError(f"min_score must be in [0, 1], not {self.min_score!r}")
        if self.rank not in RANKS:
            raise ValueError(f"rank must be one of {', '.join(RANKS)}, not {self.rank!r}")
        if not (isinstance(self.min_box_fraction, Real) and 0.0 <= self.min_box_fraction < 1.0):
            raise ValueError(f"min_box_fraction must be in [0, 1), not {self.min_box_fraction!r}")
        if self.without_car not in WITHOUT_CAR:
            raise ValueError(f"without_car must be one of {', '.join(WITHOUT_CAR)}, not {self.without_car!r}")
        if not (isinstance(self.margin, Real) and math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"margin must be a finite number >= 0, not {self.margin!r}")

    @property
    def classes(self) -> tuple[int, ...]:
        """The COCO ids that count as a car: car and truck (pickups, SUVs), and bus when `include_bus`."""
        return (COCO_CAR, COCO_TRUCK, COCO_BUS) if self.include_bus else (COCO_CAR, COCO_TRUCK)


@dataclass(frozen=True)
class Decision:
    """What to do with one photo.

    detected_box: the chosen detection, clipped to the image, before the margin (the manifest stores it), or None.
    score: that detection's score, or None.
    crop_box: the box to cut (detected_box plus the margin, clipped), or None: the whole image, or nothing if dropped.
    source: "detector" (a car box was chosen: kept, or dropped as partial_car) or "full_image" (no car box).
    reason: None when the photo is kept, else the drop reason: "no_car_found" or "partial_car".
    detail: one line for the report, e.g. "largest car box 3.2% of the image < 10%".
    size: the upright full-resolution (width, height) of the image the boxes are in, px.
    """

    detected_box: Box | None
    score: float | None
    crop_box: Box | None
    source: Literal["detector", "full_image"]
    reason: Literal["no_car_found", "partial_car"] | None
    detail: str
    size: tuple[int, int] | None = None

    @property
    def box(self) -> Box | None:
        """The box to crop: `crop_box`."""
        return self.crop_box

    @property
    def kept(self) -> bool:
        return self.reason is None


def _with_margin(box: np.ndarray, margin: float, width: int, height: int) -> Box:
    """box (4,) grown by margin x its width/height on each side, clipped to [0, width] x [0, height]."""
    x0, y0, x1, y1 = (float(v) for v in box)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    return (max(0.0, x0 - mx), max(0.0, y0 - my), min(float(width), x1 + mx), min(float(height), y1 + my))


def _pct(fraction: float) -> str:
    """A fraction as a short percentage: 0.032 -> '3.2%', 0.1 -> '10%'."""
    return f"{fraction * 100:.1f}".rstrip("0").rstrip(".") + "%"


def decide(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, size: tuple[int, int], policy: CropPolicy
) -> Decision:
    """The crop decision for one photo's detections.

    Args:
        boxes: (n, 4) [x_min, y_min, x_max, y_max] in upright full-resolution px; n may be 0.
        scores: (n,) detection scores in [0, 1].
        labels: (n,) COCO ids in torchvision's 91-id scheme.
        size: the upright full-resolution (width, height) of the image, px.
        policy: the settings.

    Rows with a non-finite coordinate or score are ignored, and so are boxes with no area left once clipped to the
    image (inverted, empty, or wholly outside it). Areas are measured on the clipped box. Ties in the ranking go to
    the higher score, then the lower row index, so the decision never depends on sort stability.
    """
    width, height = size
    if not (width > 0 and height > 0):
        raise ValueError(f"size must be a positive (width, height), not {size!r}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    n = len(boxes)
    if len(scores) != n or len(labels) != n:
        raise ValueError(f"boxes, scores and labels differ in length: {n}, {len(scores)}, {len(labels)}")

    clipped = np.empty_like(boxes)
    clipped[:, 0::2] = np.clip(boxes[:, 0::2], 0.0, width)  # NaN stays NaN, +-inf lands on the border
    clipped[:, 1::2] = np.clip(boxes[:, 1::2], 0.0, height)
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    candidate = (
        np.isfinite(boxes).all(axis=1)
        & np.isfinite(scores)
        & np.isin(labels, policy.classes)
        & (scores >= policy.min_score)
        & (w > 0)
        & (h > 0)
    )
    names = "/".join(name for name, on in (("car", True), ("truck", True), ("bus", policy.include_bus)) if on)
    if not candidate.any():
        detail = f"no {names} box with score >= {policy.min_score:g} among {n} detections"
        if policy.without_car == "keep":
            return Decision(None, None, None, "full_image", None, detail, (width, height))
        return Decision(None, None, None, "full_image", "no_car_found", detail, (width, height))

    area = np.where(candidate, w * h, 0.0)  # px^2 of the clipped box
    metric = area * scores if policy.rank == "area_score" else area
    index = np.flatnonzero(candidate)
    # lexsort: the last key is the primary one; ascending, hence the negations.
    best = int(index[np.lexsort((index, -scores[index], -metric[index]))[0]])

    detected = tuple(float(v) for v in clipped[best])
    score = float(scores[best])
    fraction = float(area[best]) / (float(width) * float(height))
    which = "largest" if policy.rank == "area" else "best (area x score)"
    if fraction < policy.min_box_fraction:
        detail = f"{which} car box {_pct(fraction)} of the image < {_pct(policy.min_box_fraction)}"
        return Decision(detected, score, None, "detector", "partial_car", detail, (width, height))
    crop = _with_margin(clipped[best], policy.margin, width, height)
    detail = f"{which} car box {_pct(fraction)} of the image, score {score:.2f}"
    return Decision(detected, score, crop, "detector", None, detail, (width, height))
