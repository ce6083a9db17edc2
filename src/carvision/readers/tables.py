"""CSV files as scrapers and spreadsheets really write them: any common encoding, NUL bytes, broken lines.

A malformed line (wrong number of fields, an unclosed quote) costs that line, reported with its number, and
reading goes on at the next line; it never costs the file. Columns are matched by name, case-insensitively.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    """The usable lines of a CSV file: its known columns by name, each with the line number it started on."""

    name: str  # the file's name, used in details: `listings.csv line 17: ...`
    encoding: str  # utf-8, utf-8-sig, utf-16, cp1252 or latin-1: how the bytes were decoded
    columns: list[str]  # the header, lower-cased and stripped
    records: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (line number, known column -> text)
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (line number, detail)
    ignored_columns: list[str] = field(default_factory=list)  # header names that are not known columns
    nul_bytes: int = 0  # NUL characters removed before parsing


def decode(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and the encoding that read it.

    UTF-8 (with or without the BOM Excel writes), UTF-16 with a BOM ("Unicode text" from Excel), then cp1252,
    the usual Windows export, and latin-1 as the last resort, which reads any bytes.
    """
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError:
            pass
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    for encoding in ("utf-8", "cp1252", "latin-1"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")


class _LineFeed:
    """Feeds physical lines to csv.reader from line `pos` on and remembers how far it got, so that each record's
    first line is known and parsing can restart on the line after a malformed record's first line."""

    def __init__(self, lines: list[str], pos: int) -> None:
        self.lines, self.pos = lines, pos

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def _records(lines: list[str], first: int):
    """(line number, fields or None, error) for each non-blank record from 0-based line `first` on."""
    feed = _LineFeed(lines, first)
    reader = csv.reader(feed)
    while feed.pos < len(lines):
        start = feed.pos
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield start + 1, None, str(e)
            feed = _LineFeed(lines, start + 1)
            reader = csv.reader(feed)
            continue
        if any("\n" in f or "\r" in f for f in fields):
            # No column of ours holds a line break: a quote that is never closed has swallowed the lines after it.
            # Those lines are parsed again on their own, so one stray quote costs one line.
            yield start + 1, None, f"a quoted field runs over a line break (an unclosed quote?), to line {feed.pos}"
            feed = _LineFeed(lines, start + 1)
            reader = csv.reader(feed)
            continue
        if any(f.strip() for f in fields):
            yield start + 1, fields, ""


def read_table(path: Path, known: tuple[str, ...], required: tuple[str, ...]) -> Table:
    """Reads `path`; raises ValueError when its header lacks a `required` column, naming the file and the columns.

    Args:
        known: the columns used; any other column is ignored (and listed in `Table.ignored_columns`).
        required: the columns without which the file is unusable.
    """
    text, encoding = decode(path.read_bytes())
    nul_bytes = text.count("\x00")
    text = text.replace("\x00", "")
    lines = list(io.StringIO(text, newline=""))  # newline="": \n, \r\n and \r end lines, and stay on them
    records = _records(lines, 0)
    header = next((fields for _, fields, _ in records if fields is not None), None)
    if header is None:
        raise ValueError(f"{path} is empty: expected a header line with the columns {list(required)}")
    columns = [h.strip().lower() for h in header]
    if missing := [c for c in required if c not in columns]:
        raise ValueError(f"{path} lacks columns {missing} (its header: {columns})")
    # The first of two equally named columns is the one used.
    index = {c: columns.index(c) for c in known if c in columns}
    ignored = [c for i, c in enumerate(columns) if index.get(c) != i]
    table = Table(path.name, encoding, columns, ignored_columns=ignored, nul_bytes=nul_bytes)
    for line, fields, error in records:
        if fields is None:
            table.malformed.append((line, f"{path.name} line {line}: {error}"))
        elif len(fields) != len(columns):
            table.malformed.append((line, f"{path.name} line {line}: {len(fields)} fields, expected {len(columns)}"))
        else:
            table.records.append((line, {c: fields[i] for c, i in index.items()}))
    return table
