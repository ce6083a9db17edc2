"""Readers of raw data: each turns one layout of data.root into `Row`s, the first manifest's rows.

    scrape, sample   listings.csv + images/<ad_id>/<file> + annotations.csv      (readers.scrape)
    folder           <class folder>/.../<photo>, optional listing/class patterns (readers.folder)
    stanford         the Stanford Cars devkit: .mat annotations, cars_train/, cars_test/ (readers.stanford)

A reader never raises for one bad file, line or name: that becomes a row with a reason. It raises only when the
layout itself is unusable (no listings.csv, a required column missing, an invalid pattern), naming what it needs.
"""

from __future__ import annotations

from pathlib import Path

from carvision.readers.folder import read_folder
from carvision.readers.records import Found, Row
from carvision.readers.scrape import read_scrape
from carvision.readers.stanford import read_stanford
from carvision.settings import ConfigError

SOURCES = ("sample", "scrape", "folder", "stanford")

__all__ = ["SOURCES", "Found", "Row", "read"]


def read(source: str, root: Path, *, listing_pattern: str | None = None, class_pattern: str | None = None) -> Found:
    """Every row that the reader of `source` finds under `root`.

    Args:
        listing_pattern, class_pattern: data.listing_pattern / data.class_pattern; folder only.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown data.source '{source}': use one of {', '.join(SOURCES)}")
    if source == "folder":
        return read_folder(root, listing_pattern, class_pattern)
    for key, value in (("listing_pattern", listing_pattern), ("class_pattern", class_pattern)):
        if value is not None:
            raise ConfigError(f"data.{key}: applies to data.source=folder only, not {source}; set it to null")
    return read_stanford(root) if source == "stanford" else read_scrape(root)
