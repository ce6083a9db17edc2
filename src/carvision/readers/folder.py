"""A folder-per-class tree (`data: folder`): <root>/<class folder>/.../<photo>, e.g. a marketplace export
`mercedes-benz_viano_2010/<listing>_<photo no>_<uuid>.jpg`, or Stanford Cars arranged as class folders of links.

Every file is a row: the clean stage tells photos from other files by their content, not their suffix. Files of
hidden and system folders, hidden files, and files that a pattern does not match are rows with a reason.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from carvision.readers.labels import normalise_text, parse_year, split_class_name, split_make_model
from carvision.readers.records import Found, Row
from carvision.readers.walk import is_system_file, is_system_folder, walk
from carvision.settings import ConfigError

LISTING_EXAMPLE = r"'^(?P<listing>[^_]+)_\d+_'"
CLASS_EXAMPLE = r"'^(?P<make>[^_]+)_(?P<model>.+)_(?P<year>\d{4})$'"


def compile_pattern(text: str | None, key: str, groups: tuple[str, ...], example: str) -> re.Pattern | None:
    """`text` compiled, or None when unset; a bad regex or a missing named group fails here, naming `key`."""
    if text is None:
        return None
    try:
        pattern = re.compile(text)
    except re.error as e:
        raise ConfigError(f"{key}: {text!r} is not a valid regex ({e}); e.g. {example}") from e
    if missing := [g for g in groups if g not in pattern.groupindex]:
        raise ConfigError(f"{key}: {text!r} lacks the named group(s) {missing}; e.g. {example}")
    return pattern


class _Classes:
    """Make, model and year of each class folder name, parsed once per folder."""

    def __init__(self, pattern: re.Pattern | None) -> None:
        self.pattern = pattern
        self.parsed: dict[str, tuple[str, str, str] | None] = {}
        self.bad_years: Counter[str] = Counter()

    def __call__(self, folder: str) -> tuple[str, str, str] | None:
        if folder not in self.parsed:
            self.parsed[folder] = self._parse(folder)
        return self.parsed[folder]

    def _parse(self, folder: str) -> tuple[str, str, str] | None:
        if self.pattern is None:
            return split_class_name(folder)
        m = self.pattern.search(folder)
        if m is None or not m["make"]:
            return None
        raw_year = (m.groupdict().get("year") or "").strip()
        if raw_year and not parse_year(raw_year):
            self.bad_years[raw_year] += 1
        # Folder names cannot hold spaces comfortably, so exports write `land_rover_range_rover`.
        make, model = m["make"].replace("_", " "), (m["model"] or "").replace("_", " ")
        # A pattern that cuts at the first `_` gives make `land`, model `rover range rover`: the known multi-word
        # makes put the cut back where it belongs.
        known_make, known_model = split_make_model(f"{make} {model}")
        if len(known_make) > len(normalise_text(make)):
            make, model = known_make, known_model
        return make, model, parse_year(raw_year)


def read_folder(root: Path, listing_pattern: str | None = None, class_pattern: str | None = None) -> Found:
    """One row per file under `root`, labelled by its class folder (the first level below `root`).

    Args:
        listing_pattern: regex with a named group `listing`, searched in the file name; the photos whose names
            give the same `listing` (in any class folder) are one listing. None: every photo is its own listing.
        class_pattern: regex with named groups make, model (and optionally year), searched in the class folder's
            name; `_` in make and model read as spaces. None: the name is `<make> <model> [<year>]`.
    """
    listing_re = compile_pattern(listing_pattern, "data.listing_pattern", ("listing",), LISTING_EXAMPLE)
    class_re = compile_pattern(class_pattern, "data.class_pattern", ("make", "model"), CLASS_EXAMPLE)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of <class folder>/<photo> sub-folders")
    classes = _Classes(class_re)
    rows: list[Row] = []
    system_folders: Counter[str] = Counter()
    for entry in walk(root):
        parts = entry.parts
        row = Row(image_id="/".join(parts), path=entry.path, listing_id="/".join(parts))
        rows.append(row)
        system = next((i for i, p in enumerate(parts[:-1]) if is_system_folder(p)), None)
        if system is not None:
            folder = "/".join(parts[: system + 1])
            system_folders[folder] += 1
            row.reason, row.detail = "system_folder", f"inside {folder}"
            continue
        if entry.reason is None and is_system_file(parts[-1]):
            row.reason, row.detail = "system_file", "a hidden or system file"
            continue
        label = classes(parts[0]) if len(parts) > 1 else None
        if label is not None:
            row.make, row.model, row.year = label
        if entry.reason is not None:
            row.reason, row.detail = entry.reason, entry.detail
        elif len(parts) == 1:
            row.reason, row.detail = "not_in_class_folder", "a file directly in the root has no class"
        elif label is None:
            row.reason = "class_pattern_mismatch"
            row.detail = f"folder {parts[0]!r} does not match data.class_pattern {class_pattern!r}"
        elif listing_re is None:
            row.listing_id = os.path.splitext(row.image_id)[0]  # each photo is its own listing
        elif (m := listing_re.search(parts[-1])) and m["listing"]:
            row.listing_id = m["listing"]  # global: one listing filed under two class folders stays one
        else:
            row.reason = "listing_pattern_mismatch"
            row.detail = f"file name {parts[-1]!r} does not match data.listing_pattern {listing_pattern!r}"
    notes: dict = {"class_folders": sum(1 for v in classes.parsed.values() if v is not None)}
    if system_folders:
        notes["system_folders_skipped"] = dict(sorted(system_folders.items()))  # folder -> files in it
    if n := sum(r.reason == "system_file" for r in rows):
        notes["system_files_skipped"] = n
    if classes.bad_years:
        notes["years_not_four_digits"] = dict(classes.bad_years.most_common(20))
    return Found(rows, notes, looked_for=f"files in <class folder>/ sub-folders of {root}", seen=_top_level(root))


def _top_level(root: Path) -> str:
    """What is directly in `root`, for the error when nothing is kept: `3 folders, all hidden/system: ...`."""
    try:
        with os.scandir(root) as it:
            entries = [(e.name, _is_dir(e)) for e in it]
    except OSError as e:
        return f"{root} cannot be listed ({e.strerror})"
    folders = sorted(name for name, is_dir in entries if is_dir)
    system = [f for f in folders if is_system_folder(f)]
    files = len(entries) - len(folders)
    if not folders:
        return f"no folders, {files} files directly in the root"
    if len(system) == len(folders):
        return f"{len(folders)} folders, all hidden/system: {', '.join(system[:10])}; {files} files in the root"
    return f"{len(folders)} folders ({len(system)} hidden/system), {files} files directly in the root"


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False
