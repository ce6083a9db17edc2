"""Tests for the clean stage (carvision.stages.clean), checked against the sample's truth.csv."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from carvision import manifest
from carvision.stages import clean

BROKEN_REASON = {
    "zero_byte": "empty_file",
    "truncated": "truncated_image",
    "not_image": "not_an_image",
    "tiny": "too_small",
}


@pytest.fixture(scope="module")
def truth(sample_dir: Path) -> pd.DataFrame:
    t = pd.read_csv(sample_dir / "truth.csv", dtype=str, keep_default_na=False)
    t["image_id"] = t["ad_id"] + "/" + t["file"]
    return t.set_index("image_id")


@pytest.fixture(scope="module")
def kept(prepared) -> pd.DataFrame:
    return manifest.read(Path(prepared.paths.clean) / "manifest.parquet", stage="clean")


@pytest.fixture(scope="module")
def dropped(prepared) -> pd.DataFrame:
    return pd.read_parquet(Path(prepared.paths.clean) / "dropped.parquet")


@pytest.fixture(scope="module")
def report(prepared) -> dict:
    return json.loads((Path(prepared.paths.reports) / "clean" / "report.json").read_text())


def _reasons(dropped: pd.DataFrame) -> dict[str, str]:
    return dict(zip(dropped["image_id"], dropped["drop_reason"], strict=True))


@pytest.mark.parametrize("kind", sorted(BROKEN_REASON))
def test_broken_and_tiny_photos_are_dropped_with_their_reason(truth, kept, dropped, kind):
    ids = truth.index[truth["kind"] == kind]
    assert len(ids) > 0, f"the sample has no {kind} photo"
    reasons = _reasons(dropped)
    assert {i: reasons.get(i) for i in ids} == {i: BROKEN_REASON[kind] for i in ids}
    assert not set(ids) & set(kept["image_id"])


def test_exact_duplicates_keep_exactly_one(truth, kept, dropped):
    pairs = truth.loc[truth["duplicate_kind"] == "exact", "duplicate_of"]
    assert len(pairs) > 0
    kept_ids, reasons = set(kept["image_id"]), _reasons(dropped)
    for copy, original in pairs.items():
        assert (copy in kept_ids) + (original in kept_ids) == 1, (copy, original)
        loser = original if copy in kept_ids else copy
        assert reasons[loser] == "exact_duplicate"


def test_near_duplicates_keep_one(truth, kept, dropped):
    """Each near-duplicate pair is represented by one kept photo: one of the pair, or (when the pair is
    chained to a third similar photo) both are dropped in favour of that same kept photo."""
    pairs = truth.loc[truth["duplicate_kind"].isin(["recompressed", "resized"]), "duplicate_of"]
    assert len(pairs) > 0
    kept_ids = set(kept["image_id"])
    drops = dropped.set_index("image_id")
    for copy, original in pairs.items():
        n_kept = (copy in kept_ids) + (original in kept_ids)
        if n_kept == 1:
            loser = original if copy in kept_ids else copy
            assert drops.loc[loser, "drop_reason"] == "near_duplicate"
            assert drops.loc[loser, "drop_detail"] == f"of {copy if copy in kept_ids else original}"
        else:
            assert n_kept == 0, f"both {copy} and {original} kept"
            a, b = drops.loc[copy], drops.loc[original]
            assert a["drop_reason"] == b["drop_reason"] == "near_duplicate"
            assert a["drop_detail"] == b["drop_detail"]
            assert a["drop_detail"].removeprefix("of ") in kept_ids


def test_duplicate_drops_point_at_kept_photos(kept, dropped):
    kept_ids = set(kept["image_id"])
    dups = dropped[dropped["drop_reason"].isin(["exact_duplicate", "near_duplicate"])]
    assert len(dups) > 0
    for detail in dups["drop_detail"]:
        assert detail.removeprefix("of ") in kept_ids


def test_near_duplicate_groups_keep_one_photo_each(prepared, kept, dropped):
    """Brute force over every decoded, non-exact-duplicate photo: each phash-connected group keeps one."""
    decoded = pd.concat([kept, dropped[dropped["drop_reason"] == "near_duplicate"]], ignore_index=True)
    hashes = [int(h, 16) for h in decoded["phash"]]
    n, bits = len(hashes), prepared.clean.near_duplicate_bits
    group = list(range(n))

    def root(x: int) -> int:
        while group[x] != x:
            x = group[x]
        return x

    for i in range(n):
        for j in range(i + 1, n):
            if bin(hashes[i] ^ hashes[j]).count("1") <= bits:
                group[max(root(i), root(j))] = min(root(i), root(j))
    roots = pd.Series([root(i) for i in range(n)])
    is_kept = decoded["drop_reason"].isna()
    assert (is_kept.groupby(roots).sum() == 1).all()


def test_normal_photos_without_duplicates_are_kept(truth, kept):
    originals = set(truth["duplicate_of"]) - {""}
    normal = truth[(truth["kind"] == "car") & (truth["duplicate_kind"] == "") & ~truth.index.isin(originals)]
    assert len(normal) > 300
    missing = sorted(set(normal.index) - set(kept["image_id"]))
    assert missing == []


def test_exif_rotated_photos_are_recorded_upright(truth, kept, sample_dir: Path):
    from conftest import SMALL_SAMPLE

    rotated = truth.index[truth["exif_orientation"] != "1"]
    assert len(rotated) > 0
    rows = kept.set_index("image_id").loc[rotated]
    w, h = SMALL_SAMPLE.image_size
    for image_id, row in rows.iterrows():
        with Image.open(sample_dir / "images" / image_id) as raw:
            assert raw.size == (h, w), "the raw file is stored turned"
        assert (row["width"], row["height"]) == (w, h)  # the upright size, in which boxes are given
        assert row["orientation"] == int(truth.at[image_id, "exif_orientation"])
        x0, y0, x1, y1 = row["bbox"]
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert (kept.set_index("image_id").drop(index=rotated)["orientation"] == 1).all()


def test_clean_writes_no_image_copies(prepared):
    # Only the manifest, the dropped rows and the report: the crop stage reads the raw files.
    names = sorted(p.relative_to(prepared.paths.clean).as_posix() for p in Path(prepared.paths.clean).rglob("*"))
    assert names == ["dropped.parquet", "manifest.parquet", "report.json"]


def test_facts_describe_the_raw_photo(kept, report):
    assert set(kept["format"]) == {"JPEG"} and (kept["frames"] == 1).all()
    assert set(kept["colour"]) <= {"sRGB", "greyscale"}
    assert report["formats"] == {"JPEG": len(kept)}
    assert report["rotated_by_exif"] == int((kept["orientation"] != 1).sum()) > 0


def test_hashes_describe_the_raw_and_decoded_photo(kept):
    for row in kept.sample(n=10, random_state=0).itertuples():
        assert row.sha256 == hashlib.sha256(Path(row.path).read_bytes()).hexdigest()
        assert len(row.phash) == 16
        # The hash of the reduced decode is, within a bit or two, that of the full-resolution upright photo.
        with Image.open(row.path) as im:
            full = ImageOps.exif_transpose(im).convert("RGB")
        assert imagehash.phash(full) - imagehash.hex_to_hash(row.phash) <= 4


def test_counts_reconcile(prepared, kept, dropped, report):
    ingested = manifest.read(Path(prepared.paths.ingest) / "manifest.parquet", stage="ingest")
    assert report["rows_in"] == len(ingested) == report["rows_kept"] + report["rows_dropped"]
    assert report["rows_kept"] == len(kept) and report["rows_dropped"] == len(dropped)
    assert report["dropped_by_reason"] == dropped["drop_reason"].value_counts().to_dict()
    assert set(kept["image_id"]) | set(dropped["image_id"]) == set(ingested["image_id"])
    assert not set(kept["image_id"]) & set(dropped["image_id"])
    drops_csv = pd.read_csv(Path(prepared.paths.reports) / "clean" / "drops.csv")
    assert dict(zip(drops_csv["reason"], drops_csv["count"], strict=True)) == report["dropped_by_reason"]
    assert (dropped["drop_stage"] == "clean").all()


def test_rerun_keeps_the_same_photos(prepared, kept):
    df = manifest.read(Path(prepared.paths.ingest) / "manifest.parquet", stage="ingest")
    c = prepared.clean
    result = clean.clean(
        df,
        min_side=c.min_side,
        max_pixels=c.max_pixels,
        near_duplicate_bits=c.near_duplicate_bits,
        decode_side=c.decode_side,
        workers=1,
    )
    result.check(list(df.columns))
    pd.testing.assert_frame_equal(result.kept.reset_index(drop=True), kept.reset_index(drop=True))


# --- units on hand-made images ----------------------------------------------------------------------------------


def _inspect(tmp_path: Path, size: tuple[int, int], min_side: int = 32, decode_side: int = 256) -> clean.Inspected:
    src = tmp_path / "src.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(src)
    return clean.inspect_one(str(src), min_side=min_side, max_pixels=10**7, decode_side=decode_side)


def test_inspect_one_min_side_boundary(tmp_path: Path):
    ok = _inspect(tmp_path, (40, 32))
    assert ok.reason is None and (ok.width, ok.height) == (40, 32)
    small = _inspect(tmp_path, (40, 31))
    assert small.reason == "too_small" and small.detail == "40x31"


def test_inspect_one_reports_the_full_size_of_a_reduced_decode(tmp_path: Path):
    # 1200x900 decoded at 1/2 (shorter side 450 >= 300): the manifest still holds the full size.
    info = _inspect(tmp_path, (1200, 900), decode_side=300)
    assert info.reason is None and (info.width, info.height) == (1200, 900) and info.format == "JPEG"


def _dup_frame(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["image_id", "sha256", "phash", "width"]).assign(height=10)


def test_duplicate_reasons_exact_keeps_first_and_near_keeps_largest():
    df = _dup_frame(
        [
            ("a", "s1", "0000000000000000", 50),
            ("b", "s1", "0000000000000000", 50),  # exact copy of a
            ("c", "s2", "000000000000000f", 80),  # 4 bits from a: near, and larger
            ("d", "s3", "00000000000000ff", 90),  # 8 bits from a, 4 from c: chained into the group, largest
            ("e", "s4", "ffffffffffffffff", 10),  # unrelated
        ]
    )
    reason, detail = clean.duplicate_reasons(df, near_bits=4)
    assert reason.fillna("kept").tolist() == ["near_duplicate", "exact_duplicate", "near_duplicate", "kept", "kept"]
    assert detail.tolist() == ["of d", "of a", "of d", "", ""]


def test_empty_manifest_gives_an_empty_result(prepared, tmp_path: Path):
    """Ingest can keep no row (e.g. every listed file missing); clean should pass the empty table on."""
    df = manifest.read(Path(prepared.paths.ingest) / "manifest.parquet", stage="ingest").iloc[0:0]
    result = clean.clean(df, min_side=32, max_pixels=10**7, near_duplicate_bits=4)
    assert result.rows_in == 0 and len(result.kept) == 0
