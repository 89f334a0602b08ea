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

    :param model_name: the registered MLflow model the new version belongs to. Default None:
        `[llmops] model_name` (`support_ticket_router`). (templated)
    :param dataset: the dataset of bare snapshot ids in `snapshots`, and whose validated snapshots are used when
        `snapshots` is empty. Default `support_tickets` (this argument's own default, not `[llmops] dataset`).
        (templated)
    :param snapshots: the snapshots to train on, as a list or as comma- or newline-separated text (what a Param
        renders to): `dataset/snapshot_id`, or a bare id of `dataset`. Each must exist in the store
        (ConfigurationError otherwise). Default empty: every snapshot of `dataset` that passed validation.
        (templated)
    :param model_task: `sequence-classification` (the default: the ticket router) or `causal-lm`; it replaces
        any `task` in `training`. (templated)
    :param base_model: the local checkpoint directory to fine-tune (safetensors weights and a tokenizer; no
        remote code, no download). Default None: `training["base_model"]`, else the packaged all-MiniLM-L6-v2.
        (templated)
    :param training: fields of `core.model.training.TrainConfig` (e.g. `epochs` 2, `batch_size` 16,
        `learning_rate` 5e-5, `max_length` 128, `seed` 42, `validation_fraction` 0.2, `labels`, `text_column`,
        `label_column`, `device` auto|cpu|cuda), as a dict or as JSON text (what a Param renders to); an unknown
        field or an invalid value is a ConfigurationError. Default None: TrainConfig's defaults. (templated)
    :param max_steps: stop training cleanly after this many optimizer steps (recorded as `stopped_by`); an int or
        its text (what a Param renders to); it replaces `training["max_steps"]`. Default None (or empty/"None"):
        `training`'s value, else no step limit. (templated)
    :param max_train_minutes: stop training cleanly after this many minutes of wall-clock time (a number or its
        text); it replaces `training["max_train_minutes"]`. Default None (or empty/"None"): `training`'s value,
        else no time limit. (templated)
    :param embedding_sample: the most training texts embedded (seeded reservoir sample), with the new model's
        encoder, into the drift reference profile registered with the model; default 1000. 0: the profile has
        no embedding sample, so drift scored against this model has no embedding test.
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

    def _config(self) -> Any:
        from airflow_provider_llmops.core.model.training import TrainConfig
        from airflow_provider_llmops.errors import ConfigurationError

        training = self.as_json(self.training, "training") or {}
        if not isinstance(training, dict):
            raise ConfigurationError(
                f"training must be a dict of TrainConfig fields, e.g. {{'epochs': 2, 'batch_size': 16}}, "
                f"got {training!r}"
            )
        values = dict(training)
        values["task"] = self.model_task
        if self.base_model:
            values["base_model"] = self.base_model
        try:
            max_steps = self.as_int(self.max_steps)
            max_train_minutes = self.as_float(self.max_train_minutes)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"max_steps must be a whole number of optimizer steps and max_train_minutes a number of minutes "
                f"(or empty for no limit), got max_steps={self.max_steps!r}, max_train_minutes="
                f"{self.max_train_minutes!r}"
            ) from None
        if max_steps is not None:
            values["max_steps"] = max_steps
        if max_train_minutes is not None:
            values["max_train_minutes"] = max_train_minutes
        try:
            return TrainConfig.from_dict(values)
        except TypeError as exc:  # a value of the wrong type, e.g. {"epochs": "two"}, fails a comparison
            raise ConfigurationError(
                f"training has a value of the wrong type ({exc}); give numbers for epochs, batch_size, "
                f"learning_rate, max_length, ...: {values!r}"
            ) from None

    def _snapshots(self, store: Any) -> list[Any]:
        from airflow_provider_llmops.core.drift.job import passed_snapshots
        from airflow_provider_llmops.core.model.train_job import SnapshotSel
        from airflow_provider_llmops.errors import ConfigurationError

        given = self.as_optional(self.snapshots) or []
        if isinstance(given, (str, int)):
            given = str(given)
            given = [s.strip() for s in given.replace("\n", ",").split(",") if s.strip()]
        selected = [SnapshotSel.parse(s) if "/" in s else SnapshotSel(self.dataset, s) for s in given]
        if not selected:
            selected = [SnapshotSel(self.dataset, s) for s in passed_snapshots(store, self.dataset)]
        if not selected:
            raise ConfigurationError(
                f"no validated snapshot of dataset {self.dataset!r} to train on in {store.uri}: ingest and validate "
                "a batch of it first, or name the snapshots to train on (snapshots='dataset/snapshot_id,...')"
            )
        for sel in selected:
            if not store.exists(sel.dataset, sel.snapshot_id):
                raise ConfigurationError(
                    f"snapshot {sel} does not exist (or is not committed) in {store.uri}: give the "
                    "'dataset/snapshot_id' of a committed snapshot (a bare id is read as one of dataset="
                    f"{self.dataset!r})"
                )
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
