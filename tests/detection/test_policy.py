"""The crop policy on constructed detections: which box is the car, when a photo is dropped, and degenerate input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carvision.detection.policy import COCO_BUS, COCO_CAR, COCO_TRUCK, CropPolicy, Decision, decide

PERSON, DOG = 1, 18  # COCO ids that are never cars
SIZE = (1000, 500)  # (width, height) px; image area 500_000 px^2
NO_MARGIN = CropPolicy(margin=0.0)


def run(rows: list[tuple[list[float], float, int]], policy: CropPolicy = NO_MARGIN, size=SIZE) -> Decision:
    """decide() on rows of (box, score, label)."""
    boxes = np.array([r[0] for r in rows], dtype=np.float64).reshape(-1, 4)
    scores = np.array([r[1] for r in rows], dtype=np.float64)
    labels = np.array([r[2] for r in rows], dtype=np.int64)
    return decide(boxes, scores, labels, size, policy)


BIG = [100.0, 100.0, 600.0, 400.0]  # 500 x 300 = 30% of the image
SMALL = [700.0, 100.0, 950.0, 400.0]  # 250 x 300 = 15%


def test_largest_car_beats_a_smaller_higher_score_car():
    d = run([(SMALL, 0.99, COCO_CAR), (BIG, 0.6, COCO_CAR)])
    assert d.kept and d.source == "detector"
    assert d.detected_box == tuple(BIG) and d.score == pytest.approx(0.6)
    assert d.crop_box == tuple(BIG) == d.box  # no margin
    assert "30%" in d.detail


@pytest.mark.parametrize(
    ("label", "include_bus", "found"),
    [
        (COCO_CAR, False, True),
        (COCO_TRUCK, False, True),
        (COCO_BUS, False, False),
        (COCO_BUS, True, True),
        (PERSON, True, False),
        (DOG, True, False),
    ],
)
def test_which_classes_count_as_a_car(label, include_bus, found):
    d = run([(BIG, 0.9, label)], CropPolicy(include_bus=include_bus, margin=0.0))
    assert (d.reason is None) is found
    assert d.detected_box == (tuple(BIG) if found else None)
    if not found:
        assert d.reason == "no_car_found" and d.source == "full_image"


def test_a_larger_person_does_not_hide_the_car():
    d = run([([0, 0, 1000, 500], 0.99, PERSON), (SMALL, 0.8, COCO_CAR)])
    assert d.detected_box == tuple(SMALL)


@pytest.mark.parametrize(("score", "found"), [(0.49, False), (0.5, True), (0.51, True)])
def test_min_score(score, found):
    assert run([(BIG, score, COCO_CAR)]).kept is found


def test_below_min_score_falls_back_to_the_next_car():
    d = run([(BIG, 0.3, COCO_CAR), (SMALL, 0.7, COCO_CAR)])
    assert d.detected_box == tuple(SMALL)


def test_area_score_ranking_changes_the_choice():
    rows = [(BIG, 0.55, COCO_CAR), ([600.0, 50.0, 950.0, 450.0], 0.99, COCO_CAR)]  # 350 x 400 = 28%: 0.165 < 0.277
    assert run(rows).detected_box == tuple(BIG)
    d = run(rows, CropPolicy(rank="area_score", margin=0.0))
    assert d.detected_box == (600.0, 50.0, 950.0, 450.0)
    assert "area x score" in d.detail


@pytest.mark.parametrize(
    ("box_width", "kept"),
    [(99.0, False), (100.0, True), (101.0, True)],  # x 500 px high / 500_000 px^2: 9.9%, exactly 10%, 10.1%
)
def test_partial_car_at_the_boundary(box_width, kept):
    d = run([([0.0, 0.0, box_width, 500.0], 0.9, COCO_CAR)], CropPolicy(min_box_fraction=0.1, margin=0.0))
    assert d.kept is kept
    # The detector's box is kept either way: the manifest reports what was found.
    assert d.detected_box == (0.0, 0.0, box_width, 500.0) and d.source == "detector"
    if not kept:
        assert d.reason == "partial_car" and d.crop_box is None
        assert d.detail == "largest car box 9.9% of the image < 10%"


def test_partial_car_is_dropped_even_when_photos_without_a_car_are_kept():
    d = run([([0.0, 0.0, 50.0, 50.0], 0.9, COCO_CAR)], CropPolicy(without_car="keep"))
    assert d.reason == "partial_car"


def test_min_box_fraction_zero_keeps_any_box():
    assert run([([0.0, 0.0, 1.0, 1.0], 0.9, COCO_CAR)], CropPolicy(min_box_fraction=0.0)).kept


@pytest.mark.parametrize("rows", [[], [(BIG, 0.9, PERSON)]], ids=["empty", "no_car"])
def test_no_car_dropped_or_kept_whole(rows):
    dropped = run(rows, CropPolicy(without_car="drop"))
    assert dropped == Decision(None, None, None, "full_image", "no_car_found", dropped.detail, SIZE)
    assert f"among {len(rows)} detections" in dropped.detail
    kept = run(rows, CropPolicy(without_car="keep"))
    assert kept.kept and kept.source == "full_image" and kept.crop_box is None and kept.detected_box is None


def test_empty_arrays_of_any_shape():
    empty = np.zeros((0,))
    d = decide(empty, empty, empty.astype(np.int64), SIZE, CropPolicy())
    assert d.reason == "no_car_found"


def test_margin_is_added_on_each_side():
    d = run([(BIG, 0.9, COCO_CAR)], CropPolicy(margin=0.1))  # 500 x 300 box: 50 px and 30 px each side
    assert d.detected_box == tuple(BIG)
    assert d.crop_box == pytest.approx((50.0, 70.0, 650.0, 430.0))


def test_margin_is_clipped_to_the_image():
    d = run([([10.0, 20.0, 990.0, 480.0], 0.9, COCO_CAR)], CropPolicy(margin=0.2))
    assert d.crop_box == (0.0, 0.0, 1000.0, 500.0)


def test_box_partly_outside_is_clipped_before_measuring():
    # Raw 400 x 500 = 40% of the image, but only 100 x 500 (10%) is inside: the smaller box inside wins.
    outside = [-300.0, 0.0, 100.0, 500.0]
    inside = [400.0, 0.0, 560.0, 500.0]  # 160 x 500 = 16%
    d = run([(outside, 0.9, COCO_CAR), (inside, 0.9, COCO_CAR)])
    assert d.detected_box == tuple(inside)
    d = run([(outside, 0.9, COCO_CAR)], CropPolicy(margin=0.5))
    assert d.detected_box == (0.0, 0.0, 100.0, 500.0)  # the manifest gets the clipped box
    assert d.crop_box == (0.0, 0.0, 150.0, 500.0)


@pytest.mark.parametrize(
    ("box", "score"),
    [
        ([math.nan, 0.0, 900.0, 500.0], 0.9),
        ([0.0, 0.0, math.inf, 500.0], 0.9),
        ([-math.inf, 0.0, 900.0, 500.0], 0.9),
        ([0.0, 0.0, 900.0, 500.0], math.nan),
        ([0.0, 0.0, 900.0, 500.0], math.inf),
        ([900.0, 0.0, 0.0, 500.0], 0.9),  # x_max < x_min
        ([500.0, 0.0, 500.0, 500.0], 0.9),  # x_max == x_min
        ([0.0, 500.0, 900.0, 0.0], 0.9),  # y_max < y_min
        ([1100.0, 0.0, 1900.0, 500.0], 0.9),  # wholly outside the image
    ],
)
def test_degenerate_rows_are_ignored(box, score):
    # The degenerate row would be the largest; the valid smaller car behind it must win.
    d = run([(box, score, COCO_CAR), (SMALL, 0.8, COCO_CAR)])
    assert d.kept and d.detected_box == tuple(SMALL)
    assert all(math.isfinite(v) for v in d.crop_box)
    assert run([(box, score, COCO_CAR)]).reason == "no_car_found"


def test_ties_go_to_the_higher_score_then_the_lower_index():
    a, b = [0.0, 0.0, 500.0, 300.0], [500.0, 200.0, 1000.0, 500.0]  # both 500 x 300
    assert run([(a, 0.6, COCO_CAR), (b, 0.9, COCO_CAR)]).detected_box == tuple(b)
    assert run([(a, 0.9, COCO_CAR), (b, 0.6, COCO_CAR)]).detected_box == tuple(a)
    assert run([(a, 0.7, COCO_CAR), (b, 0.7, COCO_CAR)]).detected_box == tuple(a)
    assert run([(b, 0.7, COCO_CAR), (a, 0.7, COCO_CAR)]).detected_box == tuple(b)


def test_decision_values_are_plain_python():
    d = run([(BIG, 0.9, COCO_CAR)], CropPolicy())
    assert type(d.score) is float
    assert all(type(v) is float for v in (*d.detected_box, *d.crop_box))


def test_defaults():
    p = CropPolicy()
    assert (p.min_score, p.rank, p.min_box_fraction, p.without_car, p.margin) == (0.5, "area", 0.1, "drop", 0.05)
    assert p.classes == (COCO_CAR, COCO_TRUCK)
    assert COCO_BUS in CropPolicy(include_bus=True).classes


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min_score": -0.1}, "min_score"),
        ({"min_score": 1.1}, "min_score"),
        ({"min_score": math.nan}, "min_score"),
        ({"min_box_fraction": 1.0}, "min_box_fraction"),
        ({"min_box_fraction": -0.01}, "min_box_fraction"),
        ({"margin": -0.01}, "margin"),
        ({"margin": math.inf}, "margin"),
        ({"rank": "score"}, "rank"),
        ({"without_car": "skip"}, "without_car"),
        ({"include_bus": "yes"}, "include_bus"),
    ],
)
def test_invalid_policy_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        CropPolicy(**kwargs)


@pytest.mark.parametrize("kwargs", [{"min_score": 0.0}, {"min_score": 1.0}, {"min_box_fraction": 0.0}, {"margin": 0}])
def test_policy_bounds_are_inclusive_where_documented(kwargs):
    CropPolicy(**kwargs)


def test_bad_input_shapes_and_size():
    with pytest.raises(ValueError, match="length"):
        decide(np.zeros((2, 4)), np.zeros(1), np.zeros(2, dtype=np.int64), SIZE, CropPolicy())
    with pytest.raises(ValueError, match="size"):
        decide(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64), (0, 500), CropPolicy())
