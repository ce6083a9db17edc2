"""Filterset: prepare the car filter's hand-labelled photos for training: list, clean, size and split them.

python -m carvision.stages.filterset   # reads params.yaml (DVC stage `filterset`), writes data/filterset

The photos are a folder tree `<filterset.root>/car/*` and `<filterset.root>/no_car/*`. They go through the same
functions as the scrape (ingest, clean, crop, split) with the same settings, except that nothing filters them
and there are no car boxes: the filter judges whole photos, so it learns on whole photos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from carvision import settings, stage_io
from carvision.atomic import atomic_dir
from carvision.config import load_params
from carvision.manifest import StageResult
from carvision.settings import Settings
from carvision.stages.clean import clean_with
from carvision.stages.crop import crop_with
from carvision.stages.ingest import ingest
from carvision.stages.split import SPLITS, split


def prepare(s: Settings, staging: Path) -> StageResult:
    """All four steps in `staging`; the result's drops carry the step (drop_stage) that made them."""
    listed = ingest("folder", s.filterset.root)
    cleaned = clean_with(listed.kept, s.clean)
    # No boxes here: the filter judges whole photos, so whole photos it learns on.
    cropped = crop_with(cleaned.kept.assign(car_prob=np.nan), staging, s.crop, without_box="keep", method="full")
    result, _ = split(
        cropped.kept,
        fractions={name: getattr(s.split, name) for name in SPLITS},
        min_images_per_class=s.split.min_images_per_class,
        class_merge={},
        near_bits=s.split.group_near_duplicate_bits,
        seed=s.seed,
    )
    dropped = pd.concat([r.dropped for r in (listed, cleaned, cropped, result)], ignore_index=True)
    return StageResult("filterset", listed.rows_in, result.kept, dropped, schema_stage="split")


def main(cfg: DictConfig) -> dict:
    s = settings.parse(cfg)
    out = Path(s.paths.filterset)
    with atomic_dir(out) as staging:
        result = prepare(s, staging)
        stage_io.rebase(result, "crop_path", staging, out)
        report = stage_io.write_stage_data(result, staging, [])
    stage_io.publish_reports(report, result.kept["class_name"], Path(s.paths.reports) / "filterset")
    by_split = result.kept.groupby(["split", "class_name"]).size().to_dict()
    print(f"{stage_io.summary(report)}; images per split and class {by_split}")
    return report


if __name__ == "__main__":
    main(load_params())
