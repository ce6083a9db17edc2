"""A corpus of odd but real-world image files, written on the spot, each with what reading it must give.

    cases = write_corpus(tmp_path)          # 61 cases (44 kept), ~0.5 MB, about half a second
    for case in cases:
        ...  # case.expect_reason: the ImageRejected reason, or None: kept, and case.check(decoded) must pass

Used by tests/test_images.py (decoder level) and meant for end-to-end tests through the stages. The
expectations are those of `read_image_bytes` + `decode(..., max_pixels=MAX_PIXELS)` (clean.max_pixels' default).
Kept photos have a shorter side of at least 32 px (clean.min_side's default) except `one_pixel.png` (a stage
drops it as too_small), and carry a seeded pattern of coloured 16 px blocks, different per case, so that no two
are within 8 bits of each other's pHash (clean drops near duplicates) and so that a wrong rotation, mirror or
colour conversion fails the pixel check. No file is bigger than ~75 kB. Not every case is a plain file:
`a_folder.jpg` is a folder, `loop_a.jpg` and `dangling.jpg` are symbolic links, `missing.jpg` and the 300-byte
name do not exist, and `unreadable.jpg` has mode 000 (kept, with no pixel check, when running as root).
File names keep their real-world suffixes (.tif, .gif, .heic, .avif, none), which a suffix filter may drop first.

Also here: `icc_profile_v2`, which builds a valid ICC v2 matrix/TRC RGB profile with `struct` (littlecms through
ImageCms can only create sRGB, LAB and XYZ profiles, and there is no internet to fetch Adobe's), and the Adobe RGB
(1998) numbers to build and check one independently of littlecms.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from carvision.images import Decoded

MAX_PIXELS = 40_000_000  # the limit the expectations assume (settings: clean.max_pixels)
SIZE = (128, 96)  # (width, height) of most cases: 8 x 6 blocks of 16 px (fewer look alike to pHash)
BLOCK = 16
RED = (255, 0, 0)
GREY = 128  # what transparent pixels must become

D50 = (0.9642, 1.0, 0.8249)  # the ICC profile connection space's white
# Columns: the XYZ (D50, Bradford-adapted) of each primary; rows X, Y, Z. Adobe RGB (1998) and sRGB.
ADOBE_RGB_D50 = np.array(
    [[0.6097559, 0.2052401, 0.1492240], [0.3111242, 0.6256560, 0.0632197], [0.0194740, 0.0608902, 0.7448387]]
)
SRGB_D50 = np.array(
    [[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169], [0.0139322, 0.0971045, 0.7141733]]
)
ADOBE_GAMMA = 563 / 256  # 2.19921875, as the u8Fixed8 curve in Adobe's profile stores it
# Saturated Adobe RGB colours that are still inside sRGB's gamut (checked in `adobe_to_srgb`).
ADOBE_COLOURS = [(200, 60, 50), (110, 170, 90), (60, 90, 190), (190, 170, 60), (150, 70, 160), (100, 160, 170)]


@dataclass(frozen=True)
class Case:
    """One file of the corpus and what reading it must give."""

    name: str
    path: Path
    expect_reason: str | None
    """the `ImageRejected.reason` of reading + decoding it; None when the photo must be kept"""
    check: Callable[[Decoded], None] | None = None
    """for kept photos: asserts on the decoded result (pixels, format, orientation, colour, frames)"""
    size: tuple[int, int] | None = None
    """for kept photos: the upright full-resolution (width, height)"""


# ----------------------------------------------------------------------------------------------- pixels


def pattern(seed: int, size: tuple[int, int] = SIZE, grey: bool = False) -> np.ndarray:
    """(h, w, 3) or (h, w) uint8: 16 px blocks of seeded colours in 40..215, with a red top-left block (or a
    white one, in grey), so that an image turned or mirrored the wrong way cannot pass a pixel check."""
    w, h = size
    rng = np.random.default_rng(seed)
    bw, bh = -(-w // BLOCK), -(-h // BLOCK)
    blocks = rng.integers(40, 216, size=(bh, bw) if grey else (bh, bw, 3), dtype=np.uint8)
    blocks[0, 0] = 255 if grey else RED
    return np.repeat(np.repeat(blocks, BLOCK, axis=0), BLOCK, axis=1)[:h, :w].copy()


def block_centres(a: np.ndarray) -> np.ndarray:
    """The pixel at the centre of every 16 px block: where lossy codecs are exact to a few levels."""
    return a[BLOCK // 2 :: BLOCK, BLOCK // 2 :: BLOCK].astype(int)


def assert_pixels(d: Decoded, expected: np.ndarray, tol: float, what: str = "") -> None:
    """The decoded image equals `expected` (RGB, or grey broadcast to RGB) within `tol` levels, and its size is
    `expected`'s. Lossless cases (tol <= 2) compare every pixel; lossy ones the block centres, since codecs blur
    the blocks' edges."""
    got = np.asarray(d.image)
    assert d.image.mode == "RGB", f"{what}: mode {d.image.mode}"
    if expected.ndim == 2:
        expected = np.repeat(expected[..., None], 3, axis=2)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    if tol > 2:
        got, expected = block_centres(got), block_centres(expected)
    err = np.abs(got.astype(int) - expected.astype(int)).max()
    assert err <= tol, f"{what}: pixels off by {err} > {tol} levels"


