"""Tests for the leakage check (carvision.leakage): 0 on leak-free splits, non-zero on leaking ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carvision.leakage import LeakageError, check_no_leakage, leakage_report, leaks

BITS = 10


def _flip(h: int, n_bits: int, rng: np.random.Generator) -> int:
    for b in rng.choice(64, size=n_bits, replace=False):
        h ^= 1 << int(b)
    return h


def _rows() -> pd.DataFrame:
    """Six listings of two photos each (photos of a listing are near each other); L6's photos are near L1's."""
    rng = np.random.default_rng(7)
    recs = []
    for k in range(6):
        base = int(rng.integers(0, 2**63)) if k < 5 else recs[0]["_h"]
        for p in range(2):
            h = _flip(base, 3 * p, rng) if k < 5 else _flip(base, 4 + p, rng)
            recs.append(dict(image_id=f"L{k + 1}/{p}.jpg", listing_id=f"L{k + 1}", _h=h))
    df = pd.DataFrame(recs)
    df["phash"] = [f"{h:016x}" for h in df.pop("_h")]
    return df


def _brute_force_pairs(df: pd.DataFrame, bits: int) -> list[tuple[int, int]]:
    h = [int(x, 16) for x in df["phash"]]
    return [(i, j) for i in range(len(h)) for j in range(i + 1, len(h)) if bin(h[i] ^ h[j]).count("1") <= bits]


def test_the_planted_rows_are_what_the_tests_need():
    pairs = _brute_force_pairs(_rows(), BITS)
    ids = _rows()["listing_id"].to_numpy()
    assert {(ids[i], ids[j]) for i, j in pairs} == {(f"L{k}", f"L{k}") for k in range(1, 7)} | {("L1", "L6")}


def test_a_leak_free_split_reports_zero():
    df = _rows().assign(split=["train"] * 2 + ["val"] * 2 + ["test"] * 2 + ["train"] * 4 + ["train"] * 2)
    report = check_no_leakage(df, BITS)
    assert report == {
        "near_duplicate_bits": BITS,
        "listings_shared": 0,
        "near_duplicate_pairs_across_splits": 0,
        "near_duplicate_groups_shared": 0,
    }


def test_a_listing_in_two_splits_is_counted_and_named():
    df = _rows().assign(split=["train"] * 12)
    df.loc[df["image_id"] == "L3/1.jpg", "split"] = "test"  # one photo of L3 leaks into test
    report = leakage_report(df, BITS)
    assert report["listings_shared"] == 1 and report["example_listings_shared"] == ["L3"]
    assert report["near_duplicate_pairs_across_splits"] == 1  # L3's two photos are 3 bits apart
    assert report["near_duplicate_groups_shared"] == 1
    assert leaks(report)
    with pytest.raises(LeakageError, match="listings_shared"):
        check_no_leakage(df, BITS)


def test_near_duplicates_across_listings_in_two_splits_are_counted():
    # Listings are whole, but L6 (near L1's photos) went to test while L1 is in train: leakage across listings.
    df = _rows().assign(split=["train"] * 10 + ["test"] * 2)
    report = leakage_report(df, BITS)
    assert report["listings_shared"] == 0
    cross = [(i, j) for i, j in _brute_force_pairs(df, BITS) if df["split"].iat[i] != df["split"].iat[j]]
    assert len(cross) >= 1
    assert report["near_duplicate_pairs_across_splits"] == len(cross)
    assert report["near_duplicate_groups_shared"] == 1
    assert all("L1/" in p and "L6/" in p for p in report["example_pairs_across_splits"])
    with pytest.raises(LeakageError, match="near_duplicate_pairs_across_splits"):
        check_no_leakage(df, BITS)
    # The same rows at a radius where L6 is not a near duplicate of L1 do not leak.
    assert check_no_leakage(df, 3)["near_duplicate_pairs_across_splits"] == 0


def test_an_empty_split_has_no_leakage():
    df = _rows().iloc[0:0].assign(split=pd.Series(dtype="string"))
    assert not leaks(leakage_report(df, BITS))
