"""Factory of the `llmops_retrain` DAG: decide, fine-tune, evaluate against the champion, promote."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, task

from airflow_provider_llmops.assets import candidate_alias, champion_alias, retrain_request_asset_name
from airflow_provider_llmops.dags._common import dataset_param, provider_dag
from airflow_provider_llmops.operators.evaluate import EvaluateModelOperator
from airflow_provider_llmops.operators.promote import PromoteModelOperator
from airflow_provider_llmops.operators.train import FineTuneOperator

DOC = """
### Retrain, evaluate and promote

Runs nightly, whenever `llmops_drift` requests retraining (asset `llmops_retrain_requested_<dataset>`), or by
hand with Params.

1. **should_retrain** decides: Param `force_retrain`; no champion yet (the first model); a retraining request
   from the drift DAG; or (nightly) the newest validated snapshot drifted and the champion was not trained on it.
   Otherwise ➜ **no_retrain** and the run ends.
2. **fine_tune** trains on every validated snapshot of the dataset (or Param `snapshots`), logs to MLflow,
   registers a version and sets its `challenger` alias. A retry reuses the version it registered.
3. **evaluate** scores champion and challenger on the same frozen set: the held-out split plus the model's
   golden set when one is configured (`[llmops] golden_sets`), and stores the report with its SHA-256.
4. **promote** reads that stored report (hash-checked) and applies the DAG's gate; Param `gate` may only make it
   stricter (higher floors and margins, more guards, lower bounds) unless the DAG was built with
   `allow_gate_override=True`, and then every loosened field is written to the audit trail. On pass it moves
   `champion` / `previous-champion` as a compare-and-swap; a new champion is announced as the asset
   `llmops_champion_<model>` (alias `llmops_champion`). With an inference service configured (`[llmops]
   serve_url`) and a champion in place, the version becomes `candidate` instead, announced as
   `llmops_candidate_<model>` (alias `llmops_candidate`): `llmops_deploy` rolls it out through a canary.

