"""Whether to retrain now: the rule of the `llmops_retrain` DAG's first task, as plain Python."""

from __future__ import annotations

import json

from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.core.drift.job import DRIFT_JSON, passed_snapshots
from airflow_provider_llmops.core.model.contract import CHAMPION, TAG_SNAPSHOTS
from airflow_provider_llmops.core.model.registry import ModelRegistry


def decide_retrain(
    store: DatasetStore,
    registry: ModelRegistry,
    dataset: str,
    model_name: str,
    *,
    force: bool = False,
    requested: bool = False,
) -> tuple[bool, str]:
    """(retrain?, why). In order: forced; no champion yet; requested by the drift DAG; the newest validated
    snapshot drifted and the champion has not been trained on it; else no."""
    if force:
        return True, "forced by the force_retrain Param"
    champion = registry.alias(model_name, CHAMPION)
    if champion is None:
        return True, f"model {model_name!r} has no champion yet: training the first model"
    if requested:
        return True, "requested by llmops_drift (a validated batch drifted)"
    passed = passed_snapshots(store, dataset)
    if not passed:
        return False, f"dataset {dataset!r} has no validated snapshot"
    newest = passed[-1]
    trained_on = registry.get_version(model_name, champion).tags.get(TAG_SNAPSHOTS, "")
    if f"{dataset}/{newest}" in trained_on.split(","):
        return False, f"champion v{champion} was trained on the newest snapshot {newest}"
    raw = store.read_beside(dataset, newest, DRIFT_JSON)
    if raw is None:
        return False, f"the newest snapshot {newest} has no drift report yet (llmops_drift scores it)"
    report = json.loads(raw)
    if report.get("drift"):
        return (
            True,
            f"the newest snapshot {newest} drifted ({', '.join(report.get('drifting_features', [])) or 'embeddings'}) "
            f"and champion v{champion} was not trained on it",
        )
    return False, f"the newest snapshot {newest} did not drift"
