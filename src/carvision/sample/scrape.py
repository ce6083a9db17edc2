"""The raw scrape: listings, their photos and their defects, written the way a marketplace scraper leaves them.

    OUT_DIR/listings.csv        ad_id, make, model, year, images   (scraped label, possibly wrong)
    OUT_DIR/images/<ad_id>/NN.jpg
    OUT_DIR/annotations.csv     ad_id, file, viewpoint, x_min, y_min, x_max, y_max   (box in the upright image)
    OUT_DIR/truth.csv           ground truth for tests: kind, true class, label noise, duplicates, EXIF orientation

The scrape carries the usual defects so that later stages (clean, crop, split, train) have real work to do:
long-tailed classes, wrong labels, photos without a car (cabin, dashboard, seats, wheel, engine bay, open boot,
adverts, banners, energy labels, documents), broken files, tiny thumbnails, exact and near duplicates (also
re-posted in another ad), EXIF-rotated and grayscale photos.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from carvision.atomic import atomic_dir
from carvision.sample.catalogue import CLASSES, RGB, VIEWPOINT_WEIGHTS, VIEWPOINTS
from carvision.sample.drawing import jitter
from carvision.sample.scenes import NON_CAR_KINDS, STORE_ROTATION, car_photo, exif_bytes, jpeg, non_car_photo

BROKEN_KINDS: tuple[str, ...] = ("zero_byte", "truncated", "not_image")
KINDS: tuple[str, ...] = ("car", *NON_CAR_KINDS, *BROKEN_KINDS, "tiny")
DUPLICATE_KINDS: tuple[str, ...] = ("exact", "recompressed", "resized")

RECOMPRESS_QUALITY = 35  # near duplicates: visibly blockier, same content
RESIZE_FACTOR = 0.7  # near duplicates: side length ratio
TRUNCATE_FRACTION = 0.4  # truncated files keep the first 40 % of a valid JPEG's bytes
TINY_FRACTION = 0.15  # thumbnails: 15 % of the normal side, i.e. 24x18 px for 160x120 px
GRAYSCALE_RATE = 0.01  # a few car photos are stored as 8-bit grayscale
_NOT_IMAGE = b"<html>404 not found</html>\n"


@dataclass(frozen=True)
class SampleSpec:
    """Size and defect rates of the synthetic scrape. Rates are fractions of the base (non-duplicate) photos."""

    n_listings: int = 260  # listings (ads)
    photos_per_listing: tuple[int, int] = (3, 6)  # inclusive range of car photos per listing
    image_size: tuple[int, int] = (160, 120)  # (width, height) px of a normal photo
    imbalance: float = 12.0  # listings ratio between the largest and the smallest class (>= 10)
    label_noise: float = 0.03  # fraction of listings whose make/model is replaced by another class
    non_car_rate: float = 0.2  # fraction of photos without a car (cabin, advert...), added to the car photos
    broken_rate: float = 0.02  # fraction of photos that are broken files
    duplicate_rate: float = 0.04  # fraction of photos that get an exact or near duplicate
    small_rate: float = 0.01  # fraction of photos that are tiny thumbnails (e.g. 24x18 px)
    exif_rotated_rate: float = 0.02  # fraction of car photos stored rotated with an EXIF Orientation tag


# --------------------------------------------------------------------------------------------------------------
# Counts
# --------------------------------------------------------------------------------------------------------------


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest-remainder method, ties by index)."""
    if not weights:
        return []
    s = sum(weights)
    quotas = [total * w / s for w in weights]
    counts = [math.floor(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def class_listing_counts(n_listings: int, n_classes: int = len(CLASSES), imbalance: float = 12.0) -> list[int]:
    """Listings per class, non-increasing, Zipf-like, summing to `n_listings`.

    The exponent a = ln(imbalance) / ln(n_classes) makes rank 1 vs rank n_classes exactly `imbalance`; the
    smallest class is rounded first and the largest set to round(smallest * imbalance) so the ratio holds
    after rounding whenever the middle classes can absorb the rest.
    """
    if n_classes < 1 or n_listings < n_classes:
        raise ValueError(f"need n_listings >= n_classes >= 1, got {n_listings=} {n_classes=}")
    if imbalance < 1:
        raise ValueError(f"imbalance must be >= 1, got {imbalance}")
    if n_classes == 1:
        return [n_listings]
    a = math.log(imbalance) / math.log(n_classes)
    w = [(k + 1) ** -a for k in range(n_classes)]
    if n_classes == 2:  # no middle class to absorb rounding: take the split whose ratio is closest
        smallest = min(range(1, n_listings // 2 + 1), key=lambda s: abs((n_listings - s) / s - imbalance))
        return [n_listings - smallest, smallest]
    guess = max(1, round(n_listings / sum(w) / imbalance))
    # Try the Zipf guess for the smallest class first, then its neighbours, until the middle classes can take
    # the rest while staying between smallest and largest.
    for smallest in sorted(range(1, n_listings // n_classes + 1), key=lambda s: (abs(s - guess), s)):
        largest = max(smallest, round(smallest * imbalance))
        rest = n_listings - smallest - largest
        if smallest * (n_classes - 2) <= rest <= largest * (n_classes - 2):
            break
    else:  # no exact ratio possible (tiny n_listings): plain Zipf apportionment, at least 1 listing each
        return sorted((c + 1 for c in _apportion(n_listings - n_classes, w)), reverse=True)
    mid = [min(max(c, smallest), largest) for c in _apportion(rest, w[1:-1])]
    diff = rest - sum(mid)
    # Clamping can break the sum: move single listings through the middle classes that still have room.
    while diff != 0:
        step = 1 if diff > 0 else -1
        room = [i for i, c in enumerate(mid) if smallest <= c + step <= largest]
        i = room[0] if step > 0 else room[-1]  # non-empty: the feasibility check above guarantees room
        mid[i] += step
        diff -= step
    return sorted([largest, *mid, smallest], reverse=True)


def _count(rate: float, n: int, minimum: int) -> int:
    """Exact number of items for a rate, at least `minimum` when the rate is positive (so small specs show it)."""
    return 0 if rate <= 0 else max(minimum, round(rate * n))


# --------------------------------------------------------------------------------------------------------------
# The scrape
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Photo:
    """One file of the scrape and everything the three CSVs need about it."""

    ad_id: str
    file: str
    kind: str
    cls: int  # true class of what is pictured (the listing's car, or the original's for re-posts)
    viewpoint: str = ""
    box: tuple[float, float, float, float] | None = None
    exif_orientation: int = 1
    grayscale: bool = False
    duplicate_of: str = ""
    duplicate_kind: str = ""
    data: bytes = b""
    upright: Image.Image | None = None  # kept only for photos that will be duplicated


@dataclass
class _Listing:
    ad_id: str
    cls: int  # true class
    scraped: int  # class written in listings.csv
    year: int
    colour: RGB
    photos: list[_Photo]


def _plan(rng: np.random.Generator, pyrng: random.Random, spec: SampleSpec) -> list[_Listing]:
    """Decide listings, labels and the kind/viewpoint of every base photo (no rendering yet)."""
    if not 0 <= spec.non_car_rate < 1:
        raise ValueError(f"non_car_rate must be in [0, 1), got {spec.non_car_rate}")
    counts = class_listing_counts(spec.n_listings, len(CLASSES), spec.imbalance)
    classes = [c for c, n in enumerate(counts) for _ in range(n)]
    pyrng.shuffle(classes)  # ads of all classes interleave, as in a scrape sorted by date
    noisy = set(pyrng.sample(range(spec.n_listings), _count(spec.label_noise, spec.n_listings, 1)))
    lo, hi = spec.photos_per_listing
    listings = []
    for i, c in enumerate(classes):
        scraped = c
        if i in noisy:  # wrong make/model typed by the seller or mis-parsed by the scraper
            scraped = pyrng.choice([k for k in range(len(CLASSES)) if k != c])
        y0, y1 = CLASSES[c].years
        colour = jitter(CLASSES[c].colours[rng.integers(len(CLASSES[c].colours))], rng, 10)
        listings.append(_Listing(f"ad{i:06d}", c, scraped, int(rng.integers(y0, y1 + 1)), colour, []))
        for _ in range(int(rng.integers(lo, hi + 1))):
            listings[-1].photos.append(_Photo(listings[-1].ad_id, "", "car", c))
    slots = [p for lst in listings for p in lst.photos]  # photos taken of the listing's car
    # Photos without a car come on top of the car photos, so that they make up non_car_rate of all base photos.
    n_non_car = _count(spec.non_car_rate / (1 - spec.non_car_rate), len(slots), len(NON_CAR_KINDS))
    n = len(slots) + n_non_car
    n_broken, n_tiny = _count(spec.broken_rate, n, len(BROKEN_KINDS)), _count(spec.small_rate, n, 1)
    defects = [BROKEN_KINDS[k % len(BROKEN_KINDS)] for k in range(n_broken)] + ["tiny"] * n_tiny
    if len(defects) > len(slots):
        raise ValueError("defect rates add up to more than the number of car photos")
    kinds = defects + ["car"] * (len(slots) - len(defects))
    for p, k in zip(slots, (kinds[j] for j in rng.permutation(len(slots))), strict=True):
        p.kind = k
        if k in ("car", "tiny", "truncated"):  # rendered from a car drawing
            p.viewpoint = VIEWPOINTS[int(rng.choice(len(VIEWPOINTS), p=VIEWPOINT_WEIGHTS))]
    # Kinds in turn, so that each non-car kind gets an equal share (+-1); each goes into a random listing, after
    # its first photo (the cover photo of an ad shows the car).
    for j in rng.permutation(n_non_car):
        lst = listings[int(rng.integers(len(listings)))]
        kind = NON_CAR_KINDS[j % len(NON_CAR_KINDS)]
        lst.photos.insert(int(rng.integers(1, len(lst.photos) + 1)), _Photo(lst.ad_id, "", kind, lst.cls))
    for lst in listings:
        for k, p in enumerate(lst.photos):
            p.file = f"{k:02d}.jpg"
    cars = [p for p in slots if p.kind == "car"]
    picked = [cars[j] for j in rng.permutation(len(cars))]
    n_exif = _count(spec.exif_rotated_rate, len(cars), 1)
    for p in picked[:n_exif]:
        p.exif_orientation = int(rng.choice([6, 8, 3], p=[0.45, 0.45, 0.1]))
    for p in picked[n_exif : n_exif + round(GRAYSCALE_RATE * len(cars))]:
        p.grayscale = True
    return listings


def _plan_duplicates(rng: np.random.Generator, listings: list[_Listing], spec: SampleSpec) -> list[_Photo]:
    """Pick originals and where their copies get re-posted; copies are appended to the target listing."""
    eligible = [p for lst in listings for p in lst.photos if p.kind == "car" and p.exif_orientation == 1]
    n_base = sum(len(lst.photos) for lst in listings)
    n_dup = min(len(eligible), _count(spec.duplicate_rate, n_base, 3))
    by_id = {lst.ad_id: lst for lst in listings}
    dups = []
    for i, j in enumerate(rng.permutation(len(eligible))[:n_dup]):
        orig = eligible[j]
        src = by_id[orig.ad_id]
        target = src
        others = [lst for lst in listings if lst.scraped == src.scraped and lst is not src]
        if i % 2 == 1 and others:  # re-posted ad of the same scraped class
            target = others[int(rng.integers(len(others)))]
        dup = _Photo(
            target.ad_id,
            f"{len(target.photos):02d}.jpg",
            "car",
            orig.cls,
            orig.viewpoint,
            duplicate_of=f"{orig.ad_id}/{orig.file}",
            duplicate_kind=DUPLICATE_KINDS[i % 3],
        )
        target.photos.append(dup)
        dups.append(dup)
    return dups


def _render_base(rng: np.random.Generator, lst: _Listing, p: _Photo, size: tuple[int, int], keep: bool) -> None:
    """Fill p.data (and p.box, p.upright) for a base photo."""
    w, h = size
    if p.kind == "zero_byte":
        return
    if p.kind == "not_image":
        p.data = _NOT_IMAGE
    elif p.kind in NON_CAR_KINDS:
        p.data = jpeg(non_car_photo(rng, size, p.kind))
    else:
        im, box = car_photo(rng, size, p.cls, lst.colour, p.viewpoint)
        if p.kind == "tiny":  # a listing thumbnail scraped instead of the full photo
            tiny = (max(8, round(w * TINY_FRACTION)), max(6, round(h * TINY_FRACTION)))
            p.data = jpeg(im.resize(tiny, Image.Resampling.LANCZOS))
        elif p.kind == "truncated":  # download cut off mid-file
            data = jpeg(im)
            p.data = data[: int(len(data) * TRUNCATE_FRACTION)]
        else:
            if p.grayscale:
                im = im.convert("L")
            p.box = box
            if p.exif_orientation != 1:  # pixels stored as the camera held it; the tag says how to turn them
                p.data = jpeg(im.transpose(STORE_ROTATION[p.exif_orientation]), exif=exif_bytes(p.exif_orientation))
            else:
                p.data = jpeg(im)
            if keep:
                p.upright = im


def _render_duplicate(dup: _Photo, orig: _Photo) -> None:
    """Exact byte copy, JPEG recompression at low quality, or a ~70 % downscale of the original."""
    assert orig.box is not None and orig.upright is not None
    if dup.duplicate_kind == "exact":
        dup.data, dup.box = orig.data, orig.box
    elif dup.duplicate_kind == "recompressed":
        dup.data, dup.box = jpeg(orig.upright, quality=RECOMPRESS_QUALITY), orig.box
    else:
        w, h = orig.upright.size
        nw, nh = round(w * RESIZE_FACTOR), round(h * RESIZE_FACTOR)
        dup.data = jpeg(orig.upright.resize((nw, nh), Image.Resampling.LANCZOS))
        sx, sy = nw / w, nh / h
        x0, y0, x1, y1 = orig.box
        dup.box = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
    dup.grayscale = orig.grayscale


def _fmt(v: float) -> str:
    """Box coordinate with 2 decimals (px), trailing zeros kept for a stable CSV."""
    return f"{v:.2f}"


def _write(root: Path, listings: list[_Listing]) -> None:
    """Write images and the three CSVs under root (a fresh temporary directory)."""
    for lst in listings:
        d = root / "images" / lst.ad_id
        d.mkdir(parents=True)
        for p in lst.photos:
            (d / p.file).write_bytes(p.data)
    with open(root / "listings.csv", "w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(["ad_id", "make", "model", "year", "images"])
        for lst in listings:
            c = CLASSES[lst.scraped]
            wr.writerow([lst.ad_id, c.make, c.model, lst.year, ";".join(p.file for p in lst.photos)])
    with open(root / "annotations.csv", "w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(["ad_id", "file", "viewpoint", "x_min", "y_min", "x_max", "y_max"])
        for lst in listings:
            for p in lst.photos:
                box = [_fmt(v) for v in p.box] if p.box else ["", "", "", ""]
                wr.writerow([p.ad_id, p.file, p.viewpoint if p.kind in ("car", "tiny") else "", *box])
    with open(root / "truth.csv", "w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(
            [
                "ad_id",
                "file",
                "kind",
                "true_make",
                "true_model",
                "label_noise",
                "duplicate_of",
                "duplicate_kind",
                "exif_orientation",
            ]
        )
        for lst in listings:
            for p in lst.photos:
                c = CLASSES[p.cls]
                wr.writerow(
                    [
                        p.ad_id,
                        p.file,
                        p.kind,
                        c.make,
                        c.model,
                        lst.scraped != lst.cls,
                        p.duplicate_of,
                        p.duplicate_kind,
                        p.exif_orientation,
                    ]
                )


def generate_sample(out_dir: str | Path, seed: int = 0, spec: SampleSpec = SampleSpec()) -> dict:  # noqa: B008
    """Writes the scrape under out_dir and returns a summary dict (counts by kind, by class, n_images, n_listings).

    Generation goes to a hidden sibling directory that replaces out_dir only once complete, so a killed run never
    leaves a half-written out_dir. The same seed gives byte-identical files.
    """
    rng = np.random.default_rng(seed)
    pyrng = random.Random(int(rng.integers(2**63)))  # derived, so the global `random` state is never used
    listings = _plan(rng, pyrng, spec)
    dups = _plan_duplicates(rng, listings, spec)
    originals = {d.duplicate_of for d in dups}
    for lst in listings:
        for p in lst.photos:
            if not p.duplicate_of:
                _render_base(rng, lst, p, spec.image_size, keep=f"{p.ad_id}/{p.file}" in originals)
    by_key = {f"{p.ad_id}/{p.file}": p for lst in listings for p in lst.photos}
    for d in dups:
        _render_duplicate(d, by_key[d.duplicate_of])
    with atomic_dir(out_dir) as tmp:
        _write(tmp, listings)

    photos = [p for lst in listings for p in lst.photos]
    true_counts = Counter(lst.cls for lst in listings)
    return {
        "out_dir": str(out_dir),
        "seed": seed,
        "n_listings": len(listings),
        "n_images": len(photos),
        "by_kind": {k: sum(p.kind == k for p in photos) for k in KINDS},
        "by_class": {f"{c.make} {c.model}": true_counts[i] for i, c in enumerate(CLASSES)},
        "by_viewpoint": {v: sum(p.kind == "car" and p.viewpoint == v for p in photos) for v in VIEWPOINTS},
        "n_label_noise": sum(lst.scraped != lst.cls for lst in listings),
        "duplicates": {k: sum(p.duplicate_kind == k for p in photos) for k in DUPLICATE_KINDS},
        "n_exif_rotated": sum(p.exif_orientation != 1 for p in photos),
        "n_grayscale": sum(p.grayscale for p in photos),
    }


def main(argv: list[str] | None = None) -> None:
    """CLI: generate the scrape and print the summary as JSON."""
    ap = argparse.ArgumentParser(prog="python -m carvision.sample", description="Generate a synthetic raw scrape.")
    ap.add_argument("out_dir", type=Path, help="directory to (re)create")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--listings", type=int, default=SampleSpec.n_listings, help="number of listings (ads)")
    args = ap.parse_args(argv)
    summary = generate_sample(args.out_dir, seed=args.seed, spec=SampleSpec(n_listings=args.listings))
    print(json.dumps(summary, indent=2))
