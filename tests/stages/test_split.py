"""Tests for the split stage (carvision.stages.split): leakage-free groups, fractions, classes, seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carvision import manifest
from carvision.stages import split
from carvision.stages.split import SPLITS

FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}


@pytest.fixture(scope="module")
def crop_df(prepared) -> pd.DataFrame:
    return manifest.read(Path(prepared.paths.crop) / "manifest.parquet", stage="crop")


@pytest.fixture(scope="module")
def split_df(prepared) -> pd.DataFrame:
    return manifest.read(Path(prepared.paths.split) / "manifest.parquet", stage="split")


@pytest.fixture(scope="module")
def labels(prepared) -> list[str]:
    return json.loads((Path(prepared.paths.split) / "labels.json").read_text())


def _run(df: pd.DataFrame, prepared, **overrides):
    s = prepared.split
    kwargs = dict(
        fractions=FRACTIONS,
        min_images_per_class=s.min_images_per_class,
        class_merge={},
        near_bits=s.group_near_duplicate_bits,
        seed=0,
    )
    return split.split(df, **(kwargs | overrides))


def test_split_values(split_df):
    assert set(split_df["split"]) == set(SPLITS)


@pytest.mark.parametrize("column", ["listing_id", "group_id"])
def test_no_listing_or_group_straddles_two_splits(split_df, column):
    per = split_df.groupby(column)["split"].nunique()
    assert (per == 1).all(), per[per > 1].index.tolist()
    assert split_df[column].nunique() > 20


def test_near_duplicates_share_a_split(prepared, split_df):
    bits = prepared.split.group_near_duplicate_bits
    hashes = np.array([int(h, 16) for h in split_df["phash"]], dtype=np.uint64)
    dist = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    ii, jj = np.nonzero(np.triu(dist <= bits, k=1))
    assert len(ii) > 0, "the sample should have photos this close"
    splits = split_df["split"].to_numpy()
    cross_listing = split_df["listing_id"].to_numpy()[ii] != split_df["listing_id"].to_numpy()[jj]
    assert cross_listing.any(), "some close pairs should span two listings"
    bad = [
        (split_df["image_id"].iat[i], split_df["image_id"].iat[j])
        for i, j in zip(ii, jj, strict=True)
        if splits[i] != splits[j]
    ]
    assert bad == []


def test_every_class_is_in_train(split_df):
    train_classes = set(split_df.loc[split_df["split"] == "train", "class_name"])
    assert train_classes == set(split_df["class_name"])


def test_fractions_are_roughly_70_15_15(split_df):
    share = split_df["split"].value_counts(normalize=True)
    for name, target in FRACTIONS.items():
        assert abs(share[name] - target) < 0.05, share.to_dict()
    big = split_df["class_name"].value_counts()
    big = big[big >= 100].index
    assert len(big) > 0
    for cls in big:
        share = split_df.loc[split_df["class_name"] == cls, "split"].value_counts(normalize=True)
        for name, target in FRACTIONS.items():
            assert abs(share.get(name, 0.0) - target) < 0.06, (cls, share.to_dict())


def test_class_idx_follows_labels_json(split_df, labels):
    assert labels == sorted(set(split_df["class_name"]))
    assert [labels[i] for i in split_df["class_idx"]] == split_df["class_name"].tolist()
    assert split_df["class_idx"].min() == 0 and split_df["class_idx"].max() == len(labels) - 1


def test_split_report_reconciles(prepared, crop_df, split_df):
    rep_dir = Path(prepared.paths.reports) / "split"
    report = json.loads((rep_dir / "report.json").read_text())
    dropped = pd.read_parquet(Path(prepared.paths.split) / "dropped.parquet")
    assert report["rows_in"] == len(crop_df) == len(split_df) + len(dropped)
    table = pd.read_csv(rep_dir / "split_counts.csv").set_index("class_name")
    expected = pd.crosstab(split_df["class_name"], split_df["split"]).reindex(columns=list(SPLITS), fill_value=0)
    assert table.sort_index().to_numpy().tolist() == expected.sort_index().to_numpy().tolist()


def test_class_merge_merges_two_labels(prepared, crop_df):
    (result, labels) = _run(crop_df, prepared, class_merge={"Jeep Wrangler": "Offroad", "Ford F-150": "Offroad"})
    result.check(list(crop_df.columns))
    kept = result.kept
    assert "Offroad" in labels and "Jeep Wrangler" not in labels and "Ford F-150" not in labels
    merged = kept[kept["class_name"] == "Offroad"]
    assert set(merged["label"]) == {"Jeep Wrangler", "Ford F-150"}
    assert len(merged) == crop_df["label"].isin(["Jeep Wrangler", "Ford F-150"]).sum()
    assert (
        kept.loc[kept["class_name"] != "Offroad", "class_name"] == kept.loc[kept["class_name"] != "Offroad", "label"]
    ).all()
    _, base_labels = _run(crop_df, prepared)
    assert len(labels) == len(base_labels) - 1
    assert [labels[i] for i in kept["class_idx"]] == kept["class_name"].tolist()


def test_merging_rare_classes_can_save_them(prepared, crop_df):
    counts = crop_df["label"].value_counts()
    a, b = counts.index[-1], counts.index[-2]  # the two smallest classes
    threshold = counts[a] + counts[b]
    plain, _ = _run(crop_df, prepared, min_images_per_class=threshold)
    merged, labels = _run(crop_df, prepared, min_images_per_class=threshold, class_merge={a: b})
    assert a in set(plain.dropped["label"]) and b in set(plain.dropped["label"])
    assert b in labels
    assert not ({a, b} & set(merged.dropped["label"]))


def test_min_images_per_class_drops_rare_classes(prepared, crop_df):
    counts = crop_df["label"].value_counts()
    threshold = int(counts.iloc[len(counts) // 2]) + 1
    rare = set(counts[counts < threshold].index)
    assert 0 < len(rare) < len(counts)
    result, labels = _run(crop_df, prepared, min_images_per_class=threshold)
    result.check(list(crop_df.columns))
    assert set(labels) == set(counts.index) - rare
    assert set(result.dropped["label"]) == rare
    assert len(result.dropped) == counts[list(rare)].sum()
    assert set(result.dropped["drop_reason"]) == {"rare_class"}
    assert result.dropped["drop_detail"].str.contains(f"< {threshold}").all()
    assert result.report()["dropped_by_reason"] == {"rare_class": len(result.dropped)}
    assert result.kept["class_idx"].max() == len(labels) - 1


def test_same_seed_same_split_different_seed_different_split(prepared, crop_df, split_df):
    a, _ = _run(crop_df, prepared, seed=0)
    b, _ = _run(crop_df, prepared, seed=0)
    c, _ = _run(crop_df, prepared, seed=1)
    assert a.kept["split"].tolist() == b.kept["split"].tolist()
    assert a.kept["group_id"].tolist() == c.kept["group_id"].tolist()  # groups do not depend on the seed
    assert a.kept["split"].tolist() != c.kept["split"].tolist()
    # The stage's own run (seed 0 in the config) is the same split.
    assert prepared.seed == 0
    assert dict(zip(a.kept["image_id"], a.kept["split"], strict=True)) == dict(
        zip(split_df["image_id"], split_df["split"], strict=True)
    )


@pytest.mark.parametrize(
    "fractions",
    [
        {"train": 0.7, "val": 0.2, "test": 0.2},
        {"train": 0.7, "val": 0.15},
        {"train": 0.7, "val": 0.15, "test": 0.1, "holdout": 0.05},
        {"train": 0.5, "validation": 0.25, "test": 0.25},
    ],
)
def test_bad_fractions_raise(prepared, crop_df, fractions):
    with pytest.raises(ValueError, match="fractions"):
        _run(crop_df, prepared, fractions=fractions)


def test_negative_fractions_raise(prepared, crop_df):
    with pytest.raises(ValueError, match="fractions"):
        _run(crop_df, prepared, fractions={"train": 1.2, "val": -0.1, "test": -0.1})


def test_group_ids_join_listings_and_close_photos():
    df = pd.DataFrame(
        {
            "listing_id": ["L1", "L1", "L2", "L3", "L4"],
            "phash": [
                "0000000000000000",
                "ffffffffffffffff",
                "000000000000000f",
                "00000000ffffffff",
                "ffffffffff000000",
            ],
        }
    )
    groups = split.group_ids(df, near_bits=4)
    assert groups.tolist() == [0, 0, 0, 3, 4]  # L2 is 4 bits from L1's first photo; L3, L4 stand alone


def test_every_class_rare_is_handled(prepared, crop_df):
    """Either every row is dropped as rare_class, or a ValueError says why; not an IndexError."""
    try:
        result, labels = _run(crop_df, prepared, min_images_per_class=10**6)
    except ValueError as e:
        assert "min_images_per_class" in str(e) or "class" in str(e)
    else:
        assert labels == [] and len(result.kept) == 0
        assert set(result.dropped["drop_reason"]) == {"rare_class"} and len(result.dropped) == len(crop_df)
