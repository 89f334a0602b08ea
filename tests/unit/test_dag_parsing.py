"""DAG files parse fast and without heavy imports; a DagBag of them has no import errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_provider_llmops.resources import dag_files_dir

HEAVY = ["torch", "transformers", "mlflow", "great_expectations", "pandas", "sklearn", "boto3", "pyarrow"]

PROBE = """
import json, runpy, sys, time
start = time.perf_counter()
runpy.run_path(sys.argv[1])
elapsed = time.perf_counter() - start
print(json.dumps({"heavy": [m for m in json.loads(sys.argv[2]) if m in sys.modules], "seconds": elapsed}))
"""


@pytest.mark.slow
def test_dag_files_import_no_heavy_library():
    files = sorted(dag_files_dir().glob("*.py"))
    assert files, "no DAG files shipped"
    for dag_file in files:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(dag_file), json.dumps(HEAVY)], capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["heavy"] == [], f"{dag_file.name} imports {result['heavy']} at parse time"
        print(
            f"{dag_file.name}: parsed in {result['seconds'] * 1000:.0f} ms in a fresh interpreter "
            "(Airflow import included)"
        )


def test_dagbag_has_no_import_errors(tmp_path: Path):
    from airflow.dag_processing.dagbag import DagBag

    start = time.perf_counter()
    bag = DagBag(dag_folder=str(dag_files_dir()))
    print(f"DagBag of {len(bag.dags)} DAG(s) filled in {(time.perf_counter() - start) * 1000:.0f} ms")
    assert bag.import_errors == {}
    dag = bag.dags["llmops_ingest_validate"]
    assert [t.task_id for t in dag.topological_sort()] == ["ingest", "validate"]
    assert set(dag.params) >= {"source_uri", "dataset", "file_format", "column_map", "suite", "on_validation_failure"}
    assert dag.max_active_runs == 1 and "llmops" in dag.tags
    (alias,) = dag.get_task("validate").outlets
    assert alias.name == "llmops_validated"
    drift = bag.dags["llmops_drift"]
    assert {t.task_id for t in drift.tasks} == {"score_drift", "decide", "request_retrain", "no_drift"}
    assert set(drift.params) >= {"dataset", "snapshot_id", "reference_snapshot_id", "force_retrain"}
    assert drift.max_active_runs == 1 and "llmops_validated_support_tickets" in repr(drift.timetable.asset_condition)
    retrain = bag.dags["llmops_retrain"]
    assert {t.task_id for t in retrain.tasks} == {"should_retrain", "fine_tune", "evaluate", "promote", "no_retrain"}
    assert set(retrain.params) >= {
        "dataset",
        "model_name",
        "force_retrain",
        "max_steps",
        "max_train_minutes",
        "training",
        "gate",
    }
    assert retrain.max_active_runs == 1  # one alias swap at a time; the compare-and-swap guards the rest
    assert "llmops_retrain_requested_support_tickets" in repr(retrain.timetable.asset_condition)
    assert "0 2 * * *" in repr(retrain.timetable.timetable)  # and nightly
    assert [t.task_id for t in retrain.get_task("fine_tune").downstream_list] == ["evaluate"]
    rollback = bag.dags["llmops_rollback"]
    assert type(rollback.timetable).__name__ == "NullTimetable"  # manual only
    assert set(rollback.params) == {"model_name", "target_version", "reason"}


def test_factory_defaults_are_overridable():
    from airflow_provider_llmops.dags.ingest_validate import build_ingest_validate_dag

    dag = build_ingest_validate_dag(
        "tickets_hourly", schedule="@hourly", dataset="emails", source_uri="s3://landing/tickets.csv"
    )
    assert dag.dag_id == "tickets_hourly"
    assert dag.params["dataset"] == "emails" and dag.params["source_uri"] == "s3://landing/tickets.csv"
