"""Stand-ins for the slow model functions of the fast tier, and the small world the model tests share.

Only fine-tuning (`core.model.training.train`, ~45 s for a real run), loading a classifier for inference
(`core.model.modeling.load_classifier`, ~6 s plus torch) and, where train_job exports to ONNX, that export (it
traces the torch model, which a fake model is not; recorded as skipped with a reason) are replaced; everything
around them (the train, evaluate and promote jobs, the MLflow registry on SQLite, the store, the audit trail, the
drift profile with the packaged tokenizer, the metrics) runs for real. The slow tier trains and scores for real in
tests/integration/test_model_lifecycle.py.

`FakeTrainer(mode)` writes a model folder the way `training.train` does (config.json, a dummy model.safetensors,
the packaged tokenizer.json, label_map.json, training.json) plus `fake_model.json` saying how the `FakeClassifier`
loaded from it predicts: `oracle` (the true label of every training row), `noisy` (the true label of ~70% of the
texts, chosen by a hash of the text, else the next label) or `constant` (always the first label).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from airflow_provider_llmops.core.data.ingest import ingest
from airflow_provider_llmops.core.data.sources import SourceBlob
from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.core.model.contract import CONFIG_FILE, LABEL_MAP_FILE, TOKENIZER_FILE, TRAINING_FILE
from airflow_provider_llmops.core.model.training import TrainConfig, TrainResult, ids_digest, split_rows

FAKE_FILE = "fake_model.json"
MODES = ("oracle", "noisy", "constant")


def _noisy_hit(text: str) -> bool:
    return hashlib.sha256(text.encode()).digest()[0] < 180  # ~70% of texts


class FakeTrainer:
    """`training.train` without torch: the same split and label set, a model folder the fake classifier reads."""

    def __init__(self, mode: str = "oracle") -> None:
        assert mode in MODES
        self.mode = mode
        self.calls = 0

    def __call__(self, rows: Sequence[dict[str, Any]], config: TrainConfig, output_dir: Any, log: Any = print) -> Any:
        from airflow_provider_llmops.core.drift.features import default_model_dir

        self.calls += 1
        rows = [r for r in rows if str(r.get(config.text_column) or "").strip() and r.get(config.label_column)]
        train_rows, val_rows = split_rows(rows, config.seed, config.validation_fraction)
        labels = list(config.labels or sorted({str(r[config.label_column]) for r in train_rows}))
        output = Path(output_dir)
        output.mkdir(parents=True, exist_ok=True)
        (output / CONFIG_FILE).write_text(json.dumps({"architectures": ["FakeForSequenceClassification"]}))
        (output / "model.safetensors").write_bytes(b"dummy")
        shutil.copy(default_model_dir() / TOKENIZER_FILE, output / TOKENIZER_FILE)
        (output / LABEL_MAP_FILE).write_text(json.dumps({"labels": labels}))
        answers = {str(r[config.text_column]): str(r[config.label_column]) for r in rows}
        (output / FAKE_FILE).write_text(json.dumps({"mode": self.mode, "answers": answers}))
        (output / TRAINING_FILE).write_text(json.dumps({"config": config.to_dict()}))
        classifier = FakeClassifier(output)
        y_true = [labels.index(str(r[config.label_column])) for r in val_rows]
        y_pred = [labels.index(p) for p in classifier.predict([str(r[config.text_column]) for r in val_rows])]
        accuracy = sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / len(val_rows)
        steps = 2 if config.max_steps is None else min(2, config.max_steps)
        log(f"fake training ({self.mode}): {len(train_rows)} train / {len(val_rows)} validation rows")
        return TrainResult(
            model_dir=output,
            config=config.to_dict(),
            labels=labels,
            split={
                "seed": config.seed,
                "validation_fraction": config.validation_fraction,
                "train_rows": len(train_rows),
                "validation_rows": len(val_rows),
                "train_ids_sha256": ids_digest(train_rows),
                "validation_ids_sha256": ids_digest(val_rows),
            },
            steps=steps,
            planned_steps=2,
            samples=steps * config.batch_size,
            train_seconds=0.5,
            samples_per_second=steps * config.batch_size / 0.5,
            stopped_by="max_steps" if config.max_steps is not None else "completed",
            history=[{"step": s + 1, "epoch": s / 2, "loss": 1.0 / (s + 1)} for s in range(steps)],
            epochs=[{"epoch": 1.0, "step": steps, "loss": 0.4, "accuracy": accuracy}],
            validation={"y_true": y_true, "y_pred": y_pred},
        )


class FakeClassifier:
    """`modeling.TextClassifier` without torch: predicts as its folder's `fake_model.json` says."""

    def __init__(self, model_dir: Any, device: str = "auto", max_length: int | None = None) -> None:
        self.model_dir = Path(model_dir)
        spec = json.loads((self.model_dir / FAKE_FILE).read_text())
        self.mode, self.answers = spec["mode"], spec["answers"]
        self.labels = [str(x) for x in json.loads((self.model_dir / LABEL_MAP_FILE).read_text())["labels"]]
        self.max_length = max_length

    def _label(self, text: str) -> str:
        truth = self.answers.get(text, self.labels[0])
        if self.mode == "oracle" or (self.mode == "noisy" and _noisy_hit(text)):
            return truth
        if self.mode == "noisy":
            return self.labels[(self.labels.index(truth) + 1) % len(self.labels)]
        return self.labels[0]

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = np.full((len(texts), len(self.labels)), 0.1 / max(len(self.labels) - 1, 1))
        for i, text in enumerate(texts):
            out[i, self.labels.index(self._label(text))] = 0.9
        return out

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        return [self._label(t) for t in texts]

    def latencies(self, texts: Sequence[str], warmup: int = 3) -> list[float]:
        return [0.002] * len(texts)


