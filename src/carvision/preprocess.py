"""Preprocessing, defined once: training's evaluation transform and the inference library both call it.

Plain Pillow + numpy + torch, no albumentations or Lightning, so that a service or an export script shares it.
An image is letterboxed (longest side scaled to `size`, centred on black): car crops are wide, and
stretching them would distort the body shape. Then it is normalised with the backbone's mean and std.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from carvision.images import decode, read_image_bytes

PAD_VALUE = 0  # black bars, before normalisation
# Refuse larger images before decoding them. Generous: above clean.max_pixels (40 MP), so that whatever clean
# kept decodes here too; a 200 MP RGB buffer is 800 MB, the most one photo may cost a DataLoader worker.
LOAD_MAX_PIXELS = 200_000_000


def load_rgb(path: str | Path, min_side: int | None = None) -> Image.Image:
    """The photo upright in 8-bit sRGB, through `carvision.images.decode`: training, evaluation and the filter
    read photos here, and clean, crop and `carvision predict` call the same decoder, so every consumer sees
    identical pixels (ICC profiles, 16-bit data, transparency and EXIF orientation handled once).

    Args:
        min_side: px; a JPEG may then decode reduced (DCT scaling) as long as its shorter side stays at least
            this. None: full resolution.

    Raises:
        ImageRejected: the file cannot be read or decoded (the reason says why).
    """
    return decode(read_image_bytes(path), max_pixels=LOAD_MAX_PIXELS, min_side=min_side).image


def letterbox(image: Image.Image, size: int) -> np.ndarray:
    """(size, size, 3) uint8: `image` scaled so that its longer side is `size`, centred, padded with black."""
    w, h = image.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = image.convert("RGB").resize((nw, nh), Image.Resampling.BILINEAR)
    out = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = np.asarray(resized)
    return out


def normalise(array: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32, scaled to [0, 1] then standardised per channel."""
    x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (x - m) / s


class Preprocess:
    """image -> model input tensor (3, size, size); picklable, so DataLoader workers can use it."""

    def __init__(self, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.size, self.mean, self.std = int(size), tuple(mean), tuple(std)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return normalise(letterbox(image, self.size), self.mean, self.std)
