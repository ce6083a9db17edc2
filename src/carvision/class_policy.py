"""The class policy of the split: which scraped labels become which training class, and why.

Two steps here, each reported: a merge map (a YAML file, then the inline `split.class_merge` over it, with chains
A -> B -> C resolved) and the model year (merged away, or made part of the class: Stanford Cars' 196 classes).
The split stage then drops rare classes and caps large ones. Labels and merge-map keys are matched after Unicode
NFC and case folding: upstream normalises labels, and a hand-written "BMW X5" should still find "Bmw X5".
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml


class ClassPolicyError(ValueError):
    """A merge map the split cannot use: a cycle, an unreadable file, one key given two classes."""


def match_key(name: str) -> str:
    """What labels and merge-map keys are compared by: NFC, case-folded, runs of whitespace as one space."""
    return " ".join(unicodedata.normalize("NFC", str(name)).casefold().split())


def read_merge_file(path: str | Path) -> dict[str, str]:
    """The label -> class mapping of a YAML file; anything but a flat mapping of text is a ClassPolicyError."""
    path = Path(path)
    if not path.is_file():
        raise ClassPolicyError(f"split.class_merge_file: {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ClassPolicyError(f"split.class_merge_file: {path} is not readable YAML: {e}") from e
    if data is None:  # an empty file: no merges
        return {}
    if not isinstance(data, dict):
        raise ClassPolicyError(f"split.class_merge_file: {path} must be a mapping of label -> class, not a list")
    # YAML reads `Mazda 3: Mazda3` as text but a bare `2008: ...` as an int; both are names here.
    bad = [k for k, v in data.items() if not isinstance(k, str | int) or not isinstance(v, str | int)]
    if bad:
        raise ClassPolicyError(f"split.class_merge_file: {path}: keys and values must be text; bad keys {bad[:5]}")
    return {str(k): str(v) for k, v in data.items()}


@dataclass(frozen=True)
class MergeMap:
    """A resolved merge map: every key points at its final class, no chains left."""

    final: dict[str, str]  # match_key(key) -> final class name as written (NFC)
    spelled: dict[str, str]  # match_key(key) -> the key as first written, for reports
    via: dict[str, tuple[str, ...]]  # match_key(key) -> the keys its chain passed through after itself
    overridden: list[str] = field(default_factory=list)  # file keys that the inline map gave another class

    def entries_matching_no_label(self, labels: pd.Series) -> list[str]:
        """Keys that no label matches and no matched label's chain passes through: typos and stale entries."""
        matched = {match_key(s) for s in labels.unique()} & set(self.final)
        used = matched | {k for m in matched for k in self.via[m]}
        return sorted(self.spelled[k] for k in self.final if k not in used)


def build_merge_map(inline: dict[str, str], file: str | Path | None = None) -> MergeMap:
    """The file's map, then the inline map over it (an inline key replaces the same file key), chains resolved.

    Raises ClassPolicyError, naming the keys, on a cycle (A -> B -> A) and when one source gives two classes to
    keys that match alike ("Ford Ka" and "ford ka"). A key mapped to itself (a change of spelling) ends a chain.
    """
    sources = [("split.class_merge_file", read_merge_file(file) if file else {}), ("split.class_merge", inline)]
    raw: dict[str, str] = {}
    spelled: dict[str, str] = {}
    overridden: list[str] = []
    for where, mapping in sources:
        here: dict[str, str] = {}
        for key, value in mapping.items():
            k, v = match_key(key), unicodedata.normalize("NFC", str(value)).strip()
            if not k or not v:
                raise ClassPolicyError(f"{where}: empty label or class in the entry {key!r}: {value!r}")
            if k in here and match_key(here[k]) != match_key(v):
                raise ClassPolicyError(f"{where}: {key!r} matches another key of the map and is given a second class")
            if k in raw and k not in here and match_key(raw[k]) != match_key(v):
                overridden.append(spelled[k])
            here[k] = raw[k] = v
            spelled.setdefault(k, str(key))
    final: dict[str, str] = {}
    via: dict[str, tuple[str, ...]] = {}
    for start, value in raw.items():
        path = [start]
        while (nxt := match_key(value)) in raw and nxt != path[-1]:
            if nxt in path:
                cycle = [spelled[k] for k in path[path.index(nxt) :]] + [spelled[nxt]]
                raise ClassPolicyError(f"split.class_merge: the merge map has a cycle: {' -> '.join(cycle)}")
            path.append(nxt)
            value = raw[nxt]
        final[start], via[start] = value, tuple(path[1:])
    return MergeMap(final=final, spelled=spelled, via=via, overridden=sorted(overridden))


def class_names(labels: pd.Series, years: pd.Series, merge: MergeMap, merge_years: bool) -> tuple[pd.Series, dict]:
    """The training class of each row, and the report of how labels and years became classes.

    Args:
        labels: `<make> <model>` per row (no year).
        years: four digits or "" per row.
        merge_years: True: one class per merged label; False: `<class> <year>` where the year is known.
    """
    labels = labels.fillna("").astype(str)
    years = years.fillna("").astype(str).str.strip()
    # Per distinct label, not per row: millions of rows carry a few thousand labels.
    spelling: dict[str, str] = {}  # match_key -> the data's first spelling of that label
    for label in pd.unique(labels):
        spelling.setdefault(match_key(label), label)
    target: dict[str, str] = {}
    for label in pd.unique(labels):
        cls = merge.final.get(match_key(label))
        if cls is None:
            continue
        # A target that matches a label of the data case-insensitively takes that label's spelling, so that
        # "VW Golf" -> "volkswagen golf" joins the existing "Volkswagen Golf" class rather than making a twin
        # (unless the target is itself a key: "bmw x5" -> "BMW X5" is a deliberate respelling).
        if match_key(cls) not in merge.final:
            cls = spelling.get(match_key(cls), cls)
        target[label] = cls
    base = labels.map(lambda s: target.get(s, s)).astype("string")

    merged_rows = labels[labels.isin(list(target))]
    merged_into: dict[str, dict[str, int]] = {}
    for label, n in merged_rows.value_counts().sort_index().items():
        merged_into.setdefault(target[label], {})[str(label)] = int(n)
    notes: dict = {
        "merge_map": {merge.spelled[k]: v for k, v in sorted(merge.final.items())},  # chains resolved
        "merged_labels": dict(sorted(merged_into.items())),  # class -> {label merged into it: images}
        "merge_entries_matching_no_label": merge.entries_matching_no_label(labels),
        "merge_file_keys_overridden_inline": merge.overridden,
        "merge_years": merge_years,
    }
    if merge_years:
        known = pd.DataFrame({"cls": base, "year": years})[years != ""]
        per = known.groupby("cls")["year"].unique()
        several = {str(c): sorted(map(str, ys)) for c, ys in per.items() if len(ys) > 1}
        notes["classes_merged_over_years"] = len(several)
        notes["years_merged_per_class"] = several  # class -> the year classes it stands for
        return base, notes
    cls = base.where(years == "", base + " " + years).astype("string")
    with_year = pd.DataFrame({"base": base, "cls": cls})[years != ""]
    per = with_year.groupby("base")["cls"].unique()
    notes["classes_formed_with_years"] = int(with_year["cls"].nunique())
    notes["year_classes_per_label"] = {str(b): sorted(map(str, cs)) for b, cs in per.items()}
    notes["rows_without_year"] = int((years == "").sum())  # these keep their class without a year
    return cls, notes
