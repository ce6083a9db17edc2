"""Stanford Cars as its devkit ships it (`data: stanford`).

<root>[/devkit]/cars_meta.mat            class_names: 1 x 196 cell of `<make> <model> <year>`
<root>[/devkit]/cars_train_annos.mat     annotations: 1 x N struct of bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, fname
<root>[/devkit]/cars_test_annos_withlabels.mat   the same for the test images (or cars_test_annos.mat, no class)
<root>/cars_train/<fname>, <root>/cars_test/<fname>

`class` counts from 1. Boxes count pixels from 1 and include both ends; the manifest's boxes count from 0 and
exclude the right and bottom end, so [x1, y1, x2, y2] becomes [x1 - 1, y1 - 1, x2, y2]. Each cell is stored in
the smallest integer type that fits it (uint8 or uint16), so values are cast to int64 before any arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carvision.readers.labels import split_class_name
from carvision.readers.records import Found, Row
from carvision.readers.walk import check_file
from carvision.safe_names import is_plain_name

META = "cars_meta.mat"
TRAIN = "cars_train_annos.mat"
TEST_LABELLED = "cars_test_annos_withlabels.mat"
TEST_UNLABELLED = "cars_test_annos.mat"
BOX_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")


def find_devkit_file(root: Path, name: str) -> Path | None:
    """`name` in root or root/devkit (the layout of the devkit archive), or None."""
    return next((p for p in (root / name, root / "devkit" / name) if p.is_file()), None)


def load_mat(path: Path, variable: str) -> np.ndarray:
    """One variable of a .mat file, flattened (MATLAB stores 1 x N)."""
    import scipy.io  # only this source needs scipy; keep it off the other sources' import path

    try:
        data = scipy.io.loadmat(str(path))
    except (scipy.io.matlab.MatReadError, NotImplementedError, ValueError, OSError) as e:  # NotImplemented: v7.3
        raise ValueError(f"{path} cannot be read as a MATLAB file: {e}") from e
    if variable not in data:
        raise ValueError(f"{path} holds no `{variable}` (it holds {sorted(k for k in data if not k.startswith('_'))})")
    return np.asarray(data[variable]).ravel()


def _cell(value: object) -> object:
    """The single value of a MATLAB cell or struct field (loadmat wraps each in a 1 x 1 array), or None if empty."""
    flat = np.asarray(value).ravel()
    return flat[0] if flat.size else None


def _text(value: object) -> str:
    v = _cell(value)
    return "" if v is None else str(v)


def _integers(annotations: np.ndarray, name: str) -> np.ndarray:
    """One integer field of a struct array as int64: a uint8 cell beside a uint16 cell must not wrap around."""
    return np.array([int(v) if (v := _cell(c)) is not None else -1 for c in annotations[name]], dtype=np.int64)


def class_names(root: Path) -> list[str]:
    path = find_devkit_file(root, META)
    if path is None:
        raise FileNotFoundError(f"{META} not found in {root} or {root / 'devkit'}: is data.root a Stanford devkit?")
    return [_text(c) for c in load_mat(path, "class_names")]


def read_annotations(root: Path, path: Path, split: str, names: list[str]) -> tuple[list[Row], int]:
    """The rows of one annotations file, and how many of them have no class (an unlabelled test file)."""
    annotations = load_mat(path, "annotations")
    fields = annotations.dtype.names or ()
    if missing := [f for f in (*BOX_FIELDS, "fname") if f not in fields]:
        raise ValueError(f"{path}: the annotations lack the fields {missing} (they have {list(fields)})")
    folder = f"cars_{split}"
    # Some copies nest the images one level deeper (cars_train/cars_train/...).
    nested = (root / folder / folder).is_dir()
    if nested and len(annotations) and not (root / folder / _text(annotations["fname"][0])).exists():
        folder = f"{folder}/{folder}"
    x1, y1, x2, y2 = (_integers(annotations, f) for f in BOX_FIELDS)
    classes = _integers(annotations, "class") if "class" in fields else None
    rows, unlabelled = [], 0
    for i, cell in enumerate(annotations["fname"]):
        fname = _text(cell)
        image_id = f"{folder}/{fname}"
        row = Row(image_id, f"{root}/{image_id}", f"cars_{split}/{Path(fname).stem}", source_split=split)
        row.bbox = [float(x1[i] - 1), float(y1[i] - 1), float(x2[i]), float(y2[i])]
        rows.append(row)
        if classes is None:
            unlabelled += 1
            row.reason, row.detail = "missing_label", f"{path.name} has no class labels; use {TEST_LABELLED}"
            continue
        if 1 <= classes[i] <= len(names):
            row.make, row.model, row.year = split_class_name(names[classes[i] - 1])
        else:
            row.reason, row.detail = "missing_label", f"class {classes[i]} is not in {META} (1..{len(names)})"
            continue
        if not is_plain_name(fname):
            row.reason, row.detail = "unsafe_path", f"{path.name}: fname {fname!r} is not a plain file name"
        elif problem := check_file(row.path):
            row.reason, row.detail = problem
    return rows, unlabelled


def read_stanford(root: Path) -> Found:
    """One row per annotated image of the train and test sets, each photo its own listing."""
    names = class_names(root)
    train = find_devkit_file(root, TRAIN)
    if train is None:
        raise FileNotFoundError(f"{TRAIN} not found in {root} or {root / 'devkit'}")
    test = find_devkit_file(root, TEST_LABELLED) or find_devkit_file(root, TEST_UNLABELLED)
    rows, _ = read_annotations(root, train, "train", names)
    notes: dict = {"stanford_files": [str(train.relative_to(root))], "stanford_classes": len(names)}
    if test is None:
        notes["stanford_test_set"] = f"none: neither {TEST_LABELLED} nor {TEST_UNLABELLED} found"
    else:
        test_rows, unlabelled = read_annotations(root, test, "test", names)
        rows += test_rows
        notes["stanford_files"].append(str(test.relative_to(root)))
        if unlabelled:
            notes["stanford_test_rows_without_labels"] = unlabelled
    return Found(rows, notes, looked_for=f"the images named in {train.name} under {root / 'cars_train'}")
