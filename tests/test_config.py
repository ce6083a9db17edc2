"""The config tree: params.yaml stays the composition of conf/, and every shipped option fits its consumer."""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning as L
import pytest
import timm
from omegaconf import OmegaConf

from carvision.config import compose, main, to_params_yaml
from carvision.training.losses import STRATEGIES
from conftest import CONF, REPO


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_params_yaml_is_the_composition_of_conf():
    committed = (REPO / "params.yaml").read_text(encoding="utf-8")
    assert committed == to_params_yaml(compose(conf_dir=CONF)), "params.yaml drifted from conf/: run `make params`"


def test_dvc_writes_the_same_params_yaml_as_make_params(tmp_path: Path):
    from dvc.utils.hydra import compose_and_dump

    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(CONF), None, "config", str(tmp_path), ["imbalance=focal"])
    assert out.read_text() == to_params_yaml(compose(["imbalance=focal"], conf_dir=CONF))
    assert OmegaConf.load(out).imbalance.strategy == "focal"


def test_check_mode_detects_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(REPO)
    stale = tmp_path / "params.yaml"
    stale.write_text(to_params_yaml(compose(["train.epochs=99"], conf_dir=CONF)))
    assert main(["--check", "--out", str(stale)]) == 1
    assert main(["--out", str(stale)]) == 0
    assert main(["--check", "--out", str(stale)]) == 0


def test_required_group_options_ship():
    assert {"effnet_b2", "effnet_b3", "resnet50", "resnet152", "convnext_tiny", "mobilenetv3", "tiny"} <= set(
        options("backbone")
    )
    assert set(options("imbalance")) == set(STRATEGIES)  # every strategy ships, and only those
    assert {"cpu", "gpu", "ddp"} <= set(options("trainer"))


@pytest.mark.parametrize("backbone", options("backbone"))
def test_every_backbone_is_a_timm_model(backbone: str):
    b = compose([f"backbone={backbone}"], conf_dir=CONF).backbone
    assert b.name in timm.list_models(), f"{backbone}: timm has no model '{b.name}'"
    # null: the model's pretrained config (timm) gives the size; an override is a plausible one
    assert b.img_size is None or (isinstance(b.img_size, int) and 16 <= b.img_size <= 1024)
    assert isinstance(b.pretrained, bool)


@pytest.mark.parametrize("imbalance", options("imbalance"))
def test_every_imbalance_strategy_is_known(imbalance: str):
    assert compose([f"imbalance={imbalance}"], conf_dir=CONF).imbalance.strategy in STRATEGIES


@pytest.mark.parametrize("trainer", options("trainer"))
def test_every_trainer_option_is_lightning_trainer_arguments(trainer: str):
    accepted = set(inspect.signature(L.Trainer.__init__).parameters)
    keys = set(compose([f"trainer={trainer}"], conf_dir=CONF).trainer)
    assert keys <= accepted, f"trainer={trainer} has keys L.Trainer does not take: {keys - accepted}"


@pytest.mark.parametrize("data", options("data"))
def test_every_data_option_is_an_ingest_source(data: str):
    from carvision.readers import SOURCES

    assert compose([f"data={data}"], conf_dir=CONF).data.source in SOURCES


def test_conf_has_no_interpolations_outside_hydras_own_settings():
    # DVC cannot resolve ${hydra:...}, and dvc.yaml templating reads params.yaml values literally. conf/hydra/ holds
    # Hydra's own settings (the SLURM launcher sizes its jobs from ${trainer.devices}): params.yaml never has them,
    # and only `train.py -m` reads them.
    for f in CONF.rglob("*.yaml"):
        if f.is_relative_to(CONF / "hydra"):
            continue
        values = [line.split("#", 1)[0] for line in f.read_text().splitlines()]
        assert not any("${" in v for v in values), f"{f} uses an interpolation"
