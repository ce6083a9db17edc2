"""The detector library on CPU: a randomly initialised Faster R-CNN saved to a file (nothing is downloaded), and a
fake model that boxes the red pixels, to check the coordinate mapping exactly."""

from __future__ import annotations

import io
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from carvision.detection import detector
from carvision.detection.detector import (
    COCO_BUS,
    COCO_CAR,
    COCO_TRUCK,
    DETECTORS,
    Detections,
    DetectorUnavailable,
    detect,
    detect_photo,
    load_detector,
)

NAME = "fasterrcnn_mobilenet_v3_large_fpn"
SMALL = {"min_size": 160, "max_size": 256}  # px; the detector's internal resize, small so that CPU runs are quick
MAX_PIXELS = 50_000_000


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, num_classes=91
    )
    path = tmp_path_factory.mktemp("detector") / "detector.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def model(weights_file: Path) -> torch.nn.Module:
    return load_detector(NAME, weights_file=weights_file, device="cpu", **SMALL)


def test_load_from_file_round_trips_the_state_dict(model: torch.nn.Module, weights_file: Path) -> None:
    saved = torch.load(weights_file, weights_only=True)
    loaded = model.state_dict()
    assert set(saved) == set(loaded)
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert not model.training
    assert model.transform.min_size == (160,) and model.transform.max_size == 256
    assert model.roi_heads.score_thresh == detector.DEFAULT_SCORE_THRESH


@pytest.mark.parametrize("key", ["model", "state_dict"])
def test_load_accepts_a_state_dict_inside_a_checkpoint(weights_file: Path, tmp_path: Path, key: str) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({key: torch.load(weights_file, weights_only=True), "epoch": 3}, path)
    m = load_detector(NAME, weights_file=path, device="cpu", **SMALL)
    assert torch.equal(
        m.state_dict()["roi_heads.box_predictor.cls_score.weight"],
        torch.load(path)[key]["roi_heads.box_predictor.cls_score.weight"],
    )


def test_a_file_with_wrong_keys_fails_clearly(weights_file: Path, tmp_path: Path) -> None:
    state = torch.load(weights_file, weights_only=True)
    state["extra.weight"] = torch.zeros(1)
    del state["roi_heads.box_predictor.bbox_pred.bias"]
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"does not hold fasterrcnn_mobilenet_v3_large_fpn weights") as e:
        load_detector(NAME, weights_file=path, device="cpu")
    assert "1 missing keys (e.g. roi_heads.box_predictor.bbox_pred.bias)" in str(e.value)
    assert "1 unexpected keys (e.g. extra.weight)" in str(e.value)


class _Payload:
    """Pickled, it would create a file when unpickled: `weights_only=True` must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_the_weights_file_is_read_with_weights_only(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"backbone.x": _Payload(marker)}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_detector(NAME, weights_file=path, device="cpu")
    assert not marker.exists()


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn_v2"):
        load_detector("yolo", device="cpu")


def test_offline_error_names_both_ways_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", unreachable)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(DetectorUnavailable) as e:
        load_detector(NAME, device="cpu")
    message = str(e.value)
    cache = tmp_path / "torch" / "hub" / "checkpoints" / "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"
    assert str(cache) in message
    assert DETECTORS[NAME][1].url in message
    assert "crop.detector.weights_file" in message
    assert isinstance(e.value, RuntimeError)


def test_a_file_in_the_hub_cache_is_used_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, weights_file: Path
) -> None:
    """The first way out works: torch hub finds the file in its cache and never goes to the network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = detector.hub_weights_path(NAME)
    cache.parent.mkdir(parents=True)
    # torchvision's files come from FrozenBatchNorm2d models: no num_batches_tracked buffers
    state = {k: v for k, v in torch.load(weights_file, weights_only=True).items() if "num_batches_tracked" not in k}
    torch.save(state, cache)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download"))
    m = load_detector(NAME, device="cpu", **SMALL)
    assert torch.equal(
        m.state_dict()["roi_heads.box_predictor.cls_score.bias"],
        torch.load(weights_file, weights_only=True)["roi_heads.box_predictor.cls_score.bias"],
    )


def test_detect_shapes_and_dtypes(model: torch.nn.Module) -> None:
    rng = np.random.default_rng(0)
    sizes = [(320, 240), (200, 300), (256, 256)]  # (w, h)
    batch = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
    batch[2] = batch[2].convert("L")  # any mode is converted to RGB
    out = detect(model, batch, device="cpu")
    assert len(out) == 3
    for dets, (w, h) in zip(out, sizes, strict=True):
        n = len(dets.scores)
        assert dets.boxes.shape == (n, 4) and dets.boxes.dtype == np.float32
        assert dets.scores.shape == (n,) and dets.scores.dtype == np.float32
        assert dets.labels.shape == (n,) and dets.labels.dtype == np.int64
        assert np.all(dets.scores >= detector.DEFAULT_SCORE_THRESH)
        # boxes are in the given image's px, not the detector's resized frame
        assert np.all(dets.boxes[:, [0, 2]] <= w) and np.all(dets.boxes[:, [1, 3]] <= h)
    assert detect(model, [], device="cpu") == []


