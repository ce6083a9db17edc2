"""Sample: generate the embedded raw scrape that the default pipeline runs on.

python -m carvision.stages.sample      # reads params.yaml (DVC stage `sample`), writes data/raw/sample
"""

from __future__ import annotations

from omegaconf import DictConfig

from carvision.config import load_params
from carvision.sample import SampleSpec, generate_sample

OUT_DIR = "data/raw/sample"


def main(cfg: DictConfig) -> dict:
    summary = generate_sample(OUT_DIR, seed=cfg.sample.seed, spec=SampleSpec(n_listings=cfg.sample.listings))
    print(f"sample: {summary['n_images']} photos in {summary['n_listings']} listings under {OUT_DIR}")
    return summary


if __name__ == "__main__":
    main(load_params())
