"""Hostile raw data for the ingest stage: each builder writes one kind of bad folder or CSV and says what must
come of it, row by row (a drop reason, or a kept row with a given label and listing).

    cases = write_corpus(tmp_path)           # every kind, each in its own root under tmp_path
    for case in cases:
        result = ingest.ingest(case.source, case.root, **case.kwargs)
        check(case, result)

The ingest tests run each case; the lead's end-to-end corpus test can run the same cases through later stages.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from carvision.manifest import StageResult
from carvision.safe_names import utf8_safe


def _jpeg(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, "JPEG")
    return buf.getvalue()


JPEG_BYTES = _jpeg()
LISTING_HEADER = ["ad_id", "make", "model", "year", "images"]
ANNOTATION_HEADER = ["ad_id", "file", "viewpoint", "x_min", "y_min", "x_max", "y_max"]


@dataclass(frozen=True)
class Expect:
    """What must become of one row: dropped with `reason` (detail containing `detail`), or kept (reason None)."""

    image_id: str
    reason: str | None = None
    label: str | None = None  # kept rows: the label it must have
    listing_id: str | None = None  # kept rows: the listing it must belong to
    detail: str = ""  # dropped rows: a part of drop_detail
    fields: dict = field(default_factory=dict)  # any other column -> value (make, year, bbox, viewpoint, ...)


@dataclass(frozen=True)
class Case:
    """One hostile root: ingest it with `ingest(source, root, **kwargs)`; `error` set: ingest must raise it."""

    name: str
    source: str
    root: Path
    expect: list[Expect] = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)  # listing_pattern, class_pattern
    notes: dict = field(default_factory=dict)  # entries the result's notes must hold, as given
    error: str | None = None  # ingest must raise a ValueError whose message holds this
    complete: bool = True  # every row of the result is in `expect`


def check(case: Case, result: StageResult) -> None:
    """Asserts that `result` is what `case` expects: each row's fate, the notes, and that counts reconcile."""
    result.check([])
    kept = result.kept.set_index("image_id")
    dropped = result.dropped.set_index("image_id")
    for e in case.expect:
        where = f"{case.name}: {e.image_id!r}"
        if e.reason is None:
            assert e.image_id in kept.index, f"{where} should be kept; dropped: {dict(dropped['drop_reason'])}"
            row = kept.loc[e.image_id]
        else:
            assert e.image_id in dropped.index, f"{where} should be dropped as {e.reason}; kept: {list(kept.index)}"
            row = dropped.loc[e.image_id]
            assert row["drop_reason"] == e.reason, f"{where}: {row['drop_reason']} ({row['drop_detail']})"
            assert e.detail in row["drop_detail"], f"{where}: {e.detail!r} not in {row['drop_detail']!r}"
        if e.label is not None:
            assert row["label"] == e.label, f"{where}: label {row['label']!r} != {e.label!r}"
        if e.listing_id is not None:
            assert row["listing_id"] == e.listing_id, f"{where}: listing {row['listing_id']!r} != {e.listing_id!r}"
        for col, value in e.fields.items():
            assert row[col] == value, f"{where}: {col} {row[col]!r} != {value!r}"
    if case.complete:
        expected = sorted(e.image_id for e in case.expect)
        assert sorted([*kept.index, *dropped.index]) == expected, f"{case.name}: rows differ from the expected"
    for key, value in case.notes.items():
        assert result.notes.get(key) == value, f"{case.name}: notes[{key!r}] = {result.notes.get(key)!r} != {value!r}"


# --- writing ----------------------------------------------------------------------------------------------------


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


def write_scrape(
    root: Path,
    listings: list[list[str]] | str | bytes,
    files: list[str],
    annotations: list[list[str]] | str | bytes | None = None,
    encoding: str = "utf-8",
) -> Path:
    """A scrape root: listings.csv (rows under LISTING_HEADER, or the raw text/bytes), images/<file> as JPEGs."""
    root.mkdir(parents=True)
    for rel in files:
        p = root / "images" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(JPEG_BYTES)
    for name, content, header in (
        ("listings.csv", listings, LISTING_HEADER),
        ("annotations.csv", annotations, ANNOTATION_HEADER),
    ):
        if content is None:
            continue
        text = csv_text(header, content) if isinstance(content, list) else content
        (root / name).write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    return root


