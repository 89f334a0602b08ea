"""Small helpers shared by the operators: Airflow context -> core objects."""

from __future__ import annotations

from typing import Any

from airflow_provider_llmops.core.store import DatasetStore


def s3_client_for(conn_id: str | None) -> Any:
    """A boto3 S3 client from an `llmops_s3` connection, or from boto3's default chain when none is named."""
    from airflow_provider_llmops.core.s3 import S3Config, make_client

    if not conn_id:
        return make_client(S3Config())
    from airflow_provider_llmops.hooks.object_store import ObjectStoreHook

    return ObjectStoreHook(s3_conn_id=conn_id).get_conn()


def open_store(store_uri: str, store_conn_id: str | None) -> DatasetStore:
    client = s3_client_for(store_conn_id) if store_uri.startswith("s3://") else None
    return DatasetStore(store_uri, s3_client=client)


def run_info(context: Any) -> dict[str, Any]:
    """Which Airflow run did this, for manifests and reports (empty outside a run)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None:
        return {}
    return {
        "dag_id": getattr(ti, "dag_id", None),
        "run_id": getattr(ti, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
    }
