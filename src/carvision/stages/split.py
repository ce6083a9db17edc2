"""Split: apply the class policy, then assign whole listing/near-duplicate groups to train/val/test per class.

python -m carvision.stages.split       # reads params.yaml (DVC stage `split`)

The class policy (carvision.class_policy) merges labels and years into classes; rare classes are dropped and
large ones capped by whole groups. With `split.official` the source's own train/test split stays as it is and
val is carved from its train part. A leakage check, recomputed from the assigned rows, must come out 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from omegaconf import DictConfig

from carvision import manifest, settings, stage_io
from carvision.atomic import atomic_dir, write_text
from carvision.class_policy import build_merge_map, class_names
from carvision.config import load_params
from carvision.leakage import check_no_leakage
from carvision.manifest import StageResult
from carvision.near_duplicates import groups_within, hex_to_uint64, pairs_within

SPLITS = ("train", "val", "test")
# The stages before split, in order: their drops explain an empty input.
UPSTREAM = ("ingest", "clean", "filter", "crop")
SOURCES_WITH_SPLIT = "data.source: stanford (Stanford Cars' own train/test)"


class NothingToSplitError(ValueError):
    """No row is left to split; the message says which stage dropped them, and why."""


def check_fractions(fractions: dict[str, float], official: bool = False) -> None:
    """A ValueError at start unless the fractions are train/val/test, each in [0, 1], summing to 1."""
    valid = set(fractions) == set(SPLITS) and all(0 <= f <= 1 for f in fractions.values())
    if not valid or not np.isclose(sum(fractions.values()), 1.0):
        raise ValueError(f"split fractions must be train/val/test, each in [0, 1], summing to 1; got {fractions}")
    if official and fractions["train"] + fractions["val"] <= 0:
        raise ValueError(
            f"split.official carves val from the official train part: train + val must be > 0; {fractions}"
        )


def listing_links(listing_ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) index arrays that tie every photo of a listing to the listing's first photo."""
    codes = pd.factorize(listing_ids)[0]
    _, first = np.unique(codes, return_index=True)
    first_of = first[codes]
    j = np.flatnonzero(first_of != np.arange(len(codes)))
    return first_of[j], j