def fake_models(monkeypatch: Any, mode: str = "oracle") -> FakeTrainer:
    """Replace training and classifier loading (and only those) for one test; returns the trainer."""
    from airflow_provider_llmops.core.model import modeling, train_job

    trainer = FakeTrainer(mode)
    monkeypatch.setattr(train_job, "train", trainer)
    monkeypatch.setattr(modeling, "load_classifier", lambda model_dir, **kw: FakeClassifier(model_dir, **kw))
    if hasattr(train_job, "export_classifier"):  # the ONNX export traces a torch model, which a fake model is not
        from airflow_provider_llmops.core.model.contract import ONNX_SKIPPED
        from airflow_provider_llmops.core.model.onnx_export import OnnxExport

        skipped = OnnxExport(ONNX_SKIPPED, reason="fake model (tests): no torch graph to export")
        monkeypatch.setattr(train_job, "export_classifier", lambda *args, **kwargs: skipped)
    return trainer


def jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def add_snapshot(store: DatasetStore, dataset: str, rows: Sequence[dict[str, Any]], passed: bool = True) -> str:
    """Ingest `rows` into a snapshot of `dataset` (the real ingest) and record a validation status, without GX."""
    data = jsonl(rows)
    blob = SourceBlob(
        uri="memory.jsonl",
        location="memory.jsonl",
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        file_format="jsonl",
    )
    snapshot_id = ingest(blob, store, dataset).snapshot.snapshot_id
    store.write_validation(dataset, snapshot_id, {"status": "passed" if passed else "failed"})
    return snapshot_id


def sample_rows(sample_dir: Path, name: str = "tickets_reference.jsonl", count: int = 120) -> list[dict[str, Any]]:
    lines = (sample_dir / name).read_text().splitlines()[:count]
    return [json.loads(line) for line in lines]


# --- the per-test world: a fresh SQLite MLflow registry (copied from a template), a store, a provider home -------


@functools.lru_cache(maxsize=1)
def _template_db(root: str) -> Path:
    """An empty, migrated MLflow SQLite database, created once per test session (creating the schema takes
    seconds; copying the file takes milliseconds)."""
    from airflow_provider_llmops.core.model.registry import ModelRegistry

    path = Path(root) / "mlflow-template" / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    ModelRegistry(f"sqlite:///{path}").ensure_model("template")
    return path


class ModelEnv:
    """`[llmops]` settings (home, store, MLflow tracking URI) pointed at `tmp` through the environment, as an
    Airflow worker would read them, plus direct handles on the same registry, store and audit trail."""

    def __init__(self, tmp: Path, monkeypatch: Any, session_home: Path) -> None:
        from airflow_provider_llmops.core.model.registry import ModelRegistry

        db = tmp / "mlflow" / "mlflow.db"
        db.parent.mkdir(parents=True)
        shutil.copy(_template_db(str(session_home)), db)
        self.uri = f"sqlite:///{db}"
        self.home = tmp / "home"
        self.store = DatasetStore(str(tmp / "store"))
        self.registry = ModelRegistry(self.uri, artifact_root=str(tmp / "mlflow" / "artifacts"))
        self.registry.settle_s = 0.0
        self.experiment_id = self.registry.experiment_id("llmops")  # artifacts of every run under tmp
        monkeypatch.setenv("AIRFLOW__LLMOPS__HOME", str(self.home))
        monkeypatch.setenv("AIRFLOW__LLMOPS__STORE_URI", str(tmp / "store"))
        monkeypatch.setenv("AIRFLOW__LLMOPS__MLFLOW_TRACKING_URI", self.uri)
        monkeypatch.setenv("AIRFLOW__LLMOPS__MLFLOW_UI_URL", "http://mlflow.test")
        monkeypatch.delenv("AIRFLOW__LLMOPS__MLFLOW_CONN_ID", raising=False)
        monkeypatch.delenv("AIRFLOW__LLMOPS__AUDIT_CONN_ID", raising=False)
        from airflow_provider_llmops.operators import _common

        real_open = _common.open_registry

        def open_registry(mlflow_conn_id: str | None = None) -> Any:  # the real one, minus the 0.25 s CAS settle
            registry = real_open(mlflow_conn_id)
            registry.settle_s = 0.0
            return registry

        monkeypatch.setattr(_common, "open_registry", open_registry)

    @property
    def audit_path(self) -> Path:
        return self.home / "audit" / "audit.jsonl"

    def events(self, event: str) -> list[dict[str, Any]]:
        from airflow_provider_llmops.core.governance.audit import records

        return [r for r in records(self.audit_path) if r["event"] == event] if self.audit_path.is_file() else []