def test_coco_ids_match_torchvision_categories() -> None:
    categories = torchvision.models.detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.DEFAULT.meta["categories"]
    assert len(categories) == detector.COCO_NUM_CLASSES
    assert (categories[COCO_CAR], categories[COCO_BUS], categories[COCO_TRUCK]) == ("car", "bus", "truck")
    for _, weights in DETECTORS.values():
        assert weights.meta["categories"] == categories


# --- the coordinate mapping, with a model whose answer is known ---


class RedBoxModel(torch.nn.Module):
    """A stand-in detector: one box around the red pixels of each (3, h, w) [0, 1] input, in that input's px."""

    def forward(self, tensors: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        outputs = []
        for t in tensors:
            red = (t[0] > 0.6) & (t[1] < 0.4) & (t[2] < 0.4)
            ys, xs = torch.nonzero(red, as_tuple=True)
            box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
            outputs.append({"boxes": box[None], "scores": torch.tensor([0.9]), "labels": torch.tensor([COCO_CAR])})
        return outputs


def _jpeg(size: tuple[int, int], box: tuple[int, int, int, int], orientation: int = 1) -> bytes:
    """A grey JPEG whose UPRIGHT view is `size` (w, h) with a red `box`; stored rotated, with the EXIF orientation
    that turns it upright again (6: the viewer rotates 90 degrees clockwise; 8: counter-clockwise)."""
    upright = Image.new("RGB", size, (128, 128, 128))
    upright.paste((220, 20, 20), box)
    stored = {
        1: upright,
        6: upright.transpose(Image.Transpose.ROTATE_90),  # decode applies ROTATE_270
        8: upright.transpose(Image.Transpose.ROTATE_270),  # decode applies ROTATE_90
    }[orientation]
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, subsampling=0, exif=exif.tobytes())
    return buf.getvalue()


# Edges on multiples of 16 px: at a 1/8 decode they fall on decoded-pixel (8x8 DCT block) boundaries.
UPRIGHT = (2048, 1536)  # (w, h) px, 3 MP
BOX = (512, 384, 1408, 1152)  # [x_min, y_min, x_max, y_max] upright full-resolution px


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_detect_photo_boxes_come_back_upright_at_full_resolution(orientation: int) -> None:
    data = _jpeg(UPRIGHT, BOX, orientation)
    dets, decoded = detect_photo(RedBoxModel(), data, max_pixels=MAX_PIXELS, detect_side=160, device="cpu")
    assert decoded.orientation == orientation
    assert decoded.size == UPRIGHT
    assert decoded.image.size == (256, 192)  # decoded at 1/8, upright
    assert decoded.scale == pytest.approx(1 / 8)
    assert dets.boxes.shape == (1, 4)
    np.testing.assert_allclose(dets.boxes[0], BOX, atol=8)  # 8 px = one decoded px at 1/8
    assert dets.labels.tolist() == [COCO_CAR]


def test_the_mapping_scales_each_axis_by_its_own_rounding() -> None:
    """1001 x 603 decodes at 1/8 as 126 x 76 (each side rounded up): x and y scales differ slightly."""
    d = detector.decode_for_detection(_jpeg((1001, 603), (0, 0, 1, 1)), max_pixels=MAX_PIXELS, detect_side=64)
    assert d.image.size == (126, 76)
    dets = Detections(
        boxes=np.array([[0, 0, 126, 76], [63, 38, 64, 39]], dtype=np.float32),
        scores=np.array([0.9, 0.8], dtype=np.float32),
        labels=np.array([3, 8], dtype=np.int64),
    )
    full = detector.to_full_resolution(dets, d)
    np.testing.assert_allclose(full.boxes[0], [0, 0, 1001, 603], rtol=1e-6)
    np.testing.assert_allclose(full.boxes[1], [63 * 1001 / 126, 38 * 603 / 76, 64 * 1001 / 126, 39 * 603 / 76])
    assert full.boxes.dtype == np.float32


def test_detect_photo_with_the_real_model(model: torch.nn.Module) -> None:
    """Random weights give arbitrary boxes, but they must lie in the full-resolution frame."""
    dets, decoded = detect_photo(model, _jpeg(UPRIGHT, BOX, 6), max_pixels=MAX_PIXELS, detect_side=160, device="cpu")
    assert decoded.size == UPRIGHT
    w, h = UPRIGHT
    assert np.all(dets.boxes >= 0) and np.all(dets.boxes[:, [0, 2]] <= w) and np.all(dets.boxes[:, [1, 3]] <= h)
