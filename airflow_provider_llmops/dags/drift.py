"""Factory of the `llmops_drift` DAG: score a validated snapshot for drift and decide whether to retrain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_llmops.assets import retrain_alias, retrain_request_asset, validated_asset_name
from airflow_provider_llmops.dags._common import dataset_param, provider_dag
from airflow_provider_llmops.operators.drift import DriftScoreOperator

DOC = """
### Drift of a validated batch against the training data

Runs whenever `llmops_ingest_validate` validates a new snapshot of `dataset` (asset
`llmops_validated_<dataset>`), or by hand with Params.

1. **score_drift** scores the snapshot (Param `snapshot_id`; empty = the one that triggered the run, else the
   latest validated one) against the reference profile: per-feature KL / PSI / JS with fixed and size-calibrated
   thresholds, plus embedding drift. Reports: `drift.json` / `drift.html` beside the snapshot.
2. **decide** branches: drift (or Param `force_retrain`) ➜ **request_retrain**, which emits the asset
   `llmops_retrain_requested_<dataset>` for the retraining DAG; no drift ➜ **no_drift**, and the run ends.
"""


def build_drift_dag(
    dag_id: str = "llmops_drift",
    *,
    dataset: str = "support_tickets",
    schedule: Any = None,
    reference_dataset: str = "",
    reference_snapshot_id: str = "",
    statistic: str = "psi",
    mode: str = "both",
    embeddings: bool = True,
    embedding_sample: int = 1000,
    store_uri: str | None = None,
    store_conn_id: str | None = None,
    start_date: datetime | None = None,
    tags: list[str] | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """Build the DAG. By default it is scheduled on the validated asset of `dataset`."""
    params = {
        "dataset": dataset_param(dataset, "Dataset to score."),
        "snapshot_id": Param(
            None,
            type=["null", "string"],
            description="Snapshot to score. Empty: the triggering one, else the latest validated.",
        ),
        "reference_dataset": Param(
            reference_dataset or None,
            type=["null", "string"],
            description="Dataset of the reference. Empty: the same dataset.",
        ),
        "reference_snapshot_id": Param(
            reference_snapshot_id or None,
            type=["null", "string"],
            description="Reference snapshot. Empty: the earliest validated one.",
        ),
        "statistic": Param(
            statistic,
            type="string",
            enum=["psi", "js", "kl", "kl_symmetric"],
            description="Statistic the verdicts use.",
        ),
        "mode": Param(
            mode, type="string", enum=["both", "fixed", "calibrated"], description="Which thresholds must be exceeded."
        ),
        "force_retrain": Param(False, type="boolean", description="Request retraining even without drift."),
    }
    with provider_dag(
        dag_id,
        schedule=schedule if schedule is not None else [Asset.ref(name=validated_asset_name(dataset))],
        params=params,
        doc_md=DOC,
        start_date=start_date,
        tags=tags,
        **dag_kwargs,
    ) as dag:
        score = DriftScoreOperator(
            task_id="score_drift",
            dataset="{{ params.dataset }}",
            snapshot_id="{{ params.snapshot_id }}",
            reference_dataset="{{ params.reference_dataset }}",
            reference_snapshot_id="{{ params.reference_snapshot_id }}",
            statistic="{{ params.statistic }}",
            mode="{{ params.mode }}",
            embeddings=embeddings,
            embedding_sample=embedding_sample,
            store_uri=store_uri,
            store_conn_id=store_conn_id,
        )

        @task.branch(task_id="decide")
        def decide(result: dict[str, Any], params: dict[str, Any] | None = None) -> str:
            forced = bool((params or {}).get("force_retrain"))
            return "request_retrain" if forced or result["drift"] else "no_drift"

        @task(task_id="request_retrain", outlets=[retrain_alias()])
        def request_retrain(
            result: dict[str, Any], params: dict[str, Any] | None = None, outlet_events: Any = None
        ) -> dict[str, Any]:
            request = {
                "dataset": result["dataset"],
                "snapshot_id": result["snapshot_id"],
                "drift": result["drift"],
                "forced": bool((params or {}).get("force_retrain")),
                "drifting_features": result["drifting_features"],
                "report_uri": result["report_uri"],
            }
            outlet_events[retrain_alias()].add(retrain_request_asset(result["dataset"]), extra=request)
            return request

        @task(task_id="no_drift")
        def no_drift(result: dict[str, Any]) -> str:
            return f"no drift in {result['dataset']} snapshot {result['snapshot_id']}: nothing to do"

        choice = decide(score.output)
        choice >> [request_retrain(score.output), no_drift(score.output)]
    return dag
