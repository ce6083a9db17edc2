"""Tests for the split stage (carvision.stages.split): leakage-free groups, fractions, classes, seeds, the class
policy through the stage, the official split, the leakage check and the errors that explain an empty split.

The first tests read the split of the session's generated sample; the rest build small manifests by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carvision import manifest
from carvision.class_policy import ClassPolicyError
from carvision.leakage import LeakageError, leakage_report
from carvision.stages import split
from carvision.stages.split import SPLITS, NothingToSplitError
from conftest import make_cfg

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


def test_the_stage_report_holds_the_class_policy_and_zero_leakage(prepared, split_df):
    report = json.loads((Path(prepared.paths.reports) / "split" / "report.json").read_text())
    assert report["leakage"] == {
        "near_duplicate_bits": prepared.split.group_near_duplicate_bits,
        "listings_shared": 0,
        "near_duplicate_pairs_across_splits": 0,
        "near_duplicate_groups_shared": 0,
    }
    assert report["class_policy"]["min_images_per_class"] == prepared.split.min_images_per_class
    assert report["images_per_split"] == split_df["split"].value_counts().reindex(SPLITS).to_dict()
    assert report["official_split"] == {"official": False}
    # The same report sits in the data folder, committed with the manifest it counts.
    assert json.loads((Path(prepared.paths.split) / "report.json").read_text()) == report


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


# --------------------------------------------------------------------------------------------------------------
# Hand-built manifests
# --------------------------------------------------------------------------------------------------------------

BITS = 10
NEUTRAL = {"string": "", "int": 0, "float": float("nan"), "object": None, "bool": False}


def manifest_of(rows: list[dict]) -> pd.DataFrame:
    """A crop-stage manifest from a few fields per row (image_id, listing_id, label, phash, ...); every other
    column of the schema gets a neutral value."""
    df = pd.DataFrame(rows)
    for col in manifest.SCHEMA:
        if col.name in manifest.columns_after("crop"):
            if col.name not in df.columns:
                df[col.name] = pd.Series([NEUTRAL[col.dtype]] * len(df), dtype=object)
            if col.dtype == "string":
                df[col.name] = df[col.name].fillna("").astype("string")
            elif col.dtype == "int":
                df[col.name] = df[col.name].astype("int64")
            elif col.dtype == "float":
                df[col.name] = df[col.name].astype("float64")
    manifest.validate(df, "crop")
    return df


class Hashes:
    """Random 64-bit pHashes (pairwise far apart: 11+ bits is all but certain), and planted near copies."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def far(self) -> int:
        return int(self.rng.integers(0, 2**63))

    @staticmethod
    def near(h: int, bits: list[int]) -> int:
        for b in bits:
            h ^= 1 << b
        return h


def photos(label: str, n_listings: int, per_listing: int, hashes: Hashes, **fields) -> list[dict]:
    """`n_listings` listings of `per_listing` photos each, every photo far from every other."""
    tag = label.replace(" ", "_")
    return [
        dict(
            image_id=f"{tag}-{k}/{p}.jpg",
            listing_id=f"{tag}-{k}",
            label=label,
            phash=f"{hashes.far():016x}",
            **fields,
        )
        for k in range(n_listings)
        for p in range(per_listing)
    ]


def run_split(df: pd.DataFrame, **overrides):
    kwargs = dict(fractions=FRACTIONS, min_images_per_class=5, class_merge={}, near_bits=BITS, seed=0)
    result, labels = split.split(df, **(kwargs | overrides))
    result.check(list(df.columns))
    return result, labels


@pytest.fixture
def three_classes() -> pd.DataFrame:
    h = Hashes(1)
    return manifest_of(
        photos("Audi S4", 20, 3, h) + photos("BMW M3", 12, 2, h) + photos("Kia Rio", 2, 2, h)  # Kia: 4 images
    )


def test_leakage_is_recomputed_into_the_report(three_classes):
    result, _ = run_split(three_classes)
    report = result.report()
    assert report["leakage"] == {
        "near_duplicate_bits": BITS,
        "listings_shared": 0,
        "near_duplicate_pairs_across_splits": 0,
        "near_duplicate_groups_shared": 0,
    }
    assert report["images_per_split"] == result.kept["split"].value_counts().reindex(SPLITS).to_dict()
    assert report["class_policy"]["rare_classes"] == {"Kia Rio": 4}
    assert report["dropped_by_reason"] == {"rare_class": 4}


