"""python -m carvision.sample OUT_DIR [--seed N] [--listings N]

Generates a deterministic, synthetic *raw scrape* of car-listing photos, laid out like a marketplace scrape:

    OUT_DIR/listings.csv        ad_id, make, model, year, images   (scraped label, possibly wrong)
    OUT_DIR/images/<ad_id>/NN.jpg
    OUT_DIR/annotations.csv     ad_id, file, viewpoint, x_min, y_min, x_max, y_max   (box in the upright image)
    OUT_DIR/truth.csv           ground truth for tests: kind, true class, label noise, duplicates, EXIF orientation

The scrape carries the usual defects so that later stages (clean, crop, split, train) have real work to do:
long-tailed classes, wrong labels, interior/advertisement photos, broken files, tiny thumbnails, exact and near
duplicates (also re-posted in another ad), EXIF-rotated and grayscale photos. Only numpy + Pillow are used.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import random
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

RGB = tuple[int, int, int]
Pts = tuple[tuple[float, float], ...]
_Mapper = Callable[[Pts], list[tuple[float, float]]]  # design units -> canvas px
_Mirror = Callable[[Pts], tuple[Pts, Pts]]  # a shape and its mirror image about the centre line


class CarClass(NamedTuple):
    """One make/model class: scraped label, body type, model-year range and its body colour family."""

    make: str
    model: str
    body: str
    years: tuple[int, int]  # inclusive model-year range
    colours: tuple[RGB, ...]  # related base colours; each listing picks one and jitters it


# Order = popularity: the first class gets the most listings (Zipf rank 1), the last the fewest.
CLASSES: tuple[CarClass, ...] = (
    CarClass("Toyota", "Corolla", "sedan", (2008, 2024), ((196, 28, 36), (168, 22, 34), (222, 58, 48))),
    CarClass("Honda", "Civic", "hatchback", (2006, 2024), ((32, 72, 182), (52, 102, 204), (24, 50, 142))),
    CarClass("Ford", "F-150", "pickup", (2009, 2024), ((40, 112, 62), (62, 132, 48), (30, 92, 72))),
    CarClass("BMW", "3 Series", "sedan", (2012, 2024), ((36, 36, 42), (62, 62, 68), (22, 26, 38))),
    CarClass("Volkswagen", "Golf", "hatchback", (2009, 2024), ((232, 200, 40), (240, 178, 32), (212, 210, 70))),
    CarClass("Tesla", "Model 3", "fastback", (2017, 2024), ((236, 236, 236), (202, 206, 212), (222, 226, 232))),
    CarClass("Jeep", "Wrangler", "suv", (2007, 2024), ((236, 112, 26), (212, 132, 52), (192, 142, 82))),
    CarClass("Fiat", "500", "city", (2008, 2023), ((122, 212, 200), (152, 222, 212), (92, 190, 192))),
)

VIEWPOINTS: tuple[str, ...] = ("front", "front-side", "side", "back-side", "back")
# Imbalanced like real scrapes (front-side dominates, back is rare) but every viewpoint keeps >= 3 %.
VIEWPOINT_WEIGHTS: tuple[float, ...] = (0.14, 0.52, 0.18, 0.125, 0.035)
KINDS: tuple[str, ...] = ("car", "interior", "ad", "zero_byte", "truncated", "not_image", "tiny")
BROKEN_KINDS: tuple[str, ...] = ("zero_byte", "truncated", "not_image")
DUPLICATE_KINDS: tuple[str, ...] = ("exact", "recompressed", "resized")

JPEG_QUALITY = 90  # normal photos
RECOMPRESS_QUALITY = 35  # near duplicates: visibly blockier, same content
RESIZE_FACTOR = 0.7  # near duplicates: side length ratio
TRUNCATE_FRACTION = 0.4  # truncated files keep the first 40 % of a valid JPEG's bytes
TINY_FRACTION = 0.15  # thumbnails: 15 % of the normal side, i.e. 24x18 px for 160x120 px
GRAYSCALE_RATE = 0.01  # a few car photos are stored as 8-bit grayscale
_AD_TEXTS = ("SALE -50%", "BEST PRICE", "0% FINANCE", "WE BUY CARS", "CALL 555-0199", "NEW ARRIVALS")
_NOT_IMAGE = b"<html>404 not found</html>\n"


@dataclass(frozen=True)
class SampleSpec:
    """Size and defect rates of the synthetic scrape. Rates are fractions of the base (non-duplicate) photos."""

    n_listings: int = 260  # listings (ads)
    photos_per_listing: tuple[int, int] = (3, 6)  # inclusive range of photos per listing
    image_size: tuple[int, int] = (160, 120)  # (width, height) px of a normal photo
    imbalance: float = 12.0  # listings ratio between the largest and the smallest class (>= 10)
    label_noise: float = 0.03  # fraction of listings whose make/model is replaced by another class
    non_car_rate: float = 0.04  # fraction of photos that are interior-like or advertisement-like (no car)
    broken_rate: float = 0.02  # fraction of photos that are broken files
    duplicate_rate: float = 0.04  # fraction of photos that get an exact or near duplicate
    small_rate: float = 0.01  # fraction of photos that are tiny thumbnails (e.g. 24x18 px)
    exif_rotated_rate: float = 0.02  # fraction of car photos stored rotated with an EXIF Orientation tag


# --------------------------------------------------------------------------------------------------------------
# Pure helpers (no rendering)
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


def _jitter(col: RGB, rng: np.random.Generator, amount: int) -> RGB:
    """Colour with a small uniform jitter of +-amount per channel."""
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in col)  # type: ignore[return-value]


def _shade(col: RGB, f: float) -> RGB:
    """Colour scaled by f (f < 1 darker, f > 1 lighter), clipped to 0..255."""
    return tuple(int(min(255, max(0, round(c * f)))) for c in col)  # type: ignore[return-value]


def _chaikin(pts: Pts, n: int) -> Pts:
    """Round a closed polygon's corners with n Chaikin iterations (rounder body for city car / fastback)."""
    out = list(pts)
    for _ in range(n):
        new: list[tuple[float, float]] = []
        for i, (x0, y0) in enumerate(out):
            x1, y1 = out[(i + 1) % len(out)]
            new += [(0.75 * x0 + 0.25 * x1, 0.75 * y0 + 0.25 * y1), (0.25 * x0 + 0.75 * x1, 0.25 * y0 + 0.75 * y1)]
        out = new
    return tuple(out)


