"""The car detector: a torchvision Faster R-CNN trained on COCO, loaded by name, run in batches.

    model = load_detector("fasterrcnn_mobilenet_v3_large_fpn")               # torch hub cache (downloads once)
    model = load_detector(DEFAULT_DETECTOR, weights_file="detector.pth")     # or a file: nothing is downloaded
    dets, decoded = detect_photo(model, data, max_pixels=50_000_000, detect_side=512, device="cpu")
    dets.boxes[dets.labels == COCO_CAR]                                      # (n, 4) upright full-resolution px

Needs torch, torchvision, numpy and Pillow only: no Lightning, no stage code, so the crop stage, `carvision predict`
and a distributed predict can all share it. Choosing a box among the detections is `carvision.detection.policy`.
"""

from __future__ import annotations

import os
import urllib.error
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image
from torchvision.models import WeightsEnum
from torchvision.models.detection import (
    FasterRCNN_MobileNet_V3_Large_FPN_Weights,
    FasterRCNN_ResNet50_FPN_V2_Weights,
    fasterrcnn_mobilenet_v3_large_fpn,
    fasterrcnn_resnet50_fpn_v2,
)

from carvision.images import Decoded, decode

# COCO category ids in torchvision's 91-id scheme: the original COCO ids, gaps included, with 0 = background
# (`weights.meta["categories"]` is indexed by them). YOLO-style models use a dense 80-id scheme instead, where car
# is 2, bus 5 and truck 7: never mix the two.
COCO_CAR = 3
COCO_BUS = 6
COCO_TRUCK = 8
COCO_NUM_CLASSES = 91  # outputs of the box predictor: 90 ids (some unused) + background

# name -> (builder, its COCO weights). The mobilenet model is the default for speed; resnet50 v2 for quality
# (COCO box mAP 32.8 vs 46.7 in torchvision's tables, at several times the cost).
DETECTORS: dict[str, tuple[Callable[..., torch.nn.Module], WeightsEnum]] = {
    "fasterrcnn_mobilenet_v3_large_fpn": (
        fasterrcnn_mobilenet_v3_large_fpn,
        FasterRCNN_MobileNet_V3_Large_FPN_Weights.DEFAULT,
    ),
    "fasterrcnn_resnet50_fpn_v2": (fasterrcnn_resnet50_fpn_v2, FasterRCNN_ResNet50_FPN_V2_Weights.DEFAULT),
}
DEFAULT_DETECTOR = "fasterrcnn_mobilenet_v3_large_fpn"
DEFAULT_MIN_SIZE = 512  # px; the detector resizes each image so that its shorter side is this ...
DEFAULT_MAX_SIZE = 853  # px; ... unless its longer side would exceed this (same 1:1.67 as torchvision's 800/1333)
DEFAULT_SCORE_THRESH = 0.05  # boxes below this score are not returned; low, so that the policy decides


class DetectorUnavailable(RuntimeError):
    """The detector's weights cannot be had: offline and not in the torch hub cache, and no weights file given."""


@dataclass(frozen=True)
class Detections:
    """One image's detections, best score first (torchvision's order)."""

    boxes: np.ndarray
    """(n, 4) float32 [x_min, y_min, x_max, y_max] in px of the image they were found in (see `detect_photo`)"""
    scores: np.ndarray
    """(n,) float32 in [0, 1]"""
    labels: np.ndarray
    """(n,) int64 COCO ids in torchvision's 91-id scheme (`COCO_CAR`, ...)"""


def hub_weights_path(name: str) -> Path:
    """Where torch hub looks for the weights of detector `name` before downloading them: a file placed there by
    hand is used as is (so an offline machine works once it is copied in)."""
    _, weights = _lookup(name)
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def load_detector(
    name: str = DEFAULT_DETECTOR,
    weights_file: str | Path | None = None,
    device: torch.device | str | None = None,
    *,
    min_size: int = DEFAULT_MIN_SIZE,
    max_size: int = DEFAULT_MAX_SIZE,
    score_thresh: float = DEFAULT_SCORE_THRESH,
) -> torch.nn.Module:
    """A COCO detector in eval mode, on `device`.

    Args:
        name: a key of `DETECTORS`.
        weights_file: a state dict saved with `torch.save` (plain, or under "model" or "state_dict"); read with
            `weights_only=True`. None: the weights enum's DEFAULT, from the torch hub cache, downloaded when absent.
        device: None: CUDA when available, else CPU.
        min_size: px; the detector's internal resize makes the shorter side this (it upsamples smaller images).
        max_size: px; ... capped so that the longer side is at most this.
        score_thresh: boxes scoring below this are dropped inside the detector.
    """
    builder, weights = _lookup(name)
    state = _hub_state_dict(name, weights) if weights_file is None else _file_state_dict(Path(weights_file))
    # Built without weights (nothing downloaded here), then loaded: one path for the hub and for files.
    # Untrained builders use BatchNorm2d where the pretrained ones use FrozenBatchNorm2d; in eval mode both compute
    # the same affine map from the same four buffers, and BatchNorm2d accepts state dicts without its counter.
    model = builder(
        weights=None,
        weights_backbone=None,
        num_classes=len(weights.meta["categories"]),
        min_size=min_size,
        max_size=max_size,
        box_score_thresh=score_thresh,
    )
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        source = str(weights_file) if weights_file is not None else str(hub_weights_path(name))
        raise ValueError(f"{source} does not hold {name} weights: {_key_mismatch(model, state)}") from e
    device = torch.device(device) if device is not None else _default_device()
    return model.eval().to(device)


