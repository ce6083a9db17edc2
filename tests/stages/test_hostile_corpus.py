"""The bad-input corpus end to end: every odd file and hostile folder or CSV through ingest, clean and crop.

The corpora are built here, by tests/hostile_images.py (61 kinds of image file: orientations, colour profiles,
16-bit, transparency, frames, HEIC/AVIF, truncations, bombs, links, unreadable files, ...) and
tests/hostile_tables.py (23 hostile roots: Latin-1 and malformed CSVs, clashing annotations, bad boxes, overlong and
non-UTF-8 names, hidden/system folders, links and loops, Stanford devkits, ...). The outcome must be: no stage
crashes, every loss is a row with a reason, and every kept photo reaches a crop.
"""

from __future__ import annotations

import os
from pathlib import Path

import hostile_images
import hostile_tables
import pandas as pd
import pytest
from PIL import Image

from carvision.images import decode, read_image_bytes, sniff_format
from carvision.manifest import StageResult
from carvision.stages import clean, crop, ingest

CLASS = "Škoda Octavia"  # a class folder whose name needs Unicode care too
MAX_SIDE = 48


def _clean(df: pd.DataFrame, min_side: int) -> StageResult:
    return clean.clean(df, min_side=min_side, max_pixels=hostile_images.MAX_PIXELS, near_duplicate_bits=4)


def _crop(df: pd.DataFrame, out: Path) -> StageResult:
    return crop.crop(df.assign(car_prob=float("nan")), out, margin=0.05, min_box_side=4, max_side=MAX_SIDE)


def _run(result: StageResult, tmp: Path, min_side: int) -> tuple[StageResult, StageResult]:
    cleaned = _clean(result.kept, min_side)
    cleaned.check(list(result.kept.columns))
    cropped = _crop(cleaned.kept, tmp)
    cropped.check([*cleaned.kept.columns, "car_prob"])
    return cleaned, cropped


def _fates(*results: StageResult) -> dict[str, str]:
    """image_id -> the drop reason (or `kept` when it survives every stage)."""
    fate = {}
    for r in results:
        fate |= dict(zip(r.dropped["image_id"], r.dropped["drop_reason"], strict=True))
    fate |= dict.fromkeys(results[-1].kept["image_id"], "kept")
    return fate


@pytest.fixture(scope="module")
def image_corpus(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("images") / "folder"
    cases = hostile_images.write_corpus(root / CLASS)
    (root / "empty-class").mkdir()  # a class folder with no photos: no rows, no class
    listed = ingest.ingest("folder", root)
    cleaned, cropped = _run(listed, tmp_path_factory.mktemp("crop"), min_side=32)
    return root, cases, listed, cleaned, cropped


def test_every_odd_image_file_is_a_row_with_its_reason_or_a_crop(image_corpus):
    root, cases, listed, cleaned, cropped = image_corpus
    fate = _fates(listed, cleaned, cropped)
    # Every stage reconciles, and nothing went missing between them.
    assert listed.rows_in == len(fate) and cleaned.rows_in == len(listed.kept) and cropped.rows_in == len(cleaned.kept)
    # Some cases are names that cannot exist on disk; a folder named like a photo is walked into, like any
    # sub-folder of a class folder (its photos belong to the class), so it is no row itself.
    on_disk = [c for c in cases if os.path.lexists(c.path) and not (c.path.is_dir() and not c.path.is_symlink())]
    assert len(on_disk) >= 50
    wrong = {}
    for case in on_disk:
        image_id = f"{CLASS}/{case.name}"
        got = fate.get(image_id, "no row at all")
        want = case.expect_reason or ("too_small" if case.name == "one_pixel.png" else "kept")
        if case.name.startswith("unreadable") and os.geteuid() == 0:
            want = "kept"  # root reads mode-000 files
        if got != want:
            wrong[case.name] = (want, got)
    assert wrong == {}, "expected (reason or kept) vs what the stages did"


def test_kept_odd_images_are_recorded_as_they_read_and_cropped(image_corpus):
    root, cases, listed, cleaned, cropped = image_corpus
    kept = cropped.kept.set_index("image_id")
    by_name = {c.name: c for c in cases}
    assert len(kept) >= 40
    for image_id, row in kept.iterrows():
        case = by_name[image_id.split("/", 1)[1]]
        d = decode(read_image_bytes(row["path"]), max_pixels=hostile_images.MAX_PIXELS)
        # clean recorded what the decoder (the one every stage and the predictor use) makes of the file
        assert (row["width"], row["height"]) == d.size == (case.size or d.size), image_id
        assert (row["format"], row["orientation"], row["colour"], row["frames"]) == (
            d.format,
            d.orientation,
            d.colour,
            d.frames,
        ), image_id
        with Image.open(row["crop_path"]) as im:
            assert im.mode == "RGB" and max(im.size) <= MAX_SIDE, image_id
    # the corpus' colour cases reach the manifest, and the report says how each was converted
    conversions = set(cleaned.report()["colour_conversions"])
    assert any(c.startswith("icc:") for c in conversions) and "16-bit scaled" in " ".join(conversions)
    assert cleaned.report()["multi_frame_first_frame_used"] >= 3


@pytest.fixture(scope="module")
def table_corpus(tmp_path_factory: pytest.TempPathFactory):
    return hostile_tables.write_corpus(tmp_path_factory.mktemp("tables"))


def test_every_hostile_folder_and_csv_runs_through_the_stages(table_corpus, tmp_path: Path):
    ran = 0
    for case in table_corpus:
        if case.error:  # a config mistake (a bad pattern) or an empty source: a clear error at start, by design
            with pytest.raises(ValueError, match=case.error):
                ingest.ingest(case.source, case.root, **case.kwargs)
            continue
        listed = ingest.ingest(case.source, case.root, **case.kwargs)
        hostile_tables.check(case, listed)
        # The corpus' photos are 40x30 copies of one JPEG: clean keeps one and drops the rest as duplicates.
        cleaned, cropped = _run(listed, tmp_path / case.name, min_side=16)
        fate = _fates(listed, cleaned, cropped)
        assert len(fate) == listed.rows_in, case.name
        paths = dict(zip(listed.kept["image_id"], listed.kept["path"], strict=True))
        for e in case.expect:
            if e.reason is not None:
                continue
            # Ingest lists files whatever their suffix; clean judges their content.
            is_image = sniff_format(Path(paths[e.image_id]).read_bytes()[:64]) is not None
            # The corpus' photos are 40x30 placeholders: boxes drawn for real photos fall outside them at crop.
            fine = {"kept", "exact_duplicate", "near_duplicate", "box_outside_image", "box_too_small"}
            allowed = fine if is_image else {"not_an_image"}
            assert fate[e.image_id] in allowed, (case.name, e.image_id, fate[e.image_id])
        ran += 1
    assert ran >= 18


def test_the_corpus_covers_at_least_forty_kinds(image_corpus, table_corpus):
    _, cases, *_ = image_corpus
    assert len(cases) + len(table_corpus) >= 40