# --------------------------------------------------------------------------------------------------------------
# Car designs. Profile units: x along the car (0 = front bumper, 1 = rear), y up from the ground, both divided
# by the car length. Face units: u across (0..1 of width), v up (0..1 of height).
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Design:
    body: Pts  # side silhouette
    smooth: int  # Chaikin iterations on the silhouette
    windows: tuple[Pts, ...]
    wheels: tuple[float, float]  # x of front and rear wheel centre
    wheel_r: float  # wheel radius (length units)
    rim: float  # rim radius / wheel radius (bigger rims on the BMW / Tesla)
    head: Pts  # side-view headlight
    tail: Pts  # side-view tail light
    face_aspect: float  # height / width seen from the front
    roof_w: float  # greenhouse top width / body width seen from the front
    belt: float  # beltline height / total height seen from the front
    headlight: str  # rect | swept | slim | round
    grille: str  # trapezoid | mouth | wide | kidney | bar | none | slots | whiskers
    taillight: str  # rect | bar | tall | round
    extra: str = ""  # pickup | jeep


# One compact block per design reads better than the formatter's one point per line.
# fmt: off
_DESIGNS: tuple[_Design, ...] = (
    _Design(  # Toyota Corolla: three-box sedan
        body=((0, 0.06), (0, 0.16), (0.02, 0.19), (0.3, 0.22), (0.44, 0.31), (0.67, 0.31), (0.82, 0.225),
              (0.985, 0.215), (1, 0.17), (1, 0.06)),
        smooth=2,
        windows=(((0.32, 0.225), (0.445, 0.3), (0.545, 0.3), (0.545, 0.225)),
                 ((0.56, 0.225), (0.56, 0.3), (0.66, 0.3), (0.785, 0.225))),
        wheels=(0.19, 0.8), wheel_r=0.072, rim=0.6,
        head=((0, 0.15), (0.06, 0.16), (0.06, 0.185), (0.01, 0.18)),
        tail=((0.95, 0.17), (1, 0.17), (1, 0.205), (0.96, 0.21)),
        face_aspect=0.8, roof_w=0.62, belt=0.55, headlight="swept", grille="trapezoid",
        taillight="rect",
    ),
    _Design(  # Honda Civic: sportback hatch with a long sloping rear
        body=((0, 0.06), (0, 0.16), (0.03, 0.2), (0.28, 0.225), (0.45, 0.325), (0.66, 0.33), (0.9, 0.26),
              (1, 0.22), (1, 0.06)),
        smooth=2,
        windows=(((0.3, 0.228), (0.455, 0.315), (0.56, 0.315), (0.56, 0.228)),
                 ((0.575, 0.228), (0.575, 0.315), (0.655, 0.318), (0.85, 0.245))),
        wheels=(0.18, 0.81), wheel_r=0.074, rim=0.62,
        head=((0, 0.16), (0.07, 0.175), (0.07, 0.19), (0.02, 0.19)),
        tail=((0.93, 0.205), (1, 0.19), (1, 0.215), (0.92, 0.235)),
        face_aspect=0.76, roof_w=0.62, belt=0.55, headlight="slim", grille="mouth",
        taillight="bar",
    ),
    _Design(  # Ford F-150: tall cab, open bed, big wheels
        body=((0, 0.09), (0, 0.27), (0.02, 0.3), (0.27, 0.31), (0.31, 0.45), (0.55, 0.455), (0.56, 0.31),
              (1, 0.31), (1, 0.09)),
        smooth=0,
        windows=(((0.315, 0.325), (0.335, 0.43), (0.43, 0.435), (0.43, 0.325)),
                 ((0.445, 0.325), (0.445, 0.435), (0.535, 0.435), (0.535, 0.325))),
        wheels=(0.16, 0.77), wheel_r=0.1, rim=0.55,
        head=((0, 0.24), (0.035, 0.24), (0.035, 0.28), (0, 0.28)),
        tail=((0.98, 0.2), (1, 0.2), (1, 0.29), (0.98, 0.29)),
        face_aspect=0.96, roof_w=0.78, belt=0.6, headlight="rect", grille="wide",
        taillight="tall", extra="pickup",
    ),
    _Design(  # BMW 3 Series: long hood, low roof, cabin set back, big rims
        body=((0, 0.06), (0, 0.155), (0.02, 0.185), (0.36, 0.215), (0.49, 0.3), (0.69, 0.3), (0.84, 0.215),
              (0.99, 0.205), (1, 0.16), (1, 0.06)),
        smooth=1,
        windows=(((0.38, 0.22), (0.495, 0.29), (0.59, 0.29), (0.59, 0.22)),
                 ((0.605, 0.22), (0.605, 0.29), (0.685, 0.29), (0.8, 0.22))),
        wheels=(0.17, 0.81), wheel_r=0.078, rim=0.72,
        head=((0, 0.145), (0.07, 0.16), (0.07, 0.175), (0.01, 0.175)),
        tail=((0.94, 0.165), (1, 0.165), (1, 0.195), (0.95, 0.2)),
        face_aspect=0.74, roof_w=0.6, belt=0.55, headlight="swept", grille="kidney",
        taillight="rect",
    ),
    _Design(  # Volkswagen Golf: short two-box hatch, near-vertical rear, thick C-pillar
        body=((0, 0.07), (0, 0.18), (0.03, 0.22), (0.25, 0.25), (0.42, 0.37), (0.86, 0.37), (0.97, 0.33),
              (1, 0.24), (1, 0.07)),
        smooth=1,
        windows=(((0.27, 0.255), (0.43, 0.355), (0.6, 0.355), (0.6, 0.255)),
                 ((0.615, 0.255), (0.615, 0.355), (0.78, 0.355), (0.86, 0.26))),
        wheels=(0.17, 0.83), wheel_r=0.08, rim=0.6,
        head=((0, 0.18), (0.07, 0.19), (0.07, 0.21), (0.01, 0.21)),
        tail=((0.96, 0.22), (1, 0.22), (1, 0.26), (0.965, 0.265)),
        face_aspect=0.82, roof_w=0.68, belt=0.55, headlight="rect", grille="bar",
        taillight="rect",
    ),
    _Design(  # Tesla Model 3: smooth fastback, one glass canopy, no grille
        body=((0, 0.06), (0, 0.14), (0.04, 0.18), (0.26, 0.215), (0.46, 0.32), (0.6, 0.325), (0.8, 0.27),
              (0.97, 0.22), (1, 0.19), (1, 0.06)),
        smooth=3,
        windows=(((0.29, 0.22), (0.47, 0.31), (0.6, 0.312), (0.78, 0.255), (0.75, 0.222)),),
        wheels=(0.18, 0.8), wheel_r=0.075, rim=0.74,
        head=((0.005, 0.15), (0.08, 0.17), (0.075, 0.18), (0.02, 0.175)),
        tail=((0.93, 0.2), (0.995, 0.19), (0.99, 0.21), (0.93, 0.225)),
        face_aspect=0.74, roof_w=0.58, belt=0.55, headlight="slim", grille="none",
        taillight="bar",
    ),
    _Design(  # Jeep Wrangler: box, flat windscreen, black flares, spare wheel on the tailgate
        body=((0, 0.1), (0, 0.3), (0.2, 0.31), (0.24, 0.5), (0.95, 0.5), (0.97, 0.49), (0.97, 0.1)),
        smooth=0,
        windows=(((0.255, 0.33), (0.28, 0.48), (0.45, 0.48), (0.45, 0.33)),
                 ((0.47, 0.33), (0.47, 0.48), (0.68, 0.48), (0.68, 0.33)),
                 ((0.7, 0.33), (0.7, 0.48), (0.93, 0.48), (0.93, 0.33))),
        wheels=(0.17, 0.78), wheel_r=0.11, rim=0.5,
        head=((0, 0.24), (0.02, 0.24), (0.02, 0.29), (0, 0.29)),
        tail=((0.955, 0.2), (0.97, 0.2), (0.97, 0.26), (0.955, 0.26)),
        face_aspect=1, roof_w=0.86, belt=0.55, headlight="round", grille="slots",
        taillight="tall", extra="jeep",
    ),
    _Design(  # Fiat 500: short, tall and round
        body=((0, 0.08), (0, 0.24), (0.06, 0.29), (0.25, 0.32), (0.42, 0.52), (0.8, 0.52), (0.95, 0.42),
              (1, 0.28), (1, 0.08)),
        smooth=3,
        windows=(((0.28, 0.33), (0.43, 0.5), (0.62, 0.5), (0.62, 0.33)),
                 ((0.64, 0.33), (0.64, 0.5), (0.78, 0.5), (0.9, 0.38), (0.9, 0.33))),
        wheels=(0.17, 0.83), wheel_r=0.1, rim=0.55,
        head=((0, 0.22), (0.04, 0.22), (0.04, 0.27), (0, 0.27)),
        tail=((0.96, 0.26), (1, 0.26), (1, 0.32), (0.96, 0.32)),
        face_aspect=0.93, roof_w=0.6, belt=0.5, headlight="round", grille="whiskers",
        taillight="round",
    ),
)
# fmt: on

