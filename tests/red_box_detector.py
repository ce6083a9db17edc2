"""A stand-in for the detector whose boxes are known: it boxes the red pixels of each photo as a car with score 0.9.

The crop stage, `carvision predict` and the service are checked with it against known boxes; the real detector's
loading, batching and coordinate mapping are tested in tests/detection/ with a random-weights model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from carvision.detection import detector as det

SCORE = 0.9


def red_box(im: Image.Image) -> det.Detections:
    a = np.asarray(im.convert("RGB"), dtype=int)
    ys, xs = np.nonzero((a[..., 0] > 200) & (a[..., 1] < 60) & (a[..., 2] < 60))
    if len(xs) == 0:
        return det.Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    box = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]
    return det.Detections(np.array(box, np.float32), np.array([SCORE], np.float32), np.array([det.COCO_CAR]))


def use_red_box_detector(monkeypatch) -> None:
    """Every detector loaded from now on (in this test) is the red-box one."""

    def detect(model, images, *, device, half=False):
        return [red_box(im) for im in images]

    monkeypatch.setattr(det, "load_detector", lambda *a, **k: torch.nn.Linear(1, 1))
    monkeypatch.setattr(det, "detect", detect)


def rotated_photo(path: Path, upright: Image.Image, orientation: int) -> None:
    """Stores `upright` turned the way a phone does, with the EXIF orientation (6 or 8) that turns it back."""
    stored = upright.transpose({6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, "JPEG", quality=95, exif=exif)


def car_photo(path: Path, size: tuple[int, int], box: tuple[int, int, int, int] | None, orientation: int = 1) -> None:
    """A blue photo with a red 'car' at `box` (upright px), stored turned when orientation is 6 or 8."""
    im = Image.new("RGB", size, (0, 0, 255))
    if box:
        im.paste((255, 0, 0), box)
    if orientation == 1:
        im.save(path, "JPEG", quality=95)
    else:
        rotated_photo(path, im, orientation)
