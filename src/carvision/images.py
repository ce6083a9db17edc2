"""One image decoder for every stage and for inference: real-world files in, upright 8-bit sRGB out.

Every failure is an `ImageRejected` with a short reason (it becomes one dropped row, never a crashed stage):

| reason | when |
|---|---|
| `missing_file`, `unreadable_file`, `symlink_loop`, `name_too_long`, `not_a_file`, `read_error` | reading failed |
| `empty_file`, `file_too_large` | zero bytes, more than `max_bytes` |
| `not_an_image` | no image signature that Pillow (or pillow-heif) knows |
| `too_many_pixels` | width x height above `max_pixels`, refused from the header before decoding |
| `truncated_image` | the data ends early (JPEG without EOI after its last scan, PNG without IEND, ...) |
| `corrupt_image` | a known format whose data Pillow cannot decode |
| `unsupported_image` | a valid file in a mode or variant that we cannot turn into RGB |

What `decode` does to the pixels, in order: picks the first frame; for JPEG, optionally decodes at a reduced DCT
scale (`draft`); brings 16-bit, float, 1-bit, palette and CMYK data to 8 bits; converts an embedded ICC profile to
sRGB; composites transparency on mid-grey; applies the EXIF orientation. `Decoded.colour` says which of these ran.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import re
import stat
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

MAX_BYTES = 200_000_000  # bytes read from one file at most: a photo is < 50 MB; more is a wrong file or an attack
GREY = (128, 128, 128)  # what transparent pixels become (see _flatten_alpha)
ORIENTATION_TAG = 0x0112
JPEG_SCALES = (8, 4, 2, 1)  # the DCT reductions libjpeg decodes directly: 1/8, 1/4, 1/2, 1

# Pillow exceptions for bad data are not one hierarchy: plugins raise whatever their parser hits.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    SyntaxError,
    ValueError,  # includes pillow-heif's "Invalid input" errors
    EOFError,
    struct.error,
    LookupError,  # IndexError, KeyError
    TypeError,
    ArithmeticError,  # ZeroDivisionError, OverflowError
    MemoryError,
    RuntimeError,  # pillow-heif / libheif
    NotImplementedError,
    AttributeError,  # a few plugins on malformed headers
    zlib.error,
    Image.DecompressionBombError,
    ImageCms.PyCMSError,
)

_READ_ERRNO = {
    errno.ENOENT: "missing_file",
    errno.ENOTDIR: "missing_file",  # a component of the path is a file
    errno.EACCES: "unreadable_file",
    errno.EPERM: "unreadable_file",
    errno.ELOOP: "symlink_loop",
    errno.ENAMETOOLONG: "name_too_long",
    errno.EISDIR: "not_a_file",
}
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
# A marker inside entropy-coded JPEG data: 0xFF followed by anything but a stuffed 0x00, a restart marker
# (0xD0-0xD7) or another 0xFF (fill byte); the regex engine scans in C, so a 10 MB scan takes milliseconds.
_JPEG_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SRGB_D50_COLORANTS = (
    (0.4361, 0.2225, 0.0139),
    (0.3851, 0.7169, 0.0971),
    (0.1431, 0.0606, 0.7141),
)


class ImageRejected(Exception):
    """An image that a stage cannot use; `reason` is a short code that goes into drop reports."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Decoded:
    """A decoded photo and how it was made."""

    image: Image.Image
    """upright, 8-bit RGB, sRGB; possibly reduced (see `scale`); no metadata in `image.info`"""
    format: str
    """detected from the bytes, never the suffix: JPEG, PNG, WEBP, GIF, BMP, TIFF, HEIF, AVIF, MPO, ..."""
    orientation: int
    """the EXIF orientation (1-8) that was applied; 1 when none or invalid"""
    colour: str
    """how the pixels were brought to 8-bit sRGB: "sRGB" (nothing to do), or steps joined with "; ", e.g.
    "icc:Adobe RGB (1998)", "16-bit scaled; alpha on grey", "CMYK", "palette", "icc unreadable"."""
    frames: int
    """frames in the file; only the first is decoded"""
    size: tuple[int, int]
    """upright (width, height) at full resolution, even when decoded reduced"""
    scale: float
    """decoded width / full width: 1.0, or about 1/2, 1/4, 1/8 after a reduced JPEG decode"""
    notes: tuple[str, ...] = ()
    """problems that did not cost the photo, e.g. "exif unreadable", "icc unreadable: ..." """


def _clip(text: object, n: int = 200) -> str:
    return str(text)[:n]