def write_files(root: Path, files: list[str], content: bytes = JPEG_BYTES) -> Path:
    for rel in files:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    return root


# --- scrape kinds -----------------------------------------------------------------------------------------------


def latin1_listings(folder: Path) -> Case:
    """A Windows export: listings.csv in cp1252 (Š is 0x8A there, ë 0xEB)."""
    root = write_scrape(
        folder / "latin1",
        [["ad1", "Škoda", "Octavia", "2015", "00.jpg"], ["ad2", "Citroën", "C3", "2012", "00.jpg"]],
        ["ad1/00.jpg", "ad2/00.jpg"],
        encoding="cp1252",
    )
    expect = [Expect("ad1/00.jpg", label="Škoda Octavia"), Expect("ad2/00.jpg", label="Citroën C3")]
    return Case("latin1_listings", "scrape", root, expect, notes={"csv_encoding": {"listings.csv": "cp1252"}})


def bom_and_nul_listings(folder: Path) -> Case:
    """UTF-8 with Excel's BOM, CRLF line ends, and NUL bytes in the middle of a line."""
    text = csv_text(
        LISTING_HEADER, [["ad1", "Fiat", "500", "2015", "00.jpg"], ["ad2", "Fi\x00at", "500", "", "00.jpg"]]
    )
    data = codecs.BOM_UTF8 + text.replace("\n", "\r\n").encode("utf-8")
    root = write_scrape(folder / "bom_nul", data, ["ad1/00.jpg", "ad2/00.jpg"])
    expect = [Expect("ad1/00.jpg", label="Fiat 500"), Expect("ad2/00.jpg", label="Fiat 500")]
    notes = {"csv_encoding": {"listings.csv": "utf-8-sig"}, "csv_nul_bytes_removed": {"listings.csv": 1}}
    return Case("bom_and_nul_listings", "scrape", root, expect, notes=notes)


def malformed_lines(folder: Path) -> Case:
    """A line with too many fields (line 3) and an unclosed quote that would swallow the lines after it (line 5)."""
    text = (
        "ad_id,make,model,year,images\n"
        "ad1,Fiat,500,2015,00.jpg\n"
        "ad2,Fiat,500,2015,00.jpg,extra,fields,here,too\n"
        "ad3,Fiat,500,2015,00.jpg\n"
        'ad4,"Fiat,500,2015,00.jpg\n'
        "ad5,Fiat,500,2015,00.jpg\n"
        "ad6,Fiat,500,2015,00.jpg\n"
    )
    root = write_scrape(folder / "malformed", text, [f"ad{i}/00.jpg" for i in range(1, 7)])
    expect = [
        Expect("ad1/00.jpg", label="Fiat 500"),
        Expect("listings.csv:3", "malformed_csv_line", detail="listings.csv line 3: 9 fields, expected 5"),
        Expect("ad3/00.jpg", label="Fiat 500"),
        Expect("listings.csv:5", "malformed_csv_line", detail="listings.csv line 5: "),
        Expect("ad5/00.jpg", label="Fiat 500"),
        Expect("ad6/00.jpg", label="Fiat 500"),
    ]
    return Case("malformed_lines", "scrape", root, expect, notes={"malformed_csv_lines": {"listings.csv": 2}})


def listing_without_images(folder: Path) -> Case:
    root = write_scrape(
        folder / "empty_listing",
        [
            ["ad1", "Fiat", "500", "2015", "00.jpg"],
            ["ad2", "Fiat", "500", "2015", ""],
            ["ad3", "Fiat", "500", "", " ; "],
        ],
        ["ad1/00.jpg"],
    )
    expect = [
        Expect("ad1/00.jpg", label="Fiat 500"),
        Expect("ad2/", "listing_without_images", detail="line 3"),
        Expect("ad3/", "listing_without_images", detail="line 4"),
    ]
    return Case("listing_without_images", "scrape", root, expect)