def test_a_grouping_bug_fails_the_stage_instead_of_writing_a_leaking_split(three_classes, monkeypatch):
    # Every photo its own group: the photos of one listing scatter over the splits; the check must catch it.
    monkeypatch.setattr(split, "group_ids", lambda df, near_bits, workers=1: np.arange(len(df)))
    with pytest.raises(LeakageError, match="listings_shared"):
        run_split(three_classes)


def test_same_seed_same_split_on_a_hand_built_manifest(three_classes):
    runs = [run_split(three_classes, seed=seed)[0].kept for seed in (3, 3, 4)]
    assert runs[0]["split"].tolist() == runs[1]["split"].tolist()
    assert runs[0]["split"].tolist() != runs[2]["split"].tolist()
    assert runs[0]["group_id"].tolist() == runs[2]["group_id"].tolist()


def test_a_group_that_mixes_classes_goes_whole_with_its_majority(monkeypatch):
    h = Hashes(2)
    rows = photos("Audi S4", 10, 2, h) + photos("BMW M3", 10, 2, h)
    # Three BMW photos are near copies of one Audi listing's photos: one group of 2 Audi + 3 BMW photos.
    audi = int(rows[0]["phash"], 16)
    for k, bits in zip((20, 21, 22), ([1], [2, 3], [4, 5, 6]), strict=True):
        rows[k]["phash"] = f"{Hashes.near(audi, bits):016x}"
    calls = []
    real = split.assign_groups
    monkeypatch.setattr(split, "assign_groups", lambda sizes, *a: calls.append(sizes) or real(sizes, *a))
    kept = run_split(manifest_of(rows))[0].kept
    group = kept.loc[kept["image_id"] == rows[0]["image_id"], "group_id"].item()
    members = kept[kept["group_id"] == group]
    assert len(members) == 6  # Audi listing 0 (2 photos), BMW listing 0 (photos 20, 21) and listing 1 (22, 23)
    assert members["split"].nunique() == 1
    assert set(members["class_name"]) == {"Audi S4", "BMW M3"}
    # 4 BMW photos against 2 Audi: the group (named by its first row, 0) is placed among BMW's groups.
    audi_groups, bmw_groups = calls
    assert 0 in bmw_groups.index and 0 not in audi_groups.index
    assert bmw_groups[0] == 6 and len(bmw_groups) == 9 and len(audi_groups) == 9


@pytest.mark.parametrize(
    "fractions",
    [{"train": 0.8, "val": 0.3, "test": -0.1}, {"train": 0.5, "val": 0.2, "test": 0.2}, {"train": 1.0, "val": 0.0}],
)
def test_bad_fractions_are_an_error_at_start(three_classes, fractions):
    with pytest.raises(ValueError, match="fractions"):
        run_split(three_classes, fractions=fractions)


# --- class policy through the stage ----------------------------------------------------------------------------


def test_merge_file_then_inline_with_a_chain(tmp_path, three_classes):
    f = tmp_path / "merge.yaml"
    f.write_text("kia rio: BMW M3-ish\nOpel Astra: Opel\n", encoding="utf-8")
    # The file sends Kia Rio to "BMW M3-ish"; inline sends that on to BMW M3: a chain across the two sources.
    result, labels = run_split(three_classes, class_merge_file=str(f), class_merge={"BMW M3-ish": "bmw m3"})
    assert labels == ["Audi S4", "BMW M3"]
    assert set(result.kept.loc[result.kept["label"] == "Kia Rio", "class_name"]) == {"BMW M3"}
    policy = result.report()["class_policy"]
    assert policy["merge_map"] == {"BMW M3-ish": "bmw m3", "kia rio": "bmw m3", "Opel Astra": "Opel"}
    assert policy["merged_labels"] == {"BMW M3": {"Kia Rio": 4}}  # in the data's spelling of the class
    assert policy["class_merge_file"] == str(f)
    assert policy["merge_entries_matching_no_label"] == ["Opel Astra"]
    assert policy["rare_classes"] == {}  # merged, Kia's 4 photos are no longer a rare class of their own
    assert len(result.dropped) == 0


