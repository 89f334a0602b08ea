"""llmops_drift run for real: branch on the verdict, retrain requests as asset events, schema-valid lineage with
the custom drift facet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.dagrun import run_dag
from tests.openlineage_spec import validate_event

pytestmark = pytest.mark.integration


def _validated(home: Path, sample_dir: Path, name: str) -> str:
    outcome = run_dag(home, "llmops_ingest_validate", {"dataset": "drift_e2e", "source_uri": str(sample_dir / name)})
    assert outcome.tasks == {"ingest": "success", "validate": "success"}
    return outcome.xcom["ingest"]["snapshot_id"]


def test_drift_dag_branches_and_requests_retraining(airflow_db: Path, sample_dir: Path):
    reference = _validated(airflow_db, sample_dir, "tickets_reference.jsonl")
    same = _validated(airflow_db, sample_dir, "tickets_batch_same.jsonl")
    drifted = _validated(airflow_db, sample_dir, "tickets_batch_drift.jsonl")

    calm = run_dag(airflow_db, "llmops_drift", {"dataset": "drift_e2e", "snapshot_id": same})
    assert calm.tasks == {
        "score_drift": "success",
        "decide": "success",
        "no_drift": "success",
        "request_retrain": "skipped",
    }
    assert calm.xcom["score_drift"]["verdict"] == "no_drift" and calm.xcom["score_drift"]["reference_snapshot_ids"] == [
        reference
    ]

    stormy = run_dag(airflow_db, "llmops_drift", {"dataset": "drift_e2e", "snapshot_id": drifted})
    assert stormy.tasks == {
        "score_drift": "success",
        "decide": "success",
        "no_drift": "skipped",
        "request_retrain": "success",
    }
    assert stormy.xcom["request_retrain"]["snapshot_id"] == drifted and stormy.xcom["request_retrain"]["drift"] is True

    forced = run_dag(airflow_db, "llmops_drift", {"dataset": "drift_e2e", "snapshot_id": same, "force_retrain": True})
    assert forced.tasks["request_retrain"] == "success" and forced.xcom["request_retrain"]["forced"] is True

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        requests = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == "llmops_retrain_requested_drift_e2e")
            .all()
        )
        assert [e.extra["snapshot_id"] for e in requests][-2:] == [drifted, same]

    checked = set()
    for event in calm.events + stormy.events + forced.events:
        checked |= set(validate_event(event))
    assert "llmopsDrift" in checked
    score_done = next(
        e for e in stormy.events if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(".score_drift")
    )
    facet = score_done["run"]["facets"]["llmopsDrift"]
    assert facet["verdict"] == "drift" and facet["embedding"]["drift"] is True
    assert {f["name"] for f in facet["features"] if f["drift"]} >= {"char_length", "label", "meta:channel"}