def read_image_bytes(path: str | Path, *, max_bytes: int = MAX_BYTES) -> bytes:
    """The file's bytes; any failure to read them is an `ImageRejected` with a reason.

    Args:
        max_bytes: larger files are refused (`file_too_large`) without reading them.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not hang the stage; it is then refused below as not a regular file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ImageRejected(_READ_ERRNO.get(e.errno or 0, "read_error"), _clip(f"{e.strerror}: {path}")) from e
    except ValueError as e:  # an embedded NUL byte; surrogates that the file system cannot encode
        raise ImageRejected("bad_path", _clip(e)) from e
    try:
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ImageRejected("not_a_file", "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
            if st.st_size > max_bytes:
                raise ImageRejected("file_too_large", f"{st.st_size} bytes > {max_bytes}")
            data = f.read(max_bytes + 1)  # the file may grow between fstat and read
    except OSError as e:
        raise ImageRejected(_READ_ERRNO.get(e.errno or 0, "read_error"), _clip(f"{e.strerror}: {path}")) from e
    if len(data) > max_bytes:
        raise ImageRejected("file_too_large", f"more than {max_bytes} bytes")
    if not data:
        raise ImageRejected("empty_file")
    return data


def sniff_format(data: bytes) -> str | None:
    """The image format that the first bytes announce (None when none does); used to tell a broken image from a
    file that is not an image, to load the HEIF plugin only when needed, and by the scrape to refuse an HTML page
    served as an image."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    # BMP: "BM", the file size, then 4 reserved bytes that are zero; the zeros keep text starting "BM" out.
    if head[:2] == b"BM" and len(head) >= 14 and head[6:10] == b"\x00\x00\x00\x00":
        return "BMP"
    if head[4:8] == b"ftyp":
        box_end = min(int.from_bytes(head[:4], "big"), len(head))
        # The major brand (bytes 8-12) and the compatible brands after the minor version (from byte 16).
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
        if brands & _AVIF_BRANDS:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
    if head.startswith((b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51")):
        return "JPEG2000"
    return None


def jpeg_is_complete(data: bytes) -> bool:
    """Whether the JPEG's segments and scans end in an EOI marker (0xFFD9); bytes after it are allowed.

    libjpeg pads a cut-off scan with grey and only warns, so the decoder alone cannot be trusted to notice.
    Walks the segment lengths (so markers inside EXIF thumbnails are skipped) and, after each SOS, searches the
    entropy-coded data for the next marker; the first EOI ends the image (an MPO's second picture follows it).
    """
    n, pos = len(data), 2
    while pos < n:
        if data[pos] != 0xFF:  # stray bytes between segments: libjpeg skips to the next marker, so do we
            nxt = data.find(b"\xff", pos)
            if nxt < 0:
                return False
            pos = nxt
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            return False
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return True
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
            continue
        if pos + 2 > n:
            return False
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > n:
            return False
        pos += length
        if marker == 0xDA:  # a scan: entropy-coded data runs to the next marker
            m = _JPEG_MARKER_IN_SCAN.search(data, pos)
            if m is None:
                return False
            pos = m.start()
    return False


def png_is_complete(data: bytes) -> bool:
    """Whether the PNG's chunks run, by their lengths, to an IEND chunk (Pillow decodes a PNG cut after its last
    IDAT without complaint)."""
    n, pos = len(data), 8
    while pos + 8 <= n:
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length  # length, type, data, CRC
        if end > n:
            return False
        if kind == b"IEND":
            return True
        pos = end
    return False


_STRUCTURE_CHECKS = {"JPEG": jpeg_is_complete, "MPO": jpeg_is_complete, "PNG": png_is_complete}


@functools.cache
def _register_heif() -> bool:
    """Registers pillow-heif's opener the first time a HEIF file is seen; False when pillow-heif is missing."""
    try:
        import pillow_heif
    except ImportError:
        return False
    # Thumbnails, depth maps and auxiliary images are never used: do not decode them.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    return True


def _allow_up_to(max_pixels: int) -> None:
    """Keeps Pillow's own bomb check (it raises above 2x `Image.MAX_IMAGE_PIXELS` inside `Image.open`) from
    refusing images under our limit; our check, on the header, is the policy. Only ever raised, never lowered,
    so a caller that set a higher or no limit keeps it."""
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _png_header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR, read before Pillow sees the file: Pillow cannot even open a header
    without pixel data, and a bomb must be refused as such, whatever follows its header."""
    if len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


def _jpeg_scale(width: int, height: int, min_side: int | None, min_scale: float) -> int:
    """The largest DCT reduction (8, 4, 2 or 1) that keeps 1/scale >= min_scale and the shorter side >= min_side."""
    short = min(width, height)
    for s in JPEG_SCALES:
        if 1 / s < min_scale:
            continue
        if min_side is not None and (short < min_side or -(-short // s) < min_side):
            continue
        if s > short:
            continue
        return s
    return 1


def _orientation(im: Image.Image, notes: list[str]) -> int:
    """The EXIF orientation 1-8; 1 (with a note) when the EXIF block or the value is broken."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # Pillow reports a corrupt EXIF block as a warning, then skips it
            value = im.getexif().get(ORIENTATION_TAG, 1)
    except DECODE_ERRORS as e:
        notes.append(_clip(f"exif unreadable: {type(e).__name__}", 80))
        return 1
    if caught:
        notes.append(_clip(f"exif corrupt: {caught[0].message}", 80))
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, int) and 1 <= value <= 8:
        return value
    notes.append(_clip(f"exif orientation {value!r} invalid", 80))
    return 1


def _scale_to_8bit(im: Image.Image, colour: list[str]) -> Image.Image:
    """I;16*, I and F greyscale -> L. Pillow's own convert clips these to 255 (white); we scale instead."""
    a = np.asarray(im)
    if a.dtype.kind == "u" or (a.dtype.kind == "i" and a.size and a.min() >= 0 and a.max() <= 65535):
        # 16-bit data (I;16 from PNG/TIFF, or 16-bit values widened to I): round(v / 257) maps 65535 to 255.
        out = (a.astype(np.uint32) + 128) // 257
        colour.append("16-bit scaled")
        return Image.fromarray(out.astype(np.uint8))
    x = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if a.dtype.kind == "f" and lo >= 0 and hi <= 1:
        x, note = x * 255, "float scaled 0-1"  # float images usually hold 0..1
    elif lo >= 0 and hi <= 255:
        note = "float 0-255"
    elif lo >= 0 and hi <= 65535:
        x, note = x / 257, "float scaled 0-65535"
    else:  # arbitrary range (32-bit integers, HDR floats): stretch what is there
        x, note = (x - lo) * (255 / (hi - lo) if hi > lo else 0.0), "range stretched"
    colour.append(note)
    return Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))


