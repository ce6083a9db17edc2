"""Tests for the walk that never raises (carvision.readers.walk): links followed, loops and odd files as reasons."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from carvision.readers.walk import check_file, is_system_file, is_system_folder, os_error_reason, walk


def _touch(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")


def _found(root: Path) -> dict[str, str | None]:
    return {"/".join(e.parts): e.reason for e in walk(root)}


def test_files_in_sorted_order_with_their_paths_as_given(tmp_path: Path):
    _touch(tmp_path, "b/2.jpg", "b/1.jpg", "a/deep/er/x.jpg", "top.jpg")
    entries = list(walk(tmp_path))
    assert [e.parts for e in entries] == [("a", "deep", "er", "x.jpg"), ("b", "1.jpg"), ("b", "2.jpg"), ("top.jpg",)]
    assert entries[1].path == os.path.join(str(tmp_path), "b", "1.jpg")
    assert all(e.reason is None for e in entries)


def test_a_folder_linked_twice_is_walked_twice_but_a_loop_once(tmp_path: Path):
    _touch(tmp_path, "store/x.jpg")
    root = tmp_path / "root"
    root.mkdir()
    (root / "one").symlink_to(tmp_path / "store", target_is_directory=True)
    (root / "two").symlink_to(tmp_path / "store", target_is_directory=True)  # like a copy, not a loop
    (root / "one_up").symlink_to(root, target_is_directory=True)
    assert _found(root) == {"one/x.jpg": None, "one_up": "symlink_loop", "two/x.jpg": None}


def test_a_loop_deep_down_is_caught_at_the_link(tmp_path: Path):
    _touch(tmp_path, "a/b/c/x.jpg")
    (tmp_path / "a" / "b" / "c" / "back").symlink_to(tmp_path / "a", target_is_directory=True)
    assert _found(tmp_path) == {"a/b/c/back": "symlink_loop", "a/b/c/x.jpg": None}


def test_links_to_nothing_or_themselves_and_special_files(tmp_path: Path):
    _touch(tmp_path, "c/ok.jpg")
    (tmp_path / "c" / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "c" / "self.jpg").symlink_to(tmp_path / "c" / "self.jpg")
    os.mkfifo(tmp_path / "c" / "fifo")
    found = {"/".join(e.parts): (e.reason, e.detail) for e in walk(tmp_path)}
    assert found["c/ok.jpg"] == (None, "")
    assert found["c/dangling.jpg"] == ("missing_file", f"dangling link to {tmp_path / 'nowhere.jpg'}")
    assert found["c/self.jpg"][0] == "symlink_loop"
    assert found["c/fifo"] == ("not_a_regular_file", "a FIFO, socket or device")


def test_non_utf8_names_are_walked_not_fatal(tmp_path: Path):
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg"), "wb") as f:
        f.write(b"x")
    (entry,) = walk(tmp_path)
    assert entry.parts == ("caf\udce9.jpg",) and entry.reason is None


def test_a_tangle_deeper_than_the_limit_stops(tmp_path: Path):
    # In practice only a tangle of links (not loops) makes such a tree; plain folders show the limit as well.
    from carvision.readers import walk as walk_module

    depth = walk_module.MAX_DEPTH + 3
    folder = tmp_path
    for _ in range(depth):
        folder = folder / "d"
    _touch(folder, "x.jpg")
    found = _found(tmp_path)
    assert list(found.values()) == ["folder_too_deep"]
    assert len(next(iter(found)).split("/")) == walk_module.MAX_DEPTH + 1


def test_check_file(tmp_path: Path):
    _touch(tmp_path, "ok.jpg")
    (tmp_path / "link.jpg").symlink_to(tmp_path / "ok.jpg")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere")
    assert check_file(str(tmp_path / "ok.jpg")) is None
    assert check_file(str(tmp_path / "link.jpg")) is None
    assert check_file(str(tmp_path / "missing.jpg"))[0] == "missing_file"
    assert check_file(str(tmp_path / "gone.jpg"))[0] == "missing_file"
    assert check_file(str(tmp_path / ("a" * 300) / "x.jpg"))[0] == "name_too_long"
    assert check_file(str(tmp_path / "ok.jpg" / "x.jpg"))[0] == "missing_file"  # ENOTDIR
    assert check_file(str(tmp_path)) == ("not_a_regular_file", "a folder")
    assert check_file(str(tmp_path / "a\x00b"))[0] == "unsafe_path"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EACCES, "permission_denied"),
        (errno.EPERM, "permission_denied"),
        (errno.ELOOP, "symlink_loop"),
        (errno.ENAMETOOLONG, "name_too_long"),
        (errno.EIO, "unreadable_file"),
    ],
)
def test_os_errors_become_reasons(code: int, reason: str):
    # Tests run as root here, so EACCES cannot be provoked with chmod; the mapping is what matters.
    got, detail = os_error_reason(OSError(code, os.strerror(code)))
    assert got == reason and detail.startswith(errno.errorcode[code])


@pytest.mark.parametrize(
    "name",
    [
        ".ipynb_checkpoints",
        ".Trash-1000",
        "__MACOSX",
        "$RECYCLE.BIN",
        "System Volume Information",
        "@eaDir",
        "lost+found",
    ],
)
def test_system_folders(name: str):
    assert is_system_folder(name)


def test_system_files_and_ordinary_names():
    for name in (".DS_Store", "._photo.jpg", "Thumbs.db", "desktop.ini", ".hidden.jpg"):
        assert is_system_file(name), name
    for name in ("Fiat 500", "photo.jpg", "_underscore", "a.b"):
        assert not is_system_folder(name) and not is_system_file(name), name
