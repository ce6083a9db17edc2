"""The gate's arithmetic, and champion moves in a real MLflow sqlite registry: once per weights, on the same test
split, re-scoring the champion when the split changed, every move recorded."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import mlflow
import pytest
from mlflow import MlflowClient

from carvision.registry import Gate, alias_moves, register, resolve_version, stored_scores
from carvision.tracking import connect

RANK_BY = ["top1", "top5"]
_NAMES = itertools.count()


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input


# --- Gate -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top1", "top5", "passes"),
    [(0.80, 0.95, True), (0.95, 0.99, True), (0.799, 0.99, False), (0.9, 0.949, False), (math.nan, 1.0, False)],
)
def test_gate_thresholds_are_inclusive_and_nan_fails(top1, top5, passes):
    assert (Gate({"top1": 0.80, "top5": 0.95}).failures({"top1": top1, "top5": top5}) == []) is passes


def test_gate_failures_say_why():
    gate = Gate({"precision": 0.95, "recall": 0.95, "top1": 0.5})
    failures = gate.failures({"precision": 0.9, "recall": math.nan})
    assert len(failures) == 3
    assert "precision 0.9000 < 0.95" in failures
    assert any(f.startswith("recall nan") for f in failures)
    assert "top1 was not measured" in failures  # a missing metric fails, it is not skipped


def test_gate_ignores_metrics_it_does_not_name():
    assert Gate({"top1": 0.5}).failures({"top1": 0.5, "top5": 0.0, "macro_f1": math.nan}) == []


# --- register -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """(URI of a sqlite store shared by this module's tests, a real logged model's URI, its run id)."""
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = connect(uri)
    exp = client.create_experiment("gate", artifact_location=(root / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        # A real logged model, the smallest there is, so the registry has a true source to point at.
        info = mlflow.pyfunc.log_model(name="model", python_model=_Echo(), pip_requirements=[])
    return uri, info.model_uri, run.info.run_id


@dataclass
class Registry:
    client: MlflowClient
    model_uri: str
    run_id: str
    name: str  # a registered model of this test's own: the tests share one store, not one model


@pytest.fixture
def registry(store) -> Registry:
    uri, model_uri, run_id = store
    return Registry(connect(uri), model_uri, run_id, f"m{next(_NAMES)}")


def _register(r: Registry, weights: str, top1: float, top5: float = 0.99, test: str = "split-a", rescore=None):
    return register(
        r.client,
        name=r.name,
        model_uri=r.model_uri,
        run_id=r.run_id,
        weights_sha256=weights,
        scores={"top1": top1, "top5": top5, "macro_f1": 0.5},
        rank_by=RANK_BY,
        test_sha256=test,
        tags={"git_commit": "abc"},
        description="a test model",
        rescore=rescore,
    )


def _champion(r: Registry):
    return str(r.client.get_model_version_by_alias(r.name, "champion").version)


def test_first_version_becomes_champion_with_its_provenance(registry):
    client, name = registry.client, registry.name
    reg = _register(registry, "w1", 0.85, 0.96)
    assert reg.created and reg.champion and _champion(registry) == reg.version
    mv = client.get_model_version(name, reg.version)
    assert mv.tags["weights_sha256"] == "w1" and mv.tags["test_data_sha256"] == "split-a"
    assert mv.tags["git_commit"] == "abc"
    assert stored_scores(mv) == pytest.approx({"top1": 0.85, "top5": 0.96, "macro_f1": 0.5})
    assert "no champion yet" in mv.tags["champion_decision"]
    assert client.get_registered_model(name).description == "a test model"


def test_same_weights_are_not_registered_twice(registry):
    client, name = registry.client, registry.name
    first = _register(registry, "w1", 0.85)
    again = _register(registry, "w1", 0.99)  # better numbers, same weights (another clone, another split): one model
    assert not again.created and not again.champion and again.version == first.version
    assert len(client.search_model_versions(f"name='{name}'")) == 1
    assert len(alias_moves(client, name)) == 1


def test_on_the_same_split_only_a_better_challenger_takes_the_alias(registry):
    client, name = registry.client, registry.name
    v1 = _register(registry, "w1", 0.85, 0.96)
    worse = _register(registry, "w2", 0.82, 0.99)  # top1 ranks first: a better top5 does not make up for it
    assert worse.created and not worse.champion and _champion(registry) == v1.version
    tie = _register(registry, "w3", 0.85, 0.96)  # equal is not better: the champion stays
    assert not tie.champion and _champion(registry) == v1.version
    better = _register(registry, "w4", 0.85, 0.97)  # equal top1, better top5: the tie breaks on the next metric
    assert better.champion and _champion(registry) == better.version
    assert "stays on version" in client.get_model_version(name, worse.version).tags["champion_decision"]
    assert len(client.search_model_versions(f"name='{name}'")) == 4

    moves = alias_moves(client, name)
    # The records hold versions as strings, as MLflow's URIs and aliases do.
    assert [(m["from_version"], m["to_version"]) for m in moves] == [
        (None, str(v1.version)),
        (str(v1.version), str(better.version)),
    ]
    last = moves[-1]
    assert last["test_data_sha256"] == "split-a" and last["champion_rescored"] is False
    assert last["challenger_scores"]["top5"] == 0.97
    assert last["champion_scores"] == pytest.approx({"top1": 0.85, "top5": 0.96, "macro_f1": 0.5})


class _Rescore:
    """The rescore callback: returns the champion's numbers on the new split, and records whom it was asked."""

    def __init__(self, top1: float) -> None:
        self.top1, self.calls = top1, []

    def __call__(self, mv) -> dict[str, float]:
        self.calls.append(str(mv.version))
        return {"top1": self.top1, "top5": 0.99}


