"""An Airflow connection for MLflow tracking and registry servers."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from airflow_provider_llmops.core.model.registry import MlflowConfig, ModelRegistry
from airflow_provider_llmops.errors import ConfigurationError


class MlflowHook(BaseHook):
    """Builds a `ModelRegistry` (an MLflow client) from a connection of type `llmops_mlflow`.

    Fields: Host = tracking URI (`http://mlflow:5000`, `https://...`, or `sqlite:///path/mlflow.db`; a bare host
    name gets `http://` and the Port), Login/Password = basic auth, extra `token` = bearer token (instead of
    basic auth), extra `registry_uri` (default: the tracking URI), extra `artifact_root` (artifact location for
    new experiments on local stores), extra `experiment` (default `llmops`).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "llmops_mlflow_default"
    conn_type = "llmops_mlflow"
    hook_name = "LLMOps MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    def get_config(self) -> MlflowConfig:
        conn = self.get_connection(self.mlflow_conn_id)
        extra = conn.extra_dejson
        uri = (conn.host or "").strip()
        if not uri:
            raise ConfigurationError(f"connection {self.mlflow_conn_id!r}: Host must hold the MLflow tracking URI")
        if "://" not in uri and not uri.startswith(("sqlite:", "file:")):
            scheme = conn.schema or "http"
            uri = f"{scheme}://{uri}" + (f":{conn.port}" if conn.port else "")
        return MlflowConfig(
            tracking_uri=uri,
            registry_uri=extra.get("registry_uri") or None,
            artifact_root=extra.get("artifact_root") or None,
            username=conn.login or None,
            password=conn.password or None,
            token=extra.get("token") or None,
            experiment=extra.get("experiment") or "llmops",
        )

    def get_conn(self) -> ModelRegistry:
        from airflow_provider_llmops.settings import load_settings

        return ModelRegistry.from_config(self.get_config(), lock_dir=load_settings().home / "locks")

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.get_conn().client.search_experiments(max_results=1)
        except Exception as exc:  # report any client error to the UI's "Test" button
            return False, str(exc)
        return True, "Connection to MLflow works"
