"""One crop for training and serving: the crop stage cuts training images here, and `carvision predict` and the
service cut what they classify here too, so a model sees the same kind of input at both times.

    spec = CropSpec.from_hparams(predictor.hparams)          # how the model's training images were cut
    box = margin_box(detected, width, height, spec.margin, spec.min_box_side)
    image = cut(data, box, (width, height), spec.max_side, max_pixels=40_000_000)

Boxes are (left, top, right, bottom) px in the upright full-resolution photo (`carvision.images.Decoded.size`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from PIL import Image

from carvision.images import ImageRejected, decode

METHODS = ("boxes", "detector", "full")


@dataclass(frozen=True)
class CropSpec:
    """How a model's training images were cut; a checkpoint carries it in its hyperparameters (`crop`).

    method: boxes (annotation boxes), detector (the detector's car box) or full (the whole photo).
    margin: fraction of the box width/height added on each side.
    max_side: px; crops were shrunk so that their longer side is at most this.
    min_box_side: px; smaller boxes were refused.
    detector: the `crop.detector` settings (name, weights_file, detect_side, min_score, ...) with method detector.
    """

    method: str = "full"
    margin: float = 0.0
    max_side: int | None = None
    min_box_side: int = 1
    detector: dict[str, Any] | None = None

    def to_hparams(self) -> dict[str, Any]:
        """Plain types only: checkpoints load with `weights_only=True`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_hparams(cls, hparams: dict) -> CropSpec:
        """The spec a checkpoint records; checkpoints from before it was recorded were trained on whole photos or
        annotation boxes, and are answered with the whole photo."""
        crop = hparams.get("crop")
        if not crop:
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        spec = cls(**{k: v for k, v in dict(crop).items() if k in known})
        if spec.method not in METHODS:
            raise ValueError(f"checkpoint crop.method '{spec.method}' is not one of {', '.join(METHODS)}")
        return spec

    @property
    def wants_box(self) -> bool:
        """The model learnt from car crops (annotation or detector boxes), not whole photos."""
        return self.method in ("boxes", "detector")


def margin_box(
    bbox: list[float] | tuple[float, ...] | None, width: int, height: int, margin: float, min_box_side: int
) -> tuple[tuple[int, int, int, int] | None, str | None]:
    """The pixel box to cut (left, top, right, bottom): `bbox` grown by `margin` of its size on each side, rounded
    and clipped to the image; None for the whole image (no bbox). The second value is a drop reason, or None."""
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


def decode_scale(box: tuple[int, int, int, int] | None, width: int, height: int, max_side: int | None) -> float:
    """The smallest decode scale at which the crop (or the whole photo) still has max_side px on its longer side:
    the output is shrunk to max_side anyway, so decoding a 12 MP photo at 1/8 loses nothing and saves most work."""
    if max_side is None:
        return 1.0
    w, h = (box[2] - box[0], box[3] - box[1]) if box else (width, height)
    return min(1.0, max_side / max(w, h, 1))


def cut(
    data: bytes,
    box: tuple[int, int, int, int] | None,
    size: tuple[int, int] | None,
    max_side: int | None,
    *,
    max_pixels: int,
) -> Image.Image:
    """The photo's bytes decoded (reduced where the output allows), cut to `box` and shrunk to `max_side`.

    Args:
        box: from `margin_box`, in upright full-resolution px; None: the whole photo.
        size: the upright full-resolution (width, height) the box refers to (what clean recorded, or what the
            detector saw); a photo that decodes to another size has changed since (ImageRejected
            `changed_since_clean`). None: not checked (a whole photo from an upload).
        max_side: px, the longer side of the output at most (shrink only: upscaling adds no detail, and the model's
            preprocessing resizes anyway); None: no limit.

    Raises:
        ImageRejected: the bytes cannot be decoded, exceed max_pixels, or are not the photo the box was found in.
    """
    if box is not None and size is None:
        raise ValueError("a box needs the image size it refers to")
    d = decode(data, max_pixels=max_pixels, min_scale=lambda full: decode_scale(box, *full, max_side))
    if size is not None and d.size != tuple(size):
        raise ImageRejected("changed_since_clean", f"{d.size[0]}x{d.size[1]}, expected {size[0]}x{size[1]}")
    im = d.image
    if box:
        width, height = d.size
        sx, sy = im.width / width, im.height / height  # the reduced decode's scale, per axis (rounding)
        left, top = math.floor(box[0] * sx), math.floor(box[1] * sy)
        right, bottom = max(left + 1, math.ceil(box[2] * sx)), max(top + 1, math.ceil(box[3] * sy))
        im = im.crop((left, top, min(right, im.width), min(bottom, im.height)))
    if max_side is not None:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return im
