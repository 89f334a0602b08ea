"""What every DAG factory of the provider shares: the DAG's fixed settings and the dataset Param."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, Param

from airflow_provider_llmops.core.data.store import NAME_PATTERN as DATASET_PATTERN


def dataset_param(default: str, description: str) -> Param:
    return Param(default, type="string", pattern=DATASET_PATTERN, description=description)


def provider_dag(
    dag_id: str,
    *,
    schedule: Any,
    params: dict[str, Param],
    doc_md: str,
    start_date: datetime | None,
    tags: list[str] | None,
    **dag_kwargs: Any,
) -> DAG:
    """A DAG with the provider's defaults: no catch-up, one active run at a time (stages that write aliases or
    snapshots must not overlap), tag `llmops`, a fixed start date unless given."""
    return DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=start_date or datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        params=params,
        tags=tags or ["llmops"],
        doc_md=doc_md,
        **dag_kwargs,
    )
