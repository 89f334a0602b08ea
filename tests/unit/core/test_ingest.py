"""Ingestion: every kind of bad row at once, counts that always add up, content-addressed idempotency."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_llmops.core import records as R
from airflow_provider_llmops.core.ingest import ingest
from airflow_provider_llmops.core.sources import read_source
from airflow_provider_llmops.core.store import DatasetStore
from airflow_provider_llmops.errors import SourceError


def every_bad_row_jsonl() -> tuple[bytes, dict[int, str | None], int]:
    """A JSONL file holding every kind of bad row; returns (bytes, {line: expected reason or None}, blank lines)."""
    lines: list[tuple[bytes, str | None]] = [
        (b'{"id": "t1", "text": "My invoice is wrong", "label": "billing", "channel": "email"}', None),
        (b'{"id": "t2", "text": "truncated', R.MALFORMED),
        ('{"id": "t3", "text": "caf\u00e9"}'.encode("latin-1"), R.INVALID_UTF8),
        (b'{"id": "t4"}', R.MISSING_COLUMN),
        (b'{"id": "t5", "text": 42}', R.WRONG_TYPE),
        (b'{"id": "t6", "text": "ok", "channel": {"nested": true}}', R.WRONG_TYPE),
        (b'{"id": "t7", "text": "   "}', R.EMPTY_TEXT),
        (b'{"id": "", "text": "no id"}', R.EMPTY_ID),
        (b'{"id": "t1", "text": "same id again"}', R.DUPLICATE_ID),
        (json.dumps({"id": "t8", "text": "x" * 5000}).encode(), R.OVERSIZED),
        (b'{"id": "t9", "text": "when?", "timestamp": "last tuesday"}', R.INVALID_TIMESTAMP),
        (b'["not", "an", "object"]', R.MALFORMED),
        (b"", "blank"),
        (b'{"id": "t10", "text": "Where is my parcel?", "label": "shipping_delivery", "timestamp": "2026-03-01T10:00:00Z"}', None),
    ]
    data = b"\n".join(line for line, _ in lines) + b"\n"
    expected = {i: reason for i, (_, reason) in enumerate(lines, start=1) if reason != "blank"}
    return data, expected, 1


def test_every_kind_of_bad_row_at_once_loses_nothing(tmp_path: Path):
    data, expected, blank = every_bad_row_jsonl()
    source = tmp_path / "bad.jsonl"
    source.write_bytes(data)
    store = DatasetStore(str(tmp_path / "store"))
    result = ingest(read_source(str(source), allowed_roots=[str(tmp_path)]), store, "tickets", max_row_bytes=1024)

    rows_read = len(expected)
    assert result.rows_read == rows_read == result.accepted + result.quarantined
    assert result.accepted == 2 and result.blank_lines == blank
    quarantine = store.read_quarantine("tickets", result.snapshot.snapshot_id)
    assert {q["line"]: q["reason"] for q in quarantine} == {k: v for k, v in expected.items() if v is not None}
    assert set(result.reasons) == set(R.REASONS)  # every reason code is exercised here
    assert all(q["detail"] and "raw" in q for q in quarantine)
    # the undecodable row's exact bytes survive
    bad_utf8 = next(q for q in quarantine if q["reason"] == R.INVALID_UTF8)
    assert base64.b64decode(bad_utf8["raw_base64"]) == data.split(b"\n")[2]
    # duplicates say where the first one was
    assert "line 1" in next(q["detail"] for q in quarantine if q["reason"] == R.DUPLICATE_ID)
    table = store.read_table("tickets", result.snapshot.snapshot_id)
    assert table.column("id").to_pylist() == ["t1", "t10"]
    manifest = store.read_manifest("tickets", result.snapshot.snapshot_id)
    assert manifest["counts"] == {
        "rows_read": rows_read,
        "accepted": 2,
        "quarantined": rows_read - 2,
        "blank_lines_skipped": blank,
        "reasons": result.reasons,
    }
    assert manifest["source"]["sha256"] == result.source_sha256


def test_every_kind_of_bad_row_in_csv(tmp_path: Path):
    good = 'c1,"Refund please,\nI returned it",returns_refunds,2026-02-01T00:00:00Z'
    rows = [
        ("id,text,label,timestamp", None),
        (good, None),
        ("c2,only three,fields", R.MALFORMED),
        ("c3,caf\udce9,billing,", R.INVALID_UTF8),
        ("c4,,billing,", R.EMPTY_TEXT),
        (",no id,billing,", R.EMPTY_ID),
        ("c1,dup,billing,", R.DUPLICATE_ID),
        ("c5," + "y" * 3000 + ",billing,", R.OVERSIZED),
        ("c6,when,billing,someday", R.INVALID_TIMESTAMP),
        ("c7,fine,billing,", None),
    ]
    data = "\n".join(r for r, _ in rows).encode("utf-8", "surrogateescape") + b"\n"
    source = tmp_path / "bad.csv"
    source.write_bytes(data)
    store = DatasetStore(str(tmp_path / "store"))
    result = ingest(read_source(str(source), allowed_roots=[str(tmp_path)]), store, "tickets", max_row_bytes=1024)
    assert result.rows_read == len(rows) - 1 == result.accepted + result.quarantined
    quarantine = store.read_quarantine("tickets", result.snapshot.snapshot_id)
    # the quoted two-line record starts on line 2, so everything after it is shifted by one
    assert [(q["line"], q["reason"]) for q in quarantine] == [
        (4, R.MALFORMED), (5, R.INVALID_UTF8), (6, R.EMPTY_TEXT), (7, R.EMPTY_ID),
        (8, R.DUPLICATE_ID), (9, R.OVERSIZED), (10, R.INVALID_TIMESTAMP),
    ]
    table = store.read_table("tickets", result.snapshot.snapshot_id)
    assert table.column("text").to_pylist()[0] == "Refund please,\nI returned it"


def test_csv_without_a_text_column_fails_naming_the_columns(tmp_path: Path):
    source = tmp_path / "export.csv"
    source.write_text("ticket,body\n1,hello\n")
    blob = read_source(str(source), allowed_roots=[str(tmp_path)])
    with pytest.raises(SourceError, match=r"no column for \['id', 'text'\].*columns present: \['ticket', 'body'\]"):
        ingest(blob, DatasetStore(str(tmp_path / "store")), "tickets")
    mapped = ingest(blob, DatasetStore(str(tmp_path / "store")), "tickets", R.ColumnMapping.from_config({"ticket": "id", "body": "text"}))
    assert mapped.accepted == 1


def test_same_input_same_id_and_nothing_new_written(tmp_path: Path, sample_dir: Path):
    store_dir = tmp_path / "store"
    blob = read_source(str(sample_dir / "tickets_batch_same.jsonl"), allowed_roots=[str(sample_dir)])
    first = ingest(blob, DatasetStore(str(store_dir)), "tickets")
    files_before = {p: p.stat().st_mtime_ns for p in store_dir.rglob("*") if p.is_file()}
    second = ingest(blob, DatasetStore(str(store_dir)), "tickets")
    files_after = {p: p.stat().st_mtime_ns for p in store_dir.rglob("*") if p.is_file()}
    assert first.created and not second.created
    assert first.snapshot == second.snapshot
    assert files_before == files_after


def test_same_content_in_three_formats_is_one_snapshot(tmp_path: Path):
    rows = [
        {"id": "a1", "text": "Card declined twice", "label": "billing", "timestamp": "2026-01-02T03:04:05Z", "channel": "chat"},
        {"id": "a2", "text": "Cannot log in", "label": "account_access", "timestamp": "2026-01-03T00:00:00Z", "channel": "email"},
    ]
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with open(tmp_path / "b.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
    store = DatasetStore(str(tmp_path / "store"))
    ids = {
        ingest(read_source(str(tmp_path / f"b.{ext}"), allowed_roots=[str(tmp_path)]), store, "tickets").snapshot.snapshot_id
        for ext in ("jsonl", "csv", "parquet")
    }
    assert len(ids) == 1


def test_changed_content_gives_a_new_snapshot(tmp_path: Path):
    store = DatasetStore(str(tmp_path / "store"))
    source = tmp_path / "b.jsonl"
    source.write_text('{"id": "1", "text": "a"}\n')
    first = ingest(read_source(str(source), allowed_roots=[str(tmp_path)]), store, "tickets")
    source.write_text('{"id": "1", "text": "b"}\n')
    second = ingest(read_source(str(source), allowed_roots=[str(tmp_path)]), store, "tickets")
    assert first.snapshot.snapshot_id != second.snapshot.snapshot_id
    assert sorted(store.list_snapshots("tickets")) == sorted([first.snapshot.snapshot_id, second.snapshot.snapshot_id])


def test_parquet_snapshot_has_typed_timestamps(tmp_path: Path, sample_dir: Path):
    store = DatasetStore(str(tmp_path / "store"))
    result = ingest(read_source(str(sample_dir / "golden.jsonl"), allowed_roots=[str(sample_dir)]), store, "golden")
    table = store.read_table("golden", result.snapshot.snapshot_id)
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert table.num_rows == result.accepted == result.rows_read
    assert {"channel", "region", "language", "product"} <= set(table.column_names)