def detect(
    model: torch.nn.Module, images: Sequence[Image.Image], *, device: torch.device | str, half: bool = False
) -> list[Detections]:
    """Runs the detector on a batch of images of any sizes; boxes come back in each image's own px.

    Args:
        images: RGB (other modes are converted); the model resizes and normalises them itself.
        device: where `model` is.
        half: on CUDA, run under fp16 autocast; ignored on CPU.
    """
    if not images:
        return []
    device = torch.device(device)
    # uint8 (3, h, w) to the device, then float [0, 1] there: a quarter of the bytes to copy. np.array copies
    # (Pillow's buffer is read-only); ~1 ms per MP.
    tensors = [
        torch.from_numpy(np.array(im.convert("RGB") if im.mode != "RGB" else im))
        .to(device, non_blocking=True)
        .permute(2, 0, 1)
        .float()
        .div_(255)
        for im in images
    ]
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.float16) if half and device.type == "cuda" else nullcontext()
    )
    with torch.inference_mode(), autocast:
        outputs = model(tensors)
    return [
        Detections(
            boxes=out["boxes"].float().cpu().numpy().reshape(-1, 4).astype(np.float32, copy=False),
            scores=out["scores"].float().cpu().numpy().astype(np.float32, copy=False),
            labels=out["labels"].cpu().numpy().astype(np.int64, copy=False),
        )
        for out in outputs
    ]


def decode_for_detection(data: bytes, *, max_pixels: int, detect_side: int) -> Decoded:
    """The photo decoded upright and, for a JPEG, reduced by DCT scaling while its shorter side stays at least
    `detect_side` px (a 12 MP photo decodes at 1/4 or 1/8: the detector does not need the pixels).

    Raises `carvision.images.ImageRejected`, like `carvision.images.decode`."""
    return decode(data, max_pixels=max_pixels, min_side=detect_side)


def to_full_resolution(detections: Detections, decoded: Decoded) -> Detections:
    """Detections found in `decoded.image` with their boxes in upright full-resolution px (`decoded.size`), the
    frame of the manifest's boxes. The decoded scale is taken per axis: a reduced JPEG rounds each side up."""
    sx = decoded.image.width / decoded.size[0]
    sy = decoded.image.height / decoded.size[1]
    boxes = detections.boxes / np.array([sx, sy, sx, sy], dtype=np.float32)
    w, h = decoded.size
    boxes = np.clip(boxes, 0, np.array([w, h, w, h], dtype=np.float32)).astype(np.float32)
    return Detections(boxes=boxes, scores=detections.scores, labels=detections.labels)


def detect_photo(
    model: torch.nn.Module,
    data: bytes,
    *,
    max_pixels: int,
    detect_side: int,
    device: torch.device | str,
    half: bool = False,
) -> tuple[Detections, Decoded]:
    """Decodes a photo's bytes (reduced, see `decode_for_detection`), detects, and returns the detections in
    upright full-resolution px with the decoded image. EXIF orientation is applied by the decode, so the boxes are
    in the upright frame. For batches, compose `decode_for_detection`, `detect` and `to_full_resolution`.

    Args:
        max_pixels: refuse photos with more pixels than this (`carvision.images.ImageRejected`).
        detect_side: px; the decoded shorter side stays at least this; set it to the detector's `min_size` so that
            the detector never upsamples what the decode shrank.
    """
    decoded = decode_for_detection(data, max_pixels=max_pixels, detect_side=detect_side)
    (dets,) = detect(model, [decoded.image], device=device, half=half)
    return to_full_resolution(dets, decoded), decoded


def _lookup(name: str) -> tuple[Callable[..., torch.nn.Module], WeightsEnum]:
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choices: {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name]


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _hub_state_dict(name: str, weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """The enum's weights through torch hub (its cache first); looked up on `torch.hub` at call time."""
    try:
        return torch.hub.load_state_dict_from_url(
            weights.url, map_location="cpu", progress=False, check_hash=True, weights_only=True
        )
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        raise DetectorUnavailable(
            f"cannot get the weights of detector {name!r} ({type(e).__name__}: {e}). Either put the file at "
            f"{hub_weights_path(name)} (fetch {weights.url} on a connected machine and copy it there), "
            "or set crop.detector.weights_file to a saved state dict."
        ) from e


def _file_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: plain, or under "model" / "state_dict" (training checkpoints)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # pickle.UnpicklingError for anything but tensors and plain containers, zip errors, ...
        raise ValueError(f"cannot read detector weights {path} (loaded with weights_only=True): {e}") from e
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict (a dict of tensors)")
    return obj


def _key_mismatch(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> str:
    """A short account of why `state` does not fit `model`: missing and unexpected keys, or wrong shapes."""
    expected = model.state_dict()
    # num_batches_tracked is filled in by BatchNorm when absent (pretrained files come from FrozenBatchNorm2d).
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    parts = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if keys:
            parts.append(f"{len(keys)} {what} keys (e.g. {', '.join(keys[:3])})")
    return "; ".join(parts) or "load_state_dict failed"
