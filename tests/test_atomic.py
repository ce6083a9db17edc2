"""Tests for atomic file and folder replacement (carvision.atomic)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from carvision.atomic import atomic_dir, atomic_path, write_json, write_text


class Boom(RuntimeError):
    pass


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_atomic_path_replaces_the_file_on_success(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"  # not visible before the body ends
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_keeps_the_old_file_when_the_body_raises(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half written")
        raise Boom
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"], "temporary file left behind"


def test_atomic_path_failure_without_old_file_leaves_nothing(tmp_path: Path):
    target = tmp_path / "sub" / "out.txt"
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("x")
        raise Boom
    assert not target.exists()
    assert list((tmp_path / "sub").iterdir()) == []


def test_write_text_and_json_create_parents(tmp_path: Path):
    write_text(tmp_path / "a" / "b.txt", "héllo")
    assert (tmp_path / "a" / "b.txt").read_text(encoding="utf-8") == "héllo"
    write_json(tmp_path / "c" / "d.json", {"b": 1, "a": [1, 2]})
    text = (tmp_path / "c" / "d.json").read_text()
    assert json.loads(text) == {"a": [1, 2], "b": 1}
    assert text.endswith("\n") and text.index('"a"') < text.index('"b"')


def _old_folder(path: Path) -> dict[str, bytes]:
    (path / "images").mkdir(parents=True)
    (path / "manifest.parquet").write_bytes(b"old manifest")
    (path / "images" / "1.jpg").write_bytes(b"old image")
    return _tree(path)


def test_atomic_dir_keeps_the_old_folder_whole_when_the_body_raises(tmp_path: Path):
    target = tmp_path / "clean"
    before = _old_folder(target)
    with pytest.raises(Boom), atomic_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert list(tmp.iterdir()) == []
        (tmp / "manifest.parquet").write_bytes(b"half")
        (tmp / "images").mkdir()
        (tmp / "images" / "2.jpg").write_bytes(b"new")
        raise Boom
    assert _tree(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["clean"], "staging folder left behind"


def test_atomic_dir_replaces_the_folder_on_success(tmp_path: Path):
    target = tmp_path / "clean"
    _old_folder(target)
    with atomic_dir(target) as tmp:
        (tmp / "manifest.parquet").write_bytes(b"new manifest")
        (tmp / "images").mkdir()
        (tmp / "images" / "2.jpg").write_bytes(b"new image")
        assert (target / "images" / "1.jpg").exists()  # the old folder stays until the body is done
    assert _tree(target) == {"manifest.parquet": b"new manifest", "images/2.jpg": b"new image"}
    assert [p.name for p in tmp_path.iterdir()] == ["clean"], "old or staging folder left behind"


def test_atomic_dir_creates_a_new_folder(tmp_path: Path):
    target = tmp_path / "deep" / "crop"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    assert _tree(target) == {"x": b"1"}
    assert [p.name for p in target.parent.iterdir()] == ["crop"]


def test_atomic_dir_output_has_ordinary_permissions(tmp_path):
    # mkdtemp's private 0700 must not leak into the published folder: others read data/ and reports/.
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "out") as staging:
            (staging / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped), as a kill -9'd run's is."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_writers_leftovers_are_removed_by_the_next_write(tmp_path: Path):
    target = tmp_path / "clean"
    _old_folder(target)
    dead = _dead_pid()
    # What kill -9 leaves: a half-built staging folder, a moved-aside old folder, a half-written file.
    (tmp_path / f".clean.{dead}.abc123.tmp" / "images").mkdir(parents=True)
    (tmp_path / f".clean.{dead}.abc123.tmp" / "images" / "1.jpg").write_bytes(b"half")
    (tmp_path / f".clean.old-{dead}").mkdir()
    (tmp_path / f".report.json.{dead}.xyz.tmp").write_text("{")
    # A live writer's staging (this process) and unrelated hidden files are left alone.
    live = tmp_path / f".clean.{os.getpid()}.live.tmp"
    live.mkdir()
    (tmp_path / ".clean-notes").write_text("mine")
    with atomic_dir(target) as staging:
        (staging / "x").write_text("1")
    write_text(tmp_path / "report.json", "{}")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([".clean-notes", live.name, "clean", "report.json"])


def test_atomic_path_output_has_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "listings.csv", "a\n")
    finally:
        os.umask(old)
    assert (tmp_path / "listings.csv").stat().st_mode & 0o777 == 0o644
