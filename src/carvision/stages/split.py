"""Split: merge classes, drop rare ones, and assign whole listing/near-duplicate groups to train/val/test.

python -m carvision.stages.split       # reads params.yaml (DVC stage `split`)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from carvision import manifest, settings, stage_io
from carvision.atomic import write_text
from carvision.config import load_params
from carvision.manifest import StageResult
from carvision.near_duplicates import close_pairs, connected_groups, hex_to_uint64

SPLITS = ("train", "val", "test")


def group_ids(df: pd.DataFrame, near_bits: int) -> np.ndarray:
    """Connected groups of photos that share a listing or are within near_bits phash bits of each other."""
    n = len(df)
    listing_codes = pd.factorize(df["listing_id"])[0]
    first_of_listing = pd.Series(np.arange(n)).groupby(listing_codes).transform("first").to_numpy()
    pairs = [(int(first_of_listing[i]), i, 0) for i in range(n) if first_of_listing[i] != i]
    pairs += close_pairs(hex_to_uint64(df["phash"].tolist()), near_bits)
    return connected_groups(n, pairs)


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


def split(
    df: pd.DataFrame,
    *,
    fractions: dict[str, float],
    min_images_per_class: int,
    class_merge: dict[str, str],
    near_bits: int,
    seed: int,
) -> tuple[StageResult, list[str]]:
    """Returns the split manifest and the label map (class names in class_idx order)."""
    valid = set(fractions) == set(SPLITS) and all(0 <= f <= 1 for f in fractions.values())
    if not valid or not np.isclose(sum(fractions.values()), 1.0):
        raise ValueError(f"split fractions must be train/val/test, each in [0, 1], summing to 1; got {fractions}")
    unknown = sorted(set(class_merge) - set(df["label"]))
    if unknown:
        print(f"split: class_merge names labels that are not in the data: {unknown}")
    df = df.reset_index(drop=True).copy()
    df["class_name"] = df["label"].map(lambda s: class_merge.get(s, s)).astype("string")
    counts = df["class_name"].value_counts()
    rare = df["class_name"].map(counts) < min_images_per_class
    reason = pd.Series(np.where(rare, "rare_class", None), index=df.index, dtype=object)
    detail = pd.Series("", index=df.index, dtype=object)
    detail[rare] = [f"{counts[c]} images < {min_images_per_class}" for c in df.loc[rare, "class_name"]]
    kept = df.loc[~rare].copy().reset_index(drop=True)
    if kept.empty:
        raise ValueError(
            f"no class has split.min_images_per_class={min_images_per_class} images (largest: "
            f"{counts.max() if len(counts) else 0}); lower it or bring more data"
        )

    groups = group_ids(kept, near_bits)
    kept["group_id"] = pd.Series(kept["listing_id"].to_numpy()[groups], dtype="string")
    # A group that mixes classes (a near-duplicate across relabelled listings) goes with its majority class.
    group_class = kept.groupby("group_id")["class_name"].agg(lambda s: s.value_counts().index[0])
    sizes = kept.groupby("group_id").size()
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for cls in sorted(group_class.unique()):
        assignment |= assign_groups(sizes[group_class.index[group_class == cls]], fractions, rng)
    kept["split"] = kept["group_id"].map(assignment).astype("string")
    labels = sorted(kept["class_name"].unique())
    kept["class_idx"] = kept["class_name"].map({c: i for i, c in enumerate(labels)}).astype("int64")
    dropped = manifest.drop_rows(df, "split", reason, detail)
    return StageResult("split", len(df), kept, dropped), labels


def split_table(df: pd.DataFrame) -> pd.DataFrame:
    """Images per class and split: the table behind the split's class-distribution plot."""
    table = df.groupby(["class_name", "split"]).size().unstack(fill_value=0).reindex(columns=list(SPLITS))
    return table.fillna(0).astype(int).reset_index()


def main(cfg: DictConfig) -> dict:
    s = settings.parse(cfg)
    df = manifest.read(Path(s.paths.crop) / "manifest.parquet", stage="crop")
    result, labels = split(
        df,
        fractions={name: getattr(s.split, name) for name in SPLITS},
        min_images_per_class=s.split.min_images_per_class,
        class_merge=s.split.class_merge,
        near_bits=s.split.group_near_duplicate_bits,
        seed=s.seed,
    )
    out = Path(s.paths.split)
    reports_dir = Path(s.paths.reports) / "split"
    report = stage_io.save_stage(result, out, reports_dir, list(df.columns), "class_name")
    write_text(out / "labels.json", json.dumps(labels, indent=1) + "\n")
    table = split_table(result.kept)
    write_text(reports_dir / "split_counts.csv", table.to_csv(index=False))
    by_split = result.kept["split"].value_counts().reindex(list(SPLITS), fill_value=0)
    print(f"{stage_io.summary(report)}; {len(labels)} classes, images per split {by_split.to_dict()}")
    return report


if __name__ == "__main__":
    main(load_params())
