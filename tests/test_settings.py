"""Typed settings (carvision.settings): every shipped option parses, and every kind of bad config fails at start,
naming the key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from carvision import settings
from carvision.config import compose, load_params
from carvision.settings import ConfigError, Settings, TaskSettings
from conftest import CONF, REPO, make_cfg

GROUPS = ("data", "backbone", "imbalance", "trainer")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def parse(overrides: list[str]) -> Settings:
    return settings.parse(compose(overrides, conf_dir=CONF))


def as_dict(section) -> dict:
    return dataclasses.asdict(section)


# --- every shipped option parses -------------------------------------------------------------------------------


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_parses_and_keeps_its_values(group: str, option: str):
    s = parse([f"{group}={option}"])
    # The typed section holds exactly what the file says: nothing dropped, renamed or silently defaulted.
    path = CONF / group / f"{option}.yaml"
    shipped = OmegaConf.to_container(OmegaConf.load(path))
    if path.read_text().startswith("# @package _global_"):  # sets other sections too (data=stanford: split)
        for section, values in shipped.items():
            assert {k: as_dict(getattr(s, section))[k] for k in values} == values
        return
    # Keys that no option sets come from conf/config.yaml's section (data.format, data.packed_uri, ...).
    base = OmegaConf.to_container(OmegaConf.load(CONF / "config.yaml")).get(group, {})
    assert as_dict(getattr(s, group)) == {**base, **shipped}


def test_every_task_file_is_declared_by_the_config():
    # A task file that conf/config.yaml does not list would never be trained by DVC.
    assert set(parse([]).tasks) == set(options("tasks"))


@pytest.mark.parametrize("task", options("tasks"))
def test_every_task_parses_and_can_be_selected(task: str):
    s = parse([f"tasks@tasks.{task}={task}", f"task={task}"])
    shipped = OmegaConf.to_container(OmegaConf.load(CONF / "tasks" / f"{task}.yaml"))
    assert s.current_task.name == task
    assert {k: v for k, v in as_dict(s.current_task).items() if k in shipped} == shipped


def test_params_yaml_parses():
    # params.yaml is what every DVC stage reads.
    s = settings.parse(load_params(REPO / "params.yaml"))
    assert set(s.tasks) == set(options("tasks"))


def test_settings_are_typed():
    s = parse(["train.lr=1", "trainer.devices=[0,1]"])
    assert s.train.lr == 1.0 and isinstance(s.train.lr, float)  # an int where a float is expected is widened
    assert s.trainer.devices == [0, 1]
    assert isinstance(s.tasks["make_model"], TaskSettings)


# --- misspelled keys -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "bad", "good"),
    [
        ("+clean.min_sid=3", "clean.min_sid", "clean.min_side"),
        ("+train.epocs=3", "train.epocs", "train.epochs"),
        ("+tasks.make_model.monitr=top1", "tasks.make_model.monitr", "tasks.make_model.monitor"),
        ("+sead=1", "sead", "seed"),
    ],
)
def test_misspelled_override_names_the_key_and_suggests_the_right_one(override: str, bad: str, good: str):
    with pytest.raises(ConfigError) as e:
        parse([override])
    assert str(e.value).startswith(f"{bad}: unknown key")
    assert f"did you mean {good}?" in str(e.value)


def test_misspelled_key_in_a_dict_names_the_full_dotted_key():
    data = OmegaConf.to_container(compose(conf_dir=CONF), resolve=True)
    data["tasks"]["viewpoint"]["lable_column"] = data["tasks"]["viewpoint"].pop("label_column")
    with pytest.raises(ConfigError, match=r"^tasks\.viewpoint\.lable_column: unknown key") as e:
        settings.parse(data)
    assert "did you mean tasks.viewpoint.label_column?" in str(e.value)


def test_unknown_key_without_a_close_match_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"^clean\.zzzz: unknown key; known keys: .*'min_side'"):
        parse(["+clean.zzzz=1"])


# --- wrong types and values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("clean.min_side=abc", "clean.min_side"),
        ("clean.min_side=true", "clean.min_side"),  # a bool is not an int, although Python says it is
        ("backbone.img_size=1.5", "backbone.img_size"),
        ("backbone.pretrained=maybe", "backbone.pretrained"),
        ("backbone.pretrained=1", "backbone.pretrained"),
        ("train.lr=fast", "train.lr"),
        ("trainer.devices=[0,x]", "trainer.devices"),
        ("+split.class_merge.a=1", "split.class_merge.a"),
        ("tasks.make_model.gate.top1=high", "tasks.make_model.gate.top1"),
    ],
)
def test_wrong_type_names_the_key(override: str, key: str):
    with pytest.raises(ConfigError, match=rf"^{key}: expected"):
        parse([override])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("crop.without_box=sometimes", "crop.without_box"),
        ("imbalance.strategy=smote", "imbalance.strategy"),
        ("data.source=web", "data.source"),
        ("tasks.car_filter.dataset=scrap", "tasks.car_filter.dataset"),
    ],
)
def test_value_outside_its_literal_names_the_key_and_the_choices(override: str, key: str):
    with pytest.raises(ConfigError, match=rf"^{key}: must be one of \[") as e:
        parse([override])
    assert repr(override.split("=")[1]) in str(e.value)


def test_a_section_given_as_a_scalar_fails():
    with pytest.raises(ConfigError, match=r"^clean: expected a section"):
        parse(["clean=3"])


# --- tasks -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "task", "metric"),
    [
        ("+tasks.make_model.gate.accuracy=0.5", "make_model", "accuracy"),
        ("+tasks.make_model.gate.precision=0.5", "make_model", "precision"),  # no positive class to measure
        ("+tasks.car_filter.gate.top5=0.5", "car_filter", "top5"),  # 2 classes: top-5 is always 1
        ("+tasks.viewpoint.gate.top5=0.5", "viewpoint", "top5"),  # 5 classes: the same
        ("tasks.viewpoint.monitor=top5", "viewpoint", "top5"),
    ],
)
def test_gate_or_monitor_naming_a_metric_the_task_cannot_have_fails(override: str, task: str, metric: str):
    with pytest.raises(ConfigError, match=rf"^tasks\.{task}\b.*'{metric}' is not one of"):
        parse([override])


def test_top5_gate_is_allowed_when_the_classes_come_from_the_data():
    # make_model's classes are null (every label of the data): more than 5 is possible, so top5 may be gated.
    assert parse(["tasks.make_model.gate.top5=0.5"]).tasks["make_model"].gate["top5"] == 0.5


def test_unknown_task_fails_naming_the_declared_ones():
    with pytest.raises(ConfigError, match=r"^task: unknown task 'nope'.*'car_filter', 'make_model', 'viewpoint'"):
        parse(["task=nope"])
    s = parse([])
    with pytest.raises(ConfigError, match="nope"):
        settings.task_named(s, "nope")


@pytest.mark.parametrize("key", ["registry_name", "gate", "label_column", "dataset", "name"])
def test_missing_required_task_key_fails(key: str):
    with pytest.raises(ConfigError, match=rf"^tasks\.make_model\.{key}: missing required key"):
        parse([f"~tasks.make_model.{key}"])


def test_task_name_must_equal_its_key():
    with pytest.raises(ConfigError, match=r"^tasks\.make_model\.name: is 'cars', must equal its key"):
        parse(["tasks.make_model.name=cars"])


def test_positive_class_must_be_one_of_the_classes():
    with pytest.raises(ConfigError, match=r"^tasks\.car_filter\.positive_class: 'truck'"):
        parse(["tasks.car_filter.positive_class=truck"])


# --- documentation ---------------------------------------------------------------------------------------------


def _fields(cls: type, prefix: str = "") -> list[tuple[str, str]]:
    """(indented name, doc) of every field, sections expanded: what the printed docs must cover."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        out.append((prefix + f.name, f.metadata.get("doc", "")))
        if dataclasses.is_dataclass(hints[f.name]):
            out += _fields(hints[f.name], prefix + "  ")
    return out


