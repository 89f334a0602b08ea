"""Factory of the `llmops_ingest_validate` DAG: ingest a batch, then validate it with Great Expectations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
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
2. **validate** runs a Great Expectations suite on it and stores `validation.json` beside it. The suite is
   found by name in `[llmops] suites_dirs`: the Param `suite` if set (only the DAG's own suite or those in its
   `allowed_suites`), else the one `[llmops] dataset_suites` maps the dataset to, else `[llmops] default_suite`
   (`generic`). The report says which suite and why.
   On success the asset `llmops_validated_<dataset>` is updated (through the alias `llmops_validated`), with the
   snapshot id in the event's extra, so downstream DAGs can be scheduled on it.

Trigger with Params to ingest another file or dataset. XCom of each task holds a small summary.
Remote sources must be within `[llmops] allowed_uri_prefixes` (empty by default: none), and `source_conn_id`
offers only the connections the DAG author allowed (`allowed_source_conn_ids`); a connection's credentials go
only to the hosts in its extra `allowed_hosts`.
"""


def build_ingest_validate_dag(
    dag_id: str = "llmops_ingest_validate",
    *,
    schedule: Any = "@daily",
    source_uri: str | None = None,
    dataset: str = "support_tickets",
    suite: str | None = None,
    allowed_suites: Sequence[str] | None = None,
    file_format: str = "",
    column_map: dict[str, str] | None = None,
    on_validation_failure: str = "fail",
    source_conn_id: str | None = None,
    allowed_source_conn_ids: Sequence[str] | None = None,
    store_uri: str | None = None,
    store_conn_id: str | None = None,
    start_date: datetime | None = None,
    tags: list[str] | None = None,
    max_age: timedelta | None = timedelta(hours=26),
    **dag_kwargs: Any,
) -> DAG:
    """Build the DAG; every argument is a default that a manual run can override through Params.

    `max_age`: how long the DAG may go without a successful run before the LLMOpsPipelineStale alert fires (26 hours
    suits the daily default; None: never stale).

    `source_conn_id` is the DAG's own source connection; `allowed_source_conn_ids` lists the other connection ids a
    run may choose through the `source_conn_id` Param (None: `[llmops] allowed_source_conn_ids`, empty by default).
    The Param offers only these (and "" for none), and the ingest task refuses any other at run time.
    """
    conn_ids = _allowed_conn_ids(source_conn_id, allowed_source_conn_ids)
    suites = _suites_allowed(suite, allowed_suites)
    params = {
        "source_uri": Param(
            source_uri or str(sample_data_dir() / "tickets_reference.jsonl"),
            type="string",
            minLength=1,
            description="Local path, file://, s3:// or http(s):// URI of a JSONL, CSV or Parquet batch.",
        ),
        "dataset": dataset_param(dataset, "Dataset name: snapshots are stored under snapshots/<dataset>/."),
        "file_format": Param(
            file_format,
            type="string",
            enum=["", "jsonl", "csv", "parquet"],
            description="Empty: guess from the suffix.",
        ),
        "column_map": Param(
            column_map or {}, type="object", description='Source column -> canonical column, e.g. {"body": "text"}.'
        ),
        "source_conn_id": _source_conn_param(source_conn_id, conn_ids),
        "suite": _suite_param(suite, suites),
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
        max_age=max_age,
        **dag_kwargs,
    ) as dag:
        ingest = IngestBatchOperator(
            task_id="ingest",
            source_uri="{{ params.source_uri }}",
            dataset="{{ params.dataset }}",
            file_format="{{ params.file_format }}",
            column_map="{{ params.column_map | tojson }}",
            source_conn_id="{{ params.source_conn_id }}",
            allowed_conn_ids=conn_ids,
            store_uri=store_uri,
            store_conn_id=store_conn_id,
        )
        validate = ValidateBatchOperator(
            task_id="validate",
            dataset="{{ params.dataset }}",
            snapshot_id="{{ ti.xcom_pull(task_ids='ingest')['snapshot_id'] }}",
            suite="{{ params.suite }}",
            allowed_suites=suites,
            on_failure="{{ params.on_validation_failure }}",
            store_uri=store_uri,
            store_conn_id=store_conn_id,
            outlets=[validated_alias()],
        )
        ingest >> validate
    return dag


def _suites_allowed(suite: str | None, allowed_suites: Sequence[str] | None) -> list[str]:
    """The suite names a run may choose: the author's `allowed_suites`, else only the DAG's own `suite` (a run
    cannot switch validation to a laxer suite unless the author listed it). Empty always means configured."""
    if allowed_suites is None:
        return [suite] if suite else []
    if isinstance(allowed_suites, str):
        from airflow_provider_llmops.errors import ConfigurationError

        raise ConfigurationError("allowed_suites must be a list of suite names, not a string")
    return list(dict.fromkeys(allowed_suites))


def _suite_param(suite: str | None, allowed: list[str]) -> Param:
    """The `suite` Param: empty = by configuration; otherwise one of the suite NAMES the author allowed (never a
    path), checked again at run time against the configured suites folders."""
    from airflow_provider_llmops.core.data.validation import check_suite_name

    default = check_suite_name(suite) if suite else ""
    for name in allowed:
        check_suite_name(name)
    if default and default not in allowed:
        from airflow_provider_llmops.errors import ConfigurationError

        raise ConfigurationError(f"suite {default!r} is not one of allowed_suites {allowed}")
    description = (
        "Great Expectations suite, by name, among those the DAG author allowed. "
        "Empty: the dataset's configured suite ([llmops] dataset_suites, else default_suite)."
    )
    return Param(default, type="string", enum=["", *allowed], description=description)


def _allowed_conn_ids(own: str | None, allowed: Sequence[str] | None) -> tuple[str, ...]:
    """The DAG's own source connection and the ones its author (or `[llmops] allowed_source_conn_ids`) allowed."""
    if allowed is None:
        from airflow_provider_llmops.settings import load_settings

        allowed = load_settings().allowed_source_conn_ids
    if isinstance(allowed, str):
        from airflow_provider_llmops.errors import ConfigurationError

        raise ConfigurationError("allowed_source_conn_ids must be a list of connection ids, not a string")
    return tuple(dict.fromkeys(c.strip() for c in [own or "", *allowed] if c and c.strip()))


def _source_conn_param(own: str | None, conn_ids: tuple[str, ...]) -> Param:
    """The `source_conn_id` Param: a choice among the allowed connection ids, or "" for none."""
    return Param(
        own or "",
        type="string",
        enum=["", *conn_ids],
        description="Connection for the source, one the DAG author allowed: an llmops_s3 connection for s3://, "
        "basic/bearer auth for http(s)://. Empty: none. The URI must still be within [llmops] allowed_uri_prefixes "
        "and the connection's allowed_hosts.",
    )
