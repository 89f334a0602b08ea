"""Fine-tune on validated snapshots, log everything to MLflow, register a version and point `challenger` at it.

Idempotent per training key (dag id, run id, task id): a retry finds the version it already registered (tag
`llmops.train_key`) and reuses it. Until the version is registered and tagged, nothing is visible in the registry;
a failure after creating the version deletes it again, and the MLflow run is marked FAILED.

What a version's run holds (names in contract.py): `model/`, the fine-tuned model, which is also an MLflow Model
(`mlflow_model.write_mlflow_model`: `MLmodel` with a signature, input example and pinned requirements beside the
safetensors files), so `mlflow.pyfunc.load_model("models:/<name>@champion")` works; `onnx/model.onnx` when the
classifier exported to ONNX with parity on the held-out split (`onnx_export.export_classifier`; the outcome, and
why it was skipped, in the `llmops.onnx*` tags; an export problem never fails the training); `profile/`, `split/`
and `plots/` as before.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_llmops import __version__
from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.core.model.contract import (
    CHALLENGER,
    CHAMPION,
    MODEL_ARTIFACT,
    ONNX_ARTIFACT,
    ONNX_FILE,
    ONNX_SKIPPED,
    PLOTS_ARTIFACT,
    PROFILE_ARTIFACT,
    SPLIT_ARTIFACT,
    SPLIT_FILE,
    TAG_BASE_MODEL,
    TAG_DAG_ID,
    TAG_DAG_RUN,
    TAG_ONNX,
    TAG_ONNX_REASON,
    TAG_PROFILE,
    TAG_PROVIDER,
    TAG_SEED,
    TAG_SNAPSHOTS,
    TAG_STOPPED_BY,
    TAG_TASK,
    TAG_TRAIN_KEY,
    TAG_TRAIN_METRIC_PREFIX,
    TAG_VAL_FRACTION,
)
from airflow_provider_llmops.core.model.mlflow_model import write_mlflow_model
from airflow_provider_llmops.core.model.onnx_export import OnnxExport, export_classifier
from airflow_provider_llmops.core.model.registry import ModelRegistry, VersionInfo
from airflow_provider_llmops.core.model.training import TrainConfig, TrainResult, split_of, train
from airflow_provider_llmops.errors import ConfigurationError


@dataclass(frozen=True)
class SnapshotSel:
    dataset: str
    snapshot_id: str

    def __str__(self) -> str:
        return f"{self.dataset}/{self.snapshot_id}"

    @classmethod
    def parse(cls, value: str) -> SnapshotSel:
        dataset, _, snapshot_id = value.partition("/")
        if not dataset or not snapshot_id:
            raise ConfigurationError(f"snapshot reference {value!r} must be 'dataset/snapshot_id'")
        return cls(dataset, snapshot_id)


def train_key(dag_id: str | None, run_id: str | None, task_id: str | None, fallback: str) -> str:
    """What identifies one logical training: the Airflow task of a dag run, or (outside Airflow) the inputs."""
    material = f"{dag_id}|{run_id}|{task_id}" if run_id else fallback
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def load_rows(store: DatasetStore, snapshots: Sequence[SnapshotSel]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for sel in snapshots:
        rows.extend(store.read_table(sel.dataset, sel.snapshot_id).to_pylist())
    return rows


def rows_to_chunk(rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return {c: [row.get(c) for row in rows] for c in columns}


def _plots(result: TrainResult, directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(
        [h["step"] for h in result.history], [h["loss"] for h in result.history], lw=1, label="train loss (per step)"
    )
    if result.epochs and "loss" in result.epochs[-1]:
        ax.plot([e["step"] for e in result.epochs], [e["loss"] for e in result.epochs], "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(directory / "loss_curve.png", dpi=100)
    plt.close(fig)
    written.append(directory / "loss_curve.png")
    if result.labels and result.validation.get("y_true"):
        import numpy as np

        n = len(result.labels)
        matrix = np.zeros((n, n), dtype=int)
        for t, p in zip(result.validation["y_true"], result.validation["y_pred"], strict=True):
            matrix[t, p] += 1
        fig, ax = plt.subplots(figsize=(1 + 0.6 * n, 1 + 0.6 * n))
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(n), result.labels, rotation=45, ha="right")
        ax.set_yticks(range(n), result.labels)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("validation confusion matrix")
        fig.tight_layout()
        fig.savefig(directory / "confusion_matrix.png", dpi=100)
        plt.close(fig)
        written.append(directory / "confusion_matrix.png")
    return written


class _Remembered:
    """A classifier whose probabilities are remembered per text, so that the drift profile's predictions of the
    held-out split and the ONNX parity check on the same rows run the torch model once."""

    def __init__(self, classifier: Any) -> None:
        self._inner = classifier
        self._seen: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> Any:
        import numpy as np

        missing = list(dict.fromkeys(t for t in texts if t not in self._seen))
        if missing:
            self._seen.update(zip(missing, self._inner.predict_proba(missing, batch_size), strict=True))
        return np.array([self._seen[t] for t in texts], dtype=np.float64).reshape(len(texts), len(self._inner.labels))

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        probs = self.predict_proba(texts, batch_size)
        return [self._inner.labels[i] for i in probs.argmax(axis=1)] if len(texts) else []


def _held_out_texts(rows: Sequence[dict[str, Any]], config: TrainConfig) -> list[str]:
    """The texts of training's validation split (the rows the model was not trained on), in row order."""
    return [
        r[config.text_column]
        for r in rows
        if isinstance(r.get(config.text_column), str)
        and r[config.text_column].strip()
        and r.get("id") is not None
        and split_of(str(r["id"]), config.seed, config.validation_fraction) == "validation"
    ]


