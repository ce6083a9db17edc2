"""Tests for the crop stage (carvision.stages.crop): box arithmetic, and the prepared sample's crops."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from red_box_detector import rotated_photo, use_red_box_detector

from carvision import cropping, manifest
from carvision.cropping import margin_box
from carvision.stages import crop

# --- margin_box--------------------------------------------------------------------------------------------------


def test_no_box_means_whole_image():
    assert margin_box(None, 100, 80, 0.05, 12) == (None, None)


def test_margin_is_a_fraction_of_the_box():
    assert margin_box([10, 20, 50, 60], 100, 100, 0.1, 12) == ((6, 16, 54, 64), None)
    assert margin_box([10, 20, 50, 60], 100, 100, 0.0, 12) == ((10, 20, 50, 60), None)
    assert margin_box([10.4, 20.6, 49.6, 60.4], 100, 100, 0.0, 12) == ((10, 21, 50, 60), None)


def test_box_is_clamped_to_the_image():
    assert margin_box([2, 3, 98, 79], 100, 80, 0.1, 12) == ((0, 0, 100, 80), None)
    assert margin_box([-20, -10, 50, 40], 100, 80, 0.0, 12) == ((0, 0, 50, 40), None)
    assert margin_box([60, 50, 140, 120], 100, 80, 0.0, 12) == ((60, 50, 100, 80), None)


@pytest.mark.parametrize(
    "bbox", [[200, 200, 300, 300], [-50, -40, -10, -5], [120, 10, 160, 50], [10, 90, 50, 120], [100, 0, 130, 40]]
)
def test_box_outside_image(bbox):
    assert margin_box(bbox, 100, 80, 0.0, 12) == (None, "box_outside_image")


@pytest.mark.parametrize("bbox", [[50, 50, 10, 10], [10, 50, 50, 10], [10, 10, 10, 50], [10, 10, 50, 10]])
def test_inverted_or_empty_box_is_invalid(bbox):
    assert margin_box(bbox, 100, 80, 0.05, 12) == (None, "invalid_box")


def test_tiny_box_is_too_small():
    assert margin_box([10, 10, 15, 40], 100, 80, 0.0, 12) == (None, "box_too_small")
    assert margin_box([95, 10, 130, 60], 100, 80, 0.0, 12) == (None, "box_too_small")  # small once clamped
    assert margin_box([10, 10, 22, 22], 100, 80, 0.0, 12) == ((10, 10, 22, 22), None)  # exactly min_box_side


# --- the prepared sample ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crops(prepared) -> pd.DataFrame:
    return manifest.read(Path(prepared.paths.crop) / "manifest.parquet", stage="crop")


@pytest.fixture(scope="module")
def crop_input(prepared) -> pd.DataFrame:
    """What crop reads: the filter stage's manifest (with car_prob; the prepared config filters nothing)."""
    return manifest.read(Path(prepared.paths.filter) / "manifest.parquet", stage="filter")


