"""Tests for scraped names that become paths (carvision.safe_names)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from carvision.safe_names import (
    MAX_NAME_CHARS,
    image_output_path,
    is_inside,
    is_plain_name,
    is_utf8,
    safe_name,
    utf8_safe,
)

SAFE = re.compile(r"[A-Za-z0-9._-]+")
NASTY = [
    "../../etc/passwd",
    "..",
    ".",
    "",
    "/abs/path.jpg",
    "a/b",
    "a\\b",
    "my photo (1).jpg",
    "Škoda Octavia",
    "日本の車.jpg",
    "emoji 🚗.png",
    ".hidden",
    "...dots.jpg",
    "x" * 300,
    "a\x00b",
    "tab\tand\nnewline",
]


def test_safe_names_pass_through_unchanged():
    for name in ("ad000001", "00.jpg", "Toyota_Corolla", "a-b.c_d", "x" * MAX_NAME_CHARS):
        assert safe_name(name) == name


@pytest.mark.parametrize("name", NASTY)
def test_unsafe_names_become_one_harmless_path_component(name, tmp_path: Path):
    out = safe_name(name)
    assert SAFE.fullmatch(out), out
    assert not out.startswith(".")
    assert out not in (".", "..")
    assert len(out) <= MAX_NAME_CHARS + 9  # name + "-" + 8 hex digits
    assert Path(out).name == out  # a single component, no separator
    assert is_inside(tmp_path / out, tmp_path)
    assert (tmp_path / out).resolve().parent == tmp_path.resolve()


def test_parent_traversal_is_neutralised():
    out = safe_name("../../etc/passwd")
    assert "/" not in out and out != "../../etc/passwd"
    assert re.fullmatch(r"_\.\._etc_passwd-[0-9a-f]{8}", out)


def test_hidden_names_lose_their_leading_dots():
    assert safe_name(".hidden").startswith("hidden-")
    assert safe_name("..").startswith("x-")


def test_long_names_are_cut_and_stay_distinct():
    a, b = "x" * 200 + "1.jpg", "x" * 200 + "2.jpg"
    assert safe_name(a) != safe_name(b)
    assert len(safe_name(a)) <= MAX_NAME_CHARS + 9


def test_distinct_inputs_stay_distinct():
    # All of these clean to (nearly) the same characters; the hash of the original must keep them apart.
    names = ["a/b", "a_b", "a b", "a\\b", "a:b", "a//b", ".a_b", "..a_b", "a_b/", "Škoda", "Ŝkoda", "_koda"]
    names += NASTY
    outs = [safe_name(n) for n in names]
    assert len(set(outs)) == len(set(names))


def test_safe_name_is_deterministic():
    assert safe_name("my photo.jpg") == safe_name("my photo.jpg")


def test_is_inside(tmp_path: Path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    assert is_inside(root / "sub" / "file.jpg", root)
    assert is_inside(root / "sub" / ".." / "file.jpg", root)
    assert is_inside(root, root)
    assert not is_inside(root / ".." / "file.jpg", root)
    assert not is_inside(root / "sub" / ".." / ".." / "etc" / "passwd", root)
    assert not is_inside(tmp_path / "root2" / "file.jpg", root)  # a shared string prefix is not "inside"
    assert not is_inside(Path("/etc/passwd"), root)


def test_is_inside_follows_symlinks(tmp_path: Path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"x")
    (root / "link").symlink_to(outside, target_is_directory=True)
    assert not is_inside(root / "link" / "secret.jpg", root)


@pytest.mark.parametrize(("listing", "file"), [("../..", "../../x.jpg"), ("/etc", "passwd"), ("..", ".."), ("a", "")])
def test_image_output_path_stays_inside_its_root(tmp_path: Path, listing, file):
    out = image_output_path(tmp_path / "images", listing, file)
    assert is_inside(out, tmp_path / "images")
    assert out.parent.parent == tmp_path / "images"
    assert out.suffix == ".jpg"


def test_image_output_path_keeps_jpg_names_and_extends_others(tmp_path: Path):
    assert image_output_path(tmp_path, "ad1", "00.jpg") == tmp_path / "ad1" / "00.jpg"
    png = image_output_path(tmp_path, "ad1", "00.png")
    assert png.parent == tmp_path / "ad1" and png.name.startswith("00.png-") and png.suffix == ".jpg"


def test_image_output_path_does_not_collide(tmp_path: Path):
    pairs = [
        ("ad1", "a.png"),
        ("ad1", "a.jpg"),
        ("ad1", "a.jpeg"),
        ("ad1", "a.webp"),
        ("ad1", "a b.jpg"),
        ("ad1", "a_b.jpg"),
        ("ad2", "a.jpg"),
        ("ad/1", "a.jpg"),
        ("ad_1", "a.jpg"),
    ]
    outs = {image_output_path(tmp_path, lid, f) for lid, f in pairs}
    assert len(outs) == len(pairs)


def test_image_output_path_png_does_not_collide_with_png_jpg(tmp_path: Path):
    assert image_output_path(tmp_path, "ad1", "a.png") != image_output_path(tmp_path, "ad1", "a.png.jpg")


@pytest.mark.parametrize("name", ["00.jpg", "ad 1", "Škoda.jpg", "..a", "a..", "x" * 300])
def test_plain_names(name: str):
    assert is_plain_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\\b", "C:\\x", "a\x00b"])
def test_names_that_are_not_one_component(name: str):
    assert not is_plain_name(name)


def test_plain_name_is_lexical_not_resolved(tmp_path: Path):
    # A photo that is a symlink out of the root is a plain name all the same (a DVC `symlink` checkout).
    (tmp_path / "link.jpg").symlink_to("/etc/hostname")
    assert is_plain_name("link.jpg") and not is_inside(tmp_path / "link.jpg", tmp_path)


def test_undecodable_names_are_detected_and_escaped():
    name = os.fsdecode(b"caf\xe9.jpg")  # how Python reads a Latin-1 name from a UTF-8 system
    assert not is_utf8(name) and is_utf8("café.jpg")
    assert utf8_safe(name) == "caf\\xe9.jpg"
    assert utf8_safe("café.jpg") == "café.jpg"
    assert utf8_safe("a\ud800b") == "a\\ud800b"  # a surrogate no byte made
    for text in (utf8_safe(name), utf8_safe("a\ud800b")):
        text.encode("utf-8")


def test_safe_names_of_undecodable_names_do_not_raise_and_stay_distinct(tmp_path: Path):
    a, b = os.fsdecode(b"caf\xe9.jpg"), os.fsdecode(b"caf\xe8.jpg")
    assert safe_name(a) != safe_name(b)
    assert SAFE.fullmatch(safe_name(a))
    assert image_output_path(tmp_path, a, b).suffix == ".jpg"
