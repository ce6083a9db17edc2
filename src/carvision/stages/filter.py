"""Filter: score every cleaned photo with the car-filter model and drop those that do not show a car.

python -m carvision.stages.filter      # reads params.yaml (DVC stage `filter`), writes data/filter

Interiors, dashboards, wheels, engine bays, adverts and documents are about half of a real marketplace scrape;
without this stage each one becomes a make/model training image labelled with its listing's car.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from carvision import manifest, settings, stage_io
from carvision.config import load_params
from carvision.manifest import StageResult

if TYPE_CHECKING:
    from carvision.inference import Predictor

REASON = "not_a_car_photo"


def load_filter(model: str, tracking_uri: str, batch_size: int) -> Predictor | None:
    """The car-filter model that `filter.model` names, or None for `none`."""
    if model.strip().lower() == "none":
        return None
    from carvision.inference import Predictor  # torch and timm: ~10 s of imports, only when there is a model

    predictor = Predictor.load(model, tracking_uri=tracking_uri, batch_size=batch_size)
    if predictor.positive_index is None:
        raise ValueError(f"filter.model {model} is a '{predictor.task}' model with no positive class, not a car filter")
    return predictor


def filter_photos(df: pd.DataFrame, predictor: Predictor | None, threshold: float) -> StageResult:
    """Adds `car_prob` and drops the photos whose car probability is below `threshold` (all pass without a model)."""
    df = df.reset_index(drop=True).copy()
    if predictor is None or df.empty:
        df["car_prob"] = np.nan
        return StageResult("filter", len(df), df, manifest.empty_dropped(df))
    # The raw photos, decoded reduced: the model sees a few dozen px, so a 12 MP decode would be wasted work.
    probs = predictor.probs_paths(
        df["path"].tolist(), progress="filter", min_side=2 * predictor.preprocess.size, skip_errors=True
    )[:, predictor.positive_index].numpy()
    df["car_prob"] = probs.astype("float64")
    unreadable = np.isnan(probs)  # verified by clean, but gone or changed since
    below = ~unreadable & (probs < threshold)
    reason = pd.Series(np.select([unreadable, below], ["unreadable_at_filter", REASON], None), index=df.index)
    detail = pd.Series([f"car_prob {p:.3f} < {threshold}" if b else "" for p, b in zip(probs, below, strict=True)])
    dropped = manifest.drop_rows(df, "filter", reason.astype(object), detail)
    return StageResult("filter", len(df), df.loc[reason.isna()].copy(), dropped)


def truth_kinds(truth_file: Path) -> dict[str, str] | None:
    """image_id -> kind (car, interior, ad, ...) from a ground-truth table such as the generated sample's truth.csv
    (ad_id, file, kind); None when there is no such file."""
    if not truth_file.is_file():
        return None
    truth = pd.read_csv(truth_file, dtype=str, keep_default_na=False)
    return dict(zip(truth["ad_id"] + "/" + truth["file"], truth["kind"], strict=True))


def truth_check(result: StageResult, kind: dict[str, str], truth_file: Path) -> dict:
    """Against the ground truth, the share of non-car and of car photos that the filter dropped."""
    seen = pd.concat([result.kept["image_id"], result.dropped["image_id"]]).map(kind)
    dropped = result.dropped["image_id"].map(kind)
    n_car, n_other = int((seen == "car").sum()), int((seen.notna() & (seen != "car")).sum())
    d_car, d_other = int((dropped == "car").sum()), int((dropped.notna() & (dropped != "car")).sum())
    return {
        "truth_file": str(truth_file),
        "car_photos": n_car,
        "car_photos_dropped": d_car,
        "car_photos_dropped_share": d_car / n_car if n_car else math.nan,
        "non_car_photos": n_other,
        "non_car_photos_dropped": d_other,
        "non_car_photos_dropped_share": d_other / n_other if n_other else math.nan,
        "kept_non_car_by_kind": result.kept["image_id"]
        .map(kind)
        .loc[lambda k: k.notna() & (k != "car")]
        .value_counts()
        .to_dict(),
    }


def plot_scores(result: StageResult, threshold: float, kinds: dict[str, str] | None, path: Path) -> None:
    """Histogram of car probabilities (by true kind when the truth is known), with the threshold."""
    from carvision.reports import plt, save_png

    scored = pd.concat([result.kept, result.dropped])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.linspace(0, 1, 41)
    if kinds is not None:
        kind = scored["image_id"].map(kinds)
        ax.hist(scored.loc[kind == "car", "car_prob"], bins=bins, alpha=0.7, label="car (truth)", color="#3b6ea5")
        ax.hist(scored.loc[kind != "car", "car_prob"], bins=bins, alpha=0.7, label="not a car (truth)", color="#c0504d")
        ax.legend()
    else:
        ax.hist(scored["car_prob"], bins=bins, color="#3b6ea5")
    ax.axvline(threshold, color="black", linestyle="--")
    ax.set_xlabel("car probability")
    ax.set_ylabel("photos")
    ax.set_title(f"filter: car probability of every photo (threshold {threshold})")
    save_png(fig, path)


def main(cfg: DictConfig) -> dict:
    s = settings.parse(cfg)
    df = manifest.read(Path(s.paths.clean) / "manifest.parquet", stage="clean")
    predictor = load_filter(s.filter.model, s.mlflow.tracking_uri, s.filter.batch_size)
    result = filter_photos(df, predictor, s.filter.threshold)
    reports_dir = Path(s.paths.reports) / "filter"
    truth_file = Path(s.data.root) / "truth.csv"
    extra = {
        "model": "none: every photo passed unscored" if predictor is None else predictor.describe(),
        "threshold": s.filter.threshold,
    }
    kinds = truth_kinds(truth_file) if predictor is not None else None
    if kinds is not None:
        extra["truth"] = truth = truth_check(result, kinds, truth_file)
        print(
            f"filter: against {truth_file}, dropped {truth['non_car_photos_dropped_share']:.1%} of "
            f"{truth['non_car_photos']} non-car photos and {truth['car_photos_dropped_share']:.1%} of "
            f"{truth['car_photos']} car photos"
        )
    report = stage_io.save_stage(result, s.paths.filter, reports_dir, list(df.columns), "label", extra)
    if predictor is not None:
        plot_scores(result, s.filter.threshold, kinds, reports_dir / "car_prob.png")
    print(stage_io.summary(report) + ("" if predictor else " (filter.model: none, nothing scored)"))
    return report


if __name__ == "__main__":
    main(load_params())
