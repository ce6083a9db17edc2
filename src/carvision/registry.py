"""The registry gate: register a model in MLflow only when it is good enough, once, and crown champions."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

MAX_TAG_CHARS = 5000  # MLflow's limit on a model-version tag value


@dataclass(frozen=True)
class Gate:
    min_top1: float
    min_top5: float

    def failures(self, top1: float, top5: float) -> list[str]:
        """Why the metrics fail the gate; empty when they pass."""
        out = []
        if not top1 >= self.min_top1:  # `not >=` so that NaN fails too
            out.append(f"top-1 {top1:.4f} < {self.min_top1}")
        if not top5 >= self.min_top5:
            out.append(f"top-5 {top5:.4f} < {self.min_top5}")
        return out


@dataclass
class Registration:
    version: str | None
    created: bool
    champion: bool
    notes: list[str] = field(default_factory=list)


def _fit_tag(value: str) -> str:
    return value if len(value) <= MAX_TAG_CHARS else value[: MAX_TAG_CHARS - 15] + "...(truncated)"


def champion_version(client: MlflowClient, name: str, alias: str):
    """The model version that holds `alias`, or None (no such model, or no version has the alias yet)."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register(
    client: MlflowClient,
    name: str,
    model_uri: str,
    run_id: str,
    model_sha256: str,
    top1: float,
    top5: float,
    tags: dict[str, str],
    alias: str = "champion",
) -> Registration:
    """Registers `model_uri` as a new version of `name` unless a version of the same checkpoint exists.

    The checkpoint's sha256 is the identity, so re-running evaluation never registers a model twice. The
    alias moves to the new version when its test top-1 (then top-5) beats the current champion's.
    """
    for mv in client.search_model_versions(f"name='{name}'"):
        if mv.tags.get("model_sha256") == model_sha256:
            return Registration(
                mv.version, created=False, champion=False, notes=[f"version {mv.version} already holds this checkpoint"]
            )
    all_tags = {**tags, "model_sha256": model_sha256, "test_top1": f"{top1:.6f}", "test_top5": f"{top5:.6f}"}
    all_tags = {k: _fit_tag(v) for k, v in all_tags.items()}
    try:
        client.create_registered_model(name, description="carvision make/model classifier")
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # An MLflow 3 logged model's URI is models:/<model_id>; linking the id keeps the version tied to its run.
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    mv = client.create_model_version(name, source=model_uri, run_id=run_id, tags=all_tags, model_id=model_id)
    current = champion_version(client, name, alias)
    beats = current is None or (top1, top5) > (
        float(current.tags.get("test_top1", "-1")),
        float(current.tags.get("test_top5", "-1")),
    )
    if beats:
        client.set_registered_model_alias(name, alias, mv.version)
    note = f"'{alias}' moved to version {mv.version}" if beats else f"'{alias}' stays on version {current.version}"
    return Registration(mv.version, created=True, champion=beats, notes=[note])