def _profile(
    rows: Sequence[dict[str, Any]],
    model_dir: Path,
    config: TrainConfig,
    snapshots: Sequence[SnapshotSel],
    embedding_sample: int,
    classifier: Any = None,
) -> Any:
    """The drift reference of a training run. Its `predicted_label` histogram is the new model predicting its own
    held-out split only (rows it was not trained on; `held_out_rows`), at the `max_length` it was trained with,
    which the profile records so scoring predicts at the same length. `classifier`: the model already loaded at
    that length (else it is loaded here)."""
    from airflow_provider_llmops.core.drift.profile import build_profile

    predictor = None
    categories: list[str] = []
    if config.task == "sequence-classification":
        from airflow_provider_llmops.core.model.modeling import load_classifier

        if classifier is None:
            classifier = load_classifier(model_dir, max_length=config.max_length)
        predictor, categories = classifier.predict, list(classifier.labels)
    chunk = rows_to_chunk(rows)
    return build_profile(
        lambda: iter([chunk]),
        text_column=config.text_column,
        label_column=config.label_column if config.task == "sequence-classification" else None,
        model_dir=model_dir,
        embedding_sample=embedding_sample,
        predictor=predictor,
        snapshot_ids=[s.snapshot_id for s in snapshots],
        predict_rows=held_out_rows(config.seed, config.validation_fraction),
        predict_rows_rule=f"held-out split: sha256('{config.seed}:' + id) < {config.validation_fraction:g}",
        predictor_max_length=config.max_length,
        predicted_categories=categories,
    )


def held_out_rows(seed: int, fraction: float, id_column: str = "id") -> Any:
    """A row selector for `build_profile`: True for the rows of a chunk in training's validation split (the rule
    of `core.training.split_of`); a row without an id was never in either split and is not chosen."""
    from airflow_provider_llmops.core.model.training import split_of

    def select(chunk: dict[str, list[Any]]) -> list[bool]:
        ids = chunk.get(id_column) or [None] * len(next(iter(chunk.values()), []))
        return [i is not None and split_of(str(i), seed, fraction) == "validation" for i in ids]

    return select


def _finished_version(registry: ModelRegistry, model_name: str, key: str) -> VersionInfo | None:
    found = registry.find_versions(model_name, {TAG_TRAIN_KEY: key})
    return found[-1] if found else None