At most one run is active at a time; `fine_tune` and `promote` change the registry and run in the one-slot pool
`[llmops] registry_pool` (create it: `airflow pools set llmops_registry 1 "llmops registry changes"`), and the
alias swap aborts if the champion moved since the evaluation.
"""


def build_retrain_dag(
    dag_id: str = "llmops_retrain",
    *,
    dataset: str | None = None,
    model_name: str | None = None,
    schedule: Any = None,
    cron: str = "0 2 * * *",
    model_task: str = "sequence-classification",
    base_model: str | None = None,
    training: dict[str, Any] | None = None,
    max_steps: int | None = None,
    max_train_minutes: float | None = 30.0,
    gate: dict[str, Any] | None = None,
    allow_gate_override: bool = False,
    golden_path: str | None = None,
    mlflow_conn_id: str | None = None,
    store_uri: str | None = None,
    store_conn_id: str | None = None,
    train_queue: str | None = None,
    train_pool: str | None = None,
    start_date: datetime | None = None,
    tags: list[str] | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """Build the DAG. By default it runs at `cron` (UTC) and on the retraining request asset of `dataset`.
    `dataset` / `model_name` default to `[llmops] dataset` / `model_name` (read when the DAG file is parsed).
    `gate` is the promotion gate (GateSpec fields); the `gate` Param may only tighten it unless
    `allow_gate_override`. `golden_path` None: the model's configured golden set (`[llmops] golden_sets`), if any.
    `train_queue` / `train_pool` send the training task to GPU workers (with `train_pool`, fine_tune leaves the
    registry pool; the registry-side compare-and-swap still guards its alias change)."""
    from airflow_provider_llmops.settings import load_settings

    settings = load_settings()
    dataset = dataset or settings.dataset
    model_name = model_name or settings.model_name
    params = {
        "dataset": dataset_param(dataset, "Dataset whose validated snapshots are trained on."),
        "model_name": Param(model_name, type="string", minLength=1, description="Registered MLflow model."),
        "force_retrain": Param(False, type="boolean", description="Retrain even without drift."),
        "snapshots": Param(
            None,
            type=["null", "string"],
            description="Comma-separated snapshot ids (or dataset/id). Empty: every validated snapshot.",
        ),
        "max_steps": Param(
            max_steps, type=["null", "integer"], minimum=1, description="Stop training after this many optimizer steps."
        ),
        "max_train_minutes": Param(
            max_train_minutes,
            type=["null", "number"],
            exclusiveMinimum=0,
            description="Stop training after this many minutes.",
        ),
        "training": Param(
            training or {"epochs": 2, "batch_size": 16, "max_length": 64},
            type="object",
            description="TrainConfig fields: epochs, batch_size, learning_rate, max_length, seed, ...",
        ),
        "gate": Param(
            {},
            type="object",
            description="Make the DAG's promotion gate stricter for this run (GateSpec fields: primary, "
            "min_abs_improvement, min_rel_improvement, guards, floors, max_fairness_gap, max_latency_p95_ms, "
            "fairness_unmeasured). "
            + ("Looser values are applied and audited." if allow_gate_override else "Looser values are refused."),
        ),
    }
    with provider_dag(
        dag_id,
        schedule=schedule
        if schedule is not None
        else AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(cron, timezone="UTC"),
            assets=[Asset.ref(name=retrain_request_asset_name(dataset))],
        ),
        params=params,
        doc_md=DOC,
        start_date=start_date,
        tags=tags,
        render_template_as_native_obj=True,  # Params keep their types (dicts, integers, null)
        **dag_kwargs,
    ) as dag:

        @task.branch(task_id="should_retrain")
        def should_retrain(params: dict[str, Any] | None = None, triggering_asset_events: Any = None) -> str:
            from airflow_provider_llmops.core.governance.retrain_decision import decide_retrain
            from airflow_provider_llmops.operators._common import open_registry, open_store
            from airflow_provider_llmops.settings import load_settings

            p = params or {}
            settings = load_settings()
            store = open_store(store_uri or settings.store_uri, store_conn_id or settings.store_conn_id)
            requested = any(True for key in (triggering_asset_events or {}) for _ in triggering_asset_events[key])
            retrain, reason = decide_retrain(
                store,
                open_registry(mlflow_conn_id),
                p.get("dataset", dataset),
                p.get("model_name", model_name),
                force=bool(p.get("force_retrain")),
                requested=requested,
            )
            print(f"{'retrain' if retrain else 'no retraining'}: {reason}")
            return "fine_tune" if retrain else "no_retrain"

        @task(task_id="no_retrain")
        def no_retrain() -> str:
            return "nothing to retrain"

        train_extra: dict[str, Any] = {"pool": train_pool or settings.registry_pool}
        if train_queue:
            train_extra["queue"] = train_queue
        fine_tune = FineTuneOperator(
            task_id="fine_tune",
            model_name="{{ params.model_name }}",
            dataset="{{ params.dataset }}",
            snapshots="{{ params.snapshots }}",
            model_task=model_task,
            base_model=base_model,
            training="{{ params.training }}",
            max_steps="{{ params.max_steps }}",
            max_train_minutes="{{ params.max_train_minutes }}",
            mlflow_conn_id=mlflow_conn_id,
            store_uri=store_uri,
            store_conn_id=store_conn_id,
            retries=1,
            **train_extra,
        )
        evaluate = EvaluateModelOperator(
            task_id="evaluate",
            model_name="{{ params.model_name }}",
            challenger_version="{{ ti.xcom_pull(task_ids='fine_tune')['version'] }}",
            golden_path=golden_path,
            mlflow_conn_id=mlflow_conn_id,
            store_uri=store_uri,
            store_conn_id=store_conn_id,
            retries=1,
        )
        promote = PromoteModelOperator(
            task_id="promote",
            evaluation=evaluate.output,
            gate=gate,
            gate_override="{{ params.gate }}",
            allow_gate_override=allow_gate_override,
            mlflow_conn_id=mlflow_conn_id,
            store_uri=store_uri,
            store_conn_id=store_conn_id,
            pool=settings.registry_pool,
            retries=1,
            outlets=[champion_alias(), candidate_alias()],
        )
        should_retrain() >> [fine_tune, no_retrain()]
        fine_tune >> evaluate >> promote
    return dag
