"""Factory of the manually triggered `llmops_rollback` DAG."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param

from airflow_provider_llmops.assets import champion_alias
from airflow_provider_llmops.dags._common import provider_dag
from airflow_provider_llmops.operators.rollback import RollbackModelOperator

DOC = """
### Roll the champion back

Trigger by hand, with a `reason` (at least 10 characters; it goes to the audit trail). Points `champion` back at
`previous-champion` (or at Param `target_version`), as a compare-and-swap, clears `previous-champion`, tags the
version rolled back from and writes an audit record with the reason and the evidence that the target may serve.

Only a version that was champion before (tag `llmops.promoted_at`, or an audit record) is accepted, or one whose
stored evaluation against the current champion passes the DAG's gate; anything else is refused. The task runs in
the one-slot pool `[llmops] registry_pool`, like every registry-changing task.
"""


def build_rollback_dag(
    dag_id: str = "llmops_rollback",
    *,
    model_name: str | None = None,
    gate: dict[str, Any] | None = None,
    mlflow_conn_id: str | None = None,
    store_uri: str | None = None,
    store_conn_id: str | None = None,
    start_date: datetime | None = None,
    tags: list[str] | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """Build the DAG. `model_name` defaults to `[llmops] model_name`; `gate` (GateSpec fields) is the gate a
    never-champion target must pass against the current champion."""
    from airflow_provider_llmops.core.governance.promote_job import MIN_REASON_LENGTH
    from airflow_provider_llmops.settings import load_settings

    settings = load_settings()
    model_name = model_name or settings.model_name
    params = {
        "model_name": Param(model_name, type="string", minLength=1, description="Registered MLflow model."),
        "target_version": Param(
            None,
            type=["null", "string"],
            pattern=r"^[0-9]*$",
            description="Version to restore. Empty: previous-champion.",
        ),
        "reason": Param(
            type="string",
            minLength=MIN_REASON_LENGTH,
            description=f"Why (required, at least {MIN_REASON_LENGTH} characters; goes to the audit trail).",
        ),
    }
    with provider_dag(
        dag_id,
        schedule=None,
        params=params,
        # no DAG-level outcome callbacks: Airflow 3.3.2 builds a DAG callback's context by re-validating the DAG's
        # Params without the run's conf, which fails on the required `reason` (seen under dag.test: the run crashes)
        record_outcome=False,
        doc_md=DOC,
        start_date=start_date,
        tags=tags,
        **dag_kwargs,
    ) as dag:
        RollbackModelOperator(
            task_id="rollback",
            model_name="{{ params.model_name }}",
            target_version="{{ params.target_version }}",
            reason="{{ params.reason }}",
            gate=gate,
            mlflow_conn_id=mlflow_conn_id,
            store_uri=store_uri,
            store_conn_id=store_conn_id,
            pool=settings.registry_pool,
            outlets=[champion_alias()],
        )
    return dag
