"""The gate's arithmetic, and champion moves in a real MLflow registry."""

from __future__ import annotations

import math

import mlflow
import pytest
from mlflow import MlflowClient

from carvision.registry import Gate, register


@pytest.mark.parametrize(
    ("top1", "top5", "passes"),
    [(0.80, 0.95, True), (0.95, 0.99, True), (0.799, 0.99, False), (0.9, 0.949, False), (math.nan, 1.0, False)],
)
def test_gate_thresholds_are_inclusive_and_nan_fails(top1, top5, passes):
    assert (Gate(0.80, 0.95).failures(top1, top5) == []) is passes


def test_champion_moves_only_to_a_better_model(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
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


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input
