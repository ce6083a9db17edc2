"""Atomic writes, so that a killed run never leaves a half-written file or folder behind.

A write builds its result beside the target under a hidden name that carries the writer's process id
(`.manifest.parquet.<pid>.<random>.tmp`) and renames it into place when complete. A run killed with -9 cannot
clean up after itself, so every write first removes the leftovers of writers that are no longer alive.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def sweep_leftovers(path: str | Path) -> list[Path]:
    """Removes the staging files and folders that killed writers of `path` left beside it; returns them.

    Only leftovers whose writer process is gone are removed, so two runs writing side by side are safe.
    (A recycled pid keeps a leftover until that process ends too: a later run removes it then.)
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:(\d+)\..*\.tmp|old-(\d+))$")
    removed = []
    for entry in path.parent.iterdir():
        m = pattern.match(entry.name)
        if not m or _alive(int(m.group(1) or m.group(2))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; on success it replaces `path` in one rename.

    The temporary file lives in the same folder so that `os.replace` is a same-filesystem rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes the file private (0600); the output is an ordinary, shared file
            tmp_path.chmod(0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yields a fresh temporary folder beside `path`; on success it takes the place of `path`.

    An old `path` is moved aside first and removed only after the new one is in place, so at every
    instant `path` is either the complete old folder or the complete new one (or briefly absent).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    # mkdtemp makes the folder private (0700); the output is an ordinary folder that teammates and services read.
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
