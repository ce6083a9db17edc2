"""The gate's arithmetic, and champion moves in a real MLflow registry."""

from __future__ import annotations

import math

import mlflow
import pytest

from carvision.registry import Gate, register
from carvision.tracking import connect


@pytest.mark.parametrize(
    ("top1", "top5", "passes"),
    [(0.80, 0.95, True), (0.95, 0.99, True), (0.799, 0.99, False), (0.9, 0.949, False), (math.nan, 1.0, False)],
)
def test_gate_thresholds_are_inclusive_and_nan_fails(top1, top5, passes):
    assert (Gate(0.80, 0.95).failures(top1, top5) == []) is passes


def test_champion_moves_only_to_a_better_model(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = connect(uri)
    exp = client.create_experiment("gate", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        # A real logged model, the smallest there is, so the registry has a true source to point at.
        info = mlflow.pyfunc.log_model(name="model", python_model=_Echo(), pip_requirements=[])
    outcomes = [
        register(client, "m", info.model_uri, run.info.run_id, sha, t1, t5, {"git_commit": "x"})
        for sha, t1, t5 in [("a", 0.85, 0.96), ("b", 0.82, 0.99), ("c", 0.90, 0.97), ("c", 0.90, 0.97)]
    ]
    assert [o.champion for o in outcomes] == [True, False, True, False]
    assert [o.created for o in outcomes] == [True, True, True, False]
    assert client.get_model_version_by_alias("m", "champion").version == outcomes[2].version
    assert len(client.search_model_versions("name='m'")) == 3


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
    register(client, "m", info.model_uri, run.info.run_id, "a", 0.9, 0.99, {})
    assert len(client.search_model_versions("name='m'")) == 1
    from mlflow import MlflowClient

    assert MlflowClient(tracking_uri=elsewhere, registry_uri=elsewhere).search_registered_models() == []


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input
