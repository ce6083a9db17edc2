"""Tests for the synthetic scrape generator (carvision.sample.scrape)."""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path

import imagehash
import pytest
from PIL import Image, ImageOps

from carvision.sample import (
    CLASSES,
    KINDS,
    NON_CAR_KINDS,
    VIEWPOINTS,
    SampleSpec,
    class_listing_counts,
    generate_sample,
    main,
)

SMALL = SampleSpec(n_listings=40)
W, H = SMALL.image_size


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _tree_hash(root: Path) -> str:
    """Hash of every file's relative path and bytes under root."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("scrape") / "raw"
    return out, generate_sample(out, seed=0, spec=SMALL)


@pytest.fixture(scope="module")
def tables(scrape: tuple[Path, dict]) -> dict[str, list[dict[str, str]]]:
    out, _ = scrape
    return {name: _rows(out / f"{name}.csv") for name in ("listings", "annotations", "truth")}


def test_same_seed_is_byte_identical_and_other_seed_differs(scrape, tmp_path):
    out, _ = scrape
    again = generate_sample(tmp_path / "again", seed=0, spec=SMALL)
    other = generate_sample(tmp_path / "other", seed=1, spec=SMALL)
    assert _tree_hash(out) == _tree_hash(tmp_path / "again")
    assert _tree_hash(out) != _tree_hash(tmp_path / "other")
    assert again["n_images"] > 0 and other["n_listings"] == 40


def test_rerun_replaces_out_dir_and_leaves_no_temp(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "stale.txt").write_text("old run")
    generate_sample(out, seed=3, spec=SampleSpec(n_listings=12))
    first = _tree_hash(out)
    generate_sample(out, seed=3, spec=SampleSpec(n_listings=12))
    assert not (out / "stale.txt").exists()
    assert _tree_hash(out) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no .raw.tmp-* / .raw.old-* left behind


def test_layout_listed_files_match_disk_and_tables(scrape, tables):
    out, summary = scrape
    listed = {(r["ad_id"], f) for r in tables["listings"] for f in r["images"].split(";")}
    on_disk = {(p.parent.name, p.name) for p in (out / "images").rglob("*") if p.is_file()}
    assert listed == on_disk
    assert all(f.endswith(".jpg") for _, f in on_disk)
    assert {(r["ad_id"], r["file"]) for r in tables["annotations"]} == listed
    assert {(r["ad_id"], r["file"]) for r in tables["truth"]} == listed
    assert len(tables["listings"]) == summary["n_listings"] == 40
    assert len(listed) == summary["n_images"]
    assert sum(summary["by_kind"].values()) == summary["n_images"]
    assert all(r["ad_id"].startswith("ad") and len(r["ad_id"]) == 8 for r in tables["listings"])
    years = {(c.make, c.model): c.years for c in CLASSES}
    assert all((r["make"], r["model"]) in years for r in tables["listings"])
    assert all(1990 < int(r["year"]) <= 2024 for r in tables["listings"])


def test_every_kind_present(scrape):
    _, summary = scrape
    assert list(summary["by_kind"]) == list(KINDS)
    assert all(n > 0 for n in summary["by_kind"].values()), summary["by_kind"]


def test_non_car_photos_are_a_fifth_of_the_base_photos_in_even_shares(tables):
    base = [r for r in tables["truth"] if not r["duplicate_of"]]
    non_car = [r["kind"] for r in base if r["kind"] in NON_CAR_KINDS]
    assert abs(len(non_car) / len(base) - SMALL.non_car_rate) < 0.01
    shares = [non_car.count(k) for k in NON_CAR_KINDS]
    assert max(shares) - min(shares) <= 1, dict(zip(NON_CAR_KINDS, shares, strict=True))


def test_non_car_photos_come_on_top_of_the_car_photos(tables):
    """Each listing keeps its 3-6 photos taken of the car (some broken or tiny); the cover photo shows the car."""
    lo, hi = SMALL.photos_per_listing
    for listing in tables["listings"]:
        files = listing["images"].split(";")
        truth = {r["file"]: r for r in tables["truth"] if r["ad_id"] == listing["ad_id"]}
        of_the_car = [f for f in files if truth[f]["kind"] not in NON_CAR_KINDS and not truth[f]["duplicate_of"]]
        assert lo <= len(of_the_car) <= hi, listing
        assert truth[files[0]]["kind"] not in NON_CAR_KINDS, listing


def test_non_car_rate_must_leave_room_for_cars(tmp_path):
    with pytest.raises(ValueError, match="non_car_rate"):
        generate_sample(tmp_path / "raw", spec=SampleSpec(n_listings=10, non_car_rate=1.0))
    assert not (tmp_path / "raw").exists()


def test_boxes_and_viewpoints(tables):
    truth = {(r["ad_id"], r["file"]): r for r in tables["truth"]}
    seen_viewpoints = set()
    for r in tables["annotations"]:
        kind = truth[(r["ad_id"], r["file"])]["kind"]
        box = [r[k] for k in ("x_min", "y_min", "x_max", "y_max")]
        if kind == "car":
            assert r["viewpoint"] in VIEWPOINTS
            seen_viewpoints.add(r["viewpoint"])
            x0, y0, x1, y1 = map(float, box)
            assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
            scale = 0.7 if truth[(r["ad_id"], r["file"])]["duplicate_kind"] == "resized" else 1.0
            assert 0.35 * W * scale - 1 <= x1 - x0 <= 0.8 * W * scale + 1  # car covers 35-80 % of the width
        else:
            assert box == ["", "", "", ""]
            if kind != "tiny":
                assert r["viewpoint"] == ""
    assert len(seen_viewpoints) >= 4


def test_car_box_matches_image_size(scrape, tables):
    out, _ = scrape
    kinds = {(r["ad_id"], r["file"]): r for r in tables["truth"]}
    for r in tables["annotations"]:
        t = kinds[(r["ad_id"], r["file"])]
        if t["kind"] != "car":
            continue
        with Image.open(out / "images" / r["ad_id"] / r["file"]) as im:
            w, h = ImageOps.exif_transpose(im).size
        assert float(r["x_max"]) <= w + 1e-6 and float(r["y_max"]) <= h + 1e-6
        if t["duplicate_kind"] == "resized":
            assert (w, h) == (round(W * 0.7), round(H * 0.7))
        else:
            assert (w, h) == (W, H)


def test_broken_files_fail_to_decode(scrape, tables):
    out, _ = scrape
    broken = [r for r in tables["truth"] if r["kind"] in ("zero_byte", "truncated", "not_image")]
    assert {r["kind"] for r in broken} == {"zero_byte", "truncated", "not_image"}
    for r in broken:
        path = out / "images" / r["ad_id"] / r["file"]
        if r["kind"] == "zero_byte":
            assert path.stat().st_size == 0
        # UnidentifiedImageError (zero-byte, not an image) or OSError "image file is truncated".
        with pytest.raises(OSError), Image.open(path) as im:
            im.load()


def test_tiny_and_non_car_photos_decode(scrape, tables):
    out, _ = scrape
    for r in tables["truth"]:
        if r["kind"] in ("tiny", *NON_CAR_KINDS):
            with Image.open(out / "images" / r["ad_id"] / r["file"]) as im:
                im.load()
                assert im.size == ((24, 18) if r["kind"] == "tiny" else (W, H))
                assert im.mode == "RGB"


def test_non_car_photos_survive_near_duplicate_removal(scrape, tables):
    """The clean stage drops photos within 4 bits of phash of another: no non-car photo may be that close to any
    other photo of the scrape (only the planned duplicates of car photos are)."""
    out, _ = scrape
    hashes = {}
    for r in tables["truth"]:
        if r["kind"] in ("car", *NON_CAR_KINDS) and not r["duplicate_of"]:
            with Image.open(out / "images" / r["ad_id"] / r["file"]) as im:
                hashes[(r["ad_id"], r["file"], r["kind"])] = imagehash.phash(ImageOps.exif_transpose(im))
    keys = list(hashes)
    close = [
        (a, b, hashes[a] - hashes[b])
        for i, a in enumerate(keys)
        for b in keys[i + 1 :]
        if (a[2] in NON_CAR_KINDS or b[2] in NON_CAR_KINDS) and hashes[a] - hashes[b] <= 4
    ]
    assert sum(k in NON_CAR_KINDS for *_, k in hashes) >= 40
    assert close == []


def test_duplicates_exact_and_near(scrape, tables):
    out, _ = scrape
    dups = [r for r in tables["truth"] if r["duplicate_of"]]
    assert {r["duplicate_kind"] for r in dups} == {"exact", "recompressed", "resized"}
    scraped = {r["ad_id"]: (r["make"], r["model"]) for r in tables["listings"]}
    assert any(r["duplicate_of"].split("/")[0] != r["ad_id"] for r in dups), "no re-posted ad"
    assert any(r["duplicate_of"].split("/")[0] == r["ad_id"] for r in dups), "no in-listing duplicate"
    for r in dups:
        orig_ad = r["duplicate_of"].split("/")[0]
        assert scraped[orig_ad] == scraped[r["ad_id"]]  # re-posts stay within the same scraped class
        a = (out / "images" / r["duplicate_of"]).read_bytes()
        b = (out / "images" / r["ad_id"] / r["file"]).read_bytes()
        if r["duplicate_kind"] == "exact":
            assert a == b
        else:
            assert a != b
            with (
                Image.open(out / "images" / r["duplicate_of"]) as ia,
                Image.open(out / "images" / r["ad_id"] / r["file"]) as ib,
            ):
                distance = imagehash.phash(ia) - imagehash.phash(ib)
            assert distance <= 6, (r, distance)


def test_resized_duplicate_box_is_scaled(tables):
    boxes = {(r["ad_id"], r["file"]): r for r in tables["annotations"]}
    resized = [r for r in tables["truth"] if r["duplicate_kind"] == "resized"]
    assert resized
    for r in resized:
        d, o = boxes[(r["ad_id"], r["file"])], boxes[tuple(r["duplicate_of"].split("/"))]
        assert d["viewpoint"] == o["viewpoint"]
        for k in ("x_min", "y_min", "x_max", "y_max"):
            assert math.isclose(float(d[k]), float(o[k]) * 0.7, abs_tol=0.02)


def test_exif_rotated_photos(scrape, tables):
    out, _ = scrape
    rotated = [r for r in tables["truth"] if r["exif_orientation"] != "1"]
    assert rotated and all(r["kind"] == "car" for r in rotated)
    boxes = {(r["ad_id"], r["file"]): r for r in tables["annotations"]}
    for r in rotated:
        with Image.open(out / "images" / r["ad_id"] / r["file"]) as im:
            orientation = int(r["exif_orientation"])
            assert im.getexif().get(0x0112) == orientation
            raw = im.size
            upright = ImageOps.exif_transpose(im)
        assert upright.size == (W, H)
        assert raw == ((H, W) if orientation in (6, 8) else (W, H))
        b = boxes[(r["ad_id"], r["file"])]
        assert float(b["x_max"]) <= upright.width and float(b["y_max"]) <= upright.height


def test_listing_photos_show_one_car_class(tables):
    by_ad: dict[str, set[tuple[str, str]]] = {}
    for r in tables["truth"]:
        if r["kind"] == "car" and not r["duplicate_of"]:
            by_ad.setdefault(r["ad_id"], set()).add((r["true_make"], r["true_model"]))
    assert all(len(v) == 1 for v in by_ad.values())


def test_label_noise(tables):
    scraped = {r["ad_id"]: (r["make"], r["model"]) for r in tables["listings"]}
    wrong = {r["ad_id"] for r in tables["truth"] if r["label_noise"] == "True"}
    assert 0 < len(wrong) < 0.2 * len(scraped)
    for r in tables["truth"]:
        if r["kind"] == "car" and not r["duplicate_of"]:
            is_wrong = scraped[r["ad_id"]] != (r["true_make"], r["true_model"])
            assert is_wrong == (r["ad_id"] in wrong)


def test_class_listing_counts_default_is_long_tailed():
    counts = class_listing_counts(260, len(CLASSES), 12.0)
    assert sum(counts) == 260
    assert counts == sorted(counts, reverse=True)
    assert round(counts[0] / counts[-1]) == 12
    assert counts[0] / counts[-1] >= 10
    assert counts[-1] >= 6


@pytest.mark.parametrize("n", [8, 13, 40, 100, 261, 1000])
@pytest.mark.parametrize("imbalance", [1.0, 10.0, 12.0, 20.0])
@pytest.mark.parametrize("n_classes", [2, 3, 8])
def test_class_listing_counts_always_sums(n, imbalance, n_classes):
    counts = class_listing_counts(n, n_classes, imbalance)
    assert len(counts) == n_classes
    assert sum(counts) == n and min(counts) >= 1 and counts == sorted(counts, reverse=True)
    if n >= 100 and n_classes > 2:  # enough listings, and middle classes to absorb rounding: exact ratio
        assert round(counts[0] / counts[-1]) == round(imbalance)
    elif n >= 100:
        assert abs(counts[0] / counts[-1] - imbalance) < 0.1 * imbalance


def test_class_listing_counts_rejects_bad_input():
    with pytest.raises(ValueError):
        class_listing_counts(5, 8, 12.0)
    with pytest.raises(ValueError):
        class_listing_counts(100, 8, 0.5)


def test_summary_class_counts_match_listings(scrape, tables):
    _, summary = scrape
    assert list(summary["by_class"].values()) == class_listing_counts(40, len(CLASSES), SMALL.imbalance)
    truth_by_ad = {}
    for r in tables["truth"]:
        if not r["duplicate_of"]:
            truth_by_ad[r["ad_id"]] = f"{r['true_make']} {r['true_model']}"
    counted: dict[str, int] = {}
    for name in truth_by_ad.values():
        counted[name] = counted.get(name, 0) + 1
    assert {k: v for k, v in summary["by_class"].items() if v} == counted


def test_cli(tmp_path, capsys):
    main([str(tmp_path / "cli"), "--seed", "2", "--listings", "10"])
    assert '"n_listings": 10' in capsys.readouterr().out
    assert (tmp_path / "cli" / "listings.csv").exists()