def test_on_another_split_a_challenger_worse_than_the_old_score_but_better_than_the_rescored_one_wins(registry):
    client, name = registry.client, registry.name
    v1 = _register(registry, "w1", 0.85)
    rescore = _Rescore(0.75)  # the champion does worse on the new split
    v2 = _register(registry, "w2", 0.80, test="split-b", rescore=rescore)
    assert rescore.calls == [v1.version]
    assert v2.champion and _champion(registry) == v2.version
    move = alias_moves(client, name)[-1]
    assert (move["from_version"], move["to_version"]) == (str(v1.version), str(v2.version))
    assert move["test_data_sha256"] == "split-b"
    assert move["champion_rescored"] is True
    assert move["champion_scores"]["top1"] == 0.75
    assert move["challenger_scores"]["top1"] == 0.80
    assert "re-scored" in client.get_model_version(name, v2.version).tags["champion_decision"]


def test_on_another_split_a_challenger_better_than_the_old_score_but_worse_than_the_rescored_one_loses(registry):
    client, name = registry.client, registry.name
    v1 = _register(registry, "w1", 0.80)
    rescore = _Rescore(0.90)  # the champion does better on the new split
    v2 = _register(registry, "w2", 0.85, test="split-b", rescore=rescore)
    assert rescore.calls == [v1.version]
    assert not v2.champion and _champion(registry) == v1.version
    assert len(alias_moves(client, name)) == 1
    decision = client.get_model_version(name, v2.version).tags["champion_decision"]
    assert "stays on version" in decision and "0.9000" in decision


def test_on_the_same_split_the_champion_is_not_rescored(registry):
    _register(registry, "w1", 0.80)
    rescore = _Rescore(0.0)
    v2 = _register(registry, "w2", 0.85, rescore=rescore)
    assert rescore.calls == [] and v2.champion


def test_on_another_split_without_rescore_the_champion_stays(registry):
    v1 = _register(registry, "w1", 0.50)
    v2 = _register(registry, "w2", 0.99, test="split-b")  # looks better, but was measured on other photos
    assert v2.created and not v2.champion and _champion(registry) == v1.version
    assert "cannot be re-scored" in v2.notes[0]


# --- resolve_version ------------------------------------------------------------------------------------------


def test_resolve_version_by_alias_and_by_number(registry):
    client, name = registry.client, registry.name
    v1 = _register(registry, "w1", 0.85)
    v2 = _register(registry, "w2", 0.80)
    assert str(resolve_version(client, f"models:/{name}@champion").version) == v1.version
    assert str(resolve_version(client, f"models:/{name}/{v2.version}").version) == v2.version


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        ("models:/{name}@staging", LookupError, "no version of '{name}' holds alias 'staging'"),
        ("models:/nope@champion", LookupError, "no version of 'nope' holds alias 'champion'"),
        ("models:/{name}/99", LookupError, "no such model version"),
        ("models:/{name}", ValueError, "is not models:/<name>@<alias>"),
        ("runs:/abc/model", ValueError, "is not models:/<name>@<alias>"),
    ],
)
def test_resolve_version_errors_are_clear(registry, uri, error, message):
    _register(registry, "w1", 0.85)
    with pytest.raises(error, match=re.escape(message.format(name=registry.name))):
        resolve_version(registry.client, uri.format(name=registry.name))


# --- the configured store wins --------------------------------------------------------------------------------


def test_registration_ignores_a_registry_uri_from_the_environment(tmp_path, monkeypatch):
    # mlflow.set_registry_uri exports MLFLOW_REGISTRY_URI to child processes; a pipeline must still register
    # into its own configured store.
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", elsewhere)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = connect(uri)
    exp = client.create_experiment("gate", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=exp) as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=_Echo(), pip_requirements=[])
    register(
        client,
        name="m",
        model_uri=info.model_uri,
        run_id=run.info.run_id,
        weights_sha256="a",
        scores={"top1": 0.9, "top5": 0.99},
        rank_by=RANK_BY,
        test_sha256="t",
        tags={},
    )
    assert len(client.search_model_versions("name='m'")) == 1
    assert MlflowClient(tracking_uri=elsewhere, registry_uri=elsewhere).search_registered_models() == []


def test_a_failed_rescore_does_not_block_the_challenger_for_good(registry):
    client = registry.client
    _register(registry, "w1", 0.80)

    def broken(mv):
        raise OSError("the champion's checkpoint could not be downloaded")

    with pytest.raises(OSError):
        _register(registry, "w2", 0.95, test="split-b", rescore=broken)
    retry = _register(registry, "w2", 0.95, test="split-b", rescore=_Rescore(0.70))  # the store is back
    assert retry.champion and _champion(registry) == retry.version
    assert len(client.search_model_versions(f"name='{registry.name}'")) == 2
