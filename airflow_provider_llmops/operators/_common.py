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


def open_registry(mlflow_conn_id: str | None = None) -> Any:
    """The MLflow registry: from an `llmops_mlflow` connection, else `[llmops] mlflow_tracking_uri`, else the
    embedded SQLite store under `<home>/mlflow`."""
    from airflow_provider_llmops.core.registry import MlflowConfig, ModelRegistry, default_config
    from airflow_provider_llmops.settings import load_settings

    settings = load_settings()
    conn_id = mlflow_conn_id or settings.mlflow_conn_id
    if conn_id:
        from airflow_provider_llmops.hooks.mlflow import MlflowHook

        registry = MlflowHook(mlflow_conn_id=conn_id).get_conn()
    else:
        config = MlflowConfig(tracking_uri=settings.mlflow_tracking_uri) if settings.mlflow_tracking_uri else default_config(settings.home)
        registry = ModelRegistry.from_config(config, lock_dir=settings.home / "locks")
    registry.ui_url = settings.mlflow_ui_url
    return registry