def overlong_names(folder: Path) -> Case:
    """An ad_id and a file name longer than the 255 bytes a file name may have (ENAMETOOLONG)."""
    long_id, long_file = "a" * 300, "é" * 150 + ".jpg"  # é is 2 bytes: 304 bytes
    root = write_scrape(
        folder / "overlong",
        [["ad1", "Fiat", "500", "2015", f"00.jpg;{long_file}"], [long_id, "Fiat", "500", "2015", "00.jpg"]],
        ["ad1/00.jpg"],
    )
    expect = [
        Expect("ad1/00.jpg", label="Fiat 500"),
        Expect(f"ad1/{long_file}", "name_too_long"),
        Expect(f"{long_id}/00.jpg", "name_too_long"),
    ]
    return Case("overlong_names", "scrape", root, expect)


def clashing_annotations(folder: Path) -> Case:
    """annotations.csv with extra columns, two of which (make, model) are also listings' columns."""
    ann = csv_text(
        ["ad_id", "file", "make", "model", "viewpoint", "x_min", "y_min", "x_max", "y_max", "annotator"],
        [["ad1", "00.jpg", "WRONG", "WRONG", "side", "1", "2", "30", "20", "bob"]],
    )
    root = write_scrape(folder / "clash", [["ad1", "Fiat", "500", "2015", "00.jpg"]], ["ad1/00.jpg"], annotations=ann)
    expect = [
        Expect(
            "ad1/00.jpg", label="Fiat 500", fields={"make": "Fiat", "viewpoint": "side", "bbox": [1.0, 2.0, 30.0, 20.0]}
        )
    ]
    notes = {"annotation_columns_ignored": ["make", "model", "annotator"]}
    return Case("clashing_annotations", "scrape", root, expect, notes=notes)


def hostile_boxes(folder: Path) -> Case:
    """Box values with units, infinities, NaN, overflow, and blanks in only some coordinates."""
    boxes = {
        "ok.jpg": ["1", "2", "30.5", "20"],
        "none.jpg": ["", "", "", ""],
        "px.jpg": ["120px", "2", "30", "20"],
        "inf.jpg": ["1", "inf", "30", "20"],
        "nan.jpg": ["nan", "2", "30", "20"],
        "overflow.jpg": ["1", "2", "1e400", "20"],
        "partial.jpg": ["1", "2", "", "20"],
        "comma.jpg": ["1,5", "2", "30", "20"],
    }
    files = list(boxes)
    root = write_scrape(
        folder / "boxes",
        [["ad1", "Fiat", "500", "2015", ";".join(files)]],
        [f"ad1/{f}" for f in files],
        annotations=[["ad1", f, "side", *b] for f, b in boxes.items()],
    )
    expect = [
        Expect("ad1/ok.jpg", fields={"bbox": [1.0, 2.0, 30.5, 20.0]}),
        Expect("ad1/none.jpg", fields={"bbox": None}),
        Expect("ad1/px.jpg", "invalid_box", detail="120px"),
        Expect("ad1/inf.jpg", "invalid_box", detail="inf"),
        Expect("ad1/nan.jpg", "invalid_box", detail="nan"),
        Expect("ad1/overflow.jpg", "invalid_box", detail="1e400"),
        Expect("ad1/partial.jpg", "invalid_box", detail="some coordinates are empty"),
        Expect("ad1/comma.jpg", "invalid_box", detail="1,5"),
    ]
    return Case("hostile_boxes", "scrape", root, expect)


def viewpoints_and_duplicate_annotations(folder: Path) -> Case:
    files = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    root = write_scrape(
        folder / "viewpoints",
        [["ad1", "Fiat", "500", "2015", ";".join(files)]],
        [f"ad1/{f}" for f in files],
        annotations=[
            ["ad1", "a.jpg", "Front", "", "", "", ""],
            ["ad1", "b.jpg", " front-side ", "", "", "", ""],
            ["ad1", "c.jpg", "upside-down", "", "", "", ""],
            ["ad1", "d.jpg", "Rear", "1", "1", "9", "9"],
            ["ad1", "d.jpg", "front", "2", "2", "8", "8"],  # a second annotation of d.jpg: the first wins
        ],
    )
    expect = [
        Expect("ad1/a.jpg", fields={"viewpoint": "front"}),
        Expect("ad1/b.jpg", fields={"viewpoint": "front-side"}),
        Expect("ad1/c.jpg", fields={"viewpoint": ""}),
        Expect("ad1/d.jpg", fields={"viewpoint": "back", "bbox": [1.0, 1.0, 9.0, 9.0]}),
    ]
    notes = {"annotation_duplicates_ignored": 1, "viewpoints_unknown": {"upside-down": 1}}
    return Case("viewpoints_and_duplicate_annotations", "scrape", root, expect, notes=notes)


