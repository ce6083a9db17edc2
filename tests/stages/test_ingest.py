"""Tests for the ingest stage (carvision.stages.ingest): the generated sample and small hand-made scrapes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from carvision import manifest, stage_io
from carvision.stages import ingest

JPEG = io.BytesIO()
Image.new("RGB", (40, 30), (200, 30, 30)).save(JPEG, "JPEG")
JPEG_BYTES = JPEG.getvalue()


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def write_scrape(
    root: Path,
    listings: list[list[str]],
    files: list[str],
    annotations: list[list[str]] | None = None,
) -> Path:
    """listings: [ad_id, make, model, year, images]; files: paths under images/ to create as small JPEGs."""
    root.mkdir(parents=True)
    for rel in files:
        p = root / "images" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(JPEG_BYTES)
    _csv(root / "listings.csv", ["ad_id", "make", "model", "year", "images"], listings)
    if annotations is not None:
        _csv(root / "annotations.csv", ["ad_id", "file", "viewpoint", "x_min", "y_min", "x_max", "y_max"], annotations)
    return root


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _by_id(df: pd.DataFrame) -> pd.DataFrame:
    return df.set_index("image_id")


# --- the generated sample -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_result(sample_dir: Path) -> manifest.StageResult:
    return ingest.ingest("sample", sample_dir)


def test_sample_rows_match_the_photos_listed(sample_dir: Path, sample_result):
    listings = _read_csv(sample_dir / "listings.csv")
    listed = [
        f"{a}/{f}" for a, imgs in zip(listings["ad_id"], listings["images"], strict=True) for f in imgs.split(";")
    ]
    truth = _read_csv(sample_dir / "truth.csv")
    assert sample_result.rows_in == len(listed) == len(truth)
    assert len(sample_result.dropped) == 0  # every listed file of the sample exists, with a safe name
    assert sorted(sample_result.kept["image_id"]) == sorted(listed)
    sample_result.check([])
    for p in sample_result.kept["path"]:
        assert Path(p).is_file()


def test_sample_labels_are_make_and_model(sample_dir: Path, sample_result):
    listings = _read_csv(sample_dir / "listings.csv").set_index("ad_id")
    kept = sample_result.kept
    expected = listings.loc[kept["listing_id"], ["make", "model", "year"]]
    assert kept["make"].tolist() == expected["make"].tolist()
    assert kept["model"].tolist() == expected["model"].tolist()
    assert kept["submodel"].tolist() == expected["year"].tolist()
    assert (kept["label"] == kept["make"] + " " + kept["model"]).all()
    assert "Toyota Corolla" in set(kept["label"])


def test_sample_boxes_and_viewpoints_come_from_annotations(sample_dir: Path, sample_result):
    ann = _read_csv(sample_dir / "annotations.csv")
    ann["image_id"] = ann["ad_id"] + "/" + ann["file"]
    ann = _by_id(ann)
    kept = sample_result.kept
    n_boxes = 0
    for image_id, viewpoint, bbox in zip(kept["image_id"], kept["viewpoint"], kept["bbox"], strict=True):
        a = ann.loc[image_id]
        assert viewpoint == a["viewpoint"]
        if a["x_min"] == "":
            assert bbox is None
        else:
            n_boxes += 1
            assert bbox == [float(a[c]) for c in ("x_min", "y_min", "x_max", "y_max")]
    assert 0 < n_boxes < len(kept)  # the sample has photos with and without a box


def test_main_writes_manifest_and_report(prepared):
    kept = manifest.read(Path(prepared.paths.ingest) / "manifest.parquet", stage="ingest")
    report = json.loads((Path(prepared.paths.reports) / "ingest" / "report.json").read_text())
    dropped = pd.read_parquet(Path(prepared.paths.ingest) / "dropped.parquet")
    assert report["rows_kept"] == len(kept) and report["rows_dropped"] == len(dropped)
    assert report["rows_in"] == len(kept) + len(dropped)
    counts = pd.read_csv(Path(prepared.paths.reports) / "ingest" / "class_counts.csv")
    assert dict(zip(counts["class"], counts["count"], strict=True)) == kept["label"].value_counts().to_dict()


# --- hand-made scrapes ----------------------------------------------------------------------------------------


def test_drops_carry_the_right_reasons(tmp_path: Path):
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(JPEG_BYTES)
    root = write_scrape(
        tmp_path / "scrape",
        [
            ["ad1", "Toyota", "Corolla", "2010", "00.jpg;01.jpg;00.jpg;notes.txt"],
            ["ad2", "", "", "2011", "00.jpg"],
            ["ad3", "Honda", "Civic", "2012", "../../../outside.jpg"],
            ["../../..", "Honda", "Civic", "2012", "outside.jpg"],
            ["ad4", "Honda", "Civic", "2013", " 00.jpg ; ;01.jpg"],
        ],
        files=["ad1/00.jpg", "ad1/notes.txt", "ad2/00.jpg", "ad3/00.jpg", "ad4/00.jpg", "ad4/01.jpg"],
    )
    result = ingest.ingest("scrape", root)
    assert sorted(result.kept["image_id"]) == ["ad1/00.jpg", "ad4/00.jpg", "ad4/01.jpg"]
    reasons = dict(zip(result.dropped["image_id"], result.dropped["drop_reason"], strict=True))
    assert reasons == {
        "ad1/01.jpg": "missing_file",
        "ad1/notes.txt": "not_an_image_file",
        "ad2/00.jpg": "missing_label",
        "ad3/../../../outside.jpg": "unsafe_path",
        "../../../outside.jpg": "unsafe_path",
    } | {"ad1/00.jpg": "listed_twice"}
    assert len(result.dropped) == 6  # ad1/00.jpg: one copy kept, one dropped
    assert (result.dropped["drop_stage"] == "ingest").all()
    detail = result.dropped.set_index("image_id").loc["ad1/notes.txt", "drop_detail"]
    assert detail == ".txt"
    assert result.rows_in == len(result.kept) + len(result.dropped) == 9
    result.check([])

    report = stage_io.save_stage(result, tmp_path / "data", tmp_path / "reports", [], "label")
    assert report["dropped_by_reason"] == {
        "listed_twice": 1,
        "missing_file": 1,
        "missing_label": 1,
        "not_an_image_file": 1,
        "unsafe_path": 2,
    }
    assert sum(report["dropped_by_reason"].values()) == report["rows_dropped"]


def test_unsafe_path_wins_over_missing_file(tmp_path: Path):
    root = write_scrape(
        tmp_path / "scrape",
        [["ad1", "Fiat", "500", "2015", "00.jpg;../../../../nowhere.jpg"]],
        files=["ad1/00.jpg"],
    )
    result = ingest.ingest("scrape", root)
    assert result.dropped["drop_reason"].tolist() == ["unsafe_path"]


def test_blank_make_and_model_is_missing_label_and_names_are_stripped(tmp_path: Path):
    root = write_scrape(
        tmp_path / "scrape",
        [["ad1", " Fiat ", " 500 ", "", "00.jpg"], ["ad2", " ", "  ", "", "00.jpg"], ["ad3", "", "", "", "00.jpg"]],
        files=["ad1/00.jpg", "ad2/00.jpg", "ad3/00.jpg"],
    )
    result = ingest.ingest("scrape", root)
    assert result.kept["label"].tolist() == ["Fiat 500"]
    assert result.kept["make"].tolist() == ["Fiat"] and result.kept["model"].tolist() == ["500"]
    assert sorted(result.dropped["image_id"]) == ["ad2/00.jpg", "ad3/00.jpg"]
    assert set(result.dropped["drop_reason"]) == {"missing_label"}


def test_annotations_join_and_unknown_viewpoints(tmp_path: Path):
    root = write_scrape(
        tmp_path / "scrape",
        [["ad1", "Fiat", "500", "2015", "00.jpg;01.jpg;02.jpg;03.jpg"]],
        files=["ad1/00.jpg", "ad1/01.jpg", "ad1/02.jpg", "ad1/03.jpg"],
        annotations=[
            ["ad1", "00.jpg", "side", "1", "2", "30.5", "20"],
            ["ad1", "01.jpg", "upside-down", "", "", "", ""],
            ["ad1", "02.jpg", "back", "1", "2", "", "20"],  # incomplete box: no box
            ["ad9", "00.jpg", "front", "1", "1", "5", "5"],  # a photo nobody listed
        ],
    )
    kept = _by_id(ingest.ingest("scrape", root).kept)
    assert len(kept) == 4
    assert kept.loc["ad1/00.jpg", "bbox"] == [1.0, 2.0, 30.5, 20.0]
    assert kept.loc["ad1/00.jpg", "viewpoint"] == "side"
    assert kept.loc["ad1/01.jpg", "viewpoint"] == ""  # unknown viewpoint: blank, photo kept
    assert kept.loc["ad1/02.jpg", "bbox"] is None and kept.loc["ad1/02.jpg", "viewpoint"] == "back"
    assert kept.loc["ad1/03.jpg", "bbox"] is None and kept.loc["ad1/03.jpg", "viewpoint"] == ""


def test_without_annotations_there_are_no_boxes(tmp_path: Path):
    root = write_scrape(tmp_path / "s", [["ad1", "Fiat", "500", "2015", "00.jpg"]], files=["ad1/00.jpg"])
    kept = ingest.ingest("scrape", root).kept
    assert kept["bbox"].tolist() == [None] and kept["viewpoint"].tolist() == [""]
    manifest.validate(kept, "ingest")


def test_folder_source(tmp_path: Path):
    root = tmp_path / "folder"
    for rel in ("Toyota Corolla/a.jpg", "Toyota Corolla/b.png", "Fiat 500/x.jpg", "Fiat 500/sub/x.jpg", "Tesla/t.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(JPEG_BYTES)
    (root / "Fiat 500" / "readme.txt").write_text("not a photo")
    (root / "stray.jpg").write_bytes(JPEG_BYTES)  # not inside a class folder: no label

    result = ingest.ingest("folder", root)
    kept = _by_id(result.kept)
    assert len(kept) == 5
    assert set(kept["label"]) == {"Toyota Corolla", "Fiat 500", "Tesla"}
    assert (kept["make"] == kept["label"].str.split(" ").str[0]).all()
    assert kept.loc[kept["label"] == "Toyota Corolla", "model"].unique().tolist() == ["Corolla"]
    assert kept.loc[kept["label"] == "Tesla", "model"].tolist() == [""]
    assert kept["listing_id"].is_unique  # each photo is its own listing
    assert kept.index.is_unique
    assert kept["bbox"].isna().all()
    assert result.dropped["drop_reason"].tolist() == ["not_an_image_file"]
    assert result.dropped["path"].str.endswith("readme.txt").all()
    assert result.rows_in == 6
    result.check([])


def test_missing_listings_csv_is_a_clear_error(tmp_path: Path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="listings.csv"):
        ingest.ingest("scrape", tmp_path)


def test_listings_without_required_columns(tmp_path: Path):
    _csv(tmp_path / "listings.csv", ["ad_id", "make", "images"], [["ad1", "Fiat", "00.jpg"]])
    with pytest.raises(ValueError, match="model"):
        ingest.ingest("scrape", tmp_path)


def test_empty_scrape_is_an_error(tmp_path: Path):
    write_scrape(tmp_path / "s", [["ad1", "Fiat", "500", "2015", ""]], files=[])
    with pytest.raises(ValueError, match="no images"):
        ingest.ingest("scrape", tmp_path / "s")


def test_unknown_source_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown data.source 'ftp'"):
        ingest.ingest("ftp", tmp_path)


def test_folder_source_needs_a_folder(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        ingest.ingest("folder", tmp_path / "missing")


def test_a_file_name_that_walks_into_another_listing_is_unsafe(tmp_path: Path):
    # ad1/../ad2/00.jpg stays inside the scrape, but would make ad1's photo a copy of ad2's and collide
    # with ad1's own 00.jpg in the stages' output folders.
    root = write_scrape(
        tmp_path / "scrape",
        [["ad1", "Fiat", "500", "2015", "00.jpg;../ad2/00.jpg"], ["ad2", "Fiat", "500", "2016", "00.jpg"]],
        files=["ad1/00.jpg", "ad2/00.jpg"],
    )
    result = ingest.ingest("scrape", root)
    assert result.dropped["image_id"].tolist() == ["ad1/../ad2/00.jpg"]
    assert result.dropped["drop_reason"].tolist() == ["unsafe_path"]
    assert sorted(result.kept["image_id"]) == ["ad1/00.jpg", "ad2/00.jpg"]
