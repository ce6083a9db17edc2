"""Tests for the Stanford Cars reader (carvision.readers.stanford) on .mat files laid out like the devkit's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hostile_tables import STANFORD_CLASSES, write_files, write_stanford

from carvision.readers.stanford import read_stanford
from carvision.stages import ingest


def test_the_test_devkit_loads_like_the_real_one(tmp_path: Path):
    # The real files: 1 x N struct arrays whose every cell is a 1 x 1 array of the smallest integer type, and a
    # 1 x 196 cell of class names; squeeze_me=True turns them into flat arrays. The fixture must match.
    root = write_stanford(
        tmp_path / "s", train=[(200, 3, 300, 40, 1, "00001.jpg"), (1, 1, 9, 9, 2, "00002.jpg")], test=[]
    )
    raw = scipy.io.loadmat(root / "devkit" / "cars_train_annos.mat")["annotations"]
    assert raw.shape == (1, 2)
    assert raw.dtype.names == ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")
    assert raw[0, 0]["bbox_x1"].dtype == np.uint8 and raw[0, 0]["bbox_x1"].shape == (1, 1)
    assert raw[0, 0]["bbox_x2"].dtype == np.uint16
    assert str(raw[0, 0]["fname"][0]) == "00001.jpg"
    meta = scipy.io.loadmat(root / "devkit" / "cars_meta.mat")["class_names"]
    assert meta.shape == (1, len(STANFORD_CLASSES)) and str(meta[0, 0][0]) == STANFORD_CLASSES[0]
    squeezed = scipy.io.loadmat(root / "devkit" / "cars_train_annos.mat", squeeze_me=True)["annotations"]
    assert squeezed.shape == (2,) and list(squeezed["fname"]) == ["00001.jpg", "00002.jpg"]
    # Why the reader casts: arithmetic on the cells as stored wraps around.
    with np.errstate(over="ignore"):
        assert int(raw[0, 0]["bbox_x1"][0, 0] + np.uint8(100)) == 44


def test_boxes_become_zero_based_half_open_without_wrapping(tmp_path: Path):
    root = write_stanford(
        tmp_path / "s",
        train=[(200, 3, 300, 40, 1, "00001.jpg"), (1, 0, 255, 65535, 2, "00002.jpg")],
        test=[(256, 255, 257, 256, 3, "00001.jpg")],
    )
    boxes = {r.image_id: r.bbox for r in read_stanford(root).rows}
    assert boxes == {
        "cars_train/00001.jpg": [199.0, 2.0, 300.0, 40.0],
        "cars_train/00002.jpg": [0.0, -1.0, 255.0, 65535.0],  # uint8 0 - 1 is -1, not 255
        "cars_test/00001.jpg": [255.0, 254.0, 257.0, 256.0],
    }


def test_classes_splits_and_listings(tmp_path: Path):
    root = write_stanford(
        tmp_path / "s",
        train=[(1, 1, 9, 9, 1, "00001.jpg"), (1, 1, 9, 9, 4, "00002.jpg")],
        test=[(1, 1, 9, 9, 3, "00001.jpg")],
    )
    result = ingest.ingest("stanford", root)
    kept = result.kept.set_index("image_id")
    assert kept.loc["cars_train/00001.jpg", ["make", "model", "year", "label"]].tolist() == [
        "AM General",
        "Hummer SUV",
        "2000",
        "AM General Hummer SUV",
    ]
    assert (
        kept.loc["cars_train/00002.jpg", "make"] == "Ram"
        and kept.loc["cars_train/00002.jpg", "model"] == "C/V Cargo Van Minivan"
    )
    assert kept["source_split"].to_dict() == {
        "cars_train/00001.jpg": "train",
        "cars_train/00002.jpg": "train",
        "cars_test/00001.jpg": "test",
    }
    assert kept["listing_id"].tolist() == ["cars_train/00001", "cars_train/00002", "cars_test/00001"]
    assert kept.loc["cars_test/00001.jpg", "path"] == f"{root}/cars_test/00001.jpg"
    assert result.notes["stanford_files"] == ["devkit/cars_train_annos.mat", "devkit/cars_test_annos_withlabels.mat"]


def test_mat_files_in_the_root_and_images_nested_one_level_deeper(tmp_path: Path):
    root = write_stanford(
        tmp_path / "s", train=[(1, 1, 9, 9, 2, "00001.jpg")], test=[(1, 1, 9, 9, 2, "00001.jpg")], devkit=False
    )
    # Some copies unpack to cars_train/cars_train/: the images are found there.
    (root / "cars_train" / "00001.jpg").unlink()
    write_files(root / "cars_train" / "cars_train", ["00001.jpg"])
    result = ingest.ingest("stanford", root)
    assert sorted(result.kept["image_id"]) == ["cars_test/00001.jpg", "cars_train/cars_train/00001.jpg"]
    assert "cars_train/00001" in set(result.kept["listing_id"])


def test_a_single_annotation_loads(tmp_path: Path):
    # squeeze_me would make a 1 x 1 struct a 0-d array; the reader must not depend on the count.
    root = write_stanford(tmp_path / "s", train=[(1, 1, 9, 9, 2, "00001.jpg")], test=[(1, 1, 9, 9, 2, "00001.jpg")])
    assert [r.image_id for r in read_stanford(root).rows] == ["cars_train/00001.jpg", "cars_test/00001.jpg"]


def test_an_unsafe_fname_is_refused(tmp_path: Path):
    root = write_stanford(tmp_path / "s", train=[(1, 1, 9, 9, 2, "00001.jpg"), (1, 1, 9, 9, 2, "../../x.jpg")], test=[])
    rows = {r.image_id: r.reason for r in read_stanford(root).rows}
    assert rows == {"cars_train/00001.jpg": None, "cars_train/../../x.jpg": "unsafe_path"}


def test_missing_or_unreadable_devkit_files_are_clear_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="cars_meta.mat not found"):
        read_stanford(tmp_path)
    root = write_stanford(tmp_path / "s", train=[(1, 1, 9, 9, 2, "00001.jpg")], test=[])
    (root / "devkit" / "cars_train_annos.mat").write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match="cannot be read as a MATLAB file"):
        read_stanford(root)
    scipy.io.savemat(root / "devkit" / "cars_train_annos.mat", {"something": np.zeros(3)})
    with pytest.raises(ValueError, match="holds no `annotations`"):
        read_stanford(root)
    (root / "devkit" / "cars_train_annos.mat").unlink()
    with pytest.raises(FileNotFoundError, match="cars_train_annos.mat not found"):
        read_stanford(root)