def test_a_merge_cycle_is_an_error_at_start_naming_the_keys(three_classes):
    with pytest.raises(ClassPolicyError, match="cycle: Kia Rio -> BMW M3 -> Kia Rio"):
        run_split(three_classes, class_merge={"Kia Rio": "BMW M3", "BMW M3": "kia rio"})


def test_merge_years_false_makes_year_classes_and_true_merges_them():
    h = Hashes(3)
    rows = photos("Audi S4", 8, 1, h, year="2007") + photos("Audi S4", 8, 1, h, year="2012")
    for k, r in enumerate(rows):
        r["image_id"], r["listing_id"] = f"s4-{k}/0.jpg", f"s4-{k}"
    rows += photos("Kia Rio", 6, 1, h, year="")
    df = manifest_of(rows)
    by_year, labels = run_split(df, merge_years=False)
    assert labels == ["Audi S4 2007", "Audi S4 2012", "Kia Rio"]
    assert by_year.report()["class_policy"]["year_classes_per_label"] == {"Audi S4": ["Audi S4 2007", "Audi S4 2012"]}
    merged, labels = run_split(df, merge_years=True)
    assert labels == ["Audi S4", "Kia Rio"]
    assert merged.report()["class_policy"]["years_merged_per_class"] == {"Audi S4": ["2007", "2012"]}


def test_the_cap_subsamples_whole_groups_seeded():
    h = Hashes(4)
    df = manifest_of(photos("Audi S4", 20, 3, h) + photos("BMW M3", 10, 2, h))  # 60 and 20 images
    a, _ = run_split(df, max_images_per_class=25, seed=0)
    b, _ = run_split(df, max_images_per_class=25, seed=0)
    c, _ = run_split(df, max_images_per_class=25, seed=1)
    kept = a.kept
    audi = kept[kept["class_name"] == "Audi S4"]
    assert len(audi) == 24  # whole listings of 3 while they fit under 25
    assert (audi.groupby("listing_id").size() == 3).all()
    assert (kept["class_name"] == "BMW M3").sum() == 20  # under the cap: untouched
    assert set(a.dropped["drop_reason"]) == {"class_cap"} and len(a.dropped) == 36
    assert a.dropped["drop_detail"].str.contains("60 images > max_images_per_class=25, kept 24").all()
    assert a.report()["class_policy"]["capped_classes"] == {"Audi S4": {"before": 60, "after": 24}}
    assert sorted(a.kept["image_id"]) == sorted(b.kept["image_id"])
    assert sorted(a.kept["image_id"]) != sorted(c.kept["image_id"])
    assert a.report()["leakage"]["listings_shared"] == 0


# --- the official split ----------------------------------------------------------------------------------------


@pytest.fixture
def stanford_like() -> pd.DataFrame:
    """Two classes, each photo its own listing, 30 official train and 10 official test photos per class; one
    train photo (Y) is 6 bits from a test photo (T), and another (X) 6 bits from Y but 12 from T."""
    h = Hashes(5)
    rows = []
    for label in ("Audi S4", "BMW M3"):
        rows += photos(label, 30, 1, h, source_split="train", year="2012")
        rows += [
            r | {"image_id": r["image_id"].replace("/", "-t/"), "listing_id": r["listing_id"] + "-t"}
            for r in photos(label, 10, 1, h, source_split="test", year="2012")
        ]
    t = next(r for r in rows if r["source_split"] == "test")
    y, x = rows[0], rows[1]
    y["phash"] = f"{Hashes.near(int(t['phash'], 16), list(range(6))):016x}"
    x["phash"] = f"{Hashes.near(int(y['phash'], 16), list(range(6, 12))):016x}"
    df = manifest_of(rows)
    df.attrs["planted"] = (t["image_id"], y["image_id"], x["image_id"])
    return df


def test_official_keeps_the_test_and_carves_val_from_train(stanford_like):
    result, labels = run_split(stanford_like, official=True, merge_years=False)
    kept = result.kept.merge(stanford_like[["image_id", "source_split"]], on="image_id", suffixes=("", "_in"))
    assert labels == ["Audi S4 2012", "BMW M3 2012"]
    test = kept[kept["source_split"] == "test"]
    assert len(test) == 20 and (test["split"] == "test").all()  # every official test photo, none moved
    train_side = kept[kept["source_split"] == "train"]
    assert set(train_side["split"]) == {"train", "val"}
    val_share = (train_side["split"] == "val").mean()
    assert abs(val_share - 0.15 / 0.85) < 0.05, val_share
    notes = result.report()["official_split"]
    assert notes["official_test_rows"] == 20 and notes["official_train_rows"] == 60
    assert notes["near_duplicate_of_test"] == 2
    assert result.report()["leakage"]["near_duplicate_pairs_across_splits"] == 0