def _to_8bit(im: Image.Image, colour: list[str]) -> Image.Image:
    """Any Pillow mode -> L, LA, RGB, RGBA or CMYK (8 bits per channel), recording what was done."""
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        if mode in ("L", "LA"):
            colour.append("greyscale")
        return im
    if mode == "1":
        colour.append("1-bit")
        return im.convert("L")
    if mode in ("P", "PA"):
        colour.append("palette")
        transparent = mode == "PA" or "transparency" in im.info
        return im.convert("RGBA" if transparent else "RGB")
    if mode.startswith("I") or mode == "F":
        return _scale_to_8bit(im, colour)
    if mode in ("La", "RGBa", "RGBX", "YCbCr", "HSV"):
        return im.convert({"La": "LA", "RGBa": "RGBA"}.get(mode, "RGB"))
    if mode == "LAB":
        colour.append("CIELAB")
        lab_to_srgb = _transform_between(ImageCms.createProfile("LAB"), "LAB")
        return ImageCms.applyTransform(im, lab_to_srgb)
    try:
        return im.convert("RGBA" if "A" in mode else "RGB")
    except ValueError as e:
        raise ImageRejected("unsupported_image", f"mode {mode}") from e


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _transform_between(source: ImageCms.core.CmsProfile, in_mode: str) -> ImageCms.ImageCmsTransform:
    # Relative colorimetric: colours inside sRGB's gamut keep their exact colorimetry (a red car stays that red),
    # and only out-of-gamut colours are clipped. Perceptual would compress the whole gamut, but camera and editor
    # profiles (Adobe RGB, Display P3) are matrix/TRC profiles without perceptual tables, so littlecms would fall
    # back to colorimetric anyway; asking for it explicitly makes the result the same for every profile.
    return ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(source), _srgb_profile(), in_mode, "RGB", ImageCms.Intent.RELATIVE_COLORIMETRIC
    )


