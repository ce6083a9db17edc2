"""The filter stage with the trained tiny car filter: what it drops and why, its report against the sample's
truth, and what it does without a model or with a model that is not a car filter."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from carvision import manifest
from carvision.stages import filter
from conftest import reuse_prepared


def clean_rows(cfg) -> pd.DataFrame:
    return manifest.read(Path(cfg.paths.clean) / "manifest.parquet", stage="clean")


@pytest.fixture(scope="module")
def car_filter(trained_tasks):
    return filter.load_filter(str(Path(trained_tasks.paths.models) / "car_filter" / "model.ckpt"), "", 64)


@pytest.fixture(scope="module")
def scored(trained_tasks, car_filter) -> tuple[pd.DataFrame, dict[str, float], float]:
    """(the cleaned photos, each one's car probability by image_id, a threshold that splits them in two)."""
    df = clean_rows(trained_tasks)
    # As the stage scores them: the raw photos, decoded reduced.
    probs = car_filter.probs_paths(df["path"].tolist(), min_side=2 * car_filter.preprocess.size)
    probs = probs[:, car_filter.positive_index].numpy()
    # The tiny model is not a good filter; the median makes sure that the threshold keeps some photos and drops some.
    threshold = float(np.median(probs))
    assert probs.min() < threshold <= probs.max()
    return df, dict(zip(df["image_id"], probs.astype(float), strict=True)), threshold


def test_rows_below_the_threshold_are_dropped_with_their_score(car_filter, scored):
    df, prob, threshold = scored
    r = filter.filter_photos(df, car_filter, threshold)
    r.check(list(df.columns))  # the contract: counts reconcile, no input column lost, the schema holds
    assert r.rows_in == len(df) == len(r.kept) + len(r.dropped)
    assert len(r.kept) > 0 and len(r.dropped) > 0
    assert sorted(r.kept["image_id"].tolist() + r.dropped["image_id"].tolist()) == sorted(df["image_id"])

    # The car probability is the model's, in a new column of kept and dropped rows alike.
    for frame in (r.kept, r.dropped):
        assert frame["car_prob"].to_numpy() == pytest.approx([prob[i] for i in frame["image_id"]], abs=1e-6)
    assert (r.kept["car_prob"] >= threshold).all()
    assert (r.dropped["car_prob"] < threshold).all()
    assert set(r.dropped["drop_reason"]) == {"not_a_car_photo"}
    assert set(r.dropped["drop_stage"]) == {"filter"}
    for p, detail in zip(r.dropped["car_prob"], r.dropped["drop_detail"], strict=True):
        assert detail == f"car_prob {p:.3f} < {threshold}"
    assert r.report()["dropped_by_reason"] == {"not_a_car_photo": len(r.dropped)}


@pytest.mark.parametrize(("threshold", "kept"), [(0.0, "all"), (1.01, "none")])
def test_threshold_0_keeps_every_photo_and_above_1_drops_every_photo(car_filter, scored, threshold, kept):
    df, _, _ = scored
    r = filter.filter_photos(df, car_filter, threshold)
    r.check(list(df.columns))
    assert len(r.kept) == (len(df) if kept == "all" else 0)
    assert len(r.dropped) == len(df) - len(r.kept)
    assert r.kept["car_prob"].notna().all() and r.dropped["car_prob"].notna().all()


def test_no_model_passes_every_photo_with_nan_car_prob(prepared, tmp_path: Path):
    cfg = reuse_prepared(prepared, tmp_path, ["filter.model=none"])
    cfg.paths.filter = str(tmp_path / "data" / "filter")  # the session's prepared data stays untouched
    report = filter.main(cfg)
    rows_in = len(clean_rows(cfg))
    assert report["rows_in"] == report["rows_kept"] == rows_in and report["rows_dropped"] == 0
    assert report["model"].startswith("none")
    assert "truth" not in report  # nothing was scored, so there is nothing to compare with the truth
    kept = manifest.read(Path(cfg.paths.filter) / "manifest.parquet", stage="filter")
    assert len(kept) == rows_in and kept["car_prob"].isna().all()
    reports = Path(cfg.paths.reports) / "filter"
    assert json.loads((reports / "report.json").read_text()) == report
    assert not (reports / "car_prob.png").exists()


@pytest.mark.parametrize("task", ["make_model", "viewpoint"])
def test_a_model_that_is_not_a_car_filter_is_refused(trained_tasks, task, tmp_path: Path):
    path = str(Path(trained_tasks.paths.models) / task / "model.ckpt")
    with pytest.raises(ValueError, match=rf"is a '{task}' model with no positive class, not a car filter"):
        filter.load_filter(path, "", 64)
    # The stage refuses it before writing anything.
    cfg = trained_tasks.copy()
    cfg.filter.model = path
    cfg.paths.filter, cfg.paths.reports = str(tmp_path / "filter"), str(tmp_path / "reports")
    with pytest.raises(ValueError, match="not a car filter"):
        filter.main(cfg)
    assert list(tmp_path.iterdir()) == []


def test_none_and_the_registry_name_the_filter(trained_tasks):
    assert filter.load_filter("none", "", 64) is None
    assert filter.load_filter(" None ", "", 64) is None
    champion = filter.load_filter("models:/car-filter@champion", trained_tasks.mlflow.tracking_uri, 64)
    assert champion.task == "car_filter" and champion.class_names[champion.positive_index] == "car"


# --- the stage, against the sample's truth -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def filter_run(trained_tasks, scored, tmp_path_factory) -> tuple[object, dict]:
    _, _, threshold = scored
    root = tmp_path_factory.mktemp("filter")
    cfg = trained_tasks.copy()
    cfg.filter.model = str(Path(trained_tasks.paths.models) / "car_filter" / "model.ckpt")
    cfg.filter.threshold = threshold
    cfg.paths.filter, cfg.paths.reports = str(root / "data" / "filter"), str(root / "reports")
    return cfg, filter.main(cfg)


def test_stage_report_reconciles_with_its_manifests(filter_run):
    cfg, report = filter_run
    kept = manifest.read(Path(cfg.paths.filter) / "manifest.parquet", stage="filter")
    dropped = pd.read_parquet(Path(cfg.paths.filter) / "dropped.parquet")
    assert report["rows_in"] == len(kept) + len(dropped) == len(clean_rows(cfg))
    assert report["rows_kept"] == len(kept) > 0 and report["rows_dropped"] == len(dropped) > 0
    assert (kept["car_prob"] >= cfg.filter.threshold).all() and (dropped["car_prob"] < cfg.filter.threshold).all()
    assert report["threshold"] == cfg.filter.threshold
    assert report["model"]["task"] == "car_filter" and report["model"]["source"] == cfg.filter.model
    assert json.loads((Path(cfg.paths.reports) / "filter" / "report.json").read_text()) == report
    with Image.open(Path(cfg.paths.reports) / "filter" / "car_prob.png") as im:
        assert im.format == "PNG" and im.size[0] > 100


def test_truth_check_counts_agree_with_the_truth_file(filter_run):
    cfg, report = filter_run
    truth = report["truth"]
    assert Path(truth["truth_file"]) == Path(cfg.data.root) / "truth.csv"
    # Recount from the truth file and the stage's own outputs.
    table = pd.read_csv(Path(cfg.data.root) / "truth.csv", dtype=str, keep_default_na=False)
    kind = dict(zip(table["ad_id"] + "/" + table["file"], table["kind"], strict=True))
    kept = pd.read_parquet(Path(cfg.paths.filter) / "manifest.parquet")["image_id"].map(kind)
    dropped = pd.read_parquet(Path(cfg.paths.filter) / "dropped.parquet")["image_id"].map(kind)
    assert kept.notna().all() and dropped.notna().all()  # every scraped photo has a truth row
    assert truth["car_photos"] == (kept == "car").sum() + (dropped == "car").sum()
    assert truth["non_car_photos"] == (kept != "car").sum() + (dropped != "car").sum()
    assert truth["car_photos"] + truth["non_car_photos"] == report["rows_in"]
    assert truth["car_photos_dropped"] + truth["non_car_photos_dropped"] == report["rows_dropped"]
    assert truth["car_photos"] > 0 and truth["non_car_photos"] > 0  # the sample holds both
    for share in ("car_photos_dropped_share", "non_car_photos_dropped_share"):
        assert 0 <= truth[share] <= 1
    assert truth["car_photos_dropped_share"] == pytest.approx(truth["car_photos_dropped"] / truth["car_photos"])
    assert truth["non_car_photos_dropped_share"] == pytest.approx(
        truth["non_car_photos_dropped"] / truth["non_car_photos"]
    )
    by_kind = truth["kept_non_car_by_kind"]
    assert sum(by_kind.values()) == truth["non_car_photos"] - truth["non_car_photos_dropped"]
    assert by_kind == kept[kept != "car"].value_counts().to_dict()


def test_without_a_truth_file_there_is_no_truth(tmp_path: Path):
    assert filter.truth_kinds(tmp_path / "truth.csv") is None


def test_filter_of_no_rows_is_empty(car_filter, scored):
    df, _, _ = scored
    r = filter.filter_photos(df.head(0), car_filter, 0.5)
    assert r.rows_in == 0 and r.kept.empty and "car_prob" in r.kept.columns
    assert all(math.isnan(v) for v in r.kept["car_prob"])
