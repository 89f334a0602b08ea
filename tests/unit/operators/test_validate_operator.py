"""ValidateBatchOperator.execute with an empty context, in both failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from airflow_provider_llmops.core.store import DatasetStore
from airflow_provider_llmops.errors import ConfigurationError, SnapshotNotFoundError, ValidationFailedError
from airflow_provider_llmops.operators.ingest import IngestBatchOperator
from airflow_provider_llmops.operators.validate import ValidateBatchOperator


def _ingest(tmp: Path, rows: list[dict]) -> str:
    (tmp / "batch.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return IngestBatchOperator(task_id="ingest", source_uri=str(tmp / "batch.jsonl"), dataset="tickets").execute(context={})["snapshot_id"]


def _rows(n: int, label: str = "billing") -> list[dict]:
    return [{"id": f"r{i}", "text": f"Ticket number {i} about my invoice", "label": label, "channel": "email", "language": "en"} for i in range(n)]


def test_passing_snapshot_writes_report_and_returns_summary(allow_tmp: Path):
    snapshot_id = _ingest(allow_tmp, _rows(40))
    summary = ValidateBatchOperator(task_id="validate", dataset="tickets", snapshot_id=snapshot_id).execute(context={})
    assert summary["status"] == "passed" and summary["failed"] == [] and summary["rows"] == 40
    report = DatasetStore(str(allow_tmp / "store")).read_validation("tickets", snapshot_id)
    assert report["status"] == "passed" and report["great_expectations"]["success"] is True


def test_failing_snapshot_fails_listing_each_expectation_and_the_report(allow_tmp: Path):
    snapshot_id = _ingest(allow_tmp, _rows(40, label="unknown_queue"))
    op = ValidateBatchOperator(task_id="validate", dataset="tickets", snapshot_id=snapshot_id)
    with pytest.raises(ValidationFailedError) as caught:
        op.execute(context={})
    message = str(caught.value)
    assert "failed 1 expectation(s)" in message and "expect_column_values_to_be_in_set on column 'label'" in message
    assert f"full report: file://{allow_tmp}/store/snapshots/tickets/{snapshot_id}/validation.json" in message
    assert DatasetStore(str(allow_tmp / "store")).read_validation("tickets", snapshot_id)["status"] == "failed"
    lineage = op.get_openlineage_facets_on_failure(None)
    assertions = lineage.inputs[0].inputFacets["dataQualityAssertions"].assertions
    assert [a.column for a in assertions if not a.success] == ["label"]


def test_skip_mode_marks_the_snapshot_rejected(allow_tmp: Path):
    snapshot_id = _ingest(allow_tmp, _rows(40, label="unknown_queue"))

    class RecordingTI:  # stands in for the TaskInstance, which only a real run provides (see the DAG test)
        pushed: dict = {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

    ti = RecordingTI()
    with pytest.raises(AirflowSkipException, match="rejected"):
        ValidateBatchOperator(task_id="validate", dataset="tickets", snapshot_id=snapshot_id, on_failure="skip").execute(context={"ti": ti})
    assert ti.pushed["return_value"]["status"] == "rejected"
    assert DatasetStore(str(allow_tmp / "store")).read_validation("tickets", snapshot_id)["status"] == "rejected"


def test_unknown_snapshot_and_bad_mode(allow_tmp: Path):
    with pytest.raises(SnapshotNotFoundError, match="not found"):
        ValidateBatchOperator(task_id="v", dataset="tickets", snapshot_id="a" * 32).execute(context={})
    with pytest.raises(ConfigurationError, match="on_failure"):
        ValidateBatchOperator(task_id="v", dataset="tickets", snapshot_id="a" * 32, on_failure="ignore").execute(context={})
