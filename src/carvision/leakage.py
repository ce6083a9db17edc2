"""The leakage check of a split: no listing and no near-duplicate photo may sit in two splits.

It is recomputed from the assigned rows alone (fresh near-duplicate pairs, listing sets per split), not from the
groups the split assigned, so that a bug in the grouping cannot hide itself. Non-zero means a bug: the split
stage raises LeakageError rather than write a split whose test scores would flatter the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carvision.near_duplicates import connected_groups, hex_to_uint64, pairs_within


class LeakageError(RuntimeError):
    """The split put one listing or near-duplicate group into two splits: a bug in the split, not in the data."""


def leakage_report(
    df: pd.DataFrame, near_bits: int, split_column: str = "split", examples: int = 3, workers: int = 1
) -> dict:
    """Counts what the splits share; every count is 0 in a leak-free split.

    Args:
        df: rows with `listing_id`, `phash` (16 hex digits), `image_id` and `split_column`.
        near_bits: photos within this many pHash bits are near duplicates (the split's grouping threshold).
        examples: how many shared listings and cross-split pairs to name when the counts are not 0.

    Returns:
        listings_shared: listing ids found in more than one split.
        near_duplicate_pairs_across_splits: pairs of photos within near_bits whose splits differ.
        near_duplicate_groups_shared: connected groups of near-duplicate photos that span more than one split.
    """
    splits = df[split_column].astype(str).to_numpy()
    per_listing = df.groupby(df["listing_id"].astype(str).to_numpy())[split_column].nunique()
    shared_listings = per_listing.index[per_listing > 1]

    hashes = hex_to_uint64(df["phash"].astype(str).tolist())
    ii, jj, dist = pairs_within(hashes, near_bits, workers=workers)
    across = splits[ii] != splits[jj]
    groups = connected_groups(len(df), np.column_stack([ii, jj, dist]))
    per_group = pd.Series(splits).groupby(groups).nunique()

    ids = df["image_id"].astype(str).to_numpy()
    report = {
        "near_duplicate_bits": int(near_bits),
        "listings_shared": int(len(shared_listings)),
        "near_duplicate_pairs_across_splits": int(across.sum()),
        "near_duplicate_groups_shared": int((per_group > 1).sum()),
    }
    if report["listings_shared"]:
        report["example_listings_shared"] = [str(x) for x in shared_listings[:examples]]
    if report["near_duplicate_pairs_across_splits"]:
        report["example_pairs_across_splits"] = [
            f"{ids[i]} ({splits[i]}) ~ {ids[j]} ({splits[j]})"
            for i, j in zip(ii[across][:examples], jj[across][:examples], strict=True)
        ]
    return report


def leaks(report: dict) -> bool:
    return any(
        report[k] for k in ("listings_shared", "near_duplicate_pairs_across_splits", "near_duplicate_groups_shared")
    )


def check_no_leakage(df: pd.DataFrame, near_bits: int, split_column: str = "split", workers: int = 1) -> dict:
    """The leakage report of `df`; raises LeakageError, with the counts and examples, when it is not all 0."""
    report = leakage_report(df, near_bits, split_column, workers=workers)
    if leaks(report):
        raise LeakageError(f"split: the split leaks between train, val and test (a bug; nothing written): {report}")
    return report