def train_and_register(
    *,
    store: DatasetStore,
    registry: ModelRegistry,
    model_name: str,
    snapshots: Sequence[SnapshotSel],
    config: TrainConfig,
    key: str,
    run: dict[str, Any],
    work_dir: Path,
    embedding_sample: int = 1000,
    log: Any = print,
    audit: Any = None,
    export_onnx: bool = True,
) -> dict[str, Any]:
    """Train, log, register, set `challenger`; record `model.registered` in `audit` (an AuditTrail) when given.
    The model is logged as an MLflow Model; a classifier is also exported to ONNX unless `export_onnx` is False.
    Returns a JSON-safe summary (the XCom of the operator)."""
    if not snapshots:
        raise ConfigurationError("no snapshots to train on")
    registry.ensure_model(model_name, description="Managed by airflow-provider-llmops")
    existing = _finished_version(registry, model_name, key)
    experiment_id = registry.experiment_id(registry.experiment_name)
    if existing is not None:
        log(
            f"model version {model_name}/{existing.version} was already registered by this task "
            f"(train key {key}); reusing it"
        )
        if registry.alias(model_name, CHAMPION) == existing.version:
            log(f"version {existing.version} is already the champion; the challenger alias is left where it is")
        else:
            registry.client.set_registered_model_alias(model_name, CHALLENGER, existing.version)
        return _summary(registry, experiment_id, existing, reused=True)

    for stale in registry.find_runs(experiment_id, {TAG_TRAIN_KEY: key}):
        if stale.info.status == "RUNNING":  # an earlier try died mid-training: close its run
            registry.client.set_terminated(stale.info.run_id, status="FAILED")

    rows = load_rows(store, snapshots)
    base_model = config.base_model or "all-MiniLM-L6-v2 (packaged)"
    tags = {
        TAG_TRAIN_KEY: key,
        TAG_SNAPSHOTS: ",".join(str(s) for s in snapshots),
        TAG_DAG_ID: str(run.get("dag_id") or ""),
        TAG_DAG_RUN: str(run.get("run_id") or ""),
        TAG_PROVIDER: __version__,
        TAG_BASE_MODEL: base_model,
        TAG_TASK: config.task,
        TAG_SEED: str(config.seed),
        TAG_VAL_FRACTION: str(config.validation_fraction),
    }
    mlflow_run = registry.client.create_run(experiment_id, tags=tags, run_name=f"train-{model_name}-{key[:8]}")
    run_id = mlflow_run.info.run_id
    version: VersionInfo | None = None
    work = Path(tempfile.mkdtemp(prefix="llmops-train-", dir=work_dir))
    try:
        client = registry.client
        for name, value in config.to_dict().items():
            client.log_param(run_id, name, json.dumps(value) if isinstance(value, (list, dict)) else value)
        client.log_param(run_id, "rows", len(rows))
        result = train(rows, config, work / MODEL_ARTIFACT, log=log)
        _log_metrics(client, run_id, result)
        write_mlflow_model(work / MODEL_ARTIFACT, config.task)
        client.log_artifacts(run_id, str(work / MODEL_ARTIFACT), MODEL_ARTIFACT)
        split_dir = work / SPLIT_ARTIFACT
        split_dir.mkdir()
        (split_dir / SPLIT_FILE).write_text(
            json.dumps({**result.split, "snapshots": [str(s) for s in snapshots]}, indent=1)
        )
        client.log_artifacts(run_id, str(split_dir), SPLIT_ARTIFACT)
        for plot in _plots(result, work / PLOTS_ARTIFACT):
            client.log_artifact(run_id, str(plot), PLOTS_ARTIFACT)
        log("building the reference profile for drift from the training data")
        classifier = None
        if config.task == "sequence-classification":
            from airflow_provider_llmops.core.model.modeling import load_classifier

            classifier = _Remembered(load_classifier(work / MODEL_ARTIFACT, max_length=config.max_length))
        profile = _profile(rows, work / MODEL_ARTIFACT, config, snapshots, embedding_sample, classifier=classifier)
        profile.save(work / PROFILE_ARTIFACT)
        client.log_artifacts(run_id, str(work / PROFILE_ARTIFACT), PROFILE_ARTIFACT)
        tags[TAG_PROFILE] = profile.profile_id
        client.set_tag(run_id, TAG_PROFILE, profile.profile_id)
        onnx = _export_onnx(client, run_id, work, config, rows, classifier, export_onnx, log)
        tags.update(onnx.tags())
        source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
        version = registry.register(
            model_name,
            source,
            run_id,
            tags,
            description=f"{config.task} fine-tuned on {', '.join(str(s) for s in snapshots)}",
        )
        for metric, value in result.summary().items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                registry.client.set_model_version_tag(
                    model_name, version.version, f"{TAG_TRAIN_METRIC_PREFIX}{metric}", str(value)
                )
        registry.client.set_registered_model_alias(model_name, CHALLENGER, version.version)
        client.set_terminated(run_id, status="FINISHED")
    except BaseException:
        if version is not None:  # registered but not completed: leave nothing half-made behind
            registry.delete_version(model_name, version.version)
        registry.client.set_terminated(run_id, status="FAILED")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = _summary(registry, experiment_id, registry.get_version(model_name, version.version), reused=False)
    out["training"] = result.summary()
    out["split"] = result.split
    out["onnx"] = onnx.summary()
    if audit is not None:
        from airflow_provider_llmops.core.runs import actor_of

        audit.append(
            "model.registered",
            {
                "model": model_name,
                "version": version.version,
                "mlflow_run_id": run_id,
                "snapshots": [str(s) for s in snapshots],
                "base_model": base_model,
                "training": out["training"],
                "run": dict(run),
            },
            actor=actor_of(run),
        )
    return out


