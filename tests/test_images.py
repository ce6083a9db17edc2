"""Tests for safe image opening (carvision.images.open_rgb) on files made here with Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carvision.images import ImageRejected, open_rgb

BIG = 10**8
RED, BLUE = (255, 0, 0), (0, 0, 255)


def _noisy(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Random pixels: JPEGs of it are large enough that truncation always hits the entropy-coded data."""
    arr = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB")


def _jpeg_bytes(im: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, **kwargs)
    return buf.getvalue()


def _rejected(path: Path, max_pixels: int = BIG) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        open_rgb(path, max_pixels=max_pixels)
    return info.value


def test_valid_rgb_jpeg(tmp_path: Path):
    p = tmp_path / "car.jpg"
    Image.new("RGB", (40, 30), BLUE).save(p, "JPEG", quality=95)
    im = open_rgb(p, max_pixels=BIG)
    assert im.mode == "RGB" and im.size == (40, 30)
    r, g, b = im.getpixel((20, 15))
    assert b > 200 and r < 40 and g < 40


def test_accepts_str_paths_and_exactly_max_pixels(tmp_path: Path):
    p = tmp_path / "car.png"
    Image.new("RGB", (10, 10), RED).save(p)
    assert open_rgb(str(p), max_pixels=100).size == (10, 10)


def test_grayscale_becomes_rgb(tmp_path: Path):
    p = tmp_path / "gray.png"
    Image.new("L", (20, 10), 77).save(p)
    im = open_rgb(p, max_pixels=BIG)
    assert im.mode == "RGB"
    assert im.getpixel((5, 5)) == (77, 77, 77)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (24, 16), (0, 255, 255, 0)).save(p, "JPEG", quality=95)  # pure red in CMYK
    with Image.open(p) as raw:
        assert raw.mode == "CMYK"
    im = open_rgb(p, max_pixels=BIG)
    assert im.mode == "RGB" and im.size == (24, 16)
    r, g, b = im.getpixel((12, 8))
    assert r > 200 and g < 60 and b < 60


def test_palette_png_with_transparency_becomes_rgb(tmp_path: Path):
    p = tmp_path / "pal.png"
    im = Image.new("P", (16, 16), 1)
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * (254 * 3))
    im.info["transparency"] = 0
    im.save(p)
    with Image.open(p) as raw:
        assert raw.mode == "P"
    out = open_rgb(p, max_pixels=BIG)
    assert out.mode == "RGB"
    assert out.getpixel((3, 3)) == (10, 200, 30)


def test_rgba_becomes_rgb(tmp_path: Path):
    p = tmp_path / "a.png"
    Image.new("RGBA", (8, 8), (1, 2, 3, 128)).save(p)
    out = open_rgb(p, max_pixels=BIG)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize(("orientation", "marked_corner"), [(6, (29, 0)), (8, (0, 39)), (3, (39, 29))])
def test_exif_orientation_is_applied(tmp_path: Path, orientation, marked_corner):
    """The stored image is 40x30 with a red top-left corner; the tag says how to turn it upright."""
    stored = Image.new("RGB", (40, 30), BLUE)
    stored.paste(RED, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"rot{orientation}.jpg"
    p.write_bytes(_jpeg_bytes(stored, exif=exif.tobytes()))
    im = open_rgb(p, max_pixels=BIG)
    assert im.size == ((30, 40) if orientation in (6, 8) else (40, 30))
    r, _, b = im.getpixel(marked_corner)
    assert r > 200 and b < 60, f"red corner expected at {marked_corner}"
    assert im.getexif().get(0x0112, 1) == 1


def test_zero_byte_file(tmp_path: Path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    assert _rejected(p).reason == "empty_file"


def test_truncated_jpeg(tmp_path: Path):
    data = _jpeg_bytes(_noisy((128, 96)))
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: int(len(data) * 0.4)])
    e = _rejected(p)
    assert e.reason == "corrupt_image"
    assert "OSError" in e.detail


def test_text_named_jpg(tmp_path: Path):
    p = tmp_path / "page.jpg"
    p.write_text("<html>404 not found</html>\n")
    assert _rejected(p).reason == "not_an_image"


def test_too_many_pixels_is_refused_before_decoding(tmp_path: Path):
    """A truncated file would fail to decode (corrupt_image); the pixel limit must refuse it first."""
    data = _jpeg_bytes(_noisy((200, 150)))
    p = tmp_path / "bomb.jpg"
    p.write_bytes(data[: len(data) // 3])
    assert _rejected(p, max_pixels=10**6).reason == "corrupt_image"  # decodes past the limit: broken
    e = _rejected(p, max_pixels=200 * 150 - 1)
    assert e.reason == "too_many_pixels"
    assert e.detail == "200x150"


@pytest.mark.parametrize("pillow_limit", [150, 100])  # 1.5x (warning) and 2x+ (error) Pillow's own limit
def test_pillow_decompression_bomb_check_becomes_too_many_pixels(tmp_path: Path, monkeypatch, pillow_limit):
    p = tmp_path / "big.png"
    Image.new("RGB", (15, 15 if pillow_limit == 150 else 20), RED).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    assert _rejected(p).reason == "too_many_pixels"


def test_missing_file(tmp_path: Path):
    p = tmp_path / "gone" / "x.jpg"
    e = _rejected(p)
    assert e.reason == "missing_file"
    assert str(p) in e.detail


def test_image_rejected_message():
    assert str(ImageRejected("too_small", "19x14")) == "too_small: 19x14"
    assert str(ImageRejected("empty_file")) == "empty_file"