@functools.lru_cache(maxsize=32)
def _icc_plan(icc: bytes, mode: str) -> tuple[str, ImageCms.ImageCmsTransform | None]:
    """(what to record, transform or None) for an embedded profile on an image of `mode` (L, RGB or CMYK).

    Cached by the profile's bytes: photos from one camera or editor share a profile, and building a transform
    costs about a millisecond."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile
    space = profile.xcolor_space.strip()
    expected = {"L": "GRAY", "RGB": "RGB", "CMYK": "CMYK"}[mode]
    if space != expected:
        return f"icc ignored: {space} profile on {mode}", None
    name = " ".join((ImageCms.getProfileDescription(profile) or "unnamed").split())[:60]
    if mode == "RGB" and ("srgb" in name.lower() or _has_srgb_colorants(profile)):
        return "sRGB", None
    return f"icc:{name}", _transform_between(profile, mode)


def _has_srgb_colorants(profile: ImageCms.core.CmsProfile) -> bool:
    try:
        colorants = [c[0] for c in (profile.red_colorant, profile.green_colorant, profile.blue_colorant)]
    except (TypeError, IndexError, AttributeError):
        return False
    return bool(np.allclose(np.array(colorants, dtype=float), _SRGB_D50_COLORANTS, atol=0.003))


def _to_srgb(im: Image.Image, icc: bytes | None, colour: list[str], notes: list[str]) -> Image.Image:
    """L, RGB or CMYK (8-bit) -> RGB in sRGB, through the embedded profile when there is one."""
    if icc:
        try:
            what, transform = _icc_plan(icc, im.mode)
            if transform is not None:
                im = ImageCms.applyTransform(im, transform)
            colour.append(what)
        except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as e:
            # A broken profile must not cost the photo: the pixels are most likely sRGB-ish anyway.
            colour.append("icc unreadable")
            notes.append(_clip(f"icc unreadable: {type(e).__name__}: {e}", 120))
    if im.mode == "CMYK":
        colour.append("CMYK")  # no usable profile: Pillow's naive conversion (Adobe-inverted JPEGs are un-inverted)
    return im if im.mode == "RGB" else im.convert("RGB")


def _flatten_alpha(im: Image.Image, alpha: Image.Image, colour: list[str]) -> Image.Image:
    """Composites on mid-grey. Black (what dropping alpha gives) reads as a dark shadow and white as a studio
    backdrop; grey 128 is neutral and close to the ImageNet mean (124, 116, 104) the backbones normalise with,
    so transparent areas carry almost no signal. JPEG, which the clean stage writes, has no alpha at all."""
    if alpha.getextrema()[0] == 255:
        return im  # fully opaque: nothing to composite
    out = Image.new("RGB", im.size, GREY)
    out.paste(im, (0, 0), alpha)
    colour.append("alpha on grey")
    return out


def _decode_open(
    im: Image.Image,
    data: bytes,
    max_pixels: int,
    min_side: int | None,
    min_scale: float | Callable[[tuple[int, int]], float],
    sniffed: str | None,
) -> Decoded:
    fmt = im.format or sniffed or "unknown"
    width, height = im.size
    if width < 1 or height < 1:
        raise ImageRejected("corrupt_image", f"{width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected("too_many_pixels", f"{width}x{height}")
    check = _STRUCTURE_CHECKS.get(fmt)
    if check is not None and not check(data):
        raise ImageRejected("truncated_image", f"{fmt} ends before its end marker ({len(data)} bytes)")
    notes: list[str] = []
    try:
        frames = int(getattr(im, "n_frames", 1))  # GIF counts by walking its frames; a broken later one is no loss
    except DECODE_ERRORS as e:
        frames = 1
        notes.append(_clip(f"frame count unreadable: {type(e).__name__}", 80))
    if fmt == "HEIF":
        # pillow-heif has already turned the image upright (libheif applies irot/imir) and reset the EXIF tag.
        orientation = int(im.info.get("original_orientation") or 1)
        orientation = orientation if 1 <= orientation <= 8 else 1
        swap = False
    else:
        orientation = _orientation(im, notes)
        swap = orientation >= 5
    full = (height, width) if swap else (width, height)
    if callable(min_scale):
        min_scale = min_scale(full)
    if fmt in ("JPEG", "MPO") and min_scale < 1:
        s = _jpeg_scale(width, height, min_side, min_scale)
        if s > 1:
            im.draft("RGB", (width // s, height // s))  # libjpeg decodes at 1/s directly: ~s^2 less work
    icc = im.info.get("icc_profile")
    im.load()
    decoded_width = im.height if swap else im.width
    colour: list[str] = []
    out = _to_8bit(im, colour)
    alpha = None
    if out.mode in ("LA", "RGBA"):
        alpha = out.getchannel("A")
        out = out.convert(out.mode[:-1])
    out = _to_srgb(out, icc if isinstance(icc, bytes) else None, colour, notes)
    if alpha is not None:
        out = _flatten_alpha(out, alpha, colour)
    if orientation != 1 and fmt != "HEIF":
        out = out.transpose(_ORIENTATION_TRANSPOSE[orientation])
    if out is im:
        # A plain Image on the same pixel buffer, without the file's metadata (an ICC profile or EXIF block must
        # not travel with the converted pixels). `_new` wraps the buffer; `copy()` would cost a 6 MB allocation
        # and memcpy per 1.5 MP photo, ~10 % of its decode.
        out = im._new(im.im)
    out.info = {}
    kept = [c for c in colour if c not in ("sRGB",)]
    return Decoded(
        image=out,
        format=fmt,
        orientation=orientation,
        colour="; ".join(kept) if kept else "sRGB",
        frames=max(frames, 1),
        size=full,
        scale=decoded_width / full[0],
        notes=tuple(notes),
    )


def decode(
    data: bytes,
    *,
    max_pixels: int,
    min_side: int | None = None,
    min_scale: float | Callable[[tuple[int, int]], float] | None = None,
) -> Decoded:
    """Decodes an image file's bytes into an upright 8-bit sRGB image.

    A JPEG is decoded at the smallest DCT scale (1/8, 1/4, 1/2 or 1) that satisfies both `min_side` and
    `min_scale`; with neither given, at full resolution. Other formats always decode at full resolution.

    Args:
        max_pixels: refuse images with more pixels than this, from the header, before decoding them.
        min_side: px; the decoded shorter side stays at least this (a photo already smaller decodes full size).
        min_scale: the decoded width / full width stays at least this; None: 1/8 when `min_side` is given
            (the side is the constraint), else 1.0 (full resolution). A function of the upright full-resolution
            (width, height), read from the header, when the scale depends on it (a crop bounded to a size).
    """
    if min_scale is None:
        min_scale = 1 / 8 if min_side is not None else 1.0
    if not data:
        raise ImageRejected("empty_file")
    sniffed = sniff_format(data)
    if sniffed == "HEIF" and not _register_heif():
        raise ImageRejected("unsupported_image", "HEIF needs pillow-heif")
    header_size = _png_header_size(data) if sniffed == "PNG" else None
    if header_size is not None and header_size[0] * header_size[1] > max_pixels:
        raise ImageRejected("too_many_pixels", f"{header_size[0]}x{header_size[1]}")
    _allow_up_to(max_pixels)
    # A truncated image must be refused, not painted grey; another library may have switched this on globally.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is the policy
            # Pillow's per-file complaints (corrupt EXIF, ...) would flood a stage's log; notes keep what matters.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            with Image.open(io.BytesIO(data)) as im:
                return _decode_open(im, data, max_pixels, min_side, min_scale, sniffed)
    except ImageRejected:
        raise
    except UnidentifiedImageError as e:
        if sniffed is None:
            raise ImageRejected("not_an_image", "no known image signature") from e
        raise ImageRejected("corrupt_image", f"{sniffed} that Pillow cannot open") from e
    except Image.DecompressionBombError as e:
        raise ImageRejected("too_many_pixels", _clip(e)) from e
    except DECODE_ERRORS as e:
        message = f"{type(e).__name__}: {e}"
        if "truncated" in str(e).lower() or isinstance(e, EOFError):
            raise ImageRejected("truncated_image", _clip(message)) from e
        if isinstance(e, NotImplementedError) or "not supported" in str(e) or "unsupported" in str(e).lower():
            raise ImageRejected("unsupported_image", _clip(message)) from e
        raise ImageRejected("corrupt_image", _clip(message)) from e


def decode_rgb(data: bytes, *, max_pixels: int) -> Image.Image:
    """`decode(...).image` at full resolution: the upright 8-bit sRGB image."""
    return decode(data, max_pixels=max_pixels).image


def open_rgb(path: str | Path, *, max_pixels: int, max_bytes: int = MAX_BYTES) -> Image.Image:
    """`decode_rgb` of the file at `path`."""
    return decode_rgb(read_image_bytes(path, max_bytes=max_bytes), max_pixels=max_pixels)


def tune_allocator(blocks_max: int = 4) -> None:
    """Lets Pillow keep up to `blocks_max` freed image blocks (16 MB each) for the next image, per process.

    Without it, each large image buffer is returned to the OS when freed and the next one is page-faulted in
    again. Measured with benchmarks/decode.py (2 shared cores, CPU per image): a 12 MP full-resolution decode
    1.5-1.6x less CPU (11,690 -> 559 page faults); no gain for 1.5 MP photos or reduced (draft) decodes,
    whose single buffer glibc already reuses. So `decode` does not call it; a process that decodes many large
    photos at full resolution should, once. Costs up to blocks_max x 16 MB of memory kept; PILLOW_BLOCKS_MAX,
    when set, wins.
    """
    if "PILLOW_BLOCKS_MAX" in os.environ:
        return
    Image.core.set_blocks_max(max(Image.core.get_blocks_max(), blocks_max))