class OutletEvents(dict):
    """`context["outlet_events"]`: records what an operator adds to an asset alias."""

    def __missing__(self, key: Any) -> Any:
        added: list[tuple[Any, dict[str, Any]]] = []
        self[key] = accessor = type(
            "Accessor", (), {"added": added, "add": lambda _s, a, extra: added.append((a, extra))}
        )()
        return accessor


def context(
    run_id: str = "manual__1",
    task_id: str = "task",
    dag_id: str = "llmops_retrain",
    *,
    outlets: Sequence[Any] = (),
    triggered_by: str | None = None,
) -> dict[str, Any]:
    """A stand-in task context: only the task instance's identity, its XCom pushes, the task's outlets, the
    outlet events and the dag run's triggering user matter to the operators."""
    from types import SimpleNamespace

    pushed: dict[str, Any] = {}
    ti = SimpleNamespace(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        try_number=1,
        xcom_push=lambda key, value: pushed.update({key: value}),
    )
    return {
        "ti": ti,
        "task": SimpleNamespace(outlets=list(outlets)),
        "outlet_events": OutletEvents(),
        "dag_run": SimpleNamespace(triggering_user_name=triggered_by),
        "pushed": pushed,
    }


def register_version(env: ModelEnv, model: str, snapshots: Sequence[str], mode: str = "oracle", seed: int = 42) -> str:
    """A version of `model` as train_job leaves one, minus the plots and profile: a finished run holding a fake
    model folder (`model/`) trained on `snapshots` ("dataset/snapshot_id"), the tags evaluate reads (snapshots,
    seed, validation fraction, task), the `challenger` alias. Cheaper than the FineTuneOperator; for the tests
    of what comes after training."""
    import tempfile

    from airflow_provider_llmops.core.model.contract import (
        CHALLENGER,
        MODEL_ARTIFACT,
        TAG_SEED,
        TAG_SNAPSHOTS,
        TAG_TASK,
        TAG_VAL_FRACTION,
    )
    from airflow_provider_llmops.core.model.train_job import SnapshotSel, load_rows

    config = TrainConfig(seed=seed)
    rows = load_rows(env.store, [SnapshotSel.parse(s) for s in snapshots])
    tags = {
        TAG_SNAPSHOTS: ",".join(snapshots),
        TAG_SEED: str(seed),
        TAG_VAL_FRACTION: str(config.validation_fraction),
        TAG_TASK: config.task,
    }
    client = env.registry.client
    run_id = client.create_run(env.experiment_id, tags=tags).info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        FakeTrainer(mode)(rows, config, Path(tmp) / MODEL_ARTIFACT, log=lambda *_: None)
        client.log_artifacts(run_id, str(Path(tmp) / MODEL_ARTIFACT), MODEL_ARTIFACT)
    client.set_terminated(run_id, "FINISHED")
    source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
    version = env.registry.register(model, source, run_id, tags).version
    client.set_registered_model_alias(model, CHALLENGER, version)
    return version


def dummy_versions(env: ModelEnv, model: str, count: int, tmp: Path) -> None:
    """`count` versions of `model` with a dummy artifact and no run (enough for promote and rollback)."""
    source = tmp / "dummy-model"
    source.mkdir(exist_ok=True)
    (source / "weights.txt").write_text("dummy")
    env.registry.ensure_model(model)
    for _ in range(count):
        env.registry.client.create_model_version(model, source=str(source), run_id=None)


def stored_evaluation(
    env: ModelEnv,
    model: str,
    challenger: str,
    champion: str | None,
    metrics: dict[str, Any],
    champion_metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Commit an evaluation report the way evaluate does (store + version tags) and return evaluate's XCom."""
    from airflow_provider_llmops.core.model.contract import TAG_EVALUATION, TAG_EVALUATION_SHA256
    from airflow_provider_llmops.core.model.evaluate_job import report_sha256

    digest = hashlib.sha256(repr(metrics).encode()).hexdigest()[:12]
    key = f"v{challenger}-vs-{'v' + champion if champion else 'none'}-{digest}"
    summary = {
        "model_name": model,
        "key": key,
        "challenger_version": challenger,
        "champion_version": champion,
        "challenger": metrics,
        "champion": champion_metrics if champion else None,
        "report_uri": env.store.evaluation_uri(model, key),
    }
    raw = json.dumps({"summary": summary, "results": {}}).encode()
    env.store.commit_evaluation(model, key, {"evaluation.json": raw})
    sha = report_sha256(raw)
    env.registry.tag_version(model, challenger, {TAG_EVALUATION: summary["report_uri"], TAG_EVALUATION_SHA256: sha})
    return {**summary, "report_sha256": sha}