def _export_onnx(
    client: Any,
    run_id: str,
    work: Path,
    config: TrainConfig,
    rows: Sequence[dict[str, Any]],
    classifier: Any,
    enabled: bool,
    log: Any,
) -> OnnxExport:
    """The ONNX export of the model with its parity on the held-out split; logged as `onnx/` when it passed, its
    outcome as run tags and metrics. Never raises for a model it cannot export."""
    from mlflow.entities import Metric

    if not enabled:
        outcome = OnnxExport(ONNX_SKIPPED, reason="disabled (export_onnx=False)")
    else:
        target = work / ONNX_ARTIFACT / ONNX_FILE
        outcome = export_classifier(
            work / MODEL_ARTIFACT, target, _held_out_texts(rows, config), classifier=classifier, log=log
        )
        if outcome.exported:
            client.log_artifacts(run_id, str(target.parent), ONNX_ARTIFACT)
    for name, value in outcome.tags().items():
        client.set_tag(run_id, name, value)
    metrics = outcome.metrics()
    if metrics:
        client.log_batch(run_id, metrics=[Metric(k, v, int(time.time() * 1000), 0) for k, v in metrics.items()])
    return outcome


def _log_metrics(client: Any, run_id: str, result: TrainResult) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric("train_loss", h["loss"], now, int(h["step"])) for h in result.history]
    for record in result.epochs:
        metrics += [
            Metric(f"val_{k}", v, now, int(record["step"])) for k, v in record.items() if k not in ("epoch", "step")
        ]
    for name, value in result.summary().items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics.append(Metric(name, float(value), now, result.steps))
    for start in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[start : start + 900])
    client.set_tag(run_id, TAG_STOPPED_BY, result.stopped_by)


def _summary(registry: ModelRegistry, experiment_id: str, version: VersionInfo, reused: bool) -> dict[str, Any]:
    return {
        "model_name": version.name,
        "version": version.version,
        "run_id": version.run_id,
        "source": version.source,
        "reused": reused,
        "snapshots": version.tags.get(TAG_SNAPSHOTS, "").split(",") if version.tags.get(TAG_SNAPSHOTS) else [],
        "profile_id": version.tags.get(TAG_PROFILE),
        "run_url": registry.run_url(experiment_id, version.run_id) if version.run_id else None,
        "version_url": registry.version_url(version.name, version.version),
        "tracking_uri": registry.tracking_uri,
        "alias": CHALLENGER,
        "onnx": {"status": version.tags.get(TAG_ONNX), "reason": version.tags.get(TAG_ONNX_REASON)},
    }
