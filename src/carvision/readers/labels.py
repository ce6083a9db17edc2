"""Label text: one spelling per make and model, makes told apart from models, years and viewpoints parsed strictly.

Every reader goes through these functions, so that `Škoda` typed on a Mac (NFD) and on Linux (NFC), or `toyota
corolla` beside `Toyota Corolla`, end up as one class whatever the source.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

# Makes of more than one word, as written with spaces (a hyphenated make such as Mercedes-Benz or Rolls-Royce is
# one token already and needs no entry). Without this list "Aston Martin V8 Vantage" would become make `Aston`.
# Stanford Cars' 49 makes hold three of them (AM General, Aston Martin, Land Rover); the rest are marketplace
# spellings. Range Rover is a Land Rover model and Mini Cooper a MINI model, so neither is here.
MULTI_WORD_MAKES: tuple[str, ...] = (
    "AM General",
    "Alfa Romeo",
    "Aston Martin",
    "Austin Healey",
    "De Tomaso",
    "DS Automobiles",
    "Great Wall",
    "Land Rover",
    "Lynk & Co",
    "Mercedes Benz",
    "Rolls Royce",
)
_MAKE_TOKENS = sorted((tuple(m.casefold().split()) for m in MULTI_WORD_MAKES), key=len, reverse=True)

VIEWPOINTS: tuple[str, ...] = ("front", "front-side", "side", "back-side", "back")
_VIEWPOINT_SYNONYMS = {"rear": "back", "rear-side": "back-side", "side-rear": "back-side", "side-front": "front-side"}
_YEAR = re.compile(r"\d{4}")


def normalise_text(text: str) -> str:
    """Unicode NFC, every run of whitespace (tabs, no-break spaces) as one space, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def split_make_model(name: str) -> tuple[str, str]:
    """`Aston Martin V8 Vantage` -> (`Aston Martin`, `V8 Vantage`); a make of one word is the first token."""
    tokens = normalise_text(name).split(" ")
    folded = [t.casefold() for t in tokens]
    for make in _MAKE_TOKENS:
        if tuple(folded[: len(make)]) == make:
            return " ".join(tokens[: len(make)]), " ".join(tokens[len(make) :])
    return tokens[0], " ".join(tokens[1:])


def split_class_name(name: str) -> tuple[str, str, str]:
    """A class name as Stanford Cars and folder trees write it, as (make, model, year).

    `AM General Hummer SUV 2000` -> (`AM General`, `Hummer SUV`, `2000`). A trailing four-digit token is the year
    only when a model is left before it: `Peugeot 2008` is a model, (`Peugeot`, `2008`, ``).
    """
    make, model = split_make_model(name)
    head, _, last = model.rpartition(" ")
    if head and _YEAR.fullmatch(last):
        return make, head, last
    return make, model, ""


def parse_year(text: str) -> str:
    """Four digits, or "" for anything else (`'15`, `2015.0`, `unknown`)."""
    text = text.strip()
    return text if _YEAR.fullmatch(text) else ""


def normalise_viewpoint(text: str) -> str | None:
    """One of VIEWPOINTS, "" for no viewpoint, or None for a viewpoint nobody knows (`upside-down`).

    `Front`, ` front-side `, `Front Side`, `front_side` and `rear` are all understood.
    """
    key = "-".join(text.casefold().replace("_", " ").replace("-", " ").split())
    if not key:
        return ""
    key = _VIEWPOINT_SYNONYMS.get(key, key)
    return key if key in VIEWPOINTS else None


def merge_case_variants(values: Iterable[str]) -> tuple[dict[str, str], list[dict]]:
    """Spellings that differ only in case, mapped to the most frequent of them (ties: the first in sorted order).

    Args:
        values: one entry per row (already `normalise_text`-ed); "" is left alone.

    Returns:
        the mapping of every spelling that changes to its replacement, and one record per merged spelling
        (`{"from": "toyota", "into": "Toyota", "rows": 3}`) for the report.
    """
    counts = Counter(v for v in values if v)
    by_fold: dict[str, list[str]] = {}
    for spelling in sorted(counts):
        by_fold.setdefault(spelling.casefold(), []).append(spelling)
    mapping: dict[str, str] = {}
    merged: list[dict] = []
    for spellings in by_fold.values():
        if len(spellings) < 2:
            continue
        into = max(spellings, key=lambda s: counts[s])  # max keeps the first (sorted) of equal counts
        for s in spellings:
            if s != into:
                mapping[s] = into
                merged.append({"from": s, "into": into, "rows": counts[s]})
    return mapping, merged