def malformed_annotation_line(folder: Path) -> Case:
    ann = csv_text(ANNOTATION_HEADER, [["ad1", "00.jpg", "side", "1", "2", "30", "20"]]) + "ad1,01.jpg,side,1\n"
    root = write_scrape(
        folder / "bad_ann", [["ad1", "Fiat", "500", "2015", "00.jpg;01.jpg"]], ["ad1/00.jpg", "ad1/01.jpg"], ann
    )
    expect = [
        Expect("ad1/00.jpg", fields={"bbox": [1.0, 2.0, 30.0, 20.0]}),
        Expect("ad1/01.jpg", fields={"bbox": None}),
        Expect("annotations.csv:3", "malformed_csv_line", detail="annotations.csv line 3: 4 fields, expected 7"),
    ]
    return Case("malformed_annotation_line", "scrape", root, expect)


def unsafe_and_linked_paths(folder: Path) -> Case:
    """`..` and absolute names are refused by what they say; a photo that is a symlink (even to a file outside the
    root, as in a DVC symlink checkout) or a hardlink is read like a copy; a dangling link is a missing file."""
    base = folder / "linked"
    cache = write_files(base / "cache", ["photo.jpg"])  # outside the scrape root
    root = write_scrape(
        base / "scrape",
        [
            ["ad1", "Fiat", "500", "2015", "00.jpg;../ad2/00.jpg;/etc/passwd;link.jpg;hard.jpg;dangling.jpg"],
            ["..", "Fiat", "500", "2015", "00.jpg"],
            ["ad2", "Fiat", "500", "2015", "00.jpg;missing.jpg;sub"],
        ],
        ["ad1/00.jpg", "ad2/00.jpg"],
    )
    (root / "images/ad1/link.jpg").symlink_to(cache / "photo.jpg")
    os.link(root / "images/ad2/00.jpg", root / "images/ad1/hard.jpg")
    (root / "images/ad1/dangling.jpg").symlink_to(base / "nowhere.jpg")
    (root / "images/ad2/sub").mkdir()
    expect = [
        Expect("ad1/00.jpg", listing_id="ad1"),
        Expect("ad1/../ad2/00.jpg", "unsafe_path"),
        Expect("ad1//etc/passwd", "unsafe_path"),
        Expect("ad1/link.jpg", listing_id="ad1"),
        Expect("ad1/hard.jpg", listing_id="ad1"),
        Expect("ad1/dangling.jpg", "missing_file", detail="dangling link"),
        Expect("../00.jpg", "unsafe_path"),
        Expect("ad2/00.jpg", listing_id="ad2"),
        Expect("ad2/missing.jpg", "missing_file"),
        Expect("ad2/sub", "not_a_regular_file", detail="folder"),
    ]
    return Case("unsafe_and_linked_paths", "scrape", root, expect)


def label_spellings(folder: Path) -> Case:
    """One class spelled four ways: NFC and NFD Škoda, different case, stray whitespace."""
    nfd = unicodedata.normalize("NFD", "Škoda")
    root = write_scrape(
        folder / "spellings",
        [
            ["ad1", "Škoda", "Octavia", "", "00.jpg"],
            ["ad2", nfd, "Octavia", "", "00.jpg"],
            ["ad3", "škoda", " octavia\u00a0", "", "00.jpg"],
            ["ad4", "Toyota", "Corolla", "", "00.jpg"],
            ["ad5", "Toyota", "Corolla", "", "00.jpg"],
            ["ad6", "toyota", "corolla", "", "00.jpg"],
            ["ad7", "TOYOTA", "Corolla", "", "00.jpg"],
        ],
        [f"ad{i}/00.jpg" for i in range(1, 8)],
    )
    expect = [Expect(f"ad{i}/00.jpg", label="Škoda Octavia", fields={"make": "Škoda"}) for i in (1, 2, 3)]
    expect += [Expect(f"ad{i}/00.jpg", label="Toyota Corolla") for i in (4, 5, 6, 7)]
    return Case("label_spellings", "scrape", root, expect)


