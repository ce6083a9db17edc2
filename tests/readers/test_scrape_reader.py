"""Tests for the scrape reader (carvision.readers.scrape): strict boxes and the rows a reader hands over."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_tables import write_scrape

from carvision.readers.scrape import parse_box, read_scrape


@pytest.mark.parametrize(
    ("raw", "box", "why"),
    [
        (("1", "2", "30.5", "20"), [1.0, 2.0, 30.5, 20.0], None),
        ((" 1 ", "+2", ".5", "1e2"), [1.0, 2.0, 0.5, 100.0], None),
        (("", "", "", ""), None, None),
        ((" ", "", "", ""), None, None),
        (("1", "", "3", "4"), None, "some coordinates are empty"),
        (("120px", "2", "3", "4"), None, "not plain numbers"),
        (("inf", "2", "3", "4"), None, "not plain numbers"),
        (("nan", "2", "3", "4"), None, "not plain numbers"),
        (("0x10", "2", "3", "4"), None, "not plain numbers"),
        (("1_000", "2", "3", "4"), None, "not plain numbers"),
        (("1e400", "2", "3", "4"), None, "not finite"),
    ],
)
def test_parse_box_is_strict(raw, box, why):
    assert parse_box(raw) == (box, why)


def test_rows_placeholders_and_notes(tmp_path: Path):
    root = write_scrape(
        tmp_path / "s",
        "ad_id,make,model,year,images,seller\n"
        "ad1,Fiat,500,2015,00.jpg;01.jpg,bob\n"
        "ad2,Fiat,500,2015,,bob\n"
        "ad3,Fiat\n"
        ",Fiat,500,2015,00.jpg,bob\n",
        ["ad1/00.jpg"],
    )
    found = read_scrape(root)
    rows = {r.image_id: (r.reason, r.listing_id) for r in found.rows}
    assert rows == {
        "listings.csv:4": ("malformed_csv_line", ""),
        "ad1/00.jpg": (None, "ad1"),
        "ad1/01.jpg": ("missing_file", "ad1"),
        "ad2/": ("listing_without_images", "ad2"),
        "/00.jpg": ("missing_ad_id", ""),
    }
    assert found.rows[1].path == f"{root}/images/ad1/00.jpg"
    assert found.rows[1].year == "2015" and found.rows[1].bbox is None
    assert found.notes == {
        "csv_encoding": {"listings.csv": "utf-8"},
        "malformed_csv_lines": {"listings.csv": 1},
        "listing_columns_ignored": ["seller"],
    }
    assert "listings.csv" in found.looked_for
