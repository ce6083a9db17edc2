"""Tests for the image decoder (carvision.images) on real files written here: the hostile corpus, reduced decodes,
colour management, and the thin wrappers the stages call."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import imagehash
import numpy as np
import pytest
from hostile_images import (
    MAX_PIXELS,
    SIZE,
    adobe_pattern,
    adobe_rgb_icc,
    exif_bytes,
    jpeg,
    pattern,
    srgb_of_adobe,
    upright_to_stored,
    write_corpus,
)
from PIL import Image, ImageCms, ImageFile

from carvision import images
from carvision.images import Decoded, ImageRejected, decode, decode_rgb, open_rgb, read_image_bytes

BIG = 10**8
RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("hostile"))


def _read(path: Path, **kwargs) -> Decoded:
    return decode(read_image_bytes(path), max_pixels=kwargs.pop("max_pixels", MAX_PIXELS), **kwargs)


def _rejected(data_or_path, max_pixels: int = BIG, **kwargs) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        if isinstance(data_or_path, bytes):
            decode(data_or_path, max_pixels=max_pixels, **kwargs)
        else:
            open_rgb(data_or_path, max_pixels=max_pixels)
    return info.value


def _noisy(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Random pixels: JPEGs of it are large enough that truncation always hits the entropy-coded data."""
    arr = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB")


# ------------------------------------------------------------------------------------------ the corpus


def test_corpus_covers_many_kinds(corpus):
    names = [c.name for c in corpus]
    assert len(names) == len(set(names)) >= 25
    reasons = {c.expect_reason for c in corpus} - {None}
    assert {"truncated_image", "not_an_image", "too_many_pixels", "symlink_loop", "name_too_long"} <= reasons
    assert sum(c.expect_reason is None for c in corpus) >= 25


def test_every_corpus_case_reads_as_expected(corpus):
    """Each file gives its expected reason, or a decoded image that passes its check: never another exception."""
    failures = {}
    for case in corpus:
        try:
            d = _read(case.path)
        except ImageRejected as e:
            if e.reason != case.expect_reason:
                failures[case.name[:40]] = f"rejected {e.reason} ({e.detail}), expected {case.expect_reason}"
            continue
        if case.expect_reason is not None:
            failures[case.name[:40]] = f"kept ({d.format}, {d.colour}), expected {case.expect_reason}"
            continue
        try:
            assert d.size == case.size, f"size {d.size} != {case.size}"
            assert d.image.size == d.size and d.scale == 1.0, "a full decode must be full size"
            assert d.image.mode == "RGB" and d.image.info == {}
            case.check(d)
        except AssertionError as e:
            failures[case.name[:40]] = str(e)
    assert failures == {}


def test_kept_corpus_photos_are_not_near_duplicates(corpus):
    """The end-to-end corpus test runs clean on them: no two may look alike to pHash (clean's default: 4 bits)."""
    hashes = {c.name: imagehash.phash(_read(c.path).image) for c in corpus if c.expect_reason is None}
    hashes.pop("one_pixel.png")  # too small for clean anyway
    names = sorted(hashes)
    close = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if hashes[a] - hashes[b] <= 8]
    assert close == []