def _thumb(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    im = Image.new("RGB", size)
    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return im.size


def test_crops_are_bounded_jpegs_of_the_right_box(prepared, crops):
    c = prepared.crop
    crop_root = Path(prepared.paths.crop).resolve()
    assert len(crops) > 0
    for row in crops.itertuples():
        assert Path(row.crop_path).resolve().is_relative_to(crop_root / "images")
        with Image.open(row.crop_path) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            assert max(im.size) <= c.max_side
            box, reason = margin_box(row.bbox, row.width, row.height, c.margin, c.min_box_side)
            assert reason is None
            left, top, right, bottom = box if box else (0, 0, row.width, row.height)
            assert im.size == _thumb((right - left, bottom - top), c.max_side)


def test_crop_source_says_whether_a_box_was_used(crops):
    has_box = crops["bbox"].map(lambda b: b is not None)
    assert has_box.any() and (~has_box).any()
    assert (crops.loc[has_box, "crop_source"] == "bbox").all()
    assert (crops.loc[~has_box, "crop_source"] == "full_image").all()


def test_crop_report_reconciles(prepared, crops, crop_input):
    report = json.loads((Path(prepared.paths.reports) / "crop" / "report.json").read_text())
    dropped = pd.read_parquet(Path(prepared.paths.crop) / "dropped.parquet")
    assert report["rows_in"] == len(crop_input) == len(crops) + len(dropped)
    assert set(crop_input.columns) < set(crops.columns)


def test_crop_cuts_the_box_content(crop_input, tmp_path: Path):
    """A crop with margin 0 shows the pixels of the box: compare a recoloured photo with its crop."""
    df = crop_input[crop_input["bbox"].notna()].iloc[[0]].copy()
    row = df.iloc[0]
    x0, y0, x1, y1 = (round(v) for v in row["bbox"])
    img = Image.new("RGB", (int(row["width"]), int(row["height"])), (0, 0, 255))
    img.paste((255, 0, 0), (x0, y0, x1, y1))
    src = tmp_path / "src.png"
    img.save(src)
    df["path"], df["bbox"] = str(src), [[float(x0), float(y0), float(x1), float(y1)]]
    result = crop.crop(df, tmp_path / "crop", margin=0.0, min_box_side=4, max_side=1000)
    with Image.open(result.kept["crop_path"].iloc[0]) as im:
        assert im.size == (x1 - x0, y1 - y0)
        r, g, b = im.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        assert r > 220 and b < 40


def test_without_box_drop_drops_boxless_photos(prepared, crop_input, tmp_path: Path):
    c = prepared.crop
    result = crop.crop(
        crop_input,
        tmp_path / "crop",
        margin=c.margin,
        min_box_side=c.min_box_side,
        max_side=c.max_side,
        without_box="drop",
    )
    result.check(list(crop_input.columns))
    boxless = set(crop_input.loc[crop_input["bbox"].isna(), "image_id"])
    assert len(boxless) > 0
    assert set(result.dropped["image_id"]) == boxless
    assert set(result.dropped["drop_reason"]) == {"no_car_box"}
    assert (result.kept["crop_source"] == "bbox").all()
    for p in result.dropped["crop_path"]:
        assert not Path(p).exists()
    assert result.report()["dropped_by_reason"] == {"no_car_box": len(boxless)}


def test_bad_boxes_are_dropped_with_reasons(crop_input, tmp_path: Path):
    df = crop_input.iloc[:4].copy().reset_index(drop=True)
    w, h = int(df.loc[0, "width"]), int(df.loc[0, "height"])
    df["bbox"] = [[w + 10.0, 0.0, w + 50.0, 20.0], [30.0, 30.0, 10.0, 10.0], [1.0, 1.0, 4.0, 4.0], None]
    result = crop.crop(df, tmp_path / "crop", margin=0.05, min_box_side=12, max_side=64)
    result.check(list(df.columns))
    reasons = dict(zip(result.dropped["image_id"], result.dropped["drop_reason"], strict=True))
    assert reasons == {
        df.loc[0, "image_id"]: "box_outside_image",
        df.loc[1, "image_id"]: "invalid_box",
        df.loc[2, "image_id"]: "box_too_small",
    }
    assert result.kept["crop_source"].tolist() == ["full_image"]
    assert f"in {w}x{h}" in result.dropped["drop_detail"].iloc[0]


def test_bad_without_box_value_raises(crop_input, tmp_path: Path):
    with pytest.raises(ValueError, match="without_box"):
        crop.crop(crop_input.iloc[:2], tmp_path, margin=0.05, min_box_side=12, max_side=64, without_box="skip")


def test_empty_manifest_gives_an_empty_result(crop_input, tmp_path: Path):
    """Clean can keep no row (e.g. every photo broken); crop should pass the empty table on."""
    result = crop.crop(crop_input.iloc[0:0], tmp_path / "crop", margin=0.05, min_box_side=12, max_side=64)
    assert result.rows_in == 0 and len(result.kept) == 0


@pytest.mark.parametrize("orientation", [6, 8])
def test_crop_of_a_large_rotated_photo_decodes_reduced_and_cuts_the_upright_box(crop_input, tmp_path, orientation):
    """A 1600x1200 (upright) photo with a red car box, stored turned with EXIF: with max_side 64 the crop stage
    decodes it at 1/8 and must still cut the box given in upright full-resolution px."""
    w, h, box = 1600, 1200, (900, 300, 1500, 700)
    upright = Image.new("RGB", (w, h), (0, 0, 255))
    upright.paste((255, 0, 0), box)
    rotated_photo(tmp_path / "p.jpg", upright, orientation)
    df = crop_input.iloc[[0]].copy()
    df["path"], df["width"], df["height"], df["bbox"] = str(tmp_path / "p.jpg"), w, h, [[float(v) for v in box]]
    assert cropping.decode_scale(box, w, h, 64) == pytest.approx(64 / 600)
    result = crop.crop(df, tmp_path / "crop", margin=0.0, min_box_side=4, max_side=64)
    assert result.dropped.empty
    with Image.open(result.kept["crop_path"].iloc[0]) as im:
        assert im.size == (64, 43)  # the box's 600x400, shrunk to a 64 px longer side
        px = np.asarray(im.convert("RGB"), dtype=int)
    assert px[2:-2, 2:-2, 0].min() > 200 and px[2:-2, 2:-2, 2].max() < 60, "the crop shows more than the red box"


def test_a_photo_changed_since_clean_is_dropped_not_cropped_wrong(crop_input, tmp_path: Path):
    df = crop_input.iloc[[0, 1]].copy()
    Image.new("RGB", (50, 40), (9, 9, 9)).save(tmp_path / "other.jpg")
    df["path"] = [str(tmp_path / "other.jpg"), str(tmp_path / "gone.jpg")]
    result = crop.crop(df, tmp_path / "crop", margin=0.05, min_box_side=4, max_side=64)
    result.check(list(df.columns))
    assert sorted(result.dropped["drop_reason"]) == ["changed_since_clean", "missing_file"]


# --- crop.method: detector ----------------------------------------------------------------------------------------


def test_detector_method_crops_the_detected_car_and_drops_with_reasons(crop_input, tmp_path, monkeypatch):
    use_red_box_detector(monkeypatch)
    w, h = 800, 600
    photos = {"car": (450, 150, 750, 350), "far": (5, 5, 100, 75), "none": None}
    df = crop_input.iloc[[0, 1, 2, 3]].copy().reset_index(drop=True)
    paths = []
    for name, box in photos.items():
        im = Image.new("RGB", (w, h), (0, 0, 255))
        if box:
            im.paste((255, 0, 0), box)
        rotated_photo(tmp_path / f"{name}.jpg", im, 6)  # stored turned: boxes must come back upright
        paths.append(str(tmp_path / f"{name}.jpg"))
    (tmp_path / "broken.jpg").write_bytes((tmp_path / "car.jpg").read_bytes()[:5000])
    df["path"], df["width"], df["height"] = [*paths, str(tmp_path / "broken.jpg")], w, h
    result = crop.crop(df, tmp_path / "crop", margin=0.0, min_box_side=4, max_side=64, method="detector")
    result.check(list(df.columns))
    fate = dict(zip(result.dropped["image_id"], result.dropped["drop_reason"], strict=True))
    ids = df["image_id"].tolist()
    assert fate == {ids[1]: "partial_car", ids[2]: "no_car_found", ids[3]: "truncated_image"}
    row = result.kept.iloc[0]
    assert row["crop_source"] == "detector" and row["car_box_score"] == pytest.approx(0.9)
    assert np.allclose(row["car_box"], photos["car"], atol=4)  # JPEG edges blur by a pixel or two
    with Image.open(row["crop_path"]) as im:
        px = np.asarray(im.convert("RGB"), dtype=int)
    assert px[2:-2, 2:-2, 0].min() > 200 and px[2:-2, 2:-2, 2].max() < 60


def test_detector_method_with_a_real_detector_from_a_weights_file(crop_input, tmp_path):
    """A randomly initialised torchvision detector saved to a file (no download): the stage runs, and every photo is
    either cropped to a box inside it, with its score, or dropped with a policy reason."""
    import torch
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    from carvision.settings import DetectorSettings

    torch.manual_seed(0)
    weights = tmp_path / "detector.pt"
    torch.save(
        fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict(), weights
    )
    df = crop_input.iloc[:4].copy()
    settings = DetectorSettings(
        weights_file=str(weights),
        detect_side=96,
        min_size=96,
        max_size=160,
        min_score=0.0,
        score_thresh=0.0,
        min_box_fraction=0.0,
        batch_size=2,
    )
    result = crop.crop(
        df, tmp_path / "crop", margin=0.05, min_box_side=1, max_side=64, method="detector", detector=settings
    )
    result.check(list(df.columns))
    assert set(result.dropped["drop_reason"]) <= {"no_car_found"}
    for row in result.kept.itertuples():
        x0, y0, x1, y1 = row.car_box
        assert 0 <= x0 < x1 <= row.width and 0 <= y0 < y1 <= row.height
        assert row.crop_source == "detector" and 0 <= row.car_box_score <= 1
