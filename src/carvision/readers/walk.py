"""A directory walk and a file check that never raise: every filesystem failure becomes a reason for one row.

Links are followed (a dataset arranged with symlinks or hardlinks, or a DVC `symlink` checkout, reads like a copy);
loops are caught by remembering the (device, inode) of every folder above the one being listed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Folders that tools, not people, put into a tree: never classes, and their files never photos of one.
SYSTEM_FOLDERS = frozenset({"$RECYCLE.BIN", "System Volume Information", "@eaDir", "lost+found"})
SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})  # compared case-folded
MAX_DEPTH = 32  # folders below the root; deeper trees are link tangles (a -> b -> a is caught anyway)


def is_system_folder(name: str) -> bool:
    """`.ipynb_checkpoints`, `.Trash-1000`, `__MACOSX`, `$RECYCLE.BIN`, `@eaDir`, `lost+found`, ..."""
    return name.startswith((".", "__")) or name in SYSTEM_FOLDERS


def is_system_file(name: str) -> bool:
    """Hidden files (`.DS_Store`, `._photo.jpg` AppleDouble) and Windows' `Thumbs.db`, `desktop.ini`."""
    return name.startswith(".") or name.casefold() in SYSTEM_FILES


def os_error_reason(e: OSError) -> tuple[str, str]:
    """The drop reason and an ascii detail for a failed filesystem call."""
    reason = {
        errno.ELOOP: "symlink_loop",
        errno.ENAMETOOLONG: "name_too_long",
        errno.EACCES: "permission_denied",
        errno.EPERM: "permission_denied",
        errno.ENOENT: "missing_file",
        errno.ENOTDIR: "missing_file",
    }.get(e.errno or 0, "unreadable_file")
    return reason, f"{errno.errorcode.get(e.errno or 0, 'OSError')}: {e.strerror or e}"


def check_file(path: str) -> tuple[str, str] | None:
    """None when `path` (followed through links) is a regular file; else a drop reason and its detail."""
    try:
        st = os.stat(path)
    except ValueError:  # a NUL in the name
        return "unsafe_path", "the name holds a NUL character"
    except OSError as e:
        if e.errno == errno.ENOENT and _is_symlink(path):
            return "missing_file", f"dangling link to {_link_target(path)}"
        return os_error_reason(e)
    return _not_regular(st.st_mode)


def _is_symlink(path: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _not_regular(mode: int) -> tuple[str, str] | None:
    if stat.S_ISREG(mode):
        return None
    # A FIFO would block whoever reads it; a device or socket is no photo either.
    kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO, socket or device"
    return "not_a_regular_file", kind


@dataclass(frozen=True)
class Entry:
    """A file found by `walk`, or a thing in the tree that could not be listed or read (with its reason)."""

    parts: tuple[str, ...]  # the path below the root, one name per level
    path: str  # root joined with parts, not resolved
    reason: str | None = None
    detail: str = ""


def walk(root: Path) -> Iterator[Entry]:
    """Every file under `root` (links followed, names sorted), and an Entry with a reason for each loop, dangling
    link, unreadable folder, too-deep folder or special file. Never raises OSError, except for `root` itself."""
    st = os.stat(root)
    yield from _walk_folder((), str(root), frozenset({(st.st_dev, st.st_ino)}))


def _walk_folder(parts: tuple[str, ...], folder: str, above: frozenset[tuple[int, int]]) -> Iterator[Entry]:
    try:
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it)
    except OSError as e:
        yield Entry(parts, folder, *os_error_reason(e))
        return
    for name in names:
        child, path = (*parts, name), os.path.join(folder, name)
        try:
            st = os.stat(path)
        except OSError as e:
            if e.errno == errno.ENOENT and _is_symlink(path):
                yield Entry(child, path, "missing_file", f"dangling link to {_link_target(path)}")
            else:
                yield Entry(child, path, *os_error_reason(e))
            continue
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in above:
                yield Entry(child, path, "symlink_loop", "a link to a folder above it")
            elif len(child) > MAX_DEPTH:
                yield Entry(child, path, "folder_too_deep", f"more than {MAX_DEPTH} folders below the root")
            else:
                yield from _walk_folder(child, path, above | {key})
            continue
        reason = _not_regular(st.st_mode)
        yield Entry(child, path, *(reason or (None, "")))
