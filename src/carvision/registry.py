"""The registry gate: register a model in MLflow only when it is good enough, once, and crown champions
honestly (on the same test split, with every alias move recorded)."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

MAX_TAG_CHARS = 5000  # MLflow's limit on a model-version tag value
CHECKPOINT_ARTIFACT = "checkpoint"  # run artifact folder that holds the checkpoint of the run's model
MOVE_TAG = "alias_move"  # registered-model tags alias_move.<alias>.<NNNN>: one JSON record per alias move
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class Gate:
    """Metric -> minimum; a model passes when every metric reaches its minimum."""

    minimums: dict[str, float]

    def failures(self, scores: dict[str, float]) -> list[str]:
        """Why the scores fail the gate; empty when they pass."""
        out = []
        for metric, minimum in self.minimums.items():
            value = scores.get(metric)
            if value is None:
                out.append(f"{metric} was not measured")
            elif not value >= minimum:  # `not >=` so that NaN fails too
                out.append(f"{metric} {value:.4f} < {minimum}")
        return out


@dataclass
class Registration:
    version: str | None
    created: bool
    champion: bool
    notes: list[str] = field(default_factory=list)


def _fit_tag(value: str) -> str:
    return value if len(value) <= MAX_TAG_CHARS else value[: MAX_TAG_CHARS - 15] + "...(truncated)"


def champion_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The model version that holds `alias`, or None (no such model, or no version has the alias yet)."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def resolve_version(client: MlflowClient, uri: str) -> ModelVersion:
    """The version that `models:/<name>@<alias>` or `models:/<name>/<version>` names; a clear error if none."""
    m = _URI.match(uri)
    if not m:
        raise ValueError(f"'{uri}' is not models:/<name>@<alias> or models:/<name>/<version>")
    if m["alias"]:
        mv = champion_version(client, m["name"], m["alias"])
        if mv is None:
            raise LookupError(
                f"{uri}: no version of '{m['name']}' holds alias '{m['alias']}' (has it passed its gate?)"
            )
        return mv
    try:
        return client.get_model_version(m["name"], m["version"])
    except MlflowException as e:
        raise LookupError(f"{uri}: no such model version") from e


def download_checkpoint(client: MlflowClient, mv: ModelVersion, dst: Path) -> Path:
    """The checkpoint of a registered version, downloaded from its run's artifacts into `dst`.

    LookupError when the run has none (a version registered before checkpoints were logged): that will not change.
    A failing download raises MlflowException: that may pass, so it is not turned into a LookupError.
    """
    if not client.list_artifacts(mv.run_id, CHECKPOINT_ARTIFACT):
        raise LookupError(f"{mv.name} version {mv.version}: run {mv.run_id} logged no {CHECKPOINT_ARTIFACT}/ to load")
    local = client.download_artifacts(mv.run_id, CHECKPOINT_ARTIFACT, str(dst))
    files = sorted(Path(local).glob("*.ckpt"))
    if not files:
        raise LookupError(f"{mv.name} version {mv.version}: run {mv.run_id} has no {CHECKPOINT_ARTIFACT}/*.ckpt")
    return files[0]


def stored_scores(mv: ModelVersion) -> dict[str, float]:
    return {k.removeprefix("test_"): float(v) for k, v in mv.tags.items() if k.startswith("test_") and _is_num(v)}


def _is_num(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _rank(scores: dict[str, float], rank_by: list[str]) -> tuple[float, ...]:
    return tuple(-math.inf if math.isnan(scores.get(m, math.nan)) else scores[m] for m in rank_by)


def alias_moves(client: MlflowClient, name: str, alias: str = "champion") -> list[dict]:
    """Every recorded move of `alias`, oldest first."""
    tags = client.get_registered_model(name).tags
    prefix = f"{MOVE_TAG}.{alias}."
    return [json.loads(tags[k]) for k in sorted(k for k in tags if k.startswith(prefix))]


def register(
    client: MlflowClient,
    *,
    name: str,
    model_uri: str,
    run_id: str,
    weights_sha256: str,
    scores: dict[str, float],
    rank_by: list[str],
    test_sha256: str,
    tags: dict[str, str],
    alias: str = "champion",
    description: str = "",
    rescore: Callable[[ModelVersion], dict[str, float]] | None = None,
) -> Registration:
    """Registers `model_uri` as a new version of `name` unless a version with the same weights exists, and moves
    `alias` to it when it beats the champion.

    The comparison is on the same test split: `test_sha256` identifies it. When the champion was scored on
    another split, `rescore(champion_version)` scores it again on this one. Scores compare as tuples in
    `rank_by` order (the gate's metrics). Each move is recorded on the registered model (`alias_moves`).
    """
    for mv in client.search_model_versions(f"name='{name}'"):
        if mv.tags.get("weights_sha256") == weights_sha256:
            return Registration(str(mv.version), False, False, [f"version {mv.version} already holds these weights"])
    # Judge the champion first: if re-scoring it fails, no version has been created, so a retry starts afresh.
    current = champion_version(client, name, alias)
    champ_scores, rescored, problem = None, False, "no way to re-score it was given"
    if current is not None:
        if current.tags.get("test_data_sha256") == test_sha256:
            champ_scores = stored_scores(current)
        elif rescore is not None:
            try:
                champ_scores, rescored = rescore(current), True
            except LookupError as e:  # a champion with no checkpoint can never be re-scored; other errors may pass
                problem = str(e)[:300]

    all_tags = {
        **tags,
        "weights_sha256": weights_sha256,
        "test_data_sha256": test_sha256,
        **{f"test_{k}": f"{v:.6f}" for k, v in scores.items()},
    }
    try:
        client.create_registered_model(name, description=description)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # An MLflow 3 logged model's URI is models:/<model_id>; linking the id keeps the version tied to its run.
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    tags_fit = {k: _fit_tag(str(v)) for k, v in all_tags.items()}
    mv = client.create_model_version(name, source=model_uri, run_id=run_id, tags=tags_fit, model_id=model_id)

    if current is None:
        beats, why = True, "no champion yet"
    elif champ_scores is None:
        beats = False
        why = f"version {current.version} was scored on another test split and cannot be re-scored ({problem})"
    else:
        beats = _rank(scores, rank_by) > _rank(champ_scores, rank_by)
        on = "re-scored on this test split" if rescored else "same test split"
        why = f"{_fmt(scores, rank_by)} vs version {current.version}'s {_fmt(champ_scores, rank_by)} ({on})"
    if beats:
        client.set_registered_model_alias(name, alias, mv.version)
        _record_move(client, name, alias, current, mv, test_sha256, scores, champ_scores, rescored)
        note = f"'{alias}' moved to version {mv.version}: {why}"
    else:
        note = f"'{alias}' stays on version {current.version}: {why}"
    client.set_model_version_tag(name, mv.version, "champion_decision", _fit_tag(note))
    return Registration(str(mv.version), True, beats, [note])


def _fmt(scores: dict[str, float], rank_by: list[str]) -> str:
    return ", ".join(f"{m} {scores.get(m, math.nan):.4f}" for m in rank_by)


def _record_move(client, name, alias, old, new, test_sha256, scores, champ_scores, rescored) -> None:
    n = len(alias_moves(client, name, alias)) + 1
    record = {
        "alias": alias,
        "from_version": None if old is None else str(old.version),
        "to_version": str(new.version),
        "test_data_sha256": test_sha256,
        "challenger_scores": scores,
        "champion_scores": champ_scores,
        "champion_rescored": rescored,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    client.set_registered_model_tag(name, f"{MOVE_TAG}.{alias}.{n:04d}", _fit_tag(json.dumps(record, sort_keys=True)))
