"""Small helpers shared by the operators: Airflow context -> core objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.core.data.store import DatasetStore

if TYPE_CHECKING:
    from airflow_provider_llmops.core.governance.audit import AuditTrail
    from airflow_provider_llmops.settings import Settings


def s3_client_for(conn_id: str | None) -> Any:
    """A boto3 S3 client from an `llmops_s3` connection, or from boto3's default chain when none is named."""
    from airflow_provider_llmops.core.data.s3 import S3Config, make_client

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
    from airflow_provider_llmops.core.model.registry import MlflowConfig, ModelRegistry, default_config
    from airflow_provider_llmops.settings import load_settings

    settings = load_settings()
    conn_id = mlflow_conn_id or settings.mlflow_conn_id
    if conn_id:
        from airflow_provider_llmops.hooks.mlflow import MlflowHook

        registry = MlflowHook(mlflow_conn_id=conn_id).get_conn()
    else:
        config = (
            MlflowConfig(tracking_uri=settings.mlflow_tracking_uri)
            if settings.mlflow_tracking_uri
            else default_config(settings.home)
        )
        registry = ModelRegistry.from_config(config, lock_dir=settings.home / "locks")
    registry.ui_url = settings.mlflow_ui_url
    return registry


def audit_key(conn_id: str) -> bytes:
    """The audit trail's HMAC key: the password of connection `conn_id`, looked up through Airflow (any secrets
    backend, `AIRFLOW_CONN_*`, the metadata DB). Never logged; errors name the connection, never the value."""
    from airflow.sdk import BaseHook

    from airflow_provider_llmops.errors import ConfigurationError

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or a secrets backend that cannot be reached
        raise ConfigurationError(
            f"[llmops] audit_conn_id: connection {conn_id!r} cannot be read ({type(exc).__name__}); create it with the "
            "audit trail's HMAC key as its password, or unset audit_conn_id for a plain (unkeyed) hash chain"
        ) from None
    if not conn.password:
        raise ConfigurationError(
            f"[llmops] audit_conn_id: connection {conn_id!r} has no password; "
            "its password is the audit trail's HMAC key"
        )
    return str(conn.password).encode("utf-8")


def registry_anchor(registry: Any, model_name: str | None = None) -> Any:
    """An `AuditTrail` anchor that writes each record's head (`<seq>:<hash>`) to the tag `llmops.audit_head` of
    the registered model the record is about (`data["model"]`, else `model_name`; neither: nothing is written)."""
    from airflow_provider_llmops.core.governance.audit import anchor_value
    from airflow_provider_llmops.core.model.contract import TAG_AUDIT_HEAD

    def anchor(record: dict[str, Any]) -> None:
        data = record.get("data")
        name = data.get("model") if isinstance(data, dict) else None
        name = name if isinstance(name, str) and name else model_name
        if name:
            registry.client.set_registered_model_tag(name, TAG_AUDIT_HEAD, anchor_value(record))

    return anchor


def open_audit(settings: Settings, registry: Any = None, model_name: str | None = None) -> AuditTrail:
    """The audit trail every operator appends to: `<home>/audit/audit.jsonl`, keyed with the password of
    `[llmops] audit_conn_id` (read lazily, at the first append) when set, else a plain hash chain (the embedded
    default); with `registry`, each record's head is anchored on its model's `llmops.audit_head` tag."""
    from airflow_provider_llmops.core.governance.audit import AuditTrail, default_audit_path

    conn_id = settings.audit_conn_id
    key = (lambda: audit_key(conn_id)) if conn_id else None
    anchor = registry_anchor(registry, model_name) if registry is not None else None
    return AuditTrail(default_audit_path(settings.home), key=key, anchor=anchor)
