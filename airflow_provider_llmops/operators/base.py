"""LLMOpsBaseOperator: the arguments, resources and Param coercions every operator of this provider shares.

Like the Amazon provider's `AwsBaseOperator`, it owns the common arguments (`store_uri`, `store_conn_id`,
`mlflow_conn_id`, all templated), resolves them against `[llmops]` settings once per task (the cached properties
`settings`, `store`, `registry`, `audit`), and offers the coercions a value rendered from a Param needs ("None"
and "" -> None, JSON text -> dict, numbers from text). Lineage state lives in `self._lineage`; the OpenLineage
provider falls back to `get_openlineage_facets_on_complete` on failure, so no operator defines `..._on_failure`.
Nothing heavy is imported at module level: the DAG processor imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow_provider_llmops.core.data.store import DatasetStore
    from airflow_provider_llmops.core.governance.audit import AuditTrail
    from airflow_provider_llmops.settings import Settings

NONE_STRINGS = (None, "", "None")


def as_optional(value: Any) -> Any:
    """None for None, "" and "None" (what an unset Param renders to); the value otherwise."""
    return None if value in NONE_STRINGS else value


def as_int(value: Any) -> int | None:
    """An int from an int or a rendered string; None for None, "" and "None"."""
    value = as_optional(value)
    return None if value is None else int(value)


def as_float(value: Any) -> float | None:
    """A float from a number or a rendered string; None for None, "" and "None"."""
    value = as_optional(value)
    return None if value is None else float(value)


def as_json(value: Any, name: str) -> Any:
    """A value that may arrive as a dict or, rendered from a Param, as JSON text: text is parsed (blank text is
    None); anything else is returned as is. Text that is not JSON is a ConfigurationError naming `name`."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    import json

    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        from airflow_provider_llmops.errors import ConfigurationError

        raise ConfigurationError(f"{name} is not a JSON object: {exc}") from None


class LLMOpsBaseOperator(BaseOperator):
    """Base of every operator of this provider.

    :param store_uri: the dataset store (local path, `file://` or `s3://`); default `[llmops] store_uri`.
        (templated)
    :param store_conn_id: the `llmops_s3` connection of an `s3://` store; default `[llmops] store_conn_id`.
        (templated)
    :param mlflow_conn_id: the `llmops_mlflow` connection of the MLflow registry; default
        `[llmops] mlflow_conn_id`, else `[llmops] mlflow_tracking_uri`, else the embedded SQLite store.
        (templated)
    """

    base_template_fields: Sequence[str] = ("store_uri", "store_conn_id", "mlflow_conn_id")
    template_fields: Sequence[str] = base_template_fields

    def __init__(
        self,
        *,
        store_uri: str | None = None,
        store_conn_id: str | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.store_uri = store_uri
        self.store_conn_id = store_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self._lineage: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ resources
    @cached_property
    def settings(self) -> Settings:
        """The `[llmops]` settings, read once per task."""
        from airflow_provider_llmops.settings import load_settings

        return load_settings()

    @cached_property
    def store(self) -> DatasetStore:
        """The dataset store: `store_uri` (default `[llmops] store_uri`) with `store_conn_id`'s credentials."""
        from airflow_provider_llmops.operators._common import open_store

        return open_store(
            as_optional(self.store_uri) or self.settings.store_uri,
            as_optional(self.store_conn_id) or self.settings.store_conn_id,
        )

    @cached_property
    def registry(self) -> Any:
        """The MLflow registry (see `operators._common.open_registry`)."""
        from airflow_provider_llmops.operators._common import open_registry

        return open_registry(as_optional(self.mlflow_conn_id))

    @property
    def audit_model_name(self) -> str | None:
        """The model audit records are anchored on when a record names none: `model_name` (default
        `[llmops] model_name`) for operators that have one, else None."""
        if not hasattr(self, "model_name"):
            return None
        return self.model_name or self.settings.model_name

    @cached_property
    def audit(self) -> AuditTrail:
        """The audit trail (see `operators._common.open_audit`), anchored through `registry`."""
        from airflow_provider_llmops.operators._common import open_audit

        return open_audit(self.settings, self.registry, self.audit_model_name)

    def push_metrics(self, registry: Any, job: str, grouping: dict[str, str]) -> bool:
        """Push `registry` to `[llmops] pushgateway_url` as the group (job, grouping) and write it to
        `<home>/metrics/<job>_<grouping values>.prom`. Never raises (metrics must not break the pipeline); True when
        pushed."""
        from airflow_provider_llmops.core.metrics import export

        settings = self.settings
        name = "_".join([job, *grouping.values()])
        outcome = export(
            registry,
            job=job,
            grouping=grouping,
            pushgateway_url=settings.pushgateway_url,
            textfile=settings.home / "metrics" / f"{name}.prom",
        )
        return bool(outcome["pushed"])

    # ------------------------------------------------------------------------------------------ coercions
    as_optional = staticmethod(as_optional)
    as_int = staticmethod(as_int)
    as_float = staticmethod(as_float)
    as_json = staticmethod(as_json)