def near_pairs(phashes: pd.Series, near_bits: int, workers: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance) int64 arrays of the photos within near_bits pHash bits of each other, i < j."""
    return pairs_within(hex_to_uint64(phashes.astype(str).tolist()), near_bits, workers=workers)


def group_ids(df: pd.DataFrame, near_bits: int, workers: int = 1) -> np.ndarray:
    """A group label per row (its smallest member's index): connected groups of photos that share a listing or
    are within near_bits pHash bits of each other."""
    hashes = hex_to_uint64(df["phash"].astype(str).tolist())
    return groups_within(hashes, near_bits, links=listing_links(df["listing_id"]), workers=workers)


def assign_groups(group_sizes: pd.Series, fractions: dict[str, float], rng: np.random.Generator) -> dict:
    """Assigns the groups of one class to splits so that image counts approach `fractions`.

    Largest groups first (bin packing), each to the split furthest below its target. Shuffling before the
    stable sort breaks ties between equal-sized groups at random, so the split depends on the seed only.
    """
    names = list(fractions)
    targets = np.array([fractions[s] for s in names]) * group_sizes.sum()
    filled = np.zeros(len(names))
    shuffled = group_sizes.iloc[rng.permutation(len(group_sizes))]
    out = {}
    for gid, size in shuffled.sort_values(ascending=False, kind="stable").items():
        k = int(np.argmax(targets - filled))
        out[gid] = names[k]
        filled[k] += size
    return out


def check_source_split(df: pd.DataFrame) -> pd.Series:
    """The rows' official split ("train"/"test"); a ValueError at start when a row has none or another value."""
    if "source_split" not in df.columns:
        raise ValueError(f"split.official: the manifest has no source_split column; only {SOURCES_WITH_SPLIT} has one")
    src = df["source_split"].fillna("").astype(str).str.strip().str.lower()
    bad = ~src.isin(["train", "test"])
    if bad.any():
        seen = sorted(set(src[bad]))
        raise ValueError(
            f"split.official: {int(bad.sum())} of {len(df)} rows have no official split (source_split {seen}, e.g. "
            f"{df.loc[bad, 'image_id'].head(3).tolist()}); only {SOURCES_WITH_SPLIT} provides one. "
            "Set split.official=false to split by fractions."
        )
    for part in ("train", "test"):
        if not (src == part).any():
            raise ValueError(f"split.official: the data has no official {part} rows, so there is no split to keep")
    return src


def official_test_conflicts(
    df: pd.DataFrame, groups: np.ndarray, is_test: np.ndarray, near_bits: int, workers: int = 1
) -> pd.Series:
    """For each official-train row that shares a listing or near-duplicate group with an official test row, the
    detail naming that test image; None elsewhere. Such rows are dropped so that the official test stays whole."""
    ids = df["image_id"].astype(str)
    has_test = pd.Series(is_test).groupby(groups).transform("any").to_numpy()
    conflict = has_test & ~is_test
    detail = pd.Series(None, index=df.index, dtype=object)
    if not conflict.any():
        return detail
    first_test = ids.where(is_test).groupby(groups).transform("first")
    detail[conflict] = "in a near-duplicate group with official test image " + first_test[conflict]
    # Name the closest cause where there is one: a test photo within near_bits, or one of the same listing.
    ni, nj, nd = near_pairs(df["phash"], near_bits, workers)
    mixed = is_test[ni] != is_test[nj]
    train_side = np.where(is_test[ni[mixed]], nj[mixed], ni[mixed])
    test_side = np.where(is_test[ni[mixed]], ni[mixed], nj[mixed])
    closest = pd.DataFrame({"row": train_side, "test": test_side, "bits": nd[mixed]}).sort_values(["bits", "test"])
    closest = closest.drop_duplicates("row")
    detail[closest["row"].to_numpy()] = [
        f"{b} pHash bits from official test image {ids.iat[t]}"
        for t, b in zip(closest["test"], closest["bits"], strict=True)
    ]
    test_of_listing = ids[is_test].groupby(df.loc[is_test, "listing_id"]).first()
    same = conflict & df["listing_id"].isin(test_of_listing.index).to_numpy()
    detail[same] = "same listing as official test image " + df.loc[same, "listing_id"].map(test_of_listing)
    return detail


def majority_class(groups: np.ndarray, classes: pd.Series) -> pd.Series:
    """The most frequent class of each group (ties: the first class by name), indexed by group label."""
    counts = pd.DataFrame({"group": groups, "cls": classes.to_numpy()}).value_counts().reset_index(name="n")
    counts = counts.sort_values(["group", "n", "cls"], ascending=[True, False, True], kind="stable")
    return counts.drop_duplicates("group").set_index("group")["cls"]


def sizes_by_class(sizes: pd.Series, group_class: pd.Series) -> Iterator[tuple[str, pd.Series]]:
    """(class, its groups' sizes) for each class in name order, the groups in label order: one pass, where a
    mask per class would cost classes x groups (3,000 x 1M)."""
    sizes = sizes.sort_index()
    yield from sizes.groupby(group_class.reindex(sizes.index).to_numpy(), sort=True)


def cap_groups(group_sizes: pd.Series, group_class: pd.Series, cap: int, rng: np.random.Generator) -> set:
    """The groups to drop so that no class holds more than `cap` images, taking whole groups in a seeded order.

    A class keeps groups in a random order while they fit under the cap, so it may end a few images below it.
    When every group of a class is larger than the cap, the first one in that order is kept: a capped class
    never vanishes.
    """
    dropped: set = set()
    for _, sizes in sizes_by_class(group_sizes, group_class):
        if sizes.sum() <= cap:
            continue
        sizes = sizes.iloc[rng.permutation(len(sizes))]
        total = 0
        for gid, size in sizes.items():
            if total + size <= cap:
                total += size
            else:
                dropped.add(gid)
        if total == 0:
            dropped.discard(sizes.index[0])
    return dropped


def split(
    df: pd.DataFrame,
    *,
    fractions: dict[str, float],
    min_images_per_class: int,
    class_merge: dict[str, str],
    near_bits: int,
    seed: int,
    class_merge_file: str | Path | None = None,
    merge_years: bool = True,
    max_images_per_class: int = 0,
    official: bool = False,
    workers: int = 1,
) -> tuple[StageResult, list[str]]:
    """Returns the split manifest (with the class policy, official split and leakage in its notes) and the label
    map (class names in class_idx order).

    Raises ValueError (or ClassPolicyError) at start on bad settings or a missing official split,
    NothingToSplitError when no row or no class is left, LeakageError when the result would leak.
    """
    check_fractions(fractions, official)
    if max_images_per_class < 0:
        raise ValueError(f"split.max_images_per_class must be >= 0 (0 = no cap), got {max_images_per_class}")
    merge = build_merge_map(class_merge, class_merge_file)
    df = df.reset_index(drop=True).copy()
    if df.empty:
        raise NothingToSplitError("split: no rows to split: the input manifest is empty")
    source_split = check_source_split(df) if official else None
    years = df["year"] if "year" in df.columns else pd.Series("", index=df.index)
    df["class_name"], policy = class_names(df["label"].astype(str), years, merge, merge_years)
    if policy["merge_entries_matching_no_label"]:
        print(f"split: merge-map entries that match no label: {policy['merge_entries_matching_no_label']}")

    reason = pd.Series(None, index=df.index, dtype=object)
    detail = pd.Series("", index=df.index, dtype=object)
    groups = group_ids(df, near_bits, workers)
    official_notes: dict = {"official": official}
    is_test = np.zeros(len(df), dtype=bool)
    if official:
        is_test = (source_split == "test").to_numpy()
        conflict = official_test_conflicts(df, groups, is_test, near_bits, workers)
        hit = conflict.notna()
        reason[hit], detail[hit] = "near_duplicate_of_test", conflict[hit]
        official_notes |= {
            "official_train_rows": int((~is_test).sum()),
            "official_test_rows": int(is_test.sum()),
            "near_duplicate_of_test": int(hit.sum()),
            "val_fraction_of_official_train": fractions["val"] / (fractions["train"] + fractions["val"]),
        }

    alive = reason.isna()
    counts = df.loc[alive, "class_name"].value_counts()
    rare = alive & df["class_name"].map(counts).lt(min_images_per_class)
    reason[rare] = "rare_class"
    detail[rare] = df.loc[rare, "class_name"].map(counts).astype(str) + f" images < {min_images_per_class}"
    if not reason.isna().any():
        largest = f"'{counts.index[0]}' with {counts.iloc[0]} images" if len(counts) else "none"
        raise NothingToSplitError(
            f"split: every class is rare: none has split.min_images_per_class={min_images_per_class} images "
            f"(largest: {largest}); lower split.min_images_per_class, merge classes (split.class_merge) "
            "or bring more data"
        )

    # A group that mixes classes (a near-duplicate across relabelled listings) goes with its majority class.
    alive = reason.isna().to_numpy()
    group_class = majority_class(groups[alive], df.loc[alive, "class_name"])
    # The official test stays whole: the cap counts and subsamples the train side only, and val is carved
    # from the train side alone.
    train_side = alive & ~is_test
    capped: dict[str, dict[str, int]] = {}
    if max_images_per_class:
        sizes = pd.Series(groups[train_side]).value_counts()
        cut_groups = cap_groups(sizes, group_class, max_images_per_class, np.random.default_rng([seed, 1]))
        cut = train_side & np.isin(groups, list(cut_groups))
        before = sizes.groupby(group_class.reindex(sizes.index)).sum()
        after = sizes[~sizes.index.isin(cut_groups)].groupby(group_class).sum().reindex(before.index, fill_value=0)
        capped = {
            str(c): {"before": int(before[c]), "after": int(after[c])}
            for c in sorted(group_class.reindex(list(cut_groups)).unique())
        }
        why = {
            c: f"{c}: {n['before']} images > max_images_per_class={max_images_per_class}, kept {n['after']}"
            for c, n in capped.items()
        }
        reason[cut] = "class_cap"
        detail[cut] = group_class.reindex(groups[cut]).map(why).to_numpy()
        train_side = train_side & ~cut
        alive = alive & ~cut

    kept = df.loc[alive].copy()
    kept_groups = pd.Series(groups[alive], index=kept.index)
    kept["group_id"] = kept["listing_id"].groupby(kept_groups).transform("first").astype("string")
    rng = np.random.default_rng(seed)
    assignment: dict = {}
    if official:
        assignment |= dict.fromkeys(set(groups[alive & is_test]), "test")
        part = {"train": fractions["train"], "val": fractions["val"]}
        part = {k: v / sum(part.values()) for k, v in part.items()}
        for _, sizes in sizes_by_class(pd.Series(groups[train_side]).value_counts(), group_class):
            assignment |= assign_groups(sizes, part, rng)
        train_classes = set(df.loc[train_side, "class_name"])
        official_notes["classes_without_official_train_rows"] = sorted(set(kept["class_name"]) - train_classes)
    else:
        for _, sizes in sizes_by_class(kept_groups.value_counts(), group_class):
            assignment |= assign_groups(sizes, fractions, rng)
    kept["split"] = kept_groups.map(assignment).astype("string")
    labels = sorted(kept["class_name"].unique())
    kept["class_idx"] = kept["class_name"].map({c: i for i, c in enumerate(labels)}).astype("int64")
    kept = kept.reset_index(drop=True)

    leakage = check_no_leakage(kept, near_bits, workers=workers)
    notes = {
        "classes": len(labels),
        "images_per_split": {k: int(v) for k, v in kept["split"].value_counts().reindex(SPLITS, fill_value=0).items()},
        "class_policy": policy
        | {
            "class_merge_file": str(class_merge_file) if class_merge_file else None,
            "min_images_per_class": min_images_per_class,
            "rare_classes": {str(c): int(n) for c, n in counts[counts < min_images_per_class].sort_index().items()},
            "max_images_per_class": max_images_per_class,
            "capped_classes": capped,
        },
        "official_split": official_notes,
        "leakage": leakage,
    }
    dropped = manifest.drop_rows(df, "split", reason, detail)
    return StageResult("split", len(df), kept, dropped, notes=notes), labels


def upstream_losses(stage_dirs: dict[str, Path]) -> str:
    """What each earlier stage dropped, from its dropped.parquet: `ingest dropped 1058 of 1058 (unsafe_path 1058)`.
    Stages whose folder or files are missing (not run) are skipped."""
    parts = []
    for stage, folder in stage_dirs.items():
        dropped_file, kept_file = Path(folder) / "dropped.parquet", Path(folder) / "manifest.parquet"
        if not dropped_file.is_file():
            continue
        reasons = pd.read_parquet(dropped_file, columns=["drop_reason"])["drop_reason"].value_counts()
        kept = pq.read_metadata(kept_file).num_rows if kept_file.is_file() else 0
        total = kept + int(reasons.sum())
        by = ", ".join(f"{r} {n}" for r, n in reasons.items())
        parts.append(f"{stage} dropped {int(reasons.sum())} of {total}" + (f" ({by})" if by else ""))
    return "; ".join(parts) if parts else "no earlier stage's dropped.parquet was found"


def split_table(df: pd.DataFrame) -> pd.DataFrame:
    """Images per class and split: the table behind the split's class-distribution plot."""
    table = df.groupby(["class_name", "split"]).size().unstack(fill_value=0).reindex(columns=list(SPLITS))
    return table.fillna(0).astype(int).reset_index()


def main(cfg: DictConfig) -> dict:
    s = settings.parse(cfg)
    df = manifest.read(Path(s.paths.crop) / "manifest.parquet", stage="crop")
    try:
        result, labels = split(
            df,
            fractions={name: getattr(s.split, name) for name in SPLITS},
            min_images_per_class=s.split.min_images_per_class,
            class_merge=s.split.class_merge,
            near_bits=s.split.group_near_duplicate_bits,
            seed=s.seed,
            class_merge_file=s.split.class_merge_file,
            merge_years=s.split.merge_years,
            max_images_per_class=s.split.max_images_per_class,
            official=s.split.official,
            workers=s.split.workers,
        )
    except NothingToSplitError as e:
        losses = upstream_losses({stage: Path(getattr(s.paths, stage)) for stage in UPSTREAM})
        raise NothingToSplitError(f"{e}; before split: {losses}") from None
    out = Path(s.paths.split)
    reports_dir = Path(s.paths.reports) / "split"
    # labels.json goes into the same swap as the manifest: class_idx means nothing without it.
    with atomic_dir(out) as staging:
        report = stage_io.write_stage_data(result, staging, list(df.columns))
        write_text(staging / "labels.json", json.dumps(labels, indent=1) + "\n")
    stage_io.publish_reports(report, result.kept["class_name"], reports_dir)
    write_text(reports_dir / "split_counts.csv", split_table(result.kept).to_csv(index=False))
    print(f"{stage_io.summary(report)}; {len(labels)} classes, images per split {report['images_per_split']}")
    return report


if __name__ == "__main__":
    main(load_params())
