"""Tests for the scenes (carvision.sample.scenes): the car photo and the photos without a car."""

from __future__ import annotations

import itertools

import imagehash
import numpy as np
import pytest
from PIL import Image

from carvision.sample import CLASSES, NON_CAR_KINDS, VIEWPOINTS
from carvision.sample.scenes import car_photo, non_car_photo

SIZE = (160, 120)
PER_KIND = 8


@pytest.fixture(scope="module")
def photos() -> dict[str, list[Image.Image]]:
    """PER_KIND photos of every non-car kind, drawn from one generator."""
    rng = np.random.default_rng(0)
    return {kind: [non_car_photo(rng, SIZE, kind) for _ in range(PER_KIND)] for kind in NON_CAR_KINDS}


def test_the_ten_kinds():
    assert NON_CAR_KINDS == (
        "interior",
        "dashboard",
        "seats",
        "wheel",
        "engine_bay",
        "open_boot",
        "ad",
        "banner",
        "energy_label",
        "document",
    )


@pytest.mark.parametrize("kind", NON_CAR_KINDS)
@pytest.mark.parametrize("size", [SIZE, (96, 128)])
def test_each_kind_renders_an_rgb_photo_of_the_size(kind, size):
    im = non_car_photo(np.random.default_rng(1), size, kind)
    assert (im.mode, im.size) == ("RGB", size)
    a = np.asarray(im, dtype=np.float32)
    assert a.std() > 10, "a blank picture"


@pytest.mark.parametrize("kind", NON_CAR_KINDS)
def test_same_generator_state_gives_the_same_photo(kind):
    a, b = (non_car_photo(np.random.default_rng(5), SIZE, kind) for _ in range(2))
    c = non_car_photo(np.random.default_rng(6), SIZE, kind)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_no_two_non_car_photos_are_near_duplicates(photos):
    hashes = [(kind, imagehash.phash(im)) for kind, ims in photos.items() for im in ims]
    close = [(a, b, ha - hb) for (a, ha), (b, hb) in itertools.combinations(hashes, 2) if ha - hb <= 4]
    assert close == []


def test_non_car_photos_are_not_near_duplicates_of_car_photos(photos):
    rng = np.random.default_rng(2)
    cars = [
        imagehash.phash(car_photo(rng, SIZE, i % len(CLASSES), CLASSES[i % len(CLASSES)].colours[0], v)[0])
        for i, v in enumerate(VIEWPOINTS * 8)
    ]
    hashes = [(kind, imagehash.phash(im)) for kind, ims in photos.items() for im in ims]
    close = [(kind, h - c) for kind, h in hashes for c in cars if h - c <= 4]
    assert close == []


def test_kinds_look_different_from_each_other(photos):
    """A nearest-centroid classifier on 8x6 px thumbnails tells the kinds apart far better than chance (10 %)."""
    thumbs = {k: np.stack([np.asarray(im.resize((8, 6)), np.float32).ravel() for im in v]) for k, v in photos.items()}
    half = PER_KIND // 2
    centroids = np.stack([t[:half].mean(0) for t in thumbs.values()])
    hits = [int(np.argmin(((centroids - x) ** 2).sum(1))) == i for i, t in enumerate(thumbs.values()) for x in t[half:]]
    assert np.mean(hits) >= 0.3


@pytest.mark.parametrize("width", [(0.35, 0.8), (0.15, 0.35)])
def test_car_box_spans_the_asked_width(width):
    rng = np.random.default_rng(3)
    for i in range(20):
        im, (x0, y0, x1, y1) = car_photo(rng, SIZE, i % len(CLASSES), CLASSES[0].colours[0], VIEWPOINTS[i % 5], width)
        assert (im.mode, im.size) == ("RGB", SIZE)
        assert 0 <= x0 < x1 <= SIZE[0] and 0 <= y0 < y1 <= SIZE[1]
        assert width[0] * SIZE[0] - 1 <= x1 - x0 <= width[1] * SIZE[0] + 1
