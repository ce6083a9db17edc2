"""python -m carvision.sample OUT_DIR [--seed N] [--listings N]

Generates deterministic, synthetic data with numpy + Pillow only:

- a *raw scrape* of car-listing photos with the defects of a real one (generate_sample, see scrape.py), which
  the default pipeline runs on;
- a hand-labelled-like *filter set* of car / no-car photos (generate_filter_set, see filterset.py), to train
  a classifier that keeps the photos showing a car.

Modules: catalogue (classes, viewpoints, designs), drawing (cars), scenes (car photo and photos without a car),
scrape, filterset.
"""

from __future__ import annotations

from carvision.sample.catalogue import CLASSES, VIEWPOINTS
from carvision.sample.filterset import generate_filter_set
from carvision.sample.scenes import NON_CAR_KINDS
from carvision.sample.scrape import KINDS, SampleSpec, class_listing_counts, generate_sample, main

__all__ = [
    "CLASSES",
    "KINDS",
    "NON_CAR_KINDS",
    "VIEWPOINTS",
    "SampleSpec",
    "class_listing_counts",
    "generate_filter_set",
    "generate_sample",
    "main",
]
