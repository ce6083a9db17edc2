"""Tests for the folder reader (carvision.readers.folder): the EU marketplace layout, links, patterns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hostile_tables import EU_CLASS, EU_LISTING, write_files

from carvision.readers.folder import compile_pattern, read_folder
from carvision.settings import ConfigError
from carvision.stages import ingest

EU_FILES = [
    "mercedes-benz_viano_2010/L100_1_0a1b.jpg",
    "mercedes-benz_viano_2010/L100_2_9f8e.jpg",
    "mercedes-benz_viano_2010/L200_1_77aa.jpg",
    "alfa_romeo_giulia_2017/L300_1_c3d4.jpg",
    "alfa_romeo_giulia_2017/L300_2_e5f6.jpg",
]


def _relative(df, root: Path):
    out = df.copy()
    out["path"] = [os.path.relpath(p, root) for p in out["path"]]
    return out.reset_index(drop=True)


def test_a_tree_of_links_ingests_exactly_like_a_copy(tmp_path: Path):
    copy = write_files(tmp_path / "copy", EU_FILES)
    # The same photos as a DVC `symlink` checkout would lay them out: each file a link into a cache outside the
    # tree, and one class folder a link to a folder of the cache.
    cache = write_files(tmp_path / "cache", EU_FILES)
    links = tmp_path / "links"
    for rel in EU_FILES[:3]:
        (links / rel).parent.mkdir(parents=True, exist_ok=True)
        (links / rel).symlink_to(cache / rel)
    (links / "alfa_romeo_giulia_2017").symlink_to(cache / "alfa_romeo_giulia_2017", target_is_directory=True)

    patterns = dict(listing_pattern=EU_LISTING, class_pattern=EU_CLASS)
    a, b = ingest.ingest("folder", copy, **patterns), ingest.ingest("folder", links, **patterns)
    assert len(a.kept) == len(b.kept) == 5 and len(a.dropped) == len(b.dropped) == 0
    assert _relative(a.kept, copy).equals(_relative(b.kept, links))
    assert b.kept["path"].str.startswith(str(links)).all()  # paths are the links, not their targets
    kept = a.kept.set_index("image_id")
    assert kept.loc[
        "alfa_romeo_giulia_2017/L300_1_c3d4.jpg", ["make", "model", "year", "label", "listing_id"]
    ].tolist() == [
        "alfa romeo",
        "giulia",
        "2017",
        "alfa romeo giulia",
        "L300",
    ]
    assert a.kept.groupby("listing_id").size().to_dict() == {"L100": 2, "L200": 1, "L300": 2}


def test_hardlinks_are_ordinary_files(tmp_path: Path):
    root = write_files(tmp_path / "t", ["Fiat 500/a.jpg"])
    os.link(root / "Fiat 500" / "a.jpg", root / "Fiat 500" / "b.jpg")
    found = read_folder(root)
    assert [(r.image_id, r.reason) for r in found.rows] == [("Fiat 500/a.jpg", None), ("Fiat 500/b.jpg", None)]


def test_without_a_listing_pattern_each_photo_is_its_own_listing(tmp_path: Path):
    root = write_files(tmp_path / "t", ["Kia Rio/L1_1.jpg", "Kia Rio/L1_2.jpg"])
    assert [r.listing_id for r in read_folder(root).rows] == ["Kia Rio/L1_1", "Kia Rio/L1_2"]


def test_a_pattern_cut_inside_a_multi_word_make_is_put_right(tmp_path: Path):
    root = write_files(
        tmp_path / "t", ["land_rover_defender_2020/a.jpg", "aston_martin_db9_2008/b.jpg", "kia_rio_2011/c.jpg"]
    )
    rows = read_folder(root, class_pattern=EU_CLASS).rows
    assert [(r.make, r.model, r.year) for r in rows] == [
        ("aston martin", "db9", "2008"),
        ("kia", "rio", "2011"),
        ("land rover", "defender", "2020"),
    ]


def test_a_class_pattern_year_that_is_not_four_digits_is_blank_and_reported(tmp_path: Path):
    root = write_files(tmp_path / "t", ["kia_rio_20l1/a.jpg"])
    found = read_folder(root, class_pattern=r"^(?P<make>[^_]+)_(?P<model>[^_]+)_(?P<year>.+)$")
    assert (found.rows[0].year, found.rows[0].reason) == ("", None)
    assert found.notes["years_not_four_digits"] == {"20l1": 1}


@pytest.mark.parametrize(
    ("text", "groups", "message"),
    [
        ("(?P<listing", ("listing",), "is not a valid regex"),
        (r"^(\d+)_", ("listing",), "lacks the named group(s) ['listing']"),
        ("(?P<make>.+)_", ("make", "model"), "lacks the named group(s) ['model']"),
    ],
)
def test_bad_patterns_fail_at_start_naming_the_setting(text: str, groups, message: str):
    with pytest.raises(ConfigError) as raised:
        compile_pattern(text, "data.some_pattern", groups, "e.g.")
    assert str(raised.value).startswith("data.some_pattern: ") and message in str(raised.value)


def test_no_pattern_is_no_pattern():
    assert compile_pattern(None, "data.listing_pattern", ("listing",), "") is None
