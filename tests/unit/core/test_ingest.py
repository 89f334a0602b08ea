"""Ingestion: every kind of bad row at once, counts that always add up, content-addressed idempotency."""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_llmops.core.data import records as R
from airflow_provider_llmops.core.data.ingest import ingest
from airflow_provider_llmops.core.data.sources import SourceBlob, read_source
from airflow_provider_llmops.core.data.store import DatasetStore
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
        (
            b'{"id": "t10", "text": "Where is my parcel?", "label": "shipping_delivery", '
            b'"timestamp": "2026-03-01T10:00:00Z"}',
            None,
        ),
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
        (4, R.MALFORMED),
        (5, R.INVALID_UTF8),
        (6, R.EMPTY_TEXT),
        (7, R.EMPTY_ID),
        (8, R.DUPLICATE_ID),
        (9, R.OVERSIZED),
        (10, R.INVALID_TIMESTAMP),
    ]
    table = store.read_table("tickets", result.snapshot.snapshot_id)
    assert table.column("text").to_pylist()[0] == "Refund please,\nI returned it"


def test_csv_without_a_text_column_fails_naming_the_columns(tmp_path: Path):
    source = tmp_path / "export.csv"
    source.write_text("ticket,body\n1,hello\n")
    blob = read_source(str(source), allowed_roots=[str(tmp_path)])
    with pytest.raises(SourceError, match=r"no column for \['id', 'text'\].*columns present: \['ticket', 'body'\]"):
        ingest(blob, DatasetStore(str(tmp_path / "store")), "tickets")
    mapped = ingest(
        blob,
        DatasetStore(str(tmp_path / "store")),
        "tickets",
        R.ColumnMapping.from_config({"ticket": "id", "body": "text"}),
    )
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
        {
            "id": "a1",
            "text": "Card declined twice",
            "label": "billing",
            "timestamp": "2026-01-02T03:04:05Z",
            "channel": "chat",
        },
        {
            "id": "a2",
            "text": "Cannot log in",
            "label": "account_access",
            "timestamp": "2026-01-03T00:00:00Z",
            "channel": "email",
        },
    ]
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with open(tmp_path / "b.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
    store = DatasetStore(str(tmp_path / "store"))
    ids = {
        ingest(
            read_source(str(tmp_path / f"b.{ext}"), allowed_roots=[str(tmp_path)]), store, "tickets"
        ).snapshot.snapshot_id
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


# --- hostile rows: each one is quarantined with its reason (or accepted), and the batch always commits ----------


def _hostile_jsonl() -> tuple[bytes, dict[int, str | None]]:
    lines: list[tuple[bytes, str | None]] = [
        (b'{"id": "h1", "text": "ok", "timestamp": 1e20}', R.INVALID_TIMESTAMP),
        (b'{"id": "h2", "text": "ok", "timestamp": "99999-01-01"}', R.INVALID_TIMESTAMP),
        (b'{"id": "h3", "text": "ok", "timestamp": "9999-12-31T23:59:59-01:00"}', R.INVALID_TIMESTAMP),
        (b'{"id": ' + b"9" * 5000 + b', "text": "ok"}', R.MALFORMED),  # past the int<->str digit limit
        (b'{"id": "h5", "text": "ok", "n": NaN, "m": Infinity}', None),  # non-finite metadata becomes null
        (b'{"id": "h6", "text": "ok", "deep": ' + b"[" * 3000 + b"]" * 3000 + b"}", R.MALFORMED),  # RecursionError
        (b'{"id": "h7", "text": "\\ud800"}', R.INVALID_UTF8),  # a lone surrogate: Parquet cannot hold it
        (b'{"id": "h8", "text": "a\\u0000b"}', None),
        (b'{"id": "h9", "text": "first", "text": "second"}', R.MALFORMED),  # duplicate key
        (b'{"id": true, "text": "ok"}', R.WRONG_TYPE),
        (b'{"id": "h11", "text": "ok", "meta": {"a": 1}}', R.WRONG_TYPE),
        ('{"id": "", "text": "line\u2028separator\x85next"}'.encode(), R.EMPTY_ID),
        (b'{"id": "h13", "text": "ok", "": "unnamed"}', None),
        (b'{"id": "h14", "text": "ok", "timestamp": 1e308}', R.INVALID_TIMESTAMP),
        (b'{"id": 1e400, "text": "ok"}', R.WRONG_TYPE),  # a float (inf), not an id
        (b'{"id": "h16", "text": "ok", "timestamp": "2026-03-04T13:22:10Z"}', None),
    ]
    return b"\n".join(line for line, _ in lines) + b"\n", {i: reason for i, (_, reason) in enumerate(lines, start=1)}


def test_hostile_jsonl_rows_are_each_quarantined_with_a_reason(tmp_path: Path):
    data, expected = _hostile_jsonl()
    (tmp_path / "hostile.jsonl").write_bytes(data)
    store = DatasetStore(str(tmp_path / "store"))
    blob = read_source(str(tmp_path / "hostile.jsonl"), allowed_roots=[str(tmp_path)])
    result = ingest(blob, store, "tickets", max_row_bytes=65536)
    snapshot = result.snapshot.snapshot_id
    quarantine = store.read_quarantine("tickets", snapshot)
    assert {q["line"]: q["reason"] for q in quarantine} == {k: v for k, v in expected.items() if v is not None}
    assert result.rows_read == len(expected) and result.accepted == 4
    table = store.read_table("tickets", snapshot)
    assert table.column("id").to_pylist() == ["h5", "h8", "h13", "h16"]
    assert table.column("text").to_pylist()[1] == "a\x00b"
    assert "" not in table.column_names and table.column("n").to_pylist()[0] is None
    # every quarantine entry is one line for any line reader (U+2028 / U+0085 are escaped in the file)
    raw = (tmp_path / "store" / "snapshots" / "tickets" / snapshot / "quarantine.jsonl").read_bytes().decode("utf-8")
    assert [json.loads(line)["line"] for line in raw.splitlines()] == [q["line"] for q in quarantine]
    assert next(q["raw"] for q in quarantine if q["line"] == 12) == data.split(b"\n")[11].decode()
    details = {q["line"]: q["detail"] for q in quarantine}
    assert "appears twice" in details[9] and "nested too deeply" in details[6] and "digits" in details[4]
    assert all(len(d) < 300 for d in details.values())


def test_hostile_csv_rows(tmp_path: Path):
    data = b"".join(
        [
            b"id,text,meta\n",
            b"c1,a\rb,x\n",  # a bare CR in an unquoted field
            b"c2,\xff\rz,x\n",  # the same, with a byte that is not UTF-8
            b"c3,nul\x00inside,x\n",  # NUL is accepted
            b'c4,"never closed,x\nc5,ok,x\n',  # an unclosed quote runs to the end of the file
        ]
    )
    (tmp_path / "hostile.csv").write_bytes(data)
    store = DatasetStore(str(tmp_path / "store"))
    result = ingest(read_source(str(tmp_path / "hostile.csv"), allowed_roots=[str(tmp_path)]), store, "tickets")
    quarantine = store.read_quarantine("tickets", result.snapshot.snapshot_id)
    assert [(q["line"], q["reason"]) for q in quarantine] == [(2, R.MALFORMED), (3, R.INVALID_UTF8), (5, R.MALFORMED)]
    assert base64.b64decode(quarantine[1]["raw_base64"]) == b"c2,\xff\rz,x"  # the exact bytes survive
    assert store.read_table("tickets", result.snapshot.snapshot_id).column("text").to_pylist() == ["nul\x00inside"]
    assert result.rows_read == 4  # the unclosed quote swallows the rest of the file into one record


def _parquet(tmp_path: Path, table: pa.Table) -> SourceBlob:
    pq.write_table(table, tmp_path / "hostile.parquet")
    return read_source(str(tmp_path / "hostile.parquet"), allowed_roots=[str(tmp_path)])


def test_hostile_parquet_cells_reject_only_their_row(tmp_path: Path):
    table = pa.table(
        {
            "id": ["p1", "p2", "p3", "p4", "p5"],
            "text": ["ok", "ok", "ok", "ok", "ok"],
            # p2: a moment past year 9999
            "timestamp": pa.array([0, 10**15, None, 5, 6], pa.int64()).cast(pa.timestamp("s", tz="+05:30")),
            "day": pa.array([0, 1, 2**30, 3, 4], pa.int32()).cast(pa.date32()),  # p3: a date no Python date can hold
            "price": pa.array([Decimal("1.25"), None, None, None, None], pa.decimal128(10, 2)),
            "blob": pa.array([None, None, None, b"\x00\xff", None]),  # p4: binary metadata
            "nested": pa.array([None, None, None, None, {"a": 1}]),  # p5: struct metadata
        }
    )
    store = DatasetStore(str(tmp_path / "store"))
    result = ingest(_parquet(tmp_path, table), store, "tickets")
    quarantine = store.read_quarantine("tickets", result.snapshot.snapshot_id)
    assert [(q["line"], q["reason"]) for q in quarantine] == [
        (2, R.INVALID_TIMESTAMP),
        (3, R.WRONG_TYPE),
        (4, R.WRONG_TYPE),
        (5, R.WRONG_TYPE),
    ]
    accepted = store.read_table("tickets", result.snapshot.snapshot_id).to_pylist()
    assert [(r["id"], r["price"], r["day"]) for r in accepted] == [("p1", "1.25", "1970-01-01")]


def test_parquet_with_duplicate_columns_is_refused(tmp_path: Path):
    table = pa.Table.from_arrays([pa.array(["1"]), pa.array(["a"]), pa.array(["b"])], names=["id", "text", "text"])
    with pytest.raises(SourceError, match=r"duplicate Parquet columns \['text'\]"):
        ingest(_parquet(tmp_path, table), DatasetStore(str(tmp_path / "store")), "tickets")


# --- rows_read is counted by the parser, apart from the outcomes, and checked against them ------------------------


def test_rows_read_comes_from_the_parser_not_from_the_outcomes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from airflow_provider_llmops.core.data import ingest as ingest_module

    data = b'{"id": "1", "text": "a"}\n\n{"id": "2", "text": "b"}\n{broken\n'
    blob = SourceBlob(uri="x.jsonl", location="x.jsonl", data=data, sha256="0" * 64, file_format="jsonl")
    parsed = ingest_module.parse(data, "jsonl", 1000, "x.jsonl")
    assert parsed.rows_read == 3 and len(parsed.rows) == 3 and parsed.blank_lines == 1
    # a parser that loses a row (read 3, hands on 2) is caught before anything is committed
    lossy = dataclasses.replace(parsed, rows=parsed.rows[:2])
    monkeypatch.setattr(ingest_module, "parse", lambda *args: lossy)
    store = DatasetStore(str(tmp_path / "store"))
    with pytest.raises(ingest_module.IngestCountError, match="3 rows read but 2 accepted \\+ 0 quarantined"):
        ingest(blob, store, "tickets")
    assert store.list_snapshots("tickets") == []


def test_an_unexpected_error_on_one_row_quarantines_that_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real = R.normalise_row

    def flaky(raw, mapping):
        if raw.get("id") == "boom":
            raise KeyError("surprise")
        return real(raw, mapping)

    monkeypatch.setattr(R, "normalise_row", flaky)
    data = b'{"id": "1", "text": "a"}\n{"id": "boom", "text": "b"}\n{"id": "3", "text": "c"}\n'
    blob = SourceBlob(uri="x.jsonl", location="x.jsonl", data=data, sha256="0" * 64, file_format="jsonl")
    store = DatasetStore(str(tmp_path / "store"))
    result = ingest(blob, store, "tickets")
    assert (result.rows_read, result.accepted, result.quarantined) == (3, 2, 1)
    [entry] = store.read_quarantine("tickets", result.snapshot.snapshot_id)
    assert (entry["line"], entry["reason"]) == (2, R.MALFORMED)
    assert entry["detail"] == "unexpected error reading the row: KeyError: 'surprise'"


def test_unnamed_csv_columns_are_not_kept_and_may_repeat(tmp_path: Path):
    # trailing empty header cells, as spreadsheets write them
    (tmp_path / "export.csv").write_bytes(b"id,text,,\n1,hello,x,y\n")
    store = DatasetStore(str(tmp_path / "store"))
    result = ingest(read_source(str(tmp_path / "export.csv"), allowed_roots=[str(tmp_path)]), store, "tickets")
    assert (result.accepted, result.quarantined) == (1, 0)
    assert store.read_table("tickets", result.snapshot.snapshot_id).column_names == ["id", "text", "label", "timestamp"]


def test_two_columns_mapped_onto_one_name_refuse_a_csv_and_quarantine_a_jsonl_row(tmp_path: Path):
    mapping = R.ColumnMapping.from_config({"body": "text"})
    (tmp_path / "b.csv").write_bytes(b"id,body,text\n1,from body,from text\n")
    store = DatasetStore(str(tmp_path / "store"))
    with pytest.raises(SourceError, match=r"several columns for 'text' after mapping: \['body', 'text'\]"):
        ingest(read_source(str(tmp_path / "b.csv"), allowed_roots=[str(tmp_path)]), store, "tickets", mapping)
    (tmp_path / "b.jsonl").write_bytes(
        b'{"id": "1", "body": "from body", "text": "from text"}\n{"id": "2", "body": "only"}\n'
    )
    result = ingest(read_source(str(tmp_path / "b.jsonl"), allowed_roots=[str(tmp_path)]), store, "tickets", mapping)
    [entry] = store.read_quarantine("tickets", result.snapshot.snapshot_id)
    assert (entry["line"], entry["reason"]) == (1, R.MALFORMED)
    assert entry["detail"] == "columns 'body' and 'text' both map to 'text'"
    assert store.read_table("tickets", result.snapshot.snapshot_id).column("text").to_pylist() == ["only"]
