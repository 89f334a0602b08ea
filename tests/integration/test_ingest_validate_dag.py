"""llmops_ingest_validate run for real on a migrated SQLite metadata DB, with its OpenLineage events validated
against the official schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_llmops.core.data.store import DatasetStore
from tests.integration.dagrun import run_dag
from tests.openlineage_spec import validate_event

pytestmark = pytest.mark.integration
DAG_ID = "llmops_ingest_validate"


def _assert_all_events_valid(events: list[dict]) -> set[str]:
    assert events, "no OpenLineage events were written"
    checked: set[str] = set()
    for event in events:
        checked |= set(validate_event(event))
    return checked


def test_reference_batch_end_to_end(airflow_db: Path, sample_dir: Path):
    outcome = run_dag(
        airflow_db, DAG_ID, {"dataset": "tickets_e2e", "source_uri": str(sample_dir / "tickets_reference.jsonl")}
    )
    assert outcome.state.endswith("success"), outcome.tasks
    assert outcome.tasks == {"ingest": "success", "validate": "success"}
    ingest, validate = outcome.xcom["ingest"], outcome.xcom["validate"]
    assert ingest["rows_read"] == ingest["accepted"] == 3000 and ingest["quarantined"] == 0
    assert validate["status"] == "passed" and validate["snapshot_id"] == ingest["snapshot_id"]
    store = DatasetStore(str(airflow_db / "store"))
    assert store.read_validation("tickets_e2e", ingest["snapshot_id"])["status"] == "passed"

    # lineage: START + COMPLETE per task, all schema-valid, with the facets the issue asks for
    checked = _assert_all_events_valid(outcome.events)
    assert {"schema", "inputStatistics", "outputStatistics", "dataQualityAssertions", "dataQualityMetrics"} <= checked
    by_job = {(e["job"]["name"], e["eventType"]) for e in outcome.events}
    assert {(f"{DAG_ID}.ingest", "COMPLETE"), (f"{DAG_ID}.validate", "COMPLETE")} <= by_job
    ingest_done = next(
        e for e in outcome.events if e["job"]["name"] == f"{DAG_ID}.ingest" and e["eventType"] == "COMPLETE"
    )
    assert ingest_done["inputs"][0] == {
        **ingest_done["inputs"][0],
        "namespace": "file",
        "name": str(sample_dir / "tickets_reference.jsonl"),
    }
    snapshot_out = ingest_done["outputs"][0]
    assert snapshot_out["name"] == str(airflow_db / "store" / "snapshots" / "tickets_e2e" / ingest["snapshot_id"])
    assert snapshot_out["outputFacets"]["outputStatistics"]["rowCount"] == 3000
    validate_done = next(
        e for e in outcome.events if e["job"]["name"] == f"{DAG_ID}.validate" and e["eventType"] == "COMPLETE"
    )
    assertions = validate_done["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert len(assertions) == validate["evaluated"] and all(a["success"] for a in assertions)
    assert validate_done["inputs"][0]["name"] == snapshot_out["name"]  # validate reads what ingest wrote

    # the validated-dataset asset got an event carrying the snapshot id
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == "llmops_validated_tickets_e2e")
            .all()
        )
        assert events and events[-1].extra["snapshot_id"] == ingest["snapshot_id"]

    # a second run on the same input reuses the snapshot and writes nothing new
    again = run_dag(
        airflow_db, DAG_ID, {"dataset": "tickets_e2e", "source_uri": str(sample_dir / "tickets_reference.jsonl")}
    )
    assert again.state.endswith("success")
    assert again.xcom["ingest"]["snapshot_id"] == ingest["snapshot_id"] and again.xcom["ingest"]["created"] is False
    assert store.list_snapshots("tickets_e2e") == [ingest["snapshot_id"]]


def test_rejected_batch_is_skipped_downstream_and_kept(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path
):
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_ROOTS", f"{tmp_path},{sample_dir}")
    rows = [
        {
            "id": f"x{i}",
            "text": f"Something about ticket {i}",
            "label": "not_a_queue",
            "channel": "chat",
            "language": "en",
        }
        for i in range(30)
    ]
    (tmp_path / "odd.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("AIRFLOW__LLMOPS__DATASET_SUITES", json.dumps({"odd": "support_tickets"}))  # by configuration
    outcome = run_dag(
        airflow_db,
        DAG_ID,
        {"dataset": "odd", "source_uri": str(tmp_path / "odd.jsonl"), "on_validation_failure": "skip"},
    )
    assert outcome.tasks == {"ingest": "success", "validate": "skipped"}
    assert outcome.xcom["validate"]["status"] == "rejected"
    snapshot_id = outcome.xcom["ingest"]["snapshot_id"]
    assert DatasetStore(str(airflow_db / "store")).read_validation("odd", snapshot_id)["status"] == "rejected"
    _assert_all_events_valid(outcome.events)


def test_failures_fail_the_run_with_valid_fail_events(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path
):
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_ROOTS", f"{tmp_path},{sample_dir}")
    rows = [{"id": f"y{i}", "text": f"Ticket {i}", "label": "not_a_queue"} for i in range(30)]
    (tmp_path / "bad_labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("AIRFLOW__LLMOPS__DATASET_SUITES", json.dumps({"bad_labels": "support_tickets"}))
    # a run cannot pick another suite than the DAG's: the shipped DAG names none, so only "" (configured) is valid
    with pytest.raises(Exception, match="is not one of"):
        run_dag(
            airflow_db,
            DAG_ID,
            {"dataset": "bad_labels", "source_uri": str(tmp_path / "bad_labels.jsonl"), "suite": "generic"},
        )
    failed_validation = run_dag(
        airflow_db, DAG_ID, {"dataset": "bad_labels", "source_uri": str(tmp_path / "bad_labels.jsonl")}
    )
    assert failed_validation.tasks == {"ingest": "success", "validate": "failed"}
    fail_events = [e for e in failed_validation.events if e["eventType"] == "FAIL"]
    checked = {e["job"]["name"]: validate_event(e) for e in fail_events}
    validate_fail = next(e for e in fail_events if e["job"]["name"].endswith(".validate"))
    assert {"errorMessage", "dataQualityAssertions", "nominalTime"} <= set(checked[validate_fail["job"]["name"]])
    assert any(
        not a["success"] for a in validate_fail["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    )

    escaped = run_dag(airflow_db, DAG_ID, {"dataset": "x", "source_uri": "/etc/hostname.jsonl"})
    assert escaped.tasks == {"ingest": "failed", "validate": "upstream_failed"}
    ingest_fail = next(e for e in escaped.events if e["eventType"] == "FAIL" and e["job"]["name"].endswith(".ingest"))
    validate_event(ingest_fail)
    assert "outside the allowed roots" in json.dumps(ingest_fail["run"]["facets"].get("errorMessage", {}))
