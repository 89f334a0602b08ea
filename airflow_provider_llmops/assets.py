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