def empty_listings(folder: Path) -> Case:
    root = write_scrape(folder / "no_rows", csv_text(LISTING_HEADER, []), [])
    return Case("empty_listings", "scrape", root, error="listings.csv has 0 rows")


# --- folder kinds -----------------------------------------------------------------------------------------------

EU_LISTING = r"^(?P<listing>[^_]+)_\d+_"
EU_CLASS = r"^(?P<make>[^_]+)_(?P<model>.+)_(?P<year>\d{4})$"


def eu_marketplace(folder: Path) -> Case:
    """`make_model_year/<listing>_<photo no>_<uuid>.jpg`: a listing's photos must stay one listing."""
    root = write_files(
        folder / "eu",
        [
            "mercedes-benz_viano_2010/L100_1_0a1b.jpg",
            "mercedes-benz_viano_2010/L100_2_9f8e.jpg",
            "mercedes-benz_viano_2010/L200_1_77aa.jpg",
            "land_rover_range_rover_2019/L300_1_c3d4.jpg",
            "land_rover_range_rover_2019/extra/L300_2_e5f6.jpg",  # a sub-folder of a class folder belongs to it
            "land_rover_range_rover_2019/L100_3_0000.jpg",  # L100 filed under a second class: still L100
            "land_rover_range_rover_2019/cover.jpg",  # no listing in the name
            "misc/L400_1_abcd.jpg",  # a folder the class pattern does not match
        ],
    )
    viano = dict(make="mercedes-benz", model="viano", year="2010")
    rover = dict(make="land rover", model="range rover", year="2019")
    expect = [
        Expect(
            "mercedes-benz_viano_2010/L100_1_0a1b.jpg", label="mercedes-benz viano", listing_id="L100", fields=viano
        ),
        Expect("mercedes-benz_viano_2010/L100_2_9f8e.jpg", label="mercedes-benz viano", listing_id="L100"),
        Expect("mercedes-benz_viano_2010/L200_1_77aa.jpg", listing_id="L200"),
        Expect("land_rover_range_rover_2019/L300_1_c3d4.jpg", label="land rover range rover", listing_id="L300"),
        Expect("land_rover_range_rover_2019/extra/L300_2_e5f6.jpg", listing_id="L300", fields=rover),
        Expect("land_rover_range_rover_2019/L100_3_0000.jpg", listing_id="L100"),
        Expect("land_rover_range_rover_2019/cover.jpg", "listing_pattern_mismatch", detail="data.listing_pattern"),
        Expect("misc/L400_1_abcd.jpg", "class_pattern_mismatch", detail="data.class_pattern"),
    ]
    kwargs = dict(listing_pattern=EU_LISTING, class_pattern=EU_CLASS)
    return Case("eu_marketplace", "folder", root, expect, kwargs=kwargs)