def test_module_prints_one_documented_line_per_field():
    run = subprocess.run(
        [sys.executable, "-m", "carvision.settings"], capture_output=True, text=True, timeout=60, check=True
    )
    lines = run.stdout.splitlines()
    expected = _fields(Settings) + _fields(TaskSettings, "  ")
    # One line per field plus the header that introduces the task fields.
    assert len(lines) == len(expected) + 1
    for name, text in expected:
        assert text, f"{name.strip()} has no doc"
        assert any(line.startswith(f"{name}:") and line.endswith(f"# {text}") for line in lines), name
    assert "min_side: int = 32  # " in run.stdout  # type and default are shown too


# --- stages check the config before doing anything --------------------------------------------------------------


def _stage_mains():
    from carvision.stages import clean, crop, evaluate, filter, filterset, ingest, split, train

    return {
        "ingest": ingest.main,
        "clean": clean.main,
        "filter": filter.main,
        "crop": crop.main,
        "split": split.main,
        "filterset": filterset.main,
        "train": lambda cfg: train.main(cfg, "make_model"),
        "evaluate": lambda cfg: evaluate.main(cfg, "make_model"),
    }


@pytest.mark.parametrize("stage", ["ingest", "clean", "filter", "crop", "split", "filterset", "train", "evaluate"])
def test_stage_fails_at_start_on_a_misspelled_key(stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # a stage that wrote to a default relative path would write here
    cfg = make_cfg(tmp_path / "out", ["+train.epocs=3"])
    with pytest.raises(ConfigError, match=r"train\.epocs: unknown key; did you mean train\.epochs\?"):
        _stage_mains()[stage](cfg)
    assert list(tmp_path.rglob("*")) == [], "the stage wrote something before checking its config"


def test_sample_stage_fails_at_start_on_a_misspelled_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from carvision.stages import sample

    def must_not_run(*args, **kwargs):
        raise AssertionError("the sample stage started generating before checking its config")

    # Generating the full sample takes ~30 s; with a bad config it must not start at all.
    monkeypatch.setattr(sample, "generate_sample", must_not_run)
    monkeypatch.setattr(sample, "generate_filter_set", must_not_run)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"sample\.listngs: unknown key; did you mean sample\.listings\?"):
        sample.main(make_cfg(tmp_path / "out", ["+sample.listngs=5"]))
