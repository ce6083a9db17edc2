"""Tests for the ingest stage (carvision.stages.ingest): the generated sample, small hand-made scrapes, every
hostile kind of tests/hostile_tables.py, and main() writing a manifest that parquet can store."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from hostile_tables import BUILDERS, JPEG_BYTES, check, label_spellings, non_utf8_names, write_files, write_scrape

from carvision import manifest, stage_io
from carvision.settings import ConfigError
from carvision.stages import ingest
from conftest import make_cfg


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
    assert sample_result.notes["csv_encoding"] == {"listings.csv": "utf-8", "annotations.csv": "utf-8"}


def test_sample_labels_are_make_and_model(sample_dir: Path, sample_result):
    listings = _read_csv(sample_dir / "listings.csv").set_index("ad_id")
    kept = sample_result.kept
    expected = listings.loc[kept["listing_id"], ["make", "model", "year"]]
    assert kept["make"].tolist() == expected["make"].tolist()
    assert kept["model"].tolist() == expected["model"].tolist()
    assert kept["year"].tolist() == expected["year"].tolist()  # the year column is the year, not a submodel
    assert (kept["submodel"] == "").all() and (kept["source_split"] == "").all()
    assert (kept["label"] == kept["make"] + " " + kept["model"]).all()  # no year in the label
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


# --- every hostile kind ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_hostile_input_costs_rows_not_the_run(tmp_path: Path, build):
    case = build(tmp_path)
    if case.error:
        with pytest.raises(ValueError) as raised:
            ingest.ingest(case.source, case.root, **case.kwargs)
        assert case.error in str(raised.value)
        return
    result = ingest.ingest(case.source, case.root, **case.kwargs)
    check(case, result)
    assert result.rows_in == len(result.kept) + len(result.dropped) == len(case.expect)


def test_main_stores_a_hostile_tree_and_reports_what_it_did(tmp_path: Path):
    # Names that are not UTF-8 must not reach parquet as surrogates; the notes must reach report.json.
    case = non_utf8_names(tmp_path)
    write_files(case.root, [".Trash-1000/x.jpg", "fiat 500/y.jpg"])
    cfg = make_cfg(tmp_path / "out", ["data.source=folder"], data_root=case.root)
    report = ingest.main(cfg)
    out = Path(cfg.paths.ingest)
    kept = manifest.read(out / "manifest.parquet", stage="ingest")
    dropped = pd.read_parquet(out / "dropped.parquet")
    on_disk = json.loads((Path(cfg.paths.reports) / "ingest" / "report.json").read_text())
    assert on_disk["rows_in"] == len(kept) + len(dropped) == 5
    assert sorted(kept["image_id"]) == ["Fiat 500/ok.jpg", "fiat 500/y.jpg"]
    assert set(kept["label"]) == {"Fiat 500"}  # `fiat 500` joined the spelling of the first in sorted order
    assert on_disk["dropped_by_reason"] == {"file_name_not_utf8": 2, "system_folder": 1}
    assert on_disk["system_folders_skipped"] == {".Trash-1000": 1}
    assert on_disk["label_spellings_merged"] == [{"column": "make", "from": "fiat", "into": "Fiat", "rows": 1}]
    assert report["rows_kept"] == 2
    # The undecodable bytes are stored escaped, and the detail says how to fix the names.
    bad = dropped[dropped["drop_reason"] == "file_name_not_utf8"]
    assert sorted(bad["image_id"]) == ["Citro\\xebn C3/x.jpg", "Fiat 500/caf\\xe9.jpg"]
    assert bad["drop_detail"].str.contains("convmv").all()


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
    # notes.txt is a row like any file: the clean stage tells photos by their content, not their suffix.
    assert sorted(result.kept["image_id"]) == ["ad1/00.jpg", "ad1/notes.txt", "ad4/00.jpg", "ad4/01.jpg"]
    reasons = dict(zip(result.dropped["image_id"], result.dropped["drop_reason"], strict=True))
    assert reasons == {
        "ad1/01.jpg": "missing_file",
        "ad2/00.jpg": "missing_label",
        "ad3/../../../outside.jpg": "unsafe_path",
        "../../../outside.jpg": "unsafe_path",
        "ad1/00.jpg": "listed_twice",
    }
    assert len(result.dropped) == 5  # ad1/00.jpg: one copy kept, one dropped
    assert (result.dropped["drop_stage"] == "ingest").all()
    assert result.rows_in == len(result.kept) + len(result.dropped) == 9
    result.check([])

    report = stage_io.save_stage(result, tmp_path / "data", tmp_path / "reports", [], "label")
    assert report["dropped_by_reason"] == {"listed_twice": 1, "missing_file": 1, "missing_label": 1, "unsafe_path": 2}
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


def test_submodel_and_year_columns(tmp_path: Path):
    root = tmp_path / "s"
    write_files(root / "images", ["ad1/00.jpg", "ad2/00.jpg"])
    (root / "listings.csv").write_text(
        "ad_id,make,model,submodel,year,images\nad1,Fiat,500,Abarth,2015,00.jpg\nad2,Fiat,500,,'15,00.jpg\n"
    )
    result = ingest.ingest("scrape", root)
    kept = _by_id(result.kept)
    assert kept.loc["ad1/00.jpg", ["submodel", "year", "label"]].tolist() == ["Abarth", "2015", "Fiat 500"]
    assert kept.loc["ad2/00.jpg", ["submodel", "year"]].tolist() == ["", ""]
    assert result.notes["years_not_four_digits"] == {"'15": 1}


def test_annotations_join_and_unknown_viewpoints(tmp_path: Path):
    root = write_scrape(
        tmp_path / "scrape",
        [["ad1", "Fiat", "500", "2015", "00.jpg;01.jpg;02.jpg;03.jpg"]],
        files=["ad1/00.jpg", "ad1/01.jpg", "ad1/02.jpg", "ad1/03.jpg"],
        annotations=[
            ["ad1", "00.jpg", "side", "1", "2", "30.5", "20"],
            ["ad1", "01.jpg", "upside-down", "", "", "", ""],
            ["ad1", "02.jpg", "back", "", "", "", ""],
            ["ad9", "00.jpg", "front", "1", "1", "5", "5"],  # a photo nobody listed
        ],
    )
    result = ingest.ingest("scrape", root)
    kept = _by_id(result.kept)
    assert len(kept) == 4
    assert kept.loc["ad1/00.jpg", "bbox"] == [1.0, 2.0, 30.5, 20.0]
    assert kept.loc["ad1/00.jpg", "viewpoint"] == "side"
    assert kept.loc["ad1/01.jpg", "viewpoint"] == ""  # unknown viewpoint: blank, photo kept
    assert kept.loc["ad1/02.jpg", "bbox"] is None and kept.loc["ad1/02.jpg", "viewpoint"] == "back"
    assert kept.loc["ad1/03.jpg", "bbox"] is None and kept.loc["ad1/03.jpg", "viewpoint"] == ""
    assert result.notes["annotations_without_listed_photo"] == 1
    assert result.notes["viewpoints_unknown"] == {"upside-down": 1}


def test_without_annotations_there_are_no_boxes(tmp_path: Path):
    root = write_scrape(tmp_path / "s", [["ad1", "Fiat", "500", "2015", "00.jpg"]], files=["ad1/00.jpg"])
    kept = ingest.ingest("scrape", root).kept
    assert kept["bbox"].tolist() == [None] and kept["viewpoint"].tolist() == [""]
    manifest.validate(kept, "ingest")


def test_folder_source(tmp_path: Path):
    root = write_files(
        tmp_path / "folder",
        ["Toyota Corolla/a.jpg", "Toyota Corolla/b.png", "Fiat 500/x.jpg", "Fiat 500/sub/x.jpg", "Tesla/t.jpg"],
    )
    (root / "Fiat 500" / "readme.txt").write_text("not a photo")
    (root / "stray.jpg").write_bytes(JPEG_BYTES)  # not inside a class folder: no label

    result = ingest.ingest("folder", root)
    kept = _by_id(result.kept)
    assert len(kept) == 6  # readme.txt too: the clean stage drops it by its content
    assert set(kept["label"]) == {"Toyota Corolla", "Fiat 500", "Tesla"}
    assert kept.loc[kept["label"] == "Toyota Corolla", "model"].unique().tolist() == ["Corolla"]
    assert kept.loc[kept["label"] == "Tesla", "model"].tolist() == [""]
    assert kept["listing_id"].is_unique  # without data.listing_pattern each photo is its own listing
    assert kept.loc["Fiat 500/sub/x.jpg", "listing_id"] == "Fiat 500/sub/x"
    assert kept["bbox"].isna().all()
    assert result.dropped["drop_reason"].tolist() == ["not_in_class_folder"]
    assert result.dropped["image_id"].tolist() == ["stray.jpg"]
    assert result.rows_in == 7
    assert result.notes["class_folders"] == 3
    result.check([])


def test_folder_with_patterns_groups_a_listings_photos(tmp_path: Path):
    root = write_files(
        tmp_path / "eu", ["vw_golf_2014/A1_1_x.jpg", "vw_golf_2014/A1_2_y.jpg", "vw_golf_2014/B2_1_z.jpg"]
    )
    result = ingest.ingest(
        "folder",
        root,
        listing_pattern=r"^(?P<listing>[^_]+)_\d+_",
        class_pattern=r"^(?P<make>[^_]+)_(?P<model>.+)_(?P<year>\d{4})$",
    )
    kept = result.kept
    assert kept.groupby("listing_id").size().to_dict() == {"A1": 2, "B2": 1}
    assert set(kept["label"]) == {"vw golf"} and set(kept["year"]) == {"2014"}


def test_missing_listings_csv_is_a_clear_error(tmp_path: Path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="listings.csv"):
        ingest.ingest("scrape", tmp_path)


def test_listings_without_required_columns(tmp_path: Path):
    (tmp_path / "listings.csv").write_text("ad_id,make,images\nad1,Fiat,00.jpg\n")
    with pytest.raises(ValueError, match="model"):
        ingest.ingest("scrape", tmp_path)


def test_empty_scrape_is_an_error(tmp_path: Path):
    write_scrape(tmp_path / "s", [["ad1", "Fiat", "500", "2015", ""]], files=[])
    with pytest.raises(ValueError, match="no images.*listing_without_images 1"):
        ingest.ingest("scrape", tmp_path / "s")


def test_empty_folder_is_an_error(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images to ingest.*found nothing"):
        ingest.ingest("folder", tmp_path / "empty")


def test_unknown_source_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown data.source 'ftp'"):
        ingest.ingest("ftp", tmp_path)


def test_patterns_are_for_folders_only(tmp_path: Path):
    with pytest.raises(ConfigError, match="data.listing_pattern"):
        ingest.ingest("scrape", tmp_path, listing_pattern="(?P<listing>.+)")


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


def test_a_symlinked_scrape_root_reads_like_the_original(tmp_path: Path):
    root = write_scrape(tmp_path / "real", [["ad1", "Fiat", "500", "2015", "00.jpg"]], files=["ad1/00.jpg"])
    os.symlink(root, tmp_path / "link")
    a, b = ingest.ingest("scrape", root).kept, ingest.ingest("scrape", tmp_path / "link").kept
    assert a.drop(columns="path").equals(b.drop(columns="path"))
    assert b["path"].tolist() == [f"{tmp_path / 'link'}/images/ad1/00.jpg"]  # the path as given, not resolved


def test_the_corpus_checker_can_fail(tmp_path: Path):
    case = label_spellings(tmp_path)
    result = ingest.ingest(case.source, case.root)
    check(case, result)
    wrong_label = replace(case, expect=[replace(case.expect[0], label="Skoda Octavia"), *case.expect[1:]])
    wrong_reason = replace(case, expect=[replace(case.expect[0], reason="missing_file"), *case.expect[1:]])
    missing_row = replace(case, expect=case.expect[1:])
    wrong_note = replace(case, notes={"csv_encoding": {"listings.csv": "cp1252"}})
    for bad in (wrong_label, wrong_reason, missing_row, wrong_note):
        with pytest.raises(AssertionError):
            check(bad, result)