_GLASS: RGB = (44, 54, 70)
_GLASS_HI: RGB = (112, 126, 142)
_TYRE: RGB = (24, 24, 27)
_TRIM: RGB = (30, 30, 33)
_CHROME: RGB = (186, 188, 192)
_HEAD: RGB = (244, 240, 206)
_TAIL: RGB = (204, 24, 30)
_THREE_QUARTER_X = 0.62  # horizontal compression of the profile in a 3/4 view
_THREE_QUARTER_FACE = 0.8  # foreshortening of the attached face in a 3/4 view


def _roof(des: _Design) -> float:
    """Highest point of the silhouette (= car height / length)."""
    return max(v for _, v in des.body)


def _draw_profile(d: ImageDraw.ImageDraw, des: _Design, col: RGB, ox: float, gy: float, L: float, cx: float) -> None:
    """Side view, front at the left; x compressed by cx for a 3/4 view. ox, gy, L are px on the canvas."""

    def P(pts: Pts) -> list[tuple[float, float]]:
        return [(ox + u * L * cx, gy - v * L) for u, v in pts]

    lw = max(1, round(L * 0.006))
    dark = _shade(col, 0.55)
    if des.extra == "jeep":  # spare wheel hangs behind the tailgate
        sx, sy, sr = 1.0, 0.30, 0.10
        d.ellipse(
            (ox + (sx - sr * 0.5) * L * cx, gy - (sy + sr) * L, ox + (sx + sr * 0.5) * L * cx, gy - (sy - sr) * L),
            fill=_TYRE,
        )
    d.polygon(P(_chaikin(des.body, des.smooth)), fill=col, outline=dark, width=lw)
    # Darker rocker panel: gives the body some volume and a class-independent lower edge.
    y0 = min(v for _, v in des.body)
    d.polygon(P(((0.02, y0), (0.02, y0 + 0.025), (0.98, y0 + 0.025), (0.98, y0))), fill=_shade(col, 0.8))
    win_bottom = min(v for w in des.windows for _, v in w)
    d.line(P(((0.03, win_bottom - 0.02), (0.97, win_bottom - 0.02))), fill=_shade(col, 0.75), width=lw)
    for w in des.windows:
        d.polygon(P(_chaikin(w, min(des.smooth, 1))), fill=_GLASS, outline=_TRIM, width=lw)
        (u0, v0), (u1, v1) = w[0], w[1]
        d.line(P(((u0 + 0.02, v0 + 0.01), (u1 + 0.02, v1 - 0.01))), fill=_GLASS_HI, width=lw)  # reflection
    for w in des.windows[:2]:  # door seam and handle below each side window
        u = w[-1][0]
        d.line(P(((u, win_bottom), (u, y0 + 0.03))), fill=dark, width=lw)
        d.rectangle(_box(P(((u - 0.05, win_bottom - 0.035), (u - 0.02, win_bottom - 0.045)))), fill=dark)
    if des.extra == "pickup":  # bed rail and tailgate seam
        d.line(P(((0.57, 0.30), (0.99, 0.30))), fill=_TRIM, width=2 * lw)
        d.line(P(((0.56, 0.31), (0.56, 0.12))), fill=dark, width=lw)
    mirror_u = des.windows[0][0][0]
    d.polygon(
        P(
            (
                (mirror_u, win_bottom),
                (mirror_u + 0.04, win_bottom + 0.005),
                (mirror_u + 0.04, win_bottom + 0.03),
                (mirror_u + 0.01, win_bottom + 0.03),
            )
        ),
        fill=_shade(col, 0.9),
        outline=dark,
    )
    d.polygon(P(des.head), fill=_HEAD, outline=_TRIM)
    d.polygon(P(des.tail), fill=_TAIL, outline=_TRIM)
    r = des.wheel_r
    for wx in des.wheels:
        ar = r * 1.14
        arch_col = _TRIM if des.extra == "jeep" else _shade(col, 0.3)  # Jeep: black fender flares
        if des.extra == "jeep":
            d.pieslice(_box(P(((wx - ar * 1.2, r + ar * 1.2), (wx + ar * 1.2, r - ar * 1.2)))), 180, 360, fill=_TRIM)
        d.ellipse(_box(P(((wx - ar, r + ar), (wx + ar, r - ar)))), fill=arch_col)
        d.ellipse(_box(P(((wx - r, 2 * r), (wx + r, 0)))), fill=_TYRE)
        rr = r * des.rim
        d.ellipse(_box(P(((wx - rr, r + rr), (wx + rr, r - rr)))), fill=_CHROME, outline=(120, 122, 126))
        for k in range(5):  # spokes
            a = 2 * math.pi * k / 5
            d.line(
                P(((wx, r), (wx + rr * 0.9 * math.cos(a), r + rr * 0.9 * math.sin(a)))), fill=(96, 98, 102), width=lw
            )
        hr = rr * 0.25
        d.ellipse(_box(P(((wx - hr, r + hr), (wx + hr, r - hr)))), fill=(70, 72, 76))


