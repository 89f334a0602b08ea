"""Factory of the `llmops_ingest_validate` DAG: ingest a batch, then validate it with Great Expectations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param

from airflow_provider_llmops.assets import validated_alias
from airflow_provider_llmops.dags._common import dataset_param, provider_dag
from airflow_provider_llmops.operators.ingest import IngestBatchOperator
from airflow_provider_llmops.operators.validate import ValidateBatchOperator
from airflow_provider_llmops.resources import sample_data_dir

DOC = """
### Ingest and validate a text batch

1. **ingest** reads `source_uri` (JSONL, CSV or Parquet; local path, `file://`, `s3://` or `http(s)://`) and
   commits an immutable snapshot of `dataset`; bad rows go to the snapshot's `quarantine.jsonl` with reasons.
2. **validate** runs the Great Expectations suite `suite` on it and stores `validation.json` beside it.
   On success the asset `llmops_validated_<dataset>` is updated (through the alias `llmops_validated`), with the
   snapshot id in the event's extra, so downstream DAGs can be scheduled on it.

Trigger with Params to ingest another file or dataset. XCom of each task holds a small summary.
"""


def build_ingest_validate_dag(
    dag_id: str = "llmops_ingest_validate",
    *,
    schedule: Any = "@daily",
    source_uri: str | None = None,
    dataset: str = "support_tickets",
    suite: str = "support_tickets",
    file_format: str = "",
    column_map: dict[str, str] | None = None,
    on_validation_failure: str = "fail",
    source_conn_id: str | None = None,
    store_uri: str | None = None,
    store_conn_id: str | None = None,
    start_date: datetime | None = None,
    tags: list[str] | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """Build the DAG; every argument is a default that a manual run can override through Params."""
    params = {
        "source_uri": Param(
            source_uri or str(sample_data_dir() / "tickets_reference.jsonl"),
            type="string",
            minLength=1,
            description="Local path, file://, s3:// or http(s):// URI of a JSONL, CSV or Parquet batch.",
        ),
        "dataset": dataset_param(dataset, "Dataset name: snapshots are stored under snapshots/<dataset>/."),
        "file_format": Param(file_format, type="string", enum=["", "jsonl", "csv", "parquet"], description="Empty: guess from the suffix."),
        "column_map": Param(column_map or {}, type="object", description='Source column -> canonical column, e.g. {"body": "text"}.'),
        "source_conn_id": Param(
            source_conn_id or "",
            type="string",
            description="Connection for the source: an llmops_s3 connection for s3://, basic/bearer auth for http(s)://. Empty: none.",
        ),
        "suite": Param(suite, type="string", description="Great Expectations suite name (include/expectations/<name>.json) or path."),
        "on_validation_failure": Param(
            on_validation_failure,
            type="string",
            enum=["fail", "skip"],
            description="fail: fail the run; skip: mark the snapshot rejected and skip downstream.",
        ),
    }
    with provider_dag(
        dag_id,
        schedule=schedule,
        params=params,
        doc_md=DOC,
        start_date=start_date,
        tags=tags,
        **dag_kwargs,
    ) as dag:
        ingest = IngestBatchOperator(
            task_id="ingest",
            source_uri="{{ params.source_uri }}",
            dataset="{{ params.dataset }}",
            file_format="{{ params.file_format }}",
            column_map="{{ params.column_map | tojson }}",
            source_conn_id="{{ params.source_conn_id }}",
            store_uri=store_uri,
            store_conn_id=store_conn_id,
        )
        validate = ValidateBatchOperator(
            task_id="validate",
            dataset="{{ params.dataset }}",
            snapshot_id="{{ ti.xcom_pull(task_ids='ingest')['snapshot_id'] }}",
            suite="{{ params.suite }}",
            on_failure="{{ params.on_validation_failure }}",
            store_uri=store_uri,
            store_conn_id=store_conn_id,
            outlets=[validated_alias()],
        )
        ingest >> validate
    return dag
