"""Names that come from a scrape (listing ids, file names, class names) and become paths."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_CHARS = 80  # well under the 255-byte limit of common filesystems, leaving room for suffixes


def safe_name(name: str) -> str:
    """A file-system-safe, collision-resistant version of `name`.

    Unsafe characters become `_`; leading dots are stripped (no hidden files, no `..`). When anything
    changed, a short hash of the original is appended so that `a/b` and `a_b` stay distinct.
    """
    cleaned = _UNSAFE.sub("_", name).lstrip(".")[:MAX_NAME_CHARS]
    if cleaned == name and cleaned:
        return cleaned
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned or 'x'}-{digest}"


def is_inside(path: Path, root: Path) -> bool:
    """True when `path` resolves to a location under `root` (symlinks and `..` followed)."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def image_output_path(root: Path, listing_id: str, file_name: str) -> Path:
    """Where a stage writes its JPEG copy of photo `listing_id/file_name`: unique and inside `root`."""
    name = safe_name(file_name)
    if not name.lower().endswith(".jpg"):
        # Keep the original extension (a.png and a.jpg must not collide) and add a hash of the name, so that
        # a.png cannot land on the path of a file that is literally called a.png.jpg.
        name = f"{name}-{hashlib.sha1(file_name.encode('utf-8')).hexdigest()[:8]}.jpg"
    return root / safe_name(listing_id) / name
