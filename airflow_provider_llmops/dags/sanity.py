"""Factory of the `llmops_nightly_sanity` DAG: check the whole loop while nobody is looking."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from airflow_provider_llmops.dags._common import provider_dag
from airflow_provider_llmops.operators.sanity import SanityCheckOperator
from airflow_provider_llmops.operators.sanity_report import SanityReportOperator

CHECKS = ("champion", "endpoint", "freshness", "audit", "lineage")

DOC = """
### Nightly sanity of the LLMOps loop

Each check is a task, so the grid shows which one failed; each failure says what is wrong and where to look.

* **champion**: the `champion` alias points at a version whose model files (weights, tokenizer, `MLmodel`),
  drift profile and stored evaluation (hash-checked) are present and loadable, and whose stored metrics still
  reproduce on the golden set within the DAG's tolerances (no golden set: on a sample of the frozen evaluation set).
* **endpoint** (only with `[llmops] serve_url`): the live service answers the golden set with the champion's
  version and the labels the champion gives in-process.
* **freshness**: the newest validated snapshot is younger than the bound (26 h by default), and the newest drift
  report is of that batch.
* **audit**: the audit trail verifies (chain, HMACs, registry anchor), and the last champion change has its audit
  record, its registry tags and its lineage event.
* **lineage**: the OpenLineage file transport received events in the last day.

**report** (always runs) writes `sanity.json` / `sanity.html` under `<home>/reports/sanity/`, pushes
`llmops_sanity_check_ok{check}` and `llmops_sanity_last_run_timestamp_seconds`, and when a check failed sends one
alert to `[llmops] alert_webhook_url` and fails, so the run is red. A deadline alert goes to the same webhook when a
run is not done in time.
"""


def deadline_alert(minutes: float, webhook_url: str | None, webhook_conn_id: str | None) -> Any:
    """An Airflow 3.1+ `DeadlineAlert`: `WebhookNotifier` (run in the triggerer) when a run is not done `minutes`
    after it was queued."""
    from airflow.sdk import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    from airflow_provider_llmops.notifications.webhook import WebhookNotifier

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback(
            WebhookNotifier,
            kwargs={
                "title": "LLMOps nightly sanity missed its deadline",
                "message": f"an llmops_nightly_sanity run was not done {minutes:g} minutes after it was queued: look "
                "at its tasks in the grid (a stuck check, no free worker, an unreachable service)",
                "url": webhook_url,
                "conn_id": webhook_conn_id,
            },
        ),
        name="llmops_sanity_deadline",
    )


def build_sanity_dag(
    dag_id: str = "llmops_nightly_sanity",
    *,
    schedule: Any = "0 3 * * *",
    model_name: str | None = None,
    datasets: Sequence[str] | None = None,
    golden_path: str | None = None,
    tolerances: dict[str, float] | None = None,
    sample_rows: int = 2000,
    require_mlmodel: bool = True,
    max_age: timedelta = timedelta(hours=26),
    drift_grace: timedelta = timedelta(hours=2),
    lineage_within: timedelta = timedelta(days=1),
    serve_url: str | None = None,
    serve_conn_id: str | None = None,
    webhook_url: str | None = None,
    webhook_conn_id: str | None = None,
    deadline_minutes: float | None = 60,
    report_dir: str | None = None,
    checks: Sequence[str] = CHECKS,
    mlflow_conn_id: str | None = None,
    store_uri: str | None = None,
    store_conn_id: str | None = None,
    start_date: datetime | None = None,
    tags: list[str] | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """Build the DAG (nightly at 03:00 by default, no catch-up). `model_name` (default `[llmops] model_name`,
    read when the file is parsed) and `datasets` (default `[llmops] dataset`) are fixed by the author.
    `tolerances`: per metric, the largest change of the champion's re-scored metrics (default macro_f1 and accuracy
    0.02). `max_age`: bound on the newest validated snapshot's age; `drift_grace`: how long a new batch may wait for
    its drift run; `lineage_within`: the window in which lineage events must have arrived. `serve_url` /
    `serve_conn_id`: the service and its predict token (defaults: `[llmops] serve_url`, a token minted with the
    service's HS key). `webhook_url` / `webhook_conn_id`: where alerts go (default `[llmops] alert_webhook_url`).
    `deadline_minutes`: a DeadlineAlert to the webhook when a run is not done that long after it was queued (None:
    none). `checks`: a subset of the five checks."""
    from airflow_provider_llmops.errors import ConfigurationError

    unknown = sorted(set(checks) - set(CHECKS))
    if unknown or not checks:
        raise ConfigurationError(f"checks must be a non-empty subset of {', '.join(CHECKS)}; unknown: {unknown}")
    for metric, bound in (tolerances or {}).items():  # a wrong tolerance fails at parse time, naming the metric
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not 0 <= bound < float("inf"):
            raise ConfigurationError(f"tolerances[{metric!r}] must be a number >= 0, got {bound!r}")
    if deadline_minutes is not None:
        dag_kwargs.setdefault("deadline", deadline_alert(deadline_minutes, webhook_url, webhook_conn_id))
    hours = {
        "max_age_hours": max_age.total_seconds() / 3600,
        "drift_grace_hours": drift_grace.total_seconds() / 3600,
        "lineage_within_hours": lineage_within.total_seconds() / 3600,
    }
    with provider_dag(
        dag_id,
        schedule=schedule,
        params={},
        doc_md=DOC,
        start_date=start_date,
        tags=tags,
        max_age=timedelta(hours=26),
        render_template_as_native_obj=True,
        **dag_kwargs,
    ) as dag:
        common = {"mlflow_conn_id": mlflow_conn_id, "store_uri": store_uri, "store_conn_id": store_conn_id}
        tasks = [
            SanityCheckOperator(
                task_id=check,
                check=check,
                model_name=model_name,
                datasets=list(datasets) if datasets else None,
                golden_path=golden_path,
                tolerances=tolerances,
                sample_rows=sample_rows,
                require_mlmodel=require_mlmodel,
                serve_url=serve_url,
                serve_conn_id=serve_conn_id,
                retries=0,
                **hours,
                **common,
            )
            for check in checks
        ]
        report = SanityReportOperator(
            task_id="report",
            checks=list(checks),
            report_dir=report_dir,
            webhook_url=webhook_url,
            webhook_conn_id=webhook_conn_id,
            retries=0,
            **common,
        )
        tasks >> report
    return dag
