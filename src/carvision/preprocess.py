"""Preprocessing, defined once: training's evaluation transform and the inference library both call it.

Plain Pillow + numpy + torch, no albumentations or Lightning, so that a service or an export script shares it.
An image is letterboxed (longest side scaled to `size`, centred on black): car crops are wide, and
stretching them would distort the body shape. Then it is normalised with the backbone's mean and std.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

PAD_VALUE = 0  # black bars, before normalisation


def load_rgb(path: str | Path) -> Image.Image:
    """The image file upright (EXIF orientation applied) in RGB: how every consumer reads a photo."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


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
