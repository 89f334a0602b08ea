"""FineTuneOperator: fine-tune a transformers model on validated snapshots and register it in MLflow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_llmops.links import MlflowModelVersionLink, MlflowRunLink

if TYPE_CHECKING:
    from airflow.sdk import Context


class FineTuneOperator(BaseOperator):
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
        super().__init__(**kwargs)
        self.model_name = model_name
        self.dataset = dataset
        self.snapshots = snapshots
        self.model_task = model_task
        self.base_model = base_model
        self.training = training or {}
        self.max_steps = max_steps
        self.max_train_minutes = max_train_minutes
        self.embedding_sample = embedding_sample
        self.mlflow_conn_id = mlflow_conn_id
        self.store_uri = store_uri
        self.store_conn_id = store_conn_id
        self._result: dict[str, Any] = {}
        self._inputs: list[str] = []

    def _config(self) -> Any:
        import json

        from airflow_provider_llmops.core.training import TrainConfig

        values = dict(json.loads(self.training) if isinstance(self.training, str) else self.training or {})
        values["task"] = self.model_task
        if self.base_model:
            values["base_model"] = self.base_model
        if self.max_steps not in (None, "", "None"):
            values["max_steps"] = int(self.max_steps)  # type: ignore[arg-type]
        if self.max_train_minutes not in (None, "", "None"):
            values["max_train_minutes"] = float(self.max_train_minutes)  # type: ignore[arg-type]
        return TrainConfig.from_dict(values)

    def _snapshots(self, store: Any) -> list[Any]:
        from airflow_provider_llmops.core.drift_job import passed_snapshots
        from airflow_provider_llmops.core.train_job import SnapshotSel
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
        from airflow_provider_llmops.core.train_job import train_and_register, train_key
        from airflow_provider_llmops.links import push_links
        from airflow_provider_llmops.operators._common import open_audit, open_registry, open_store, run_info
        from airflow_provider_llmops.settings import load_settings

        settings = load_settings()
        config = self._config()
        store = open_store(self.store_uri or settings.store_uri, self.store_conn_id or settings.store_conn_id)
        registry = open_registry(self.mlflow_conn_id)
        name = self.model_name or settings.model_name
        snapshots = self._snapshots(store)
        self._inputs = [store.ref(s.dataset, s.snapshot_id).uri for s in snapshots]
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
            audit=open_audit(settings, registry, name),
        )
        result["task"] = config.task
        self._result = result
        push_links(context, result.get("run_url"), result.get("version_url"))
        self.log.info(
            "registered %s version %s (%s), alias challenger",
            name,
            result["version"],
            "reused" if result["reused"] else "new",
        )
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_llmops.lineage import facets as F
        from airflow_provider_llmops.lineage.custom_facets import training_run_facet

        inputs = [F.input_dataset(uri) for uri in self._inputs]
        if not self._result:
            return OperatorLineage(inputs=inputs)
        r = self._result
        output = F.model_version_dataset(r["tracking_uri"], r["model_name"], r["version"], output=True)
        return OperatorLineage(inputs=inputs, outputs=[output], run_facets={"llmopsTraining": training_run_facet(r)})

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)