def checks(expected: np.ndarray, tol: float, **facts) -> Callable[[Decoded], None]:
    """A check: the pixels (see assert_pixels) and each of `facts` (Decoded field -> value, or a callable that
    takes the field's value and returns whether it is right)."""

    def check(d: Decoded) -> None:
        for field, want in facts.items():
            got = getattr(d, field)
            assert want(got) if callable(want) else got == want, f"{field} = {got!r}, expected {want!r}"
        assert_pixels(d, expected, tol, ", ".join(f"{k}={getattr(d, k)!r}" for k in ("format", "colour")))

    return check


def upright_to_stored(upright: Image.Image, orientation: int) -> Image.Image:
    """The pixels as a camera stores them when its EXIF `orientation` says how to turn them upright."""
    inverse = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,  # stored turned left; the reader turns it right (ROTATE_270) to show it
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    return upright.transpose(inverse[orientation])


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def jpeg(im: Image.Image, **params) -> bytes:
    return encode(im, "JPEG", **{"quality": 95, **params})


# ------------------------------------------------------------------------------------------- colour maths


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear light 0..1 -> sRGB 0..255 (the IEC 61966-2-1 curve), as floats."""
    x = np.clip(linear, 0, 1)
    return 255 * np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def adobe_to_srgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) Adobe RGB (1998) 0..255 -> sRGB 0..255 (floats), by matrix maths alone: decode the 2.2 gamma,
    to XYZ (D50) with Adobe's primaries, back to linear sRGB with sRGB's, encode. Both matrices are already
    adapted to D50, so no white-point adaptation is needed. Raises if a colour falls outside sRGB's gamut."""
    linear = (np.asarray(rgb, dtype=np.float64) / 255) ** ADOBE_GAMMA
    srgb_linear = linear @ (np.linalg.inv(SRGB_D50) @ ADOBE_RGB_D50).T
    if srgb_linear.min() < -1e-3 or srgb_linear.max() > 1 + 1e-3:
        raise ValueError("an Adobe RGB test colour is outside sRGB's gamut")
    return srgb_encode(srgb_linear)


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def icc_profile_v2(description: str, primaries_d50: np.ndarray, gamma: float) -> bytes:
    """A valid ICC v2 display profile (matrix/TRC, RGB -> XYZ): header, tag table, desc, cprt, wtpt, rXYZ, gXYZ,
    bXYZ, and one gamma curve shared by rTRC, gTRC and bTRC. `primaries_d50` is 3x3, columns R, G, B."""
    ascii_desc = description.encode("ascii") + b"\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(ascii_desc)) + ascii_desc + bytes(8) + bytes(3) + bytes(67)
    cprt = b"text" + bytes(4) + b"No copyright, test profile\0"
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)

    tags = [
        (b"desc", desc),
        (b"cprt", cprt),
        (b"wtpt", xyz(*D50)),
        (b"rXYZ", xyz(*primaries_d50[:, 0])),
        (b"gXYZ", xyz(*primaries_d50[:, 1])),
        (b"bXYZ", xyz(*primaries_d50[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data, placed = [], b"", {}
    for sig, body in tags:
        if body not in placed:  # the three curves share one copy, as real profiles do
            placed[body] = offset + len(data)
            data += body + bytes(-len(body) % 4)  # tag data starts on 4-byte boundaries
        table.append(struct.pack(">4sII", sig, placed[body], len(body)))
    size = offset + len(data)
    header = (
        struct.pack(">I4sI4s4s4s", size, b"lcms", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(4)  # platform
        + struct.pack(">I4s4s8sI", 0, bytes(4), bytes(4), bytes(8), 0)  # flags, maker, model, attributes, intent
        + _s15(D50[0])
        + _s15(D50[1])
        + _s15(D50[2])
        + bytes(4)  # creator
        + bytes(16)  # profile id (v4 only)
        + bytes(28)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(table) + data


def adobe_rgb_icc() -> bytes:
    return icc_profile_v2("Adobe RGB (1998)", ADOBE_RGB_D50, ADOBE_GAMMA)


def adobe_pattern(seed: int) -> np.ndarray:
    """SIZE blocks of ADOBE_COLOURS (Adobe RGB values), seeded."""
    rng = np.random.default_rng(seed)
    w, h = SIZE
    idx = rng.integers(0, len(ADOBE_COLOURS), size=(h // BLOCK, w // BLOCK))
    idx[0, 0] = 0
    return np.repeat(np.repeat(np.array(ADOBE_COLOURS, np.uint8)[idx], BLOCK, 0), BLOCK, 1)


def srgb_of_adobe(a: np.ndarray) -> np.ndarray:
    return np.rint(adobe_to_srgb(a)).astype(np.uint8)


ALPHA = np.full((SIZE[1], SIZE[0]), 255, np.uint8)
ALPHA[:, 64:96] = 0  # transparent columns of blocks
ALPHA[:, 96:] = 128  # and half-transparent ones


def with_alpha(a: np.ndarray) -> Image.Image:
    """RGBA (or LA, for grey) of `a` with ALPHA."""
    return Image.fromarray(np.dstack([a, ALPHA]), "LA" if a.ndim == 2 else "RGBA")


def on_grey(a: np.ndarray) -> np.ndarray:
    """What `with_alpha(a)` must decode to: composited on GREY."""
    alpha = (ALPHA / 255.0)[..., None] if a.ndim == 3 else ALPHA / 255.0
    return np.rint(a * alpha + GREY * (1 - alpha)).astype(np.uint8)


# ------------------------------------------------------------------------------------------- raw writers


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_raw(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None) -> bytes:
    """A PNG from raw scanlines (filter byte 0 each, already in the file's byte order); rows=None writes the
    header only (a decompression-bomb header: no pixel data at all)."""
    head = b"\x89PNG\r\n\x1a\n" + _png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    )
    if rows is None:
        return head
    return head + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b"")


def png_rgb48(a16: np.ndarray) -> bytes:
    """(h, w, 3) uint16 -> a 48-bit RGB PNG (Pillow cannot write one)."""
    h, w, _ = a16.shape
    rows = b"".join(b"\0" + a16[y].astype(">u2").tobytes() for y in range(h))
    return png_raw(w, h, 16, 2, rows)


def tiff_rgb48(a16: np.ndarray) -> bytes:
    """(h, w, 3) uint16 -> an uncompressed little-endian 48-bit RGB TIFF (Pillow cannot write one)."""
    h, w, _ = a16.shape
    pixels = a16.astype("<u2").tobytes()
    n_tags = 10
    ifd_at = 8
    extra_at = ifd_at + 2 + 12 * n_tags + 4  # BitsPerSample's three values live after the IFD
    data_at = extra_at + 6

    def tag(code: int, kind: int, count: int, value: int) -> bytes:
        packed = struct.pack("<H", value) + bytes(2) if kind == 3 and count == 1 else struct.pack("<I", value)
        return struct.pack("<HHI", code, kind, count) + packed

    tags = [
        tag(256, 4, 1, w),  # ImageWidth
        tag(257, 4, 1, h),  # ImageLength
        tag(258, 3, 3, extra_at),  # BitsPerSample -> (16, 16, 16)
        tag(259, 3, 1, 1),  # Compression: none
        tag(262, 3, 1, 2),  # PhotometricInterpretation: RGB
        tag(273, 4, 1, data_at),  # StripOffsets
        tag(277, 3, 1, 3),  # SamplesPerPixel
        tag(278, 4, 1, h),  # RowsPerStrip
        tag(279, 4, 1, len(pixels)),  # StripByteCounts
        tag(284, 3, 1, 1),  # PlanarConfiguration: chunky
    ]
    assert len(tags) == n_tags
    return (
        b"II*\0"
        + struct.pack("<I", ifd_at)
        + struct.pack("<H", n_tags)
        + b"".join(tags)
        + bytes(4)
        + (struct.pack("<3H", 16, 16, 16) + pixels)
    )


# ------------------------------------------------------------------------------------------------ corpus


def write_corpus(folder: Path) -> list[Case]:
    """Writes every case's file (or folder, link, unreadable file) under `folder` and returns the cases."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name: str, data: bytes, reason: str | None, check=None, size=None) -> Path:
        path = folder / name
        path.write_bytes(data)
        cases.append(Case(name, path, reason, check, size))
        return path

    seeds = iter(range(1000, 2000))

    def rgb(size: tuple[int, int] = SIZE) -> np.ndarray:
        return pattern(next(seeds), size)

    # --- ordinary and odd-but-fine files
    a = rgb()
    add("plain.jpg", jpeg(Image.fromarray(a)), None, checks(a, 6, format="JPEG", colour="sRGB"), SIZE)
    a = rgb()
    add("progressive.jpg", jpeg(Image.fromarray(a), progressive=True), None, checks(a, 6, format="JPEG"), SIZE)
    a = rgb()
    garbage = jpeg(Image.fromarray(a)) + b"\0" * 64 + b"trailing bytes after EOI"  # some cameras pad files
    add("trailing_garbage.jpg", garbage, None, checks(a, 6, format="JPEG"), SIZE)
    a = rgb()
    add("jpeg_named.png", jpeg(Image.fromarray(a)), None, checks(a, 6, format="JPEG"), SIZE)
    a = rgb()
    add("png_without_suffix", encode(Image.fromarray(a), "PNG"), None, checks(a, 0, format="PNG"), SIZE)
    a = rgb()
    add("plain.bmp", encode(Image.fromarray(a), "BMP"), None, checks(a, 0, format="BMP"), SIZE)
    g = pattern(next(seeds), grey=True)
    add("grey.jpg", jpeg(Image.fromarray(g)), None, checks(g, 6, format="JPEG", colour="greyscale"), SIZE)
    bits = pattern(next(seeds), grey=True) > 128
    bilevel = np.where(bits, 255, 0).astype(np.uint8)
    add("bilevel.png", encode(Image.fromarray(bits), "PNG"), None, checks(bilevel, 0, colour="1-bit"), SIZE)
    add(
        "one_pixel.png",
        encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"),
        None,
        checks(np.array([[[10, 20, 30]]], np.uint8), 0),
        (1, 1),
    )
    # A 66000 x 40 panorama: past JPEG's 65,535 px limit, so it must never be re-encoded as JPEG at full size.
    pano = np.tile(pattern(next(seeds), (BLOCK * 5, 40)), (1, 66000 // (BLOCK * 5) + 1, 1))[:, :66000]
    add("panorama.png", encode(Image.fromarray(pano), "PNG", compress_level=1), None, checks(pano, 0), (66000, 40))

    # --- EXIF orientation: the file stores the pixels turned; the tag says how to turn them upright
    for orientation in range(2, 9):
        a = rgb()
        stored = upright_to_stored(Image.fromarray(a), orientation)
        size = SIZE
        add(
            f"exif_orientation_{orientation}.jpg",
            jpeg(stored, exif=exif_bytes(orientation)),
            None,
            checks(a, 6, orientation=orientation, size=size, scale=1.0),
            size,
        )
    a = rgb()
    add(
        "exif_orientation_invalid.jpg",
        jpeg(Image.fromarray(a), exif=exif_bytes(9)),
        None,
        checks(a, 6, orientation=1, notes=lambda n: any("invalid" in x for x in n)),
        SIZE,
    )
    a = rgb()
    broken_exif = b"Exif\0\0MM\0*\0\0\0\x08\0\x05\x01\x12"  # an IFD that claims 5 entries and ends mid-entry
    add("exif_broken.jpg", jpeg(Image.fromarray(a), exif=broken_exif), None, checks(a, 6, orientation=1), SIZE)

    # --- colour: ICC profiles, CMYK
    adobe, icc_colour = adobe_rgb_icc(), "icc:Adobe RGB (1998)"
    a = adobe_pattern(next(seeds))
    png_adobe = encode(Image.fromarray(a), "PNG", icc_profile=adobe)
    add("adobe_rgb.png", png_adobe, None, checks(srgb_of_adobe(a), 2, colour=icc_colour), SIZE)
    a = adobe_pattern(next(seeds))
    jpeg_adobe = jpeg(Image.fromarray(a), icc_profile=adobe, quality=100, subsampling=0)
    add("adobe_rgb.jpg", jpeg_adobe, None, checks(srgb_of_adobe(a), 4, colour=icc_colour, format="JPEG"), SIZE)
    a = rgb()
    srgb_icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    add("srgb_icc.jpg", jpeg(Image.fromarray(a), icc_profile=srgb_icc), None, checks(a, 6, colour="sRGB"), SIZE)
    a = rgb()
    add(
        "icc_broken.jpg",
        jpeg(Image.fromarray(a), icc_profile=b"this is not an ICC profile" * 4),
        None,
        checks(a, 6, colour=lambda c: "icc unreadable" in c),
        SIZE,
    )
    a = rgb()
    cmyk_bytes = np.concatenate([255 - a, np.zeros_like(a[..., :1])], axis=2).tobytes()  # C, M, Y = 255 - R, G, B
    # Pillow writes CMYK JPEGs the Adobe way (inverted, with an APP14 marker), as Photoshop does.
    add("cmyk.jpg", jpeg(Image.frombytes("CMYK", SIZE, cmyk_bytes)), None, checks(a, 8, colour="CMYK"), SIZE)

    # --- more than 8 bits per channel: scaled by 1/257, not clipped at 255 (white)
    def grey16() -> tuple[np.ndarray, np.ndarray]:
        g = pattern(next(seeds), grey=True).astype(np.uint16) * 257 + 100  # the low byte matters too
        return g, np.rint(g / 257).astype(np.uint8)

    scaled = "16-bit scaled"
    g, g8 = grey16()
    add("grey16.png", encode(Image.fromarray(g), "PNG"), None, checks(g8, 1, colour=scaled), SIZE)
    g, g8 = grey16()
    add("grey16.tif", encode(Image.fromarray(g), "TIFF"), None, checks(g8, 1, colour=scaled), SIZE)
    g, g8 = grey16()
    big_endian = Image.frombytes("I;16B", SIZE, g.astype(">u2").tobytes())  # (convert("I;16B") clips at 255)
    add("grey16_big_endian.tif", encode(big_endian, "TIFF"), None, checks(g8, 1, colour=scaled), SIZE)
    a = rgb()
    add("rgb48.png", png_rgb48(a.astype(np.uint16) * 257), None, checks(a, 1, format="PNG"), SIZE)
    a = rgb()
    add("rgb48.tif", tiff_rgb48(a.astype(np.uint16) * 257), None, checks(a, 1, format="TIFF"), SIZE)
    f = pattern(next(seeds), grey=True)
    as_float = Image.fromarray((f / 255).astype(np.float32))
    add("float.tif", encode(as_float, "TIFF"), None, checks(f, 1, colour=lambda c: "float" in c), SIZE)
    i32 = pattern(next(seeds), grey=True).astype(np.int32) * 1000 - 100_000  # a range no 8 or 16 bits hold
    stretched = np.rint((i32 - i32.min()) * 255 / (i32.max() - i32.min())).astype(np.uint8)
    add("int32.tif", encode(Image.fromarray(i32), "TIFF"), None, checks(stretched, 1, colour="range stretched"), SIZE)

    # --- transparency: composited on grey, not black
    a = rgb()
    add("rgba.png", encode(with_alpha(a), "PNG"), None, checks(on_grey(a), 1, colour="alpha on grey"), SIZE)
    a = rgb()
    webp = encode(with_alpha(a), "WEBP", lossless=True)
    add("webp_lossless_alpha.webp", webp, None, checks(on_grey(a), 1, format="WEBP"), SIZE)
    g = pattern(next(seeds), grey=True)
    add(
        "grey_alpha.png",
        encode(with_alpha(g), "PNG"),
        None,
        checks(on_grey(g), 1, colour="greyscale; alpha on grey"),
        SIZE,
    )
    a = rgb()
    colours, index = np.unique(a.reshape(-1, 3), axis=0, return_inverse=True)
    index = index.reshape(a.shape[:2]).astype(np.uint8) + 1
    index[:16, 16:32] = 0  # palette entry 0 is transparent (tRNS)
    pal = Image.fromarray(index)
    pal.putpalette([0, 0, 0] + colours.flatten().tolist())  # L + palette -> P
    expected = a.copy()
    expected[:16, 16:32] = GREY
    trns = encode(pal, "PNG", transparency=0)
    add("palette_trns.png", trns, None, checks(expected, 0, colour="palette; alpha on grey"), SIZE)

    # --- several frames: the first is used
    for name, fmt, params, tol in [
        ("animated.gif", "GIF", {"duration": 100, "loop": 0}, 2),
        ("animated.png", "PNG", {}, 0),  # APNG
        ("multipage.tif", "TIFF", {}, 0),
        ("animated.webp", "WEBP", {"lossless": True}, 1),
    ]:
        first, second = Image.fromarray(rgb()), Image.fromarray(rgb())
        data = encode(first, fmt, save_all=True, append_images=[second], **params)
        add(name, data, None, checks(np.asarray(first), tol, frames=2, format=fmt), SIZE)

    # --- HEIF (pillow-heif) and AVIF (Pillow's own plugin)
    import pillow_heif

    pillow_heif.register_heif_opener()  # to *write* HEIF here; carvision.images registers it for reading itself
    a = rgb()
    heic = encode(Image.fromarray(a), "HEIF", quality=95)
    add("photo.heic", heic, None, checks(a, 14, format="HEIF"), SIZE)
    a = rgb()
    stored = upright_to_stored(Image.fromarray(a), 6)
    add(
        "rotated.heic",
        encode(stored, "HEIF", quality=95, exif=exif_bytes(6)),
        None,
        checks(a, 14, format="HEIF", orientation=6, size=SIZE),
        SIZE,
    )
    heic_cut = heic[: len(heic) // 2]
    add("heic_cut.heic", heic_cut, "corrupt_image")
    a = rgb()
    add("photo.avif", encode(Image.fromarray(a), "AVIF", quality=95), None, checks(a, 14, format="AVIF"), SIZE)
    a = rgb()
    stored = upright_to_stored(Image.fromarray(a), 8)
    add(
        "rotated.avif",
        encode(stored, "AVIF", quality=95, exif=exif_bytes(8)),
        None,
        checks(a, 14, format="AVIF", orientation=8, size=SIZE),
        SIZE,
    )

    # --- cut off: detected, never painted grey
    noisy = np.random.default_rng(7).integers(0, 256, size=(96, 128, 3), dtype=np.uint8)  # big entropy data
    whole = jpeg(Image.fromarray(noisy), quality=90)
    add("jpeg_cut_50.jpg", whole[: len(whole) // 2], "truncated_image")
    add("jpeg_cut_99.jpg", whole[: int(len(whole) * 0.99)], "truncated_image")
    add("jpeg_without_eoi.jpg", whole[:-2], "truncated_image")
    whole_png = encode(Image.fromarray(noisy), "PNG")
    add("png_cut_50.png", whole_png[: len(whole_png) // 2], "truncated_image")
    add("png_without_iend.png", whole_png[:-12], "truncated_image")  # Pillow alone decodes this one

    # --- not images at all
    add("empty.jpg", b"", "empty_file")
    add("text.jpg", b"404 Not Found\n", "not_an_image")
    add("page.jpg", b"<!doctype html>\n<html><body>Access denied</body></html>\n", "not_an_image")
    add("random.jpg", b"\x00\x01" + np.random.default_rng(3).bytes(4096), "not_an_image")
    add("bomb_header.png", png_raw(100_000, 100_000, 8, 2, None), "too_many_pixels")  # 10^10 px claimed, 33 bytes
    # The same claim with the start of its pixel data: Pillow opens it, and must not be asked to decode it.
    first_rows = zlib.compressobj().compress(bytes(3 * 100_000 + 1) * 4)
    bomb = png_raw(100_000, 100_000, 8, 2, None) + _png_chunk(b"IDAT", first_rows) + _png_chunk(b"IEND", b"")
    add("bomb.png", bomb, "too_many_pixels")

    # --- file system oddities
    unreadable = add("unreadable.jpg", jpeg(Image.fromarray(rgb())), "unreadable_file")
    unreadable.chmod(0)
    if os.geteuid() == 0:  # root reads it anyway: then it is an ordinary photo
        cases[-1] = Case(cases[-1].name, unreadable, None, lambda d: None, SIZE)
    (folder / "a_folder.jpg").mkdir(exist_ok=True)
    cases.append(Case("a_folder.jpg", folder / "a_folder.jpg", "not_a_file"))
    loop_a, loop_b = folder / "loop_a.jpg", folder / "loop_b.jpg"
    for link, target in ((loop_a, loop_b.name), (loop_b, loop_a.name)):
        if not link.is_symlink():
            link.symlink_to(target)
    cases.append(Case("loop_a.jpg", loop_a, "symlink_loop"))
    dangling = folder / "dangling.jpg"
    if not dangling.is_symlink():
        dangling.symlink_to("no_such_target.jpg")
    cases.append(Case("dangling.jpg", dangling, "missing_file"))
    cases.append(Case("missing.jpg", folder / "missing.jpg", "missing_file"))
    long_name = "x" * 300 + ".jpg"  # NAME_MAX is 255 bytes: such a file cannot exist
    cases.append(Case(long_name, folder / long_name, "name_too_long"))
    return cases