def hidden_and_system(folder: Path) -> Case:
    """Notebook checkpoints, a trash folder, macOS and Windows litter, a README, odd suffixes."""
    root = write_files(
        folder / "hidden",
        [
            "Fiat 500/a.jpg",
            "Fiat 500/photo.jpeg.tmp",  # suffixes do not matter: the clean stage reads the content
            "Fiat 500/no_suffix",
            "Fiat 500/.ipynb_checkpoints/a-checkpoint.jpg",
            "Fiat 500/.DS_Store",
            "Fiat 500/._a.jpg",
            "Fiat 500/Thumbs.db",
            ".ipynb_checkpoints/Fiat 500/a.jpg",
            ".Trash-1000/files/b.jpg",
            "__MACOSX/Fiat 500/._a.jpg",
            "$RECYCLE.BIN/c.jpg",
            "@eaDir/d.jpg",
            "stray.jpg",
        ],
    )
    (root / "Fiat 500" / "README.txt").write_text("not a photo")
    (root / "empty class").mkdir()
    fiat = "Fiat 500"
    expect = [
        Expect("Fiat 500/a.jpg", label=fiat, listing_id="Fiat 500/a"),
        Expect("Fiat 500/photo.jpeg.tmp", label=fiat),
        Expect("Fiat 500/no_suffix", label=fiat),
        Expect("Fiat 500/README.txt", label=fiat),  # kept here; clean drops it as not an image
        Expect("Fiat 500/.ipynb_checkpoints/a-checkpoint.jpg", "system_folder"),
        Expect("Fiat 500/.DS_Store", "system_file"),
        Expect("Fiat 500/._a.jpg", "system_file"),
        Expect("Fiat 500/Thumbs.db", "system_file"),
        Expect(".ipynb_checkpoints/Fiat 500/a.jpg", "system_folder"),
        Expect(".Trash-1000/files/b.jpg", "system_folder"),
        Expect("__MACOSX/Fiat 500/._a.jpg", "system_folder"),
        Expect("$RECYCLE.BIN/c.jpg", "system_folder"),
        Expect("@eaDir/d.jpg", "system_folder"),
        Expect("stray.jpg", "not_in_class_folder"),
    ]
    notes = {
        "system_folders_skipped": {
            "$RECYCLE.BIN": 1,
            ".Trash-1000": 1,
            ".ipynb_checkpoints": 1,
            "@eaDir": 1,
            "Fiat 500/.ipynb_checkpoints": 1,
            "__MACOSX": 1,
        },
        "system_files_skipped": 3,
    }
    return Case("hidden_and_system", "folder", root, expect, notes=notes)


def only_system_folders(folder: Path) -> Case:
    root = write_files(folder / "only_system", [".Trash-1000/a.jpg", "__MACOSX/b.jpg", ".ipynb_checkpoints/c.jpg"])
    return Case("only_system_folders", "folder", root, error="3 folders, all hidden/system")


def multi_word_makes(folder: Path) -> Case:
    """Stanford class names as folder names: the make is one, two or (with a hyphen) one token."""
    names = {
        "AM General Hummer SUV 2000": ("AM General", "Hummer SUV", "2000"),
        "Aston Martin V8 Vantage Convertible 2012": ("Aston Martin", "V8 Vantage Convertible", "2012"),
        "Land Rover Range Rover SUV 2012": ("Land Rover", "Range Rover SUV", "2012"),
        "Rolls-Royce Ghost Sedan 2012": ("Rolls-Royce", "Ghost Sedan", "2012"),
        "Ram C-V Cargo Van Minivan 2012": ("Ram", "C-V Cargo Van Minivan", "2012"),
        "smart fortwo Convertible 2012": ("smart", "fortwo Convertible", "2012"),
        "Peugeot 2008": ("Peugeot", "2008", ""),  # a model that looks like a year
        "Tesla": ("Tesla", "", ""),
    }
    root = write_files(folder / "makes", [f"{n}/0.jpg" for n in names])
    expect = [
        Expect(f"{n}/0.jpg", label=f"{make} {model}".strip(), fields=dict(make=make, model=model, year=year))
        for n, (make, model, year) in names.items()
    ]
    return Case("multi_word_makes", "folder", root, expect)


