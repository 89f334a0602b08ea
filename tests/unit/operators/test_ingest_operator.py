"""IngestBatchOperator.execute with an empty context (no metadata DB needed), and its lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_llmops.core.store import DatasetStore
from airflow_provider_llmops.errors import NoValidRowsError, PathNotAllowedError, SourceError
from airflow_provider_llmops.operators.ingest import IngestBatchOperator


def test_execute_returns_a_small_summary(allow_tmp: Path, sample_dir: Path):
    op = IngestBatchOperator(task_id="ingest", source_uri=str(sample_dir / "golden.jsonl"), dataset="golden")
    summary = op.execute(context={})
    assert summary["accepted"] == summary["rows_read"] == 70 and summary["quarantined"] == 0
    assert summary["created"] is True
    assert len(json.dumps(summary)) < 2000  # XCom carries references, not data
    assert DatasetStore(str(allow_tmp / "store")).exists("golden", summary["snapshot_id"])


def test_column_map_from_a_rendered_param(allow_tmp: Path):
    (allow_tmp / "export.csv").write_text("ticket,body,queue\n1,Refund my order,returns_refunds\n")
    op = IngestBatchOperator(
        task_id="ingest", source_uri=str(allow_tmp / "export.csv"), dataset="export",
        column_map='{"ticket": "id", "body": "text", "queue": "label"}',
    )
    assert op.execute(context={})["accepted"] == 1


def test_all_rows_bad_fails_but_keeps_the_quarantine(allow_tmp: Path):
    (allow_tmp / "bad.jsonl").write_text('{"id": "1"}\n{"id": "2", "text": ""}\nnot json\n')
    op = IngestBatchOperator(task_id="ingest", source_uri=str(allow_tmp / "bad.jsonl"), dataset="bad")
    with pytest.raises(NoValidRowsError, match=r"none of 3 rows is valid .*quarantine.jsonl") as caught:
        op.execute(context={})
    assert "empty_text=1" in str(caught.value) and "malformed_row=1" in str(caught.value)
    store = DatasetStore(str(allow_tmp / "store"))
    (snapshot_id,) = store.list_snapshots("bad")
    assert len(store.read_quarantine("bad", snapshot_id)) == 3


def test_path_outside_allowed_roots_is_refused(allow_tmp: Path):
    op = IngestBatchOperator(task_id="ingest", source_uri="/etc/passwd.jsonl", dataset="x")
    with pytest.raises(PathNotAllowedError, match="'/etc/passwd.jsonl'.*outside the allowed roots"):
        op.execute(context={})
    assert not (allow_tmp / "store").exists()


def test_empty_file_fails_naming_the_source(allow_tmp: Path):
    (allow_tmp / "empty.jsonl").write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty\.jsonl.*is empty"):
        IngestBatchOperator(task_id="ingest", source_uri=str(allow_tmp / "empty.jsonl"), dataset="x").execute(context={})


def test_lineage_names_source_snapshot_and_quarantine(allow_tmp: Path, sample_dir: Path):
    op = IngestBatchOperator(task_id="ingest", source_uri=str(sample_dir / "golden.jsonl"), dataset="golden")
    summary = op.execute(context={})
    lineage = op.get_openlineage_facets_on_complete(None)
    (source,) = lineage.inputs
    assert (source.namespace, source.name) == ("file", str(sample_dir / "golden.jsonl"))
    assert source.inputFacets["inputStatistics"].rowCount == 70
    snapshot, quarantine = lineage.outputs
    assert snapshot.name.endswith(f"/snapshots/golden/{summary['snapshot_id']}") and snapshot.namespace == "file"
    assert snapshot.outputFacets["outputStatistics"].rowCount == 70
    assert [f.name for f in snapshot.facets["schema"].fields][:4] == ["id", "text", "label", "timestamp"]
    assert quarantine.outputFacets["outputStatistics"].rowCount == 0


def test_lineage_on_failure_still_names_the_input(allow_tmp: Path):
    op = IngestBatchOperator(task_id="ingest", source_uri=str(allow_tmp / "missing.jsonl"), dataset="x")
    with pytest.raises(SourceError):
        op.execute(context={})
    lineage = op.get_openlineage_facets_on_failure(None)
    assert [d.name for d in lineage.inputs] == [str(allow_tmp / "missing.jsonl")] and lineage.outputs == []


def test_templated_fields_cover_what_users_template():
    assert {"source_uri", "dataset", "file_format", "column_map", "store_uri"} <= set(IngestBatchOperator.template_fields)
