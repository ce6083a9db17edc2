"""Names that come from a scrape or a disk (listing ids, file names, class folders) and become paths or manifest text.

Two directions: names read from a CSV are checked lexically before they are joined onto a root (`is_plain_name`),
and names read from a disk are checked for being storable text (`is_utf8`, `utf8_safe`) before they reach parquet.
Outputs that stages write are named with `safe_name` / `image_output_path`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_CHARS = 80  # well under the 255-byte limit of common filesystems, leaving room for suffixes


def _digest(name: str) -> str:
    # surrogatepass: a name read from a non-UTF-8 disk (surrogates) hashes instead of raising; still one-to-one.
    return hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def safe_name(name: str) -> str:
    """A file-system-safe, collision-resistant version of `name`.

    Unsafe characters become `_`; leading dots are stripped (no hidden files, no `..`). When anything
    changed, a short hash of the original is appended so that `a/b` and `a_b` stay distinct.
    """
    cleaned = _UNSAFE.sub("_", name).lstrip(".")[:MAX_NAME_CHARS]
    if cleaned == name and cleaned:
        return cleaned
    return f"{cleaned or 'x'}-{_digest(name)}"


def is_plain_name(name: str) -> bool:
    """True when `name` is one ordinary path component: not empty, `.` or `..`, no separator, no NUL.

    Lexical on purpose: a scraped `../x` or `/etc/passwd` is refused by what it says, while a photo that is a
    symlink (a dataset arranged with links, a DVC `symlink` checkout) is accepted wherever it points.
    """
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\x00")


def is_inside(path: Path, root: Path) -> bool:
    """True when `path` resolves to a location under `root` (symlinks and `..` followed)."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def is_utf8(text: str) -> bool:
    """False for text holding surrogates: what Python makes of a non-UTF-8 file name (surrogateescape).

    Parquet stores UTF-8 only, so such a name cannot go into a manifest as it is.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def utf8_safe(text: str) -> str:
    """`text` with every undecodable byte written as `\\xNN`: storable, readable, and unchanged when already UTF-8."""
    if is_utf8(text):
        return text
    try:  # the bytes that os.fsdecode turned into surrogates, back as bytes, then escaped
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no byte made: escape the code point itself
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def image_output_path(root: Path, listing_id: str, file_name: str) -> Path:
    """Where a stage writes its JPEG copy of photo `listing_id/file_name`: unique and inside `root`."""
    name = safe_name(file_name)
    if not name.lower().endswith(".jpg"):
        # Keep the original extension (a.png and a.jpg must not collide) and add a hash of the name, so that
        # a.png cannot land on the path of a file that is literally called a.png.jpg.
        name = f"{name}-{_digest(file_name)}.jpg"
    return root / safe_name(listing_id) / name