def test_official_drops_train_photos_near_a_test_photo_naming_it(stanford_like):
    t, y, x = stanford_like.attrs["planted"]
    result, _ = run_split(stanford_like, official=True)
    dropped = result.dropped.set_index("image_id")
    assert sorted(dropped.index) == sorted([y, x])
    assert set(dropped["drop_reason"]) == {"near_duplicate_of_test"}
    assert dropped.loc[y, "drop_detail"] == f"6 pHash bits from official test image {t}"
    assert dropped.loc[x, "drop_detail"] == f"in a near-duplicate group with official test image {t}"
    assert t in set(result.kept["image_id"])
    # Without the drops the official parts would leak: the check sees it on the same rows.
    forced = stanford_like.assign(split=stanford_like["source_split"])
    leak = leakage_report(forced, BITS)
    assert leak["near_duplicate_pairs_across_splits"] == 1 and leak["near_duplicate_groups_shared"] == 1  # T ~ Y


def test_official_split_without_source_split_is_an_error_at_start(stanford_like, three_classes):
    with pytest.raises(ValueError, match="stanford") as e:
        run_split(three_classes, official=True)
    assert "source_split" in str(e.value) and "split.official=false" in str(e.value)
    only_train = stanford_like.assign(source_split=pd.Series("train", index=stanford_like.index, dtype="string"))
    with pytest.raises(ValueError, match="no official test rows"):
        run_split(only_train, official=True)


# --- errors that say which stage lost the rows -------------------------------------------------------------------


def _write_stage(folder: Path, stage: str, kept: pd.DataFrame, dropped_reasons: list[str]) -> None:
    dropped = manifest_of(
        [dict(image_id=f"x{k}/0.jpg", listing_id=f"x{k}", label="Audi S4") for k in range(len(dropped_reasons))]
    )
    dropped = dropped.assign(drop_stage=stage, drop_reason=dropped_reasons, drop_detail="")
    manifest.write(kept, folder / "manifest.parquet")
    manifest.write(dropped, folder / "dropped.parquet")


def test_an_empty_input_names_the_stage_that_dropped_everything(tmp_path):
    cfg = make_cfg(tmp_path)
    empty = manifest_of([])
    _write_stage(Path(cfg.paths.ingest), "ingest", empty, ["unsafe_path"] * 3 + ["missing_file"])
    # clean and filter never ran (no folders); crop wrote an empty manifest.
    manifest.write(empty, Path(cfg.paths.crop) / "manifest.parquet")
    with pytest.raises(NothingToSplitError) as e:
        split.main(cfg)
    assert str(e.value) == (
        "split: no rows to split: the input manifest is empty; "
        "before split: ingest dropped 4 of 4 (unsafe_path 3, missing_file 1)"
    )
    assert not (Path(cfg.paths.split) / "manifest.parquet").exists()


def test_every_class_rare_names_the_largest_class_the_setting_and_upstream_losses(tmp_path):
    cfg = make_cfg(tmp_path)  # split.min_images_per_class=8 in the tests' config
    h = Hashes(6)
    crop = manifest_of(photos("Audi S4", 3, 2, h) + photos("Kia Rio", 2, 1, h))
    _write_stage(Path(cfg.paths.ingest), "ingest", crop, [])
    _write_stage(Path(cfg.paths.clean), "clean", crop, ["unreadable"] * 5 + ["exact_duplicate"] * 2)
    manifest.write(crop, Path(cfg.paths.crop) / "manifest.parquet")
    with pytest.raises(NothingToSplitError) as e:
        split.main(cfg)
    message = str(e.value)
    assert "every class is rare" in message
    assert "largest: 'Audi S4' with 6 images" in message
    assert "lower split.min_images_per_class" in message and "split.min_images_per_class=8" in message
    assert message.endswith(
        "before split: ingest dropped 0 of 8; clean dropped 7 of 15 (unreadable 5, exact_duplicate 2)"
    )
