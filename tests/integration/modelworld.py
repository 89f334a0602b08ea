"""Shared set-up of the model tests: a private provider home and store with two small validated snapshots, and a
stand-in task instance (only its identity matters to the operators; it keeps those tests off the Airflow DB)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_llmops.operators.ingest import IngestBatchOperator
from airflow_provider_llmops.operators.validate import ValidateBatchOperator

TRAINING = {"max_length": 32, "batch_size": 16, "epochs": 1, "log_every_steps": 2}
LENIENT = {"floors": {"macro_f1": 0.0, "accuracy": 0.0}, "guards": {}, "max_fairness_gap": None}
SLICES = (("ref", "tickets_reference.jsonl", 320), ("drift", "tickets_batch_drift.jsonl", 200))


def slice_file(source: Path, target: Path, rows: int) -> Path:
    target.write_text("".join(source.read_text().splitlines(keepends=True)[:rows]))
    return target


def context(run_id: str, task_id: str = "fine_tune", dag_id: str = "llmops_retrain") -> dict[str, Any]:
    pushed: dict[str, Any] = {}
    ti = SimpleNamespace(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        try_number=1,
        xcom_push=lambda key, value: pushed.__setitem__(key, value),
    )
    return {"ti": ti, "pushed": pushed}


@contextlib.contextmanager
def model_world(root: Path, sample_dir: Path) -> Iterator[dict[str, str]]:
    """Point the provider at `root` (home, store, allowed sources) and ingest + validate the two slices of
    dataset `tickets`; yields {slice name: snapshot id}."""
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("AIRFLOW__LLMOPS__HOME", str(root / "home"))
        mp.setenv("AIRFLOW__LLMOPS__STORE_URI", str(root / "store"))
        mp.setenv("AIRFLOW__LLMOPS__ALLOWED_ROOTS", f"{root},{sample_dir}")
        mp.delenv("AIRFLOW__LLMOPS__MLFLOW_TRACKING_URI", raising=False)
        snapshots = {}
        for name, source, rows in SLICES:
            path = slice_file(sample_dir / source, root / f"{name}.jsonl", rows)
            snapshot_id = IngestBatchOperator(task_id="i", source_uri=str(path), dataset="tickets").execute(context={})[
                "snapshot_id"
            ]
            ValidateBatchOperator(task_id="v", dataset="tickets", snapshot_id=snapshot_id).execute(context={})
            snapshots[name] = snapshot_id
        yield snapshots
    finally:
        mp.undo()
