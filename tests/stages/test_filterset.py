"""The filterset stage on the generated filter set (plus the broken files a hand-sorted folder always holds):
a split manifest of car / no_car that the car_filter task trains on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from carvision import manifest, settings
from carvision.stages import filterset, train
from conftest import make_cfg

# Planted into the copy of the filter set: name -> the reason the stage must drop it.
PLANTED = {
    "car/broken.jpg": "not_an_image",  # a .jpg that is not an image
    "no_car/notes.txt": "not_an_image",  # not an image file at all: clean reads content, not suffixes
    "car/zz_copy.jpg": "exact_duplicate",  # the same bytes as car/0000.jpg
}


@pytest.fixture(scope="module")
def run(filter_set_dir: Path, tmp_path_factory):
    root = tmp_path_factory.mktemp("filterset")
    raw = root / "raw"
    shutil.copytree(filter_set_dir, raw)
    (raw / "car" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (raw / "no_car" / "notes.txt").write_text("sorted by hand on monday\n")
    shutil.copyfile(raw / "car" / "0000.jpg", raw / "car" / "zz_copy.jpg")
    cfg = make_cfg(root, [f"filterset.root={raw}"])
    report = filterset.main(cfg)
    out = Path(cfg.paths.filterset)
    kept = manifest.read(out / "manifest.parquet", stage="split")
    dropped = pd.read_parquet(out / "dropped.parquet")
    return cfg, raw, report, kept, dropped


def test_counts_reconcile_with_the_files_on_disk(run):
    cfg, raw, report, kept, dropped = run
    files = [p for label in ("car", "no_car") for p in (raw / label).iterdir() if p.is_file()]
    # Every file was listed: those of the class folders, and truth.csv beside them (dropped: in no class folder).
    assert report["rows_in"] == len(files) + 1
    assert report["rows_in"] == report["rows_kept"] + report["rows_dropped"] == len(kept) + len(dropped)
    assert sum(report["dropped_by_reason"].values()) == report["rows_dropped"]
    on_disk = json.loads((Path(cfg.paths.reports) / "filterset" / "report.json").read_text())
    assert on_disk == report


def test_planted_bad_files_are_dropped_with_their_reason(run):
    _, raw, _, kept, dropped = run
    reasons = dict(zip(dropped["path"], dropped["drop_reason"], strict=True))
    for name, reason in PLANTED.items():
        assert reasons.get(str(raw / name)) == reason, name
    # Of the two identical files exactly one is kept.
    pair = {str(raw / "car" / "0000.jpg"), str(raw / "car" / "zz_copy.jpg")}
    assert len(pair & set(kept["path"])) == 1


def test_both_classes_are_in_every_split(run):
    _, _, _, kept, _ = run
    counts = kept.groupby(["split", "class_name"]).size()
    for split in ("train", "val", "test"):
        for label in ("car", "no_car"):
            assert counts.get((split, label), 0) > 0, (split, label)
    assert set(kept["split"]) == {"train", "val", "test"}


def test_labels_come_from_the_folders_and_agree_with_the_truth(run, filter_set_dir: Path):
    _, raw, _, kept, _ = run
    folder = kept["path"].map(lambda p: Path(p).parent.name)
    assert (kept["class_name"] == folder).all()
    truth = pd.read_csv(filter_set_dir / "truth.csv", dtype=str, keep_default_na=False)
    label = dict(zip(truth["file"], truth["label"], strict=True))
    known = kept["path"].map(lambda p: label.get(Path(p).relative_to(raw).as_posix()))
    assert known.notna().all()  # every kept photo is one of the generated ones (the planted copy is dropped)
    assert (known == kept["class_name"]).all()


def test_no_listing_or_group_straddles_splits(run):
    _, _, _, kept, _ = run
    assert (kept.groupby("group_id")["split"].nunique() == 1).all()
    assert (kept.groupby("listing_id")["split"].nunique() == 1).all()


def test_images_exist_in_the_final_folder(run):
    cfg, _, _, kept, dropped = run
    out = Path(cfg.paths.filterset).resolve()
    for column in ("crop_path",):
        for p in kept[column]:
            path = Path(p)
            # Rebased from the staging folder the stage was built in: it must name the folder that now exists.
            assert path.resolve().is_relative_to(out) and path.is_file(), p
            assert not any(part.endswith(".tmp") for part in path.parts), p
        on_disk = [p for p in dropped[column].dropna() if p]
        assert all(Path(p).resolve().is_relative_to(out) for p in on_disk), on_disk
    # The filter judges whole photos: no car boxes.
    assert set(kept["crop_source"]) == {"full_image"}
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == [], "staging folder left behind"


def test_the_car_filter_task_can_train_on_it(run):
    cfg, _, _, kept, _ = run
    s = settings.parse(cfg)
    rows, class_names, manifest_file = train.task_rows(s, s.tasks["car_filter"])
    assert manifest_file == Path(cfg.paths.filterset) / "manifest.parquet"
    assert class_names == ["no_car", "car"]
    assert len(rows) == len(kept)
    assert (rows["target"] == rows["class_name"].map({"no_car": 0, "car": 1})).all()
