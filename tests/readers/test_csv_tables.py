"""Tests for robust CSV reading (carvision.readers.tables): encodings, NUL bytes, malformed lines by number."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from carvision.readers.tables import decode, read_table

KNOWN = ("ad_id", "make", "images")


@pytest.mark.parametrize(
    ("data", "encoding", "text"),
    [
        ("Škoda".encode(), "utf-8", "Škoda"),
        (codecs.BOM_UTF8 + "Škoda".encode(), "utf-8-sig", "Škoda"),
        ("Škoda".encode("utf-16"), "utf-16", "Škoda"),
        ("Škoda Citroën".encode("cp1252"), "cp1252", "Škoda Citroën"),
        (b"\x81\xe9", "latin-1", "\x81é"),  # 0x81 is undefined in cp1252: latin-1 reads anything
    ],
)
def test_decode_falls_back_and_says_how(data: bytes, encoding: str, text: str):
    assert decode(data) == (text, encoding)


def _table(tmp_path: Path, content: str | bytes, required=("ad_id",)):
    path = tmp_path / "listings.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return read_table(path, KNOWN, required)


def test_records_carry_their_line_numbers_and_known_columns_only(tmp_path: Path):
    table = _table(tmp_path, "AD_ID, Make ,images,note\r\na1,Fiat,x.jpg,hi\r\n\r\n,,,\r\na2,Kia,y.jpg,\r\n")
    assert table.columns == ["ad_id", "make", "images", "note"]  # header names are case- and space-insensitive
    assert table.records == [
        (2, {"ad_id": "a1", "make": "Fiat", "images": "x.jpg"}),
        (5, {"ad_id": "a2", "make": "Kia", "images": "y.jpg"}),  # blank and empty lines are no records
    ]
    assert table.ignored_columns == ["note"] and table.malformed == [] and table.encoding == "utf-8"


def test_a_malformed_line_costs_that_line_only(tmp_path: Path):
    lines = ["ad_id,make,images", "a1,Fiat,x.jpg", "a2,Fiat,x.jpg,1,2,3,4,5,6", "a3,Fiat", "a4,Fiat,x.jpg"]
    table = _table(tmp_path, "\n".join(lines) + "\n")
    assert [line for line, _ in table.records] == [2, 5]
    assert table.malformed == [
        (3, "listings.csv line 3: 9 fields, expected 3"),
        (4, "listings.csv line 4: 2 fields, expected 3"),
    ]


def test_an_unclosed_quote_does_not_swallow_the_lines_after_it(tmp_path: Path):
    lines = ["ad_id,make,images", 'a1,"Fiat,x.jpg', "a2,Fiat,x.jpg", "a3,Fiat,x.jpg", 'a4,Kia,"y.jpg']
    table = _table(tmp_path, "\n".join(lines) + "\n")
    assert [rec["ad_id"] for _, rec in table.records] == ["a2", "a3"]
    assert [line for line, _ in table.malformed] == [2, 5]
    assert "unclosed quote" in table.malformed[0][1]


def test_a_quoted_comma_is_not_malformed(tmp_path: Path):
    table = _table(tmp_path, 'ad_id,make,images\na1,"Mercedes-Benz, AMG","x.jpg;y.jpg"\n')
    assert table.records == [(2, {"ad_id": "a1", "make": "Mercedes-Benz, AMG", "images": "x.jpg;y.jpg"})]


def test_nul_bytes_are_removed_and_counted(tmp_path: Path):
    table = _table(tmp_path, b"ad_id,make,images\na\x001,Fi\x00at,x.jpg\n")
    assert table.records == [(2, {"ad_id": "a1", "make": "Fiat", "images": "x.jpg"})]
    assert table.nul_bytes == 2


def test_a_field_over_the_csv_limit_is_one_malformed_line(tmp_path: Path):
    # An unclosed quote near the top of a large file: the field grows past csv's limit (131072 characters).
    body = "".join(f"a{i},Fiat,x.jpg\n" for i in range(12_000))
    table = _table(tmp_path, 'ad_id,make,images\nq,"Fiat,x.jpg\n' + body)
    assert table.malformed[0][0] == 2
    assert len(table.records) == 12_000


def test_required_columns_and_empty_files_fail_at_start(tmp_path: Path):
    with pytest.raises(ValueError, match=r"lacks columns \['images'\]"):
        _table(tmp_path, "ad_id,make\na1,Fiat\n", required=("ad_id", "images"))
    with pytest.raises(ValueError, match="is empty"):
        _table(tmp_path, "\n\n")


def test_the_first_of_two_equal_columns_is_used(tmp_path: Path):
    table = _table(tmp_path, "ad_id,make,images,make\na1,Fiat,x.jpg,WRONG\n")
    assert table.records[0][1]["make"] == "Fiat"
    assert table.ignored_columns == ["make"]