def test_heif_support_loads_on_the_first_heif_file_only(corpus):
    """A fresh process: decoding a JPEG does not import pillow-heif; the first HEIC registers it and decodes."""
    paths = {c.name: str(c.path) for c in corpus}
    code = (
        "import sys\n"
        "from carvision.images import decode\n"
        "decode(open(sys.argv[1], 'rb').read(), max_pixels=10**6)\n"
        "assert 'pillow_heif' not in sys.modules\n"
        "d = decode(open(sys.argv[2], 'rb').read(), max_pixels=10**6)\n"
        "print(d.format, *d.size)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, paths["plain.jpg"], paths["photo.heic"]], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["HEIF", str(SIZE[0]), str(SIZE[1])]


def test_unreadable_file(tmp_path: Path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    p = tmp_path / "locked.jpg"
    p.write_bytes(jpeg(Image.new("RGB", (8, 8))))
    p.chmod(0)
    assert _rejected(p).reason == "unreadable_file"


# ------------------------------------------------------------------------------------ reading the file


def test_read_image_bytes_refuses_large_files_without_reading_them(tmp_path: Path):
    p = tmp_path / "big.jpg"
    p.write_bytes(jpeg(_noisy((64, 64))))
    size = p.stat().st_size
    assert read_image_bytes(p, max_bytes=size) == p.read_bytes()
    with pytest.raises(ImageRejected) as info:
        read_image_bytes(p, max_bytes=size - 1)
    assert info.value.reason == "file_too_large" and str(size) in info.value.detail


def test_read_image_bytes_does_not_hang_on_a_fifo(tmp_path: Path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageRejected) as info:
        read_image_bytes(fifo)  # a blocking open would wait for a writer forever
    assert info.value.reason == "not_a_file"


def test_read_image_bytes_bad_path():
    with pytest.raises(ImageRejected) as info:
        read_image_bytes("a\0b.jpg")
    assert info.value.reason == "bad_path"


def test_missing_file(tmp_path: Path):
    p = tmp_path / "gone" / "x.jpg"
    e = _rejected(p)
    assert e.reason == "missing_file"
    assert str(p) in e.detail


def test_file_under_a_file_is_missing(tmp_path: Path):
    (tmp_path / "plain").write_bytes(b"x")
    assert _rejected(tmp_path / "plain" / "x.jpg").reason == "missing_file"


# ------------------------------------------------------------------------------------ reduced decodes


def _tagged_jpeg(size: tuple[int, int], orientation: int) -> tuple[bytes, np.ndarray]:
    """A JPEG whose upright pixels are `pattern(...)` of `size`, stored turned as the EXIF tag says."""
    upright = pattern(3, size)
    stored = upright_to_stored(Image.fromarray(upright), orientation) if orientation != 1 else Image.fromarray(upright)
    return jpeg(stored, **({"exif": exif_bytes(orientation)} if orientation != 1 else {})), upright


@pytest.mark.parametrize("orientation", [1, 6, 3, 8])
@pytest.mark.parametrize(
    ("min_side", "min_scale", "divisor"),
    [
        (None, None, 1),  # full resolution by default
        (100, None, 4),  # 768 / 4 = 192 >= 100; / 8 = 96 < 100
        (200, None, 2),
        (96, None, 8),  # exactly the side at 1/8
        (2000, None, 1),  # larger than the photo: full size
        (None, 0.3, 2),  # 1/2 >= 0.3 > 1/4
        (None, 0.125, 8),
        (50, 0.5, 2),  # both constraints: the stricter wins
        (None, 1.0, 1),
    ],
)
def test_reduced_jpeg_decode_bookkeeping(orientation, min_side, min_scale, divisor):
    data, upright = _tagged_jpeg((1024, 768), orientation)
    d = decode(data, max_pixels=BIG, min_side=min_side, min_scale=min_scale)
    assert d.size == (1024, 768)  # upright, full resolution
    assert d.image.size == (1024 // divisor, 768 // divisor)
    assert d.scale == pytest.approx(1 / divisor)
    assert d.orientation == orientation
    # The reduced image is the upright photo shrunk: one pixel per 16 px block, compared with the block colours.
    small = np.asarray(d.image.resize((64, 48), Image.Resampling.BOX)).astype(int)
    assert np.abs(small - upright[8::16, 8::16]).max() <= 16


def test_reduced_decode_rounds_odd_sizes_up():
    """libjpeg's reduced output is ceil(size / 8); `scale` is measured, not assumed."""
    data = jpeg(_noisy((1001, 751)))
    d = decode(data, max_pixels=BIG, min_side=50)
    assert d.image.size == (126, 94)
    assert d.size == (1001, 751)
    assert d.scale == 126 / 1001


def test_other_formats_decode_full_size_whatever_min_side():
    buf = io.BytesIO()
    Image.fromarray(pattern(4, (640, 480))).save(buf, "PNG")
    d = decode(buf.getvalue(), max_pixels=BIG, min_side=32)
    assert d.image.size == d.size == (640, 480) and d.scale == 1.0


def test_reduced_decode_still_detects_truncation():
    data = jpeg(_noisy((800, 600)))
    assert _rejected(data[: len(data) * 3 // 4], min_side=64).reason == "truncated_image"


@pytest.mark.parametrize(("size", "reduced"), [((1, 1), (1, 1)), ((5, 3), (3, 2)), ((17, 9), (3, 2))])
def test_tiny_jpegs_reduce_no_further_than_their_shorter_side(size, reduced):
    d = decode(jpeg(Image.new("RGB", size, BLUE)), max_pixels=BIG, min_scale=0.125)
    assert d.image.size == reduced and d.size == size


# ------------------------------------------------------------------------------------ truncation, bombs


def test_jpeg_structure_walk_skips_markers_inside_segments():
    """An EOI inside an APP segment (an EXIF thumbnail) does not make a cut-off photo complete."""
    whole = jpeg(_noisy((128, 96)))
    app1 = b"\xff\xe1" + (2 + 14).to_bytes(2, "big") + b"Exif\0\0\xff\xd8\xff\xd9thum"
    with_thumb = whole[:2] + app1 + whole[2:]
    assert images.jpeg_is_complete(with_thumb)
    assert not images.jpeg_is_complete(with_thumb[: len(with_thumb) // 2])
    assert decode(with_thumb, max_pixels=BIG).size == (128, 96)


def test_jpeg_with_restart_markers_and_two_pictures():
    """RSTn markers inside a scan are not its end; a second picture after the first EOI (MPO) is allowed."""
    whole = jpeg(_noisy((128, 96)), restart_marker_blocks=1)
    assert any(bytes([0xFF, 0xD0 + i]) in whole for i in range(8))
    assert images.jpeg_is_complete(whole)
    assert not images.jpeg_is_complete(whole[:-300])
    assert images.jpeg_is_complete(whole + whole)


def test_png_structure():
    buf = io.BytesIO()
    Image.fromarray(pattern(5)).save(buf, "PNG")
    data = buf.getvalue()
    assert images.png_is_complete(data) and images.png_is_complete(data + b"junk")
    assert not images.png_is_complete(data[:-1])


@pytest.mark.parametrize("fmt", ["JPEG", "BMP"])
def test_truncation_is_refused_even_if_another_library_allows_it(monkeypatch, fmt):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    buf = io.BytesIO()
    _noisy((64, 48)).save(buf, fmt)
    data = buf.getvalue()
    assert _rejected(data[: len(data) * 99 // 100]).reason == "truncated_image"


def test_too_many_pixels_is_refused_before_decoding():
    """A truncated file would fail to decode (truncated_image); the pixel limit must refuse it first."""
    data = jpeg(_noisy((200, 150)))
    cut = data[: len(data) // 3]
    assert _rejected(cut, max_pixels=10**6).reason == "truncated_image"
    e = _rejected(cut, max_pixels=200 * 150 - 1)
    assert e.reason == "too_many_pixels"
    assert e.detail == "200x150"


def test_pillow_bomb_check_does_not_refuse_images_under_our_limit(monkeypatch):
    """Pillow raises above 2x its own MAX_IMAGE_PIXELS; our max_pixels is the policy, in both directions."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    buf = io.BytesIO()
    Image.new("RGB", (30, 30), RED).save(buf, "PNG")
    assert decode(buf.getvalue(), max_pixels=900).size == (30, 30)
    assert _rejected(buf.getvalue(), max_pixels=899).reason == "too_many_pixels"


def test_no_other_exception_escapes_on_damaged_files():
    """Seeded damage (cuts, flipped bytes, zeroed runs) to files of every format: a result or ImageRejected."""
    rng = np.random.default_rng(0)
    im = Image.fromarray(pattern(6))
    originals = []
    for fmt, params in [("JPEG", {}), ("PNG", {}), ("GIF", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {})]:
        buf = io.BytesIO()
        im.save(buf, fmt, **params)
        originals.append(buf.getvalue())
    originals.append(jpeg(im.convert("CMYK"), exif=exif_bytes(6), icc_profile=adobe_rgb_icc()))
    outcomes = set()
    for data in originals:
        for _ in range(60):
            damaged = bytearray(data)
            kind = rng.integers(3)
            at = int(rng.integers(1, len(data)))
            if kind == 0:
                damaged = damaged[:at]
            elif kind == 1:
                for i in rng.integers(0, len(data), size=4):
                    damaged[i] ^= 1 << int(rng.integers(8))
            else:
                damaged[at : at + 16] = bytes(len(damaged[at : at + 16]))
            try:
                decode(bytes(damaged), max_pixels=BIG)
                outcomes.add("kept")
            except ImageRejected as e:
                outcomes.add(e.reason)
    assert {"kept", "truncated_image"} <= outcomes


# ------------------------------------------------------------------------------------------ colour


def test_adobe_rgb_profile_is_valid_for_littlecms():
    profile = ImageCms.ImageCmsProfile(io.BytesIO(adobe_rgb_icc())).profile
    assert ImageCms.getProfileDescription(profile).strip() == "Adobe RGB (1998)"
    assert profile.xcolor_space == "RGB " and profile.is_matrix_shaper


def test_adobe_rgb_converts_to_srgb_and_ignoring_it_would_be_far_off():
    a = adobe_pattern(11)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG", icc_profile=adobe_rgb_icc())
    d = decode(buf.getvalue(), max_pixels=BIG)
    got = np.asarray(d.image).astype(int)
    want = srgb_of_adobe(a).astype(int)  # numpy matrix maths, independent of littlecms
    assert np.abs(got - want).max() <= 2
    assert np.abs(a.astype(int) - want).max() >= 25  # the error of taking Adobe RGB values as sRGB
    assert d.colour == "icc:Adobe RGB (1998)"


def test_converted_image_carries_no_profile_or_exif(tmp_path: Path):
    """An sRGB image must not be saved with the Adobe profile it was converted from, nor rotated twice."""
    a = adobe_pattern(12)
    stored = upright_to_stored(Image.fromarray(a), 6)
    d = decode(jpeg(stored, icc_profile=adobe_rgb_icc(), exif=exif_bytes(6)), max_pixels=BIG)
    assert d.image.info == {} and d.image.getexif().get(0x0112) is None
    out = tmp_path / "out.jpg"
    d.image.save(out)
    with Image.open(out) as again:
        assert "icc_profile" not in again.info
        assert again.size == d.image.size == SIZE


def test_gray_profile_on_rgb_image_is_ignored_not_fatal():
    gray = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))  # any profile of another colour space
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buf, "PNG", icc_profile=gray.tobytes())
    d = decode(buf.getvalue(), max_pixels=BIG)
    assert d.image.getpixel((3, 3)) == (10, 200, 30)
    assert d.colour.startswith("icc ignored")


# ------------------------------------------------------------------------- the wrappers the stages call


def test_decode_rgb_matches_a_plain_pillow_decode_for_ordinary_files():
    data = jpeg(_noisy((96, 64)))
    with Image.open(io.BytesIO(data)) as im:
        plain = np.asarray(im.convert("RGB"))
    assert np.array_equal(np.asarray(decode_rgb(data, max_pixels=BIG)), plain)


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
    assert _rejected(p, max_pixels=99).reason == "too_many_pixels"


def test_grayscale_becomes_rgb(tmp_path: Path):
    p = tmp_path / "gray.png"
    Image.new("L", (20, 10), 77).save(p)
    im = open_rgb(p, max_pixels=BIG)
    assert im.mode == "RGB"
    assert im.getpixel((5, 5)) == (77, 77, 77)


def test_opaque_palette_png_with_unused_transparency_keeps_its_colours(tmp_path: Path):
    p = tmp_path / "pal.png"
    im = Image.new("P", (16, 16), 1)
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * (254 * 3))
    im.info["transparency"] = 0
    im.save(p)
    assert open_rgb(p, max_pixels=BIG).getpixel((3, 3)) == (10, 200, 30)


def test_semi_transparent_rgba_is_blended_on_grey_not_black(tmp_path: Path):
    p = tmp_path / "a.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(p)
    assert open_rgb(p, max_pixels=BIG).getpixel((0, 0)) == (128, 128, 128)


def test_text_named_jpg(tmp_path: Path):
    p = tmp_path / "page.jpg"
    p.write_text("<html>404 not found</html>\n")
    assert _rejected(p).reason == "not_an_image"


def test_image_rejected_message():
    assert str(ImageRejected("too_small", "19x14")) == "too_small: 19x14"
    assert str(ImageRejected("empty_file")) == "empty_file"


def test_sniff_format_by_content_not_name():
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "WEBP")
    assert images.sniff_format(buf.getvalue()) == "WEBP"
    assert images.sniff_format(jpeg(Image.new("RGB", (4, 4)))) == "JPEG"
    assert images.sniff_format(b"<html>") is None


def test_load_rgb_reads_through_the_decoder(tmp_path: Path):
    """Training, evaluation and the filter read photos with load_rgb: the same pixels as decode."""
    from carvision.preprocess import load_rgb  # imports torch: only this test pays for it

    a = adobe_pattern(13)
    stored = upright_to_stored(Image.fromarray(a), 8)
    p = tmp_path / "photo.jpg"
    p.write_bytes(
        jpeg(stored.resize((640, 480), Image.Resampling.NEAREST), icc_profile=adobe_rgb_icc(), exif=exif_bytes(8))
    )
    full = load_rgb(p)
    assert np.array_equal(np.asarray(full), np.asarray(_read(p).image))
    assert full.size == (480, 640)
    assert load_rgb(p, min_side=100).size == (120, 160)
    with pytest.raises(ImageRejected):
        load_rgb(tmp_path / "missing.jpg")
