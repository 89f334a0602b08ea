"""Factory of the manually triggered `llmops_rollback` DAG."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param

from airflow_provider_llmops.dags._common import dataset_param, provider_dag
from airflow_provider_llmops.assets import champion_alias
from airflow_provider_llmops.operators.rollback import RollbackModelOperator

DOC = """
### Roll the champion back

Trigger by hand. Points `champion` back at `previous-champion` (or at Param `target_version`), as a
compare-and-swap, clears `previous-champion`, tags the version rolled back from and writes an audit record with
Param `reason`.
"""


def build_rollback_dag(dag_id: str = "llmops_rollback", *, model_name: str = "support_ticket_router", mlflow_conn_id: str | None = None, start_date: datetime | None = None, tags: list[str] | None = None, **dag_kwargs: Any) -> DAG:
    params = {
        "model_name": Param(model_name, type="string", minLength=1, description="Registered MLflow model."),
        "target_version": Param("", type="string", pattern=r"^[0-9]*$", description="Version to restore. Empty: previous-champion."),
        "reason": Param("", type="string", description="Why (goes to the audit trail)."),
    }
    with provider_dag(
        dag_id,
        schedule=None,
        params=params,
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
            mlflow_conn_id=mlflow_conn_id,
            outlets=[champion_alias()],
        )
    return dag
