"""Airflow Assets this provider produces, so downstream DAGs can be scheduled on them.

Validation emits, through the asset alias `llmops_validated`, one asset per validated dataset: name
`llmops_validated_<dataset>`, URI the dataset's folder in the store. Its event `extra` carries the snapshot id.
Schedule a DAG on `Asset.ref(name=validated_asset_name("support_tickets"))` or on `validated_alias()`.

The drift DAG emits, through the alias `llmops_retrain_requested`, the asset `llmops_retrain_requested_<dataset>`
when a batch drifts (or retraining is forced); its extra carries the snapshot id and the drift summary.
"""

from __future__ import annotations

from typing import Any

VALIDATED_ALIAS = "llmops_validated"


def validated_asset_name(dataset: str) -> str:
    return f"llmops_validated_{dataset}"


def validated_alias() -> Any:
    from airflow.sdk import AssetAlias

    return AssetAlias(name=VALIDATED_ALIAS, group="llmops")


def validated_asset(dataset: str, dataset_uri: str) -> Any:
    from airflow.sdk import Asset

    return Asset(name=validated_asset_name(dataset), uri=dataset_uri, group="llmops")


RETRAIN_ALIAS = "llmops_retrain_requested"


def retrain_request_asset_name(dataset: str) -> str:
    return f"llmops_retrain_requested_{dataset}"


def retrain_alias() -> Any:
    from airflow.sdk import AssetAlias

    return AssetAlias(name=RETRAIN_ALIAS, group="llmops")


def retrain_request_asset(dataset: str) -> Any:
    from airflow.sdk import Asset

    return Asset(name=retrain_request_asset_name(dataset), uri=f"llmops://retrain-requests/{dataset}", group="llmops")


# Promotion and rollback emit, through the alias `llmops_champion`, the asset `llmops_champion_<model>` whenever the
# champion changes; URI `mlflow://<tracking host>/models/<model>`, extra: model, version, previous version, action.
# The provider registers the `mlflow` URI scheme (`asset-uris` in get_provider_info) so these assets keep their
# lineage: they become OpenLineage datasets in namespace `mlflow://<tracking host>` named `models/<model>`.
CHAMPION_ALIAS = "llmops_champion"


def champion_asset_name(model_name: str) -> str:
    return f"llmops_champion_{model_name}"


def champion_alias() -> Any:
    from airflow.sdk import AssetAlias

    return AssetAlias(name=CHAMPION_ALIAS, group="llmops")


def champion_asset(model_name: str, tracking_host: str) -> Any:
    from airflow.sdk import Asset

    return Asset(
        name=champion_asset_name(model_name), uri=f"mlflow://{tracking_host}/models/{model_name}", group="llmops"
    )


def sanitize_mlflow_uri(uri: Any) -> Any:
    """Airflow's URI check for `mlflow://<host>/models/<name>[/versions/<n>]` assets. Airflow calls it for every
    `Asset(uri="mlflow://...")` a DAG declares; a wrong URI is a ConfigurationError (a ValueError, which is what
    Airflow expects from a URI check)."""
    parts = [p for p in uri.path.split("/") if p]
    if not uri.netloc or len(parts) < 2 or parts[0] != "models":
        from airflow_provider_llmops.errors import ConfigurationError

        raise ConfigurationError(
            "an mlflow:// asset URI must be mlflow://<tracking host>/models/<name>[/versions/<n>], "
            f"got {uri.geturl()!r}: name the registered model, or use champion_asset(model_name, tracking_host) "
            "from airflow_provider_llmops.assets"
        )
    return uri


def convert_mlflow_asset_to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """An `mlflow://` asset as the OpenLineage dataset the operators use for model versions."""
    from urllib.parse import urlsplit

    from airflow.providers.common.compat.openlineage.facet import Dataset

    parsed = urlsplit(asset.uri)
    return Dataset(namespace=f"mlflow://{parsed.netloc}", name=parsed.path.lstrip("/"))


def emit_champion_event(context: Any, model_name: str, tracking_uri: str, extra: dict[str, Any]) -> bool:
    """Add a champion-changed event to the `llmops_champion` alias when the task declares it as an outlet."""
    from airflow_provider_llmops.core.model.registry import tracking_host

    events = context.get("outlet_events") if hasattr(context, "get") else None
    task = context.get("task") if hasattr(context, "get") else None
    if (
        events is None
        or task is None
        or not any(getattr(o, "name", None) == CHAMPION_ALIAS for o in getattr(task, "outlets", []))
    ):
        return False
    events[champion_alias()].add(champion_asset(model_name, tracking_host(tracking_uri)), extra=extra)
    return True


# With a service configured, promotion emits, through the alias `llmops_candidate`, the asset
# `llmops_candidate_<model>` when a version passes the gate and becomes the `candidate` (the deploy DAG is scheduled
# on it); URI `mlflow://<tracking host>/models/<model>?alias=candidate` (the same OpenLineage dataset as the champion
# asset: the registered model), extra: model, version, champion, decision_id.
CANDIDATE_ALIAS = "llmops_candidate"


def candidate_asset_name(model_name: str) -> str:
    return f"llmops_candidate_{model_name}"


def candidate_alias() -> Any:
    from airflow.sdk import AssetAlias

    return AssetAlias(name=CANDIDATE_ALIAS, group="llmops")


def candidate_asset(model_name: str, tracking_host: str) -> Any:
    from airflow.sdk import Asset

    return Asset(
        name=candidate_asset_name(model_name),
        uri=f"mlflow://{tracking_host}/models/{model_name}?alias=candidate",
        group="llmops",
    )


def emit_candidate_event(context: Any, model_name: str, tracking_uri: str, extra: dict[str, Any]) -> bool:
    """Add a new-candidate event to the `llmops_candidate` alias when the task declares it as an outlet."""
    from airflow_provider_llmops.core.model.registry import tracking_host

    events = context.get("outlet_events") if hasattr(context, "get") else None
    task = context.get("task") if hasattr(context, "get") else None
    if (
        events is None
        or task is None
        or not any(getattr(o, "name", None) == CANDIDATE_ALIAS for o in getattr(task, "outlets", []))
    ):
        return False
    events[candidate_alias()].add(candidate_asset(model_name, tracking_host(tracking_uri)), extra=extra)
    return True
