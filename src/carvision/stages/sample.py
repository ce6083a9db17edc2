"""Sample: generate the embedded raw scrape that the default pipeline runs on, and the labelled car filter set.

python -m carvision.stages.sample      # reads params.yaml (DVC stage `sample`), writes data/raw/sample{,-filter}
"""

from __future__ import annotations

from omegaconf import DictConfig

from carvision import settings
from carvision.config import load_params
from carvision.sample import SampleSpec, generate_filter_set, generate_sample

OUT_DIR = "data/raw/sample"
FILTER_SET_DIR = "data/raw/sample-filter"


def main(cfg: DictConfig) -> dict:
    """Writes both folders; returns their summaries as {"scrape": ..., "filter_set": ...}."""
    c = settings.parse(cfg).sample
    scrape = generate_sample(OUT_DIR, seed=c.seed, spec=SampleSpec(n_listings=c.listings))
    filter_set = generate_filter_set(FILTER_SET_DIR, seed=c.seed, n_car=c.filter_photos, n_no_car=c.filter_photos)
    print(f"sample: {scrape['n_images']} photos in {scrape['n_listings']} listings under {OUT_DIR}")
    print(f"sample: {filter_set['by_label']} labelled photos under {FILTER_SET_DIR}")
    return {"scrape": scrape, "filter_set": filter_set}


if __name__ == "__main__":
    main(load_params())
