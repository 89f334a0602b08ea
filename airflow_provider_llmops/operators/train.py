"""FineTuneOperator: fine-tune a transformers model on validated snapshots and register it in MLflow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.links import MlflowModelVersionLink, MlflowRunLink
from airflow_provider_llmops.operators.base import LLMOpsBaseOperator

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context


class FineTuneOperator(LLMOpsBaseOperator):
    """Fine-tune `base_model` for `task` on snapshots of `dataset` and register the result as `model_name`.

    Reads: `snapshots` ("dataset/snapshot_id" or bare ids of `dataset`); empty = every snapshot of `dataset` that
    passed validation. The train/validation split is fixed by `training["seed"]` and recorded.
    Writes (MLflow): a run with params, per-step loss and per-epoch validation metrics, the model (safetensors,
    tokenizer, label map), the drift reference profile of the training data, the split and plots (loss curve,
    confusion matrix); a new version of `model_name` tagged with snapshots, dag run, provider version and base
    model; the `challenger` alias on it.
    Audit: `model.registered` in `<home>/audit/audit.jsonl`.
    Decides: nothing; a retry of the same task in the same dag run reuses the version it registered.
    Budget: `max_steps` / `max_train_minutes` stop training cleanly; the reason is recorded (`stopped_by`).
    Returns (XCom): model name, version, MLflow run id and URLs, training summary.
    `training` takes any field of `core.training.TrainConfig` (epochs, batch_size, learning_rate, max_length, ...).
    """

    template_fields: Sequence[str] = (
        *LLMOpsBaseOperator.base_template_fields,
        "model_name",
        "dataset",
        "snapshots",
        "model_task",
        "base_model",
        "training",
        "max_steps",
        "max_train_minutes",
    )
    template_fields_renderers = {"training": "json"}
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#e8eefc"

    def __init__(
        self,
        *,
        model_name: str | None = None,
        dataset: str = "support_tickets",
        snapshots: Sequence[str] | str = (),
        model_task: str = "sequence-classification",
        base_model: str | None = None,
        training: dict[str, Any] | None = None,
        max_steps: int | str | None = None,
        max_train_minutes: float | str | None = None,
        embedding_sample: int = 1000,
        mlflow_conn_id: str | None = None,
        store_uri: str | None = None,
        store_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(store_uri=store_uri, store_conn_id=store_conn_id, mlflow_conn_id=mlflow_conn_id, **kwargs)
        self.model_name = model_name
        self.dataset = dataset
        self.snapshots = snapshots
        self.model_task = model_task
        self.base_model = base_model
        self.training = training or {}
        self.max_steps = max_steps
        self.max_train_minutes = max_train_minutes
        self.embedding_sample = embedding_sample

    def _config(self) -> Any:
        from airflow_provider_llmops.core.model.training import TrainConfig

        values = dict(self.as_json(self.training, "training") or {})
        values["task"] = self.model_task
        if self.base_model:
            values["base_model"] = self.base_model
        max_steps, max_train_minutes = self.as_int(self.max_steps), self.as_float(self.max_train_minutes)
        if max_steps is not None:
            values["max_steps"] = max_steps
        if max_train_minutes is not None:
            values["max_train_minutes"] = max_train_minutes
        return TrainConfig.from_dict(values)

    def _snapshots(self, store: Any) -> list[Any]:
        from airflow_provider_llmops.core.drift.job import passed_snapshots
        from airflow_provider_llmops.core.model.train_job import SnapshotSel
        from airflow_provider_llmops.errors import ConfigurationError

        given = self.snapshots or []
        if isinstance(given, (str, int)):
            given = str(given)
            given = [s.strip() for s in given.replace("\n", ",").split(",") if s.strip()]
        selected = [SnapshotSel.parse(s) if "/" in s else SnapshotSel(self.dataset, s) for s in given]
        if not selected:
            selected = [SnapshotSel(self.dataset, s) for s in passed_snapshots(store, self.dataset)]
        if not selected:
            raise ConfigurationError(f"no validated snapshot of dataset {self.dataset!r} to train on in {store.uri}")
        for sel in selected:
            if not store.exists(sel.dataset, sel.snapshot_id):
                raise ConfigurationError(f"snapshot {sel} does not exist in {store.uri}")
        return selected

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.core.model.train_job import train_and_register, train_key
        from airflow_provider_llmops.links import push_links
        from airflow_provider_llmops.operators._common import run_info

        settings = self.settings
        config = self._config()
        store = self.store
        registry = self.registry
        name = self.model_name or settings.model_name
        snapshots = self._snapshots(store)
        self._lineage = {"inputs": [store.ref(s.dataset, s.snapshot_id).uri for s in snapshots]}
        run = run_info(context)
        key = train_key(
            run.get("dag_id"),
            run.get("run_id"),
            run.get("task_id"),
            fallback=f"{name}|{','.join(map(str, snapshots))}|{config.to_dict()}",
        )
        work_dir = settings.home / "work"
        work_dir.mkdir(parents=True, exist_ok=True)
        self.log.info("training %s on %s (train key %s)", name, ", ".join(map(str, snapshots)), key)
        result = train_and_register(
            store=store,
            registry=registry,
            model_name=name,
            snapshots=snapshots,
            config=config,
            key=key,
            run=run,
            work_dir=work_dir,
            embedding_sample=self.embedding_sample,
            log=self.log.info,
            audit=self.audit,
        )
        result["task"] = config.task
        self._lineage["result"] = result
        push_links(context, result.get("run_url"), result.get("version_url"))
        self.log.info(
            "registered %s version %s (%s), alias challenger",
            name,
            result["version"],
            "reused" if result["reused"] else "new",
        )
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_llmops.lineage import facets as F
        from airflow_provider_llmops.lineage.custom_facets import training_run_facet

        inputs = [F.input_dataset(uri) for uri in self._lineage.get("inputs", [])]
        r = self._lineage.get("result")
        if not r:
            return OperatorLineage(inputs=inputs)
        output = F.model_version_dataset(r["tracking_uri"], r["model_name"], r["version"], output=True)
        return OperatorLineage(inputs=inputs, outputs=[output], run_facets={"llmopsTraining": training_run_facet(r)})
