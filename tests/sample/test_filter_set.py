"""Tests for the labelled car / no-car filter set (carvision.sample.filterset)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import imagehash
import pytest
from PIL import Image, ImageOps

from carvision.sample import NON_CAR_KINDS, SampleSpec, generate_filter_set, generate_sample

N_CAR, N_NO_CAR = 40, 45  # 45: the non-car kinds cannot all get the same share
SIZE = (128, 96)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def filter_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("filter") / "sample-filter"
    return out, generate_filter_set(out, seed=0, n_car=N_CAR, n_no_car=N_NO_CAR, image_size=SIZE)


def test_layout_and_truth(filter_set):
    out, _ = filter_set
    assert sorted(p.name for p in out.iterdir()) == ["car", "no_car", "truth.csv"]
    rows = _rows(out / "truth.csv")
    assert list(rows[0]) == ["label", "file", "kind"]
    on_disk = {f for f in _files(out) if f != "truth.csv"}
    assert {r["file"] for r in rows} == on_disk and len(rows) == len(on_disk)
    for r in rows:
        assert r["file"].startswith(f"{r['label']}/") and r["file"].endswith(".jpg")
        assert (r["kind"] == "car") == (r["label"] == "car")
        assert r["kind"] in ("car", *NON_CAR_KINDS)


def test_counts_and_summary(filter_set):
    out, summary = filter_set
    rows = _rows(out / "truth.csv")
    assert summary["out_dir"] == str(out)
    assert summary["n_images"] == len(rows) == N_CAR + N_NO_CAR
    assert summary["by_label"] == {"car": N_CAR, "no_car": N_NO_CAR}
    assert summary["by_kind"] == {k: sum(r["kind"] == k for r in rows) for k in ("car", *NON_CAR_KINDS)}


def test_every_non_car_kind_in_even_shares(filter_set):
    _, summary = filter_set
    shares = [summary["by_kind"][k] for k in NON_CAR_KINDS]
    assert min(shares) >= 1 and max(shares) - min(shares) <= 1, summary["by_kind"]


def test_photos_are_rgb_jpegs_of_the_size(filter_set):
    out, _ = filter_set
    for r in _rows(out / "truth.csv"):
        with Image.open(out / r["file"]) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", SIZE)


def test_same_seed_is_byte_identical_and_other_seed_differs(filter_set, tmp_path):
    out, _ = filter_set
    generate_filter_set(tmp_path / "again", seed=0, n_car=N_CAR, n_no_car=N_NO_CAR, image_size=SIZE)
    generate_filter_set(tmp_path / "other", seed=1, n_car=N_CAR, n_no_car=N_NO_CAR, image_size=SIZE)
    assert _files(tmp_path / "again") == _files(out)
    digests = {hashlib.sha256(b).digest() for b in _files(out).values()}
    assert not digests & {hashlib.sha256(b).digest() for b in _files(tmp_path / "other").values()}


def test_rerun_replaces_out_dir_and_leaves_no_temp(tmp_path):
    out = tmp_path / "sample-filter"
    out.mkdir()
    (out / "stale.jpg").write_bytes(b"old run")
    generate_filter_set(out, seed=2, n_car=3, n_no_car=10, image_size=SIZE)
    assert not (out / "stale.jpg").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample-filter"]
    assert len(_rows(out / "truth.csv")) == 13


def test_no_photo_repeats_a_photo_of_the_scrape_of_the_same_seed(filter_set, tmp_path):
    """The filter set draws from its own random stream: no byte copy, no phash near duplicate of the scrape."""
    out, _ = filter_set
    scrape = tmp_path / "raw"
    generate_sample(scrape, seed=0, spec=SampleSpec(n_listings=40, image_size=SIZE))
    scrape_files = [p for p in (scrape / "images").rglob("*.jpg") if p.stat().st_size > 0]
    ours = [out / r["file"] for r in _rows(out / "truth.csv")]
    digests = {hashlib.sha256(p.read_bytes()).digest() for p in ours}
    assert not digests & {hashlib.sha256(p.read_bytes()).digest() for p in scrape_files}

    def phash(p: Path) -> imagehash.ImageHash | None:
        try:
            with Image.open(p) as im:
                return imagehash.phash(ImageOps.exif_transpose(im))
        except OSError:  # the scrape's broken files
            return None

    theirs = [h for h in map(phash, scrape_files) if h is not None]
    assert len(theirs) > 150
    close = [(p.name, h - t) for p in ours for h in [phash(p)] for t in theirs if h - t <= 4]
    assert close == []