def _box(pts: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of two or more points, ordered as ImageDraw wants."""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


def _draw_face(
    d: ImageDraw.ImageDraw, des: _Design, col: RGB, ox: float, gy: float, W: float, H: float, front: bool
) -> None:
    """Front (front=True) or rear face, symmetric, in a W x H px rectangle whose bottom-left is (ox, gy)."""

    def P(pts: Pts) -> list[tuple[float, float]]:
        return [(ox + u * W, gy - v * H) for u, v in pts]

    def sym(pts: Pts) -> tuple[Pts, Pts]:  # the shape and its mirror image about u = 0.5
        return pts, tuple((1 - u, v) for u, v in pts)

    lw = max(1, round(W * 0.008))
    dark = _shade(col, 0.55)
    b, rw = des.belt, des.roof_w
    for t in sym(((0.07, 0.0), (0.22, 0.0), (0.22, 0.2), (0.07, 0.2))):  # tyres
        d.rectangle(_box(P(t)), fill=_TYRE)
    body = ((0.03, 0.08), (0.97, 0.08), (0.98, b - 0.05), (0.94, b), (0.06, b), (0.02, b - 0.05))
    d.polygon(P(body), fill=col, outline=dark, width=lw)
    green = (
        (0.09, b),
        (0.91, b),
        (0.5 + rw / 2, 0.97),
        (0.5 + rw / 2 - 0.03, 1.0),
        (0.5 - rw / 2 + 0.03, 1.0),
        (0.5 - rw / 2, 0.97),
    )
    d.polygon(P(green), fill=col, outline=dark, width=lw)
    glass = ((0.14, b + 0.03), (0.86, b + 0.03), (0.5 + rw / 2 - 0.05, 0.93), (0.5 - rw / 2 + 0.05, 0.93))
    d.polygon(P(glass), fill=_GLASS, outline=_TRIM, width=lw)
    d.line(P(((0.5 - rw / 2 + 0.08, 0.9), (0.3, b + 0.06))), fill=_GLASS_HI, width=lw)  # reflection
    d.rectangle(_box(P(((0.04, 0.08), (0.96, 0.15)))), fill=_shade(col, 0.7) if front else _TRIM)  # bumper
    if front:
        for m in sym(((0.0, b), (0.08, b), (0.08, b + 0.07), (0.01, b + 0.07))):  # mirrors
            d.polygon(P(m), fill=col, outline=dark)
        _front_details(d, des, P, sym, b, lw)
    else:
        _rear_details(d, des, P, sym, b, lw)


def _front_details(d: ImageDraw.ImageDraw, des: _Design, P: _Mapper, sym: _Mirror, b: float, lw: int) -> None:
    """Headlights and grille, the most class-specific part of a front view."""
    top, bot = b - 0.06, b - 0.18
    for h in sym(((0.07, bot), (0.28, bot + 0.02), (0.28, top), (0.07, top))):
        if des.headlight == "round":
            cx, cy = (h[0][0] + h[1][0]) / 2, (top + bot) / 2
            d.ellipse(_box(P(((cx - 0.08, cy - 0.07), (cx + 0.08, cy + 0.07)))), fill=_HEAD, outline=_CHROME, width=lw)
        elif des.headlight == "slim":
            d.polygon(
                P(((h[0][0], top - 0.02), (h[1][0], top - 0.04), (h[1][0], top), (h[0][0], top + 0.01))),
                fill=_HEAD,
                outline=_TRIM,
            )
        elif des.headlight == "swept":
            d.polygon(
                P(((h[0][0], bot + 0.03), (h[1][0], top - 0.03), (h[1][0], top), (h[0][0], top))),
                fill=_HEAD,
                outline=_TRIM,
            )
        else:
            d.polygon(P(h), fill=_HEAD, outline=_TRIM, width=lw)
    g = des.grille
    if g == "trapezoid":  # Toyota: big lower mouth, thin upper grille with a badge
        d.polygon(P(((0.3, 0.17), (0.7, 0.17), (0.64, 0.3), (0.36, 0.3))), fill=_TRIM)
        d.rectangle(_box(P(((0.36, top - 0.06), (0.64, top - 0.02)))), fill=_TRIM)
        d.ellipse(_box(P(((0.47, top - 0.07), (0.53, top - 0.01)))), fill=_CHROME)
    elif g == "mouth":  # Civic: wide hexagonal lower grille
        d.polygon(
            P(((0.26, 0.2), (0.32, 0.16), (0.68, 0.16), (0.74, 0.2), (0.68, top - 0.02), (0.32, top - 0.02))),
            fill=_TRIM,
        )
    elif g == "wide":  # F-150: huge grille with chrome bars between the lights
        d.rectangle(_box(P(((0.29, 0.18), (0.71, top + 0.02)))), fill=_TRIM, outline=_CHROME, width=2 * lw)
        for k in range(3):
            v = 0.18 + (top - 0.16) * (k + 1) / 4
            d.line(P(((0.29, v), (0.71, v))), fill=_CHROME, width=2 * lw)
    elif g == "kidney":  # BMW: twin kidneys
        for u in (0.385, 0.51):
            d.rounded_rectangle(
                _box(P(((u, bot - 0.02), (u + 0.105, top + 0.02)))),
                radius=lw * 3,
                fill=_TRIM,
                outline=_CHROME,
                width=lw,
            )
        d.rectangle(_box(P(((0.3, 0.17), (0.7, 0.21)))), fill=_TRIM)
    elif g == "bar":  # Golf: thin dark band joining the lights, lower intake
        d.rectangle(_box(P(((0.28, top - 0.05), (0.72, top - 0.01)))), fill=_TRIM)
        d.rectangle(_box(P(((0.3, 0.17), (0.7, 0.24)))), fill=_TRIM)
    elif g == "none":  # Tesla: smooth nose, only a slit intake
        d.rectangle(_box(P(((0.36, 0.17), (0.64, 0.2)))), fill=_TRIM)
    elif g == "slots":  # Jeep: seven vertical slots between round lights
        for k in range(7):
            u = 0.3 + k * 0.06
            d.rectangle(_box(P(((u, bot), (u + 0.03, top + 0.05)))), fill=_TRIM)
    elif g == "whiskers":  # Fiat: chrome whiskers, round DRLs above the lights, small intake
        d.line(P(((0.36, top), (0.5, top - 0.03), (0.64, top))), fill=_CHROME, width=2 * lw)
        for u in (0.175, 0.825):
            d.ellipse(_box(P(((u - 0.035, top + 0.05), (u + 0.035, top + 0.11)))), fill=_HEAD, outline=_TRIM)
        d.rounded_rectangle(_box(P(((0.38, 0.17), (0.62, 0.25)))), radius=lw * 2, fill=_TRIM)
    d.rectangle(_box(P(((0.41, 0.1), (0.59, 0.15)))), fill=(236, 236, 232), outline=_TRIM)  # plate


def _rear_details(d: ImageDraw.ImageDraw, des: _Design, P: _Mapper, sym: _Mirror, b: float, lw: int) -> None:
    """Tail lights, plate and class-specific tailgate details of a rear view."""
    top, bot = b - 0.03, b - 0.15
    for t in sym(((0.05, bot), (0.25, bot), (0.25, top), (0.05, top))):
        if des.taillight == "round":
            cx, cy = (t[0][0] + t[1][0]) / 2 - 0.01, (top + bot) / 2
            d.ellipse(_box(P(((cx - 0.07, cy - 0.06), (cx + 0.07, cy + 0.06)))), fill=_TAIL, outline=_TRIM, width=lw)
        elif des.taillight == "tall":
            d.rectangle(
                _box(P(((t[0][0], bot - 0.12), (t[0][0] + (0.08 if t[0][0] < 0.5 else -0.08), top)))),
                fill=_TAIL,
                outline=_TRIM,
                width=lw,
            )
        elif des.taillight == "bar":
            d.polygon(
                P(((t[0][0], top - 0.06), (t[1][0], top - 0.04), (t[1][0], top), (t[0][0], top))),
                fill=_TAIL,
                outline=_TRIM,
            )
        else:
            d.polygon(P(t), fill=_TAIL, outline=_TRIM, width=lw)
    if des.taillight == "bar":  # light bar across the whole tail
        d.rectangle(_box(P(((0.25, top - 0.03), (0.75, top - 0.01)))), fill=_shade(_TAIL, 0.7))
    d.rectangle(_box(P(((0.38, 0.2), (0.62, 0.29)))), fill=(236, 236, 232), outline=_TRIM)  # plate
    d.line(P(((0.42, 0.245), (0.58, 0.245))), fill=(60, 60, 60), width=lw)
    if des.extra == "pickup":  # tailgate panel
        d.rectangle(_box(P(((0.08, 0.17), (0.92, b - 0.01)))), outline=_TRIM, width=lw)
    if des.extra == "jeep":  # spare wheel on the tailgate
        d.ellipse(_box(P(((0.3, 0.22), (0.7, 0.62)))), fill=_TYRE)
        d.ellipse(_box(P(((0.4, 0.32), (0.6, 0.52)))), fill=_CHROME)


def _render_car(rng: np.random.Generator, cls: int, col: RGB, viewpoint: str, nominal_w: float) -> Image.Image:
    """RGBA car drawing cropped to its visible pixels, drawn 2-5x larger than shown so the downscale anti-aliases."""
    des = _DESIGNS[cls]
    hp = _roof(des)
    cx, s = _THREE_QUARTER_X, _THREE_QUARTER_FACE
    face_w_per_L = hp / des.face_aspect  # face width in length units when the face is as tall as the roof
    factor = {"side": 1.05, "front": face_w_per_L, "back": face_w_per_L}.get(viewpoint, cx + s * face_w_per_L)
    L = nominal_w / factor
    cw, ch = math.ceil(L * (factor + 0.2)), math.ceil(L * (hp + 0.1))
    im = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    ox, gy = 0.05 * L, ch - 0.05 * L
    H = hp * L
    if viewpoint == "side":
        _draw_profile(d, des, col, ox, gy, L, 1.0)
    elif viewpoint in ("front", "back"):
        _draw_face(d, des, col, ox, gy, H / des.face_aspect, H, front=viewpoint == "front")
    elif viewpoint == "front-side":  # face at the left, compressed profile going back to the right
        fw = s * H / des.face_aspect
        _draw_profile(d, des, col, ox + 0.85 * fw, gy, L, cx)
        _draw_face(d, des, col, ox, gy, fw, H, front=True)
    else:  # back-side: compressed profile, rear face attached at the right
        fw = s * H / des.face_aspect
        _draw_profile(d, des, col, ox, gy, L, cx)
        _draw_face(d, des, col, ox + L * cx - 0.15 * fw, gy, fw, H, front=False)
    im = im.crop(im.getchannel("A").getbbox())
    if rng.random() < 0.5:  # the car may face either way
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return im


# --------------------------------------------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------------------------------------------


def _noise(rng: np.random.Generator, im: Image.Image, sigma: float) -> Image.Image:
    """Add Gaussian sensor noise (sigma in 8-bit grey levels)."""
    a = np.asarray(im, dtype=np.float32)
    a = a + rng.normal(0.0, sigma, size=a.shape).astype(np.float32)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _gradient(top: RGB, bottom: RGB, h: int, w: int) -> np.ndarray:
    """h x w x 3 float array fading vertically from `top` to `bottom`."""
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    g = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(g, (h, w, 3))


def _background(rng: np.random.Generator, size: tuple[int, int]) -> tuple[Image.Image, int]:
    """Street scene (sky, buildings, road, a few random shapes); returns the image and the horizon row (px)."""
    w, h = size
    horizon = int(h * rng.uniform(0.35, 0.6))
    sky_top = _jitter(((104, 150, 214), (176, 182, 190), (150, 170, 196))[rng.integers(3)], rng, 14)
    ground_top = _jitter(((116, 116, 120), (136, 126, 110), (100, 102, 108))[rng.integers(3)], rng, 12)
    a = np.empty((h, w, 3), np.float32)
    a[:horizon] = _gradient(sky_top, _shade(sky_top, 1.2), horizon, w)
    a[horizon:] = _gradient(ground_top, _shade(ground_top, 0.7), h - horizon, w)
    im = Image.fromarray(a.astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(rng.integers(0, 5)):  # buildings standing on the horizon
        bx, bw, bh = rng.uniform(-0.1, 1.0) * w, rng.uniform(0.1, 0.35) * w, rng.uniform(0.1, 0.3) * h
        d.rectangle((bx, horizon - bh, bx + bw, horizon), fill=_jitter((150, 140, 128), rng, 30))
    if rng.random() < 0.5:  # dashed road marking
        y = horizon + (h - horizon) * rng.uniform(0.3, 0.9)
        for x in range(-int(rng.integers(0, 20)), w, 24):
            d.rectangle((x, y, x + 12, y + 2), fill=(220, 220, 210))
    for _ in range(rng.integers(0, 4)):  # random clutter (signs, bins, bushes), muted colours
        x, y, r = rng.uniform(0, w), rng.uniform(0.2, 1.0) * h, rng.uniform(0.03, 0.1) * w
        fill = _jitter((120, 118, 110), rng, 40)
        (d.ellipse if rng.random() < 0.5 else d.rectangle)((x - r, y - r, x + r, y + r), fill=fill)
    return im, horizon


def _car_photo(
    rng: np.random.Generator, size: tuple[int, int], cls: int, col: RGB, viewpoint: str
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """A car on a street background; returns the RGB photo and the car box (x0, y0, x1, y1) in px."""
    w, h = size
    bg, _ = _background(rng, size)
    car = _render_car(rng, cls, col, viewpoint, nominal_w=1.6 * w)
    aspect = car.height / car.width
    # Box width 35-80 % of the photo, but a tall frontal view must still fit in 90 % of the height.
    hi = min(0.80, 0.9 * h / (aspect * w))
    frac = rng.uniform(min(0.35, hi), hi)
    tw = max(4, round(frac * w))
    th = max(3, min(h - 2, round(tw * aspect)))
    car = car.resize((tw, th), Image.Resampling.LANCZOS)
    px = int(rng.integers(0, w - tw + 1))
    bottom = int(rng.integers(min(max(th + 1, int(0.55 * h)), h - 1), h))  # wheels on the road, not the sky
    py = bottom - th
    shadow = Image.new("L", size, 0)  # soft ground shadow so the car does not float
    ImageDraw.Draw(shadow).ellipse((px + 0.02 * tw, bottom - 0.07 * th, px + 0.98 * tw, bottom + 0.05 * th), fill=110)
    bg = Image.composite(Image.new("RGB", size, (0, 0, 0)), bg, shadow)
    bg.paste(car, (px, py), car)
    return _noise(rng, bg, float(rng.uniform(2, 7))), (float(px), float(py), float(px + tw), float(py + th))


def _interior_photo(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Cabin shot: windscreen, dashboard arc, steering wheel, console, seats. No car outline."""
    w, h = size
    base = _jitter(((52, 48, 46), (176, 164, 142), (84, 80, 78))[rng.integers(3)], rng, 12)
    im = Image.new("RGB", size, base)
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, w, 0.35 * h), fill=_jitter((170, 190, 210), rng, 20))  # windscreen
    dash = _shade(base, 0.5)
    d.chord((-0.3 * w, 0.25 * h, 1.3 * w, 1.1 * h), 180, 360, fill=dash)  # dashboard arc
    cx, cy, r = rng.uniform(0.3, 0.7) * w, rng.uniform(0.55, 0.7) * h, rng.uniform(0.18, 0.26) * h
    lw = max(2, round(r * 0.18))
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(20, 20, 22), width=lw)  # steering wheel rim
    for a in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6):
        d.line((cx, cy, cx + r * math.cos(a), cy + r * math.sin(a)), fill=(20, 20, 22), width=lw)
    d.ellipse((cx - r * 0.25, cy - r * 0.25, cx + r * 0.25, cy + r * 0.25), fill=(36, 36, 40))
    d.rectangle((0.45 * w, 0.4 * h, 0.58 * w, 0.5 * h), fill=(20, 30, 60))  # infotainment screen
    seat = _shade(base, 0.8)
    for sx in (0.02, 0.72):  # seat backs at the bottom corners
        d.rounded_rectangle((sx * w, 0.72 * h, (sx + 0.26) * w, 1.2 * h), radius=0.06 * w, fill=seat)
    return _noise(rng, im, float(rng.uniform(2, 6)))


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled default font (no system font, so rendering is the same on every machine)."""
    return ImageFont.load_default(size=size)


def _ad_photo(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Dealer advertisement: flat colour banner, big text, colour blocks."""
    w, h = size
    bg = _jitter(
        ((220, 30, 40), (250, 200, 0), (20, 60, 160), (20, 140, 60), (250, 250, 250))[rng.integers(5)], rng, 10
    )
    im = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(im)
    ink = (255, 255, 255) if sum(bg) < 450 else (10, 10, 10)
    for _ in range(rng.integers(1, 4)):  # decorative blocks and stripes
        x, y = rng.uniform(0, 0.8) * w, rng.uniform(0, 0.8) * h
        d.rectangle((x, y, x + rng.uniform(0.1, 0.5) * w, y + rng.uniform(0.05, 0.2) * h), fill=_jitter(ink, rng, 40))
    text = _AD_TEXTS[rng.integers(len(_AD_TEXTS))]
    font = _font(max(8, round(h * rng.uniform(0.14, 0.2))))
    x0, y0, x1, y1 = d.textbbox((0, 0), text, font=font)
    tx, ty = max(0.0, (w - (x1 - x0)) / 2), rng.uniform(0.25, 0.6) * h
    d.rectangle((tx - 3, ty - 3, tx + (x1 - x0) + 3, ty + (y1 - y0) + y0 + 3), fill=_shade(bg, 0.6))
    d.text((tx - x0, ty), text, font=font, fill=ink)
    d.text((4, h - 14), "www.dealer.example", font=_font(10), fill=ink)
    return im


