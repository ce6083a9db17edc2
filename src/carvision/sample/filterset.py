"""The filter set: photos sorted by hand into car / no_car, to train a classifier that keeps listing photos of cars.

    OUT_DIR/car/NNNN.jpg        a car in a street, at any viewpoint, large or small, anywhere in the frame
    OUT_DIR/no_car/NNNN.jpg     the photos without a car that listings hold, every kind in equal shares
    OUT_DIR/truth.csv           label, file (relative to OUT_DIR), kind (car or the non-car kind)

Its photos come from a random stream of their own (see FILTER_SET_SALT), so that none of them repeats a photo
of the scrape generated with the same seed: a classifier trained on it can be evaluated on the scrape.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from carvision.atomic import atomic_dir
from carvision.sample.catalogue import CLASSES, VIEWPOINTS
from carvision.sample.drawing import jitter
from carvision.sample.scenes import CAR_WIDTH, NON_CAR_KINDS, car_photo, jpeg, non_car_photo
from carvision.sample.scrape import class_listing_counts

# Mixed into the seed: SeedSequence([seed, FILTER_SET_SALT]) is a stream independent of the scrape's
# SeedSequence(seed) for every seed. Changing it changes every filter-set photo.
FILTER_SET_SALT = 0x5EED_F117
SMALL_CAR_RATE = 0.3  # fraction of car photos with a small, far-away car ...
SMALL_CAR_WIDTH = (0.15, 0.35)  # ... whose box spans 15-35 % of the photo width (listing photos: 35-80 %)
LABELS = ("car", "no_car")
CLASS_SHARES = np.array(class_listing_counts(1000)) / 1000  # the scrape's long tail, as probabilities


def generate_filter_set(
    out_dir: str | Path,
    seed: int = 0,
    n_car: int = 300,
    n_no_car: int = 300,
    image_size: tuple[int, int] = (160, 120),
) -> dict:
    """Writes the filter set under out_dir and returns a summary dict (counts by label and by kind, out_dir).

    Like generate_sample, it is written to a hidden sibling folder that replaces out_dir once complete, and the
    same seed gives byte-identical files.
    """
    rng = np.random.default_rng([seed, FILTER_SET_SALT])
    rows: list[tuple[str, str, str]] = []  # label, file, kind
    with atomic_dir(out_dir) as tmp:
        for label in LABELS:
            (tmp / label).mkdir()
        for i in range(n_car):
            # Classes as often as in the scrape: a set labelled by hand is drawn from the marketplace's own photos,
            # and a filter that rarely saw the popular red Corolla learns "big red blob = advert".
            cls = int(rng.choice(len(CLASSES), p=CLASS_SHARES))
            colour = jitter(CLASSES[cls].colours[int(rng.integers(len(CLASSES[cls].colours)))], rng, 10)
            width = SMALL_CAR_WIDTH if rng.random() < SMALL_CAR_RATE else CAR_WIDTH
            im, _ = car_photo(rng, image_size, cls, colour, VIEWPOINTS[int(rng.integers(len(VIEWPOINTS)))], width)
            rows.append(("car", f"car/{i:04d}.jpg", "car"))
            (tmp / rows[-1][1]).write_bytes(jpeg(im))
        # Kinds in turn over a shuffled order: equal shares (+-1), and file names that do not give the kind away.
        for i, j in enumerate(rng.permutation(n_no_car)):
            kind = NON_CAR_KINDS[j % len(NON_CAR_KINDS)]
            rows.append(("no_car", f"no_car/{i:04d}.jpg", kind))
            (tmp / rows[-1][1]).write_bytes(jpeg(non_car_photo(rng, image_size, kind)))
        with open(tmp / "truth.csv", "w", newline="", encoding="utf-8") as f:
            wr = csv.writer(f, lineterminator="\n")
            wr.writerow(["label", "file", "kind"])
            wr.writerows(rows)

    kinds = Counter(kind for _, _, kind in rows)
    return {
        "out_dir": str(out_dir),
        "seed": seed,
        "n_images": len(rows),
        "by_label": {label: sum(r[0] == label for r in rows) for label in LABELS},
        "by_kind": {k: kinds[k] for k in ("car", *NON_CAR_KINDS)},
    }
