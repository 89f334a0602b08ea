"""What every DAG factory of the provider shares: the DAG's fixed settings, the dataset Param, and the run-outcome
callbacks that push `llmops_pipeline_last_{success,failure}_timestamp_seconds{dag_id}` (and the DAG's
`llmops_pipeline_max_age_seconds`) for the "no successful run in N hours" alert."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param

from airflow_provider_llmops.core.data.store import NAME_PATTERN as DATASET_PATTERN


def dataset_param(default: str, description: str) -> Param:
    return Param(default, type="string", pattern=DATASET_PATTERN, description=description)


def record_run(succeeded: bool, max_age: timedelta | None = None) -> Callable[[Any], None]:
    """A DAG callback pushing the run's outcome (`core/metrics.py`: job `llmops_pipeline`, grouping {dag_id}, POST so
    a failure keeps the last success). Never raises: a metrics problem must not fail the callback."""

    def callback(context: Any) -> None:
        import logging

        from airflow_provider_llmops.core.metrics import export, pipeline_run_registry
        from airflow_provider_llmops.settings import load_settings

        dag_id = context["dag"].dag_id
        outcome = "success" if succeeded else "failure"
        try:
            settings = load_settings()
            export(
                pipeline_run_registry(dag_id, succeeded, max_age.total_seconds() if max_age else None),
                job="llmops_pipeline",
                grouping={"dag_id": dag_id},
                pushgateway_url=settings.pushgateway_url,
                textfile=settings.home / "metrics" / f"llmops_pipeline_{dag_id}_{outcome}.prom",
                replace_group=False,
            )
        except Exception as exc:  # the run's outcome stands whatever happens to its metrics
            logging.getLogger(__name__).warning("could not record the %s of %s: %s", outcome, dag_id, exc)

    return callback


def _with(own: Callable[[Any], None], given: Any) -> list[Any]:
    return [own, *(given if isinstance(given, list) else [given] if given else [])]


def provider_dag(
    dag_id: str,
    *,
    schedule: Any,
    params: dict[str, Param],
    doc_md: str,
    start_date: datetime | None,
    tags: list[str] | None,
    max_age: timedelta | None = None,
    record_outcome: bool = True,
    **dag_kwargs: Any,
) -> DAG:
    """A DAG with the provider's defaults: no catch-up, one active run at a time (stages that write aliases or
    snapshots must not overlap), tag `llmops`, a fixed start date unless given, and callbacks that push each run's
    outcome to Prometheus (`max_age`: how long the DAG may go without a success before LLMOpsPipelineStale fires;
    None for DAGs that run on events)."""
    if record_outcome:
        dag_kwargs["on_success_callback"] = _with(record_run(True, max_age), dag_kwargs.get("on_success_callback"))
        dag_kwargs["on_failure_callback"] = _with(record_run(False), dag_kwargs.get("on_failure_callback"))
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
