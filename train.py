"""python train.py -m backbone=effnet_b2,resnet152 imbalance=none,focal

Trains (and evaluates, and registers when the gate passes) one model per Hydra job, composing conf/.
The DVC pipeline runs the stage modules on params.yaml instead: see dvc.yaml.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> float | None:
    from carvision.experiment import run_job

    return run_job(cfg)


if __name__ == "__main__":
    main()