def links_and_loops(folder: Path) -> Case:
    """Symlinked photos and class folders read like copies; loops and dangling links cost one row each."""
    base = folder / "links"
    store = write_files(base / "store", ["Fiat 500/a.jpg", "Fiat 500/b.jpg", "Kia Rio/c.jpg"])
    root = base / "tree"
    (root / "Fiat 500").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        (root / "Fiat 500" / name).symlink_to(store / "Fiat 500" / name)  # ln -s each file
    (root / "Kia Rio").symlink_to(store / "Kia Rio", target_is_directory=True)  # ln -s a class folder
    os.link(store / "Fiat 500" / "a.jpg", root / "Fiat 500" / "hard.jpg")
    (root / "Fiat 500" / "loop").symlink_to(root, target_is_directory=True)  # back to the root
    (root / "Fiat 500" / "self.jpg").symlink_to(root / "Fiat 500" / "self.jpg")  # a link to itself (ELOOP)
    (root / "Fiat 500" / "gone.jpg").symlink_to(base / "nowhere.jpg")
    os.mkfifo(root / "Fiat 500" / "fifo")  # reading it would block the clean stage forever
    expect = [
        Expect("Fiat 500/a.jpg", label="Fiat 500"),
        Expect("Fiat 500/b.jpg", label="Fiat 500"),
        Expect("Fiat 500/hard.jpg", label="Fiat 500"),
        Expect("Kia Rio/c.jpg", label="Kia Rio"),
        Expect("Fiat 500/loop", "symlink_loop"),
        Expect("Fiat 500/self.jpg", "symlink_loop"),
        Expect("Fiat 500/gone.jpg", "missing_file", detail="dangling link"),
        Expect("Fiat 500/fifo", "not_a_regular_file"),
    ]
    return Case("links_and_loops", "folder", root, expect)