def _jpeg(im: Image.Image, quality: int = JPEG_QUALITY, exif: bytes | None = None) -> bytes:
    """Encode to JPEG bytes (baseline, no optimisation, so the bytes are reproducible)."""
    buf = io.BytesIO()
    kwargs = {"exif": exif} if exif else {}
    im.save(buf, format="JPEG", quality=quality, **kwargs)
    return buf.getvalue()


# exif_transpose applies ROTATE_270 for 6, ROTATE_90 for 8, ROTATE_180 for 3: store the inverse rotation.
_STORE_ROTATION = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}


def _exif_bytes(orientation: int) -> bytes:
    """EXIF block holding only the Orientation tag (0x0112)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


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
        colour = _jitter(CLASSES[c].colours[rng.integers(len(CLASSES[c].colours))], rng, 10)
        listings.append(_Listing(f"ad{i:06d}", c, scraped, int(rng.integers(y0, y1 + 1)), colour, []))
        for k in range(int(rng.integers(lo, hi + 1))):
            listings[-1].photos.append(_Photo(listings[-1].ad_id, f"{k:02d}.jpg", "car", c))
    base = [p for lst in listings for p in lst.photos]
    n = len(base)
    n_non_car = _count(spec.non_car_rate, n, 2)
    kinds = (
        ["interior"] * ((n_non_car + 1) // 2)
        + ["ad"] * (n_non_car // 2)
        + [BROKEN_KINDS[k % 3] for k in range(_count(spec.broken_rate, n, 3))]
        + ["tiny"] * _count(spec.small_rate, n, 1)
    )
    if len(kinds) > n:
        raise ValueError("defect rates add up to more than the number of photos")
    kinds += ["car"] * (n - len(kinds))
    for p, k in zip(base, (kinds[j] for j in rng.permutation(n)), strict=True):
        p.kind = k
        if k in ("car", "tiny", "truncated"):  # rendered from a car drawing
            p.viewpoint = VIEWPOINTS[int(rng.choice(len(VIEWPOINTS), p=VIEWPOINT_WEIGHTS))]
    cars = [p for p in base if p.kind == "car"]
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
    elif p.kind == "interior":
        p.data = _jpeg(_interior_photo(rng, size))
    elif p.kind == "ad":
        p.data = _jpeg(_ad_photo(rng, size))
    else:
        im, box = _car_photo(rng, size, p.cls, lst.colour, p.viewpoint)
        if p.kind == "tiny":  # a listing thumbnail scraped instead of the full photo
            tiny = (max(8, round(w * TINY_FRACTION)), max(6, round(h * TINY_FRACTION)))
            p.data = _jpeg(im.resize(tiny, Image.Resampling.LANCZOS))
        elif p.kind == "truncated":  # download cut off mid-file
            data = _jpeg(im)
            p.data = data[: int(len(data) * TRUNCATE_FRACTION)]
        else:
            if p.grayscale:
                im = im.convert("L")
            p.box = box
            if p.exif_orientation != 1:  # pixels stored as the camera held it; the tag says how to turn them
                p.data = _jpeg(im.transpose(_STORE_ROTATION[p.exif_orientation]), exif=_exif_bytes(p.exif_orientation))
            else:
                p.data = _jpeg(im)
            if keep:
                p.upright = im


def _render_duplicate(dup: _Photo, orig: _Photo) -> None:
    """Exact byte copy, JPEG recompression at low quality, or a ~70 % downscale of the original."""
    assert orig.box is not None and orig.upright is not None
    if dup.duplicate_kind == "exact":
        dup.data, dup.box = orig.data, orig.box
    elif dup.duplicate_kind == "recompressed":
        dup.data, dup.box = _jpeg(orig.upright, quality=RECOMPRESS_QUALITY), orig.box
    else:
        w, h = orig.upright.size
        nw, nh = round(w * RESIZE_FACTOR), round(h * RESIZE_FACTOR)
        dup.data = _jpeg(orig.upright.resize((nw, nh), Image.Resampling.LANCZOS))
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
    out_dir = Path(out_dir)
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

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        _write(tmp, listings)
        if out_dir.exists():  # a directory cannot be os.replace'd onto a non-empty one: move the old one aside
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)

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
    ap = argparse.ArgumentParser(description="Generate a synthetic raw scrape of car-listing photos.")
    ap.add_argument("out_dir", type=Path, help="directory to (re)create")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--listings", type=int, default=SampleSpec.n_listings, help="number of listings (ads)")
    args = ap.parse_args(argv)
    summary = generate_sample(args.out_dir, seed=args.seed, spec=SampleSpec(n_listings=args.listings))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
