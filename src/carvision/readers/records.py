"""What every reader hands to the ingest stage: one `Row` per thing it found, and what it has to report."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    """One photo (or one placeholder for a line, listing or file that could not become a photo).

    `reason` set means the reader already knows the row must be dropped (missing_file, malformed_csv_line, ...);
    the ingest stage adds the reasons that need every row at once (missing_label, listed_twice).
    """

    image_id: str  # unique, stable key; a placeholder such as `listings.csv:17` for a row that is not a photo
    path: str  # the file as found, not resolved: a symlinked photo keeps its link path
    listing_id: str  # the ad the photo belongs to; photos of one listing share a split
    make: str = ""
    model: str = ""
    submodel: str = ""
    year: str = ""  # four digits, or "" when unknown
    viewpoint: str = ""
    bbox: list[float] | None = None  # [x_min, y_min, x_max, y_max] px, 0-based, half-open
    source_split: str = ""  # the source's own split (Stanford: train, test)
    reason: str | None = None
    detail: str = ""


@dataclass
class Found:
    """A reader's result: its rows, entries for the stage's report, and words for an error when nothing is kept."""

    rows: list[Row]
    notes: dict = field(default_factory=dict)
    looked_for: str = ""  # e.g. "files in <class folder>/ under data/raw/folder"
    seen: str = ""  # what was there instead, e.g. "3 folders, all hidden/system: .Trash-1000, ..."