def non_utf8_names(folder: Path) -> Case:
    """Names written by a Latin-1 system: the bytes are not UTF-8, so parquet could not store them."""
    root = write_files(folder / "latin1_names", ["Fiat 500/ok.jpg"])
    broot = os.fsencode(root)
    for rel in (b"Fiat 500/caf\xe9.jpg", b"Citro\xebn C3/x.jpg"):
        path = os.path.join(broot, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(JPEG_BYTES)

    def stored(rel: bytes) -> str:
        return utf8_safe(os.fsdecode(rel))

    expect = [
        Expect("Fiat 500/ok.jpg", label="Fiat 500"),
        Expect(stored(b"Fiat 500/caf\xe9.jpg"), "file_name_not_utf8", detail="'caf\\udce9.jpg'"),
        Expect(stored(b"Citro\xebn C3/x.jpg"), "file_name_not_utf8", detail="convmv"),
    ]
    return Case("non_utf8_names", "folder", root, expect)


def _pattern_case(folder: Path, name: str, key: str, pattern: str) -> Case:
    """A pattern that cannot work fails at start, naming the setting."""
    root = write_files(folder / name, ["Fiat 500/a.jpg"])
    return Case(name, "folder", root, kwargs={key: pattern}, error=f"data.{key}")


def invalid_listing_regex(folder: Path) -> Case:
    return _pattern_case(folder, "invalid_listing_regex", "listing_pattern", "(?P<listing")


def listing_pattern_without_group(folder: Path) -> Case:
    return _pattern_case(folder, "listing_pattern_without_group", "listing_pattern", r"^(\w+)_")


def class_pattern_without_model(folder: Path) -> Case:
    return _pattern_case(folder, "class_pattern_without_model", "class_pattern", "(?P<make>.+)")


# --- Stanford ---------------------------------------------------------------------------------------------------

STANFORD_CLASSES = [
    "AM General Hummer SUV 2000",
    "Acura RL Sedan 2012",
    "Aston Martin V8 Vantage Convertible 2012",
    "Ram C/V Cargo Van Minivan 2012",
]


def _struct(rows: list[tuple], labelled: bool = True) -> np.ndarray:
    """A MATLAB 1 x N struct array as the devkit stores it: each cell a 1 x 1 array of the smallest integer type."""
    names = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", *(["class"] if labelled else []), "fname"]
    out = np.zeros((1, len(rows)), dtype=[(n, "O") for n in names])
    for i, (*numbers, fname) in enumerate(rows):
        cells = [np.array([[v]], dtype=np.uint8 if v < 256 else np.uint16) for v in numbers[: len(names) - 1]]
        out[0, i] = (*cells, fname)
    return out


def write_stanford(root: Path, train: list[tuple], test: list[tuple], test_labelled: bool = True, devkit: bool = True):
    """A Stanford Cars devkit: rows are (x1, y1, x2, y2, class, fname) (class left out when not labelled)."""
    import scipy.io

    mats = root / "devkit" if devkit else root
    mats.mkdir(parents=True)
    names = np.empty((1, len(STANFORD_CLASSES)), dtype=object)
    names[0, :] = STANFORD_CLASSES
    scipy.io.savemat(mats / "cars_meta.mat", {"class_names": names})
    scipy.io.savemat(mats / "cars_train_annos.mat", {"annotations": _struct(train)})
    test_name = "cars_test_annos_withlabels.mat" if test_labelled else "cars_test_annos.mat"
    test_rows = test if test_labelled else [(*r[:4], r[-1]) for r in test]
    scipy.io.savemat(mats / test_name, {"annotations": _struct(test_rows, test_labelled)})
    for split, rows in (("train", train), ("test", test)):
        write_files(root / f"cars_{split}", [r[-1] for r in rows])
    return root


def stanford_devkit(folder: Path) -> Case:
    """Boxes that overflow uint8 arithmetic, multi-word makes, a class out of range, a missing image."""
    root = write_stanford(
        folder / "stanford",
        train=[(200, 3, 300, 40, 1, "00001.jpg"), (1, 1, 255, 255, 3, "00002.jpg"), (5, 5, 9, 9, 7, "00003.jpg")],
        test=[(10, 20, 1000, 700, 4, "00001.jpg"), (2, 2, 4, 4, 2, "00002.jpg")],
    )
    (root / "cars_test" / "00002.jpg").unlink()
    # 1-based inclusive [200, 3, 300, 40] (uint8, uint8, uint16, uint8) -> 0-based half-open [199, 2, 300, 40]
    hummer = dict(
        make="AM General", model="Hummer SUV", year="2000", source_split="train", bbox=[199.0, 2.0, 300.0, 40.0]
    )
    expect = [
        Expect("cars_train/00001.jpg", label="AM General Hummer SUV", listing_id="cars_train/00001", fields=hummer),
        Expect("cars_train/00002.jpg", label="Aston Martin V8 Vantage Convertible", listing_id="cars_train/00002"),
        Expect("cars_train/00003.jpg", "missing_label", detail="class 7"),
        Expect("cars_test/00001.jpg", label="Ram C/V Cargo Van Minivan", listing_id="cars_test/00001"),
        Expect("cars_test/00002.jpg", "missing_file"),
    ]
    return Case("stanford_devkit", "stanford", root, expect)


def stanford_unlabelled_test(folder: Path) -> Case:
    root = write_stanford(
        folder / "stanford_unlabelled",
        train=[(1, 1, 9, 9, 2, "00001.jpg")],
        test=[(1, 1, 9, 9, 2, "00001.jpg"), (1, 1, 9, 9, 2, "00002.jpg")],
        test_labelled=False,
        devkit=False,
    )
    expect = [
        Expect("cars_train/00001.jpg", label="Acura RL Sedan", fields={"year": "2012", "source_split": "train"}),
        Expect("cars_test/00001.jpg", "missing_label", detail="cars_test_annos_withlabels.mat"),
        Expect("cars_test/00002.jpg", "missing_label"),
    ]
    return Case("stanford_unlabelled_test", "stanford", root, expect, notes={"stanford_test_rows_without_labels": 2})


# --- all of them ------------------------------------------------------------------------------------------------

BUILDERS: tuple[Callable[[Path], Case], ...] = (
    latin1_listings,
    bom_and_nul_listings,
    malformed_lines,
    listing_without_images,
    overlong_names,
    clashing_annotations,
    hostile_boxes,
    viewpoints_and_duplicate_annotations,
    malformed_annotation_line,
    unsafe_and_linked_paths,
    label_spellings,
    empty_listings,
    eu_marketplace,
    hidden_and_system,
    only_system_folders,
    multi_word_makes,
    links_and_loops,
    non_utf8_names,
    invalid_listing_regex,
    listing_pattern_without_group,
    class_pattern_without_model,
    stanford_devkit,
    stanford_unlabelled_test,
)


def write_corpus(folder: Path) -> list[Case]:
    """Every hostile kind, each in its own root under `folder`."""
    return [build(folder) for build in BUILDERS]
