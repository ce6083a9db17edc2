"""Safe image opening: every failure becomes an `ImageRejected` with a reason, never a crash."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError


class ImageRejected(Exception):
    """An image that a stage cannot use; `reason` is a short code that goes into drop reports."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def read_image_bytes(path: str | Path) -> bytes:
    """The file's bytes; a missing or empty file is an `ImageRejected`, not an exception to handle elsewhere."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError) as e:
        raise ImageRejected("missing_file", str(path)) from e
    if not data:
        raise ImageRejected("empty_file")
    return data


def decode_rgb(data: bytes, *, max_pixels: int) -> Image.Image:
    """Decodes an image file's bytes fully, applies its EXIF orientation and returns an upright RGB image.

    Args:
        max_pixels: refuse images with more pixels than this before decoding them (decompression bombs).
    """
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past 2x its own limit raises) on large images; our own limit is the policy.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > max_pixels:
                    raise ImageRejected("too_many_pixels", f"{im.width}x{im.height}")
                im.load()
                upright = ImageOps.exif_transpose(im)
                return upright.convert("RGB")
    except ImageRejected:
        raise
    except UnidentifiedImageError as e:
        raise ImageRejected("not_an_image", type(e).__name__) from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageRejected("too_many_pixels", str(e)[:200]) from e
    except (OSError, SyntaxError, ValueError) as e:
        # Truncated JPEGs raise OSError on load(); corrupt headers raise SyntaxError or ValueError.
        raise ImageRejected("corrupt_image", f"{type(e).__name__}: {e}"[:200]) from e


def open_rgb(path: str | Path, *, max_pixels: int) -> Image.Image:
    """`decode_rgb` of the file at `path`."""
    return decode_rgb(read_image_bytes(path), max_pixels=max_pixels)
