"""Config: compose the Hydra tree in conf/, and write or read its composition, params.yaml.

python -m carvision.config            # (make params) rewrite params.yaml from conf/
python -m carvision.config --check    # exit 1 when params.yaml has drifted from conf/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from carvision.atomic import write_text

CONF_DIR = Path("conf")
PARAMS_FILE = Path("params.yaml")


def compose(overrides: list[str] | None = None, conf_dir: str | Path = CONF_DIR) -> DictConfig:
    """Composes conf/config.yaml with Hydra `overrides`, the way `dvc exp run -S` does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(Path(conf_dir).resolve()), version_base=None):
        cfg = hydra_compose(config_name="config", overrides=overrides or [])
    OmegaConf.resolve(cfg)
    return cfg


def to_params_yaml(cfg: DictConfig) -> str:
    # The same dump as DVC's compose_and_dump, so `make params` and `dvc exp run -S` write identical files.
    return OmegaConf.to_yaml(cfg)


def load_params(path: str | Path = PARAMS_FILE) -> DictConfig:
    """The config a DVC stage runs with: params.yaml as composed by `make params` or `dvc exp run -S`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make params` to compose it from conf/")
    cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig)
    return cfg


def task_argument(argv: list[str] | None = None) -> str | None:
    """`--task NAME` of a stage command line (train@<task>, evaluate@<task>); None means the config's `task`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", help="one of the config's tasks (make_model, viewpoint, car_filter)")
    return parser.parse_args(argv).task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. imbalance=focal")
    parser.add_argument("--check", action="store_true", help="only compare params.yaml with conf/")
    parser.add_argument("--out", default=str(PARAMS_FILE))
    args = parser.parse_args(argv)
    text = to_params_yaml(compose(args.overrides))
    out = Path(args.out)
    if args.check:
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            print(f"{out} differs from the composition of conf/: run `make params`", file=sys.stderr)
            return 1
        print(f"{out} matches conf/")
        return 0
    write_text(out, text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
