"""Ingest a source blob: parse, normalise, deduplicate, quarantine, and commit a content-addressed snapshot.

Whatever the bytes, every row read is either accepted or quarantined with a reason code, and the snapshot commits;
only a source unusable as a whole raises (`SourceError`). The parser counts the rows it reads on its own, and
`build_batch` checks that count against the two outcomes before anything is committed (`IngestCountError`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_provider_llmops import __version__
from airflow_provider_llmops.core.data import records as R
from airflow_provider_llmops.core.data.parsing import parse
from airflow_provider_llmops.core.data.sources import SourceBlob
from airflow_provider_llmops.core.data.store import DatasetStore, SnapshotRef, check_dataset_name
from airflow_provider_llmops.errors import SourceError


class IngestCountError(RuntimeError):
    """Internal error: the rows the parser read do not add up to accepted + quarantined (a bug, never the data's
    fault); raised before anything is committed."""


@dataclass
class Batch:
    """The outcome of reading one source: accepted canonical records and quarantined rows, in source order."""

    records: list[dict[str, str | None]]
    quarantine: list[dict[str, Any]]
    columns: list[str]  # canonical output columns, in order
    source_columns: list[str]
    rows_read: int  # counted by the parser as it read the source, not derived from the outcomes
    blank_lines: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def snapshot_id(self) -> str:
        """sha256 of the normalised content: schema version, columns, accepted records and quarantined rows."""
        digest = hashlib.sha256()
        digest.update(json.dumps({"schema_version": R.SCHEMA_VERSION, "columns": self.columns}).encode())
        for record in self.records:
            digest.update(b"\nR")
            digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        for entry in self.quarantine:
            digest.update(b"\nQ")
            digest.update(json.dumps(entry, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        return digest.hexdigest()[:32]


def _utf8_safe(text: str) -> str:
    """`text` unchanged when it has a UTF-8 form, else with its lone surrogates backslash-escaped."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def build_batch(blob: SourceBlob, mapping: R.ColumnMapping, max_row_bytes: int) -> Batch:
    """Parse `blob` and give every row read one outcome: accepted (normalised, first of its id) or quarantined
    with a reason code. Raises `SourceError` for a source unusable as a whole, `IngestCountError` on a bug."""
    parsed = parse(blob.data, blob.file_format, max_row_bytes, blob.uri)
    if blob.file_format in ("csv", "parquet"):
        missing = mapping.missing_required(parsed.columns)
        if missing:
            raise SourceError(
                blob.uri,
                f"has no column for {missing} after mapping; columns present: {parsed.columns} "
                f"(map them with column_map, e.g. {{'body': 'text'}})",
            )
        colliding = mapping.colliding(parsed.columns)
        if colliding:
            target, sources = next(iter(colliding.items()))
            raise SourceError(
                blob.uri,
                f"has several columns for {target!r} after mapping: {sources}; map only one of them (column_map)",
            )
    if parsed.rows_read == 0:
        raise SourceError(blob.uri, "is empty (0 rows)")
    records: list[dict[str, str | None]] = []
    quarantine: list[dict[str, Any]] = []
    first_seen: dict[str, int] = {}
    columns: dict[str, None] = dict.fromkeys(R.CANONICAL_COLUMNS)

    def reject(line: int, reason: str, detail: str, raw: str, raw_base64: str | None = None) -> None:
        safe_raw = _utf8_safe(raw)
        if safe_raw is not raw and raw_base64 is None:  # keep the exact bytes when the text had to be escaped
            try:
                raw_bytes = raw.encode("utf-8", "surrogateescape")  # undecodable source bytes
            except UnicodeEncodeError:
                raw_bytes = raw.encode("utf-8", "surrogatepass")
            raw_base64 = base64.b64encode(raw_bytes).decode("ascii")
        entry: dict[str, Any] = {"line": line, "reason": reason, "detail": _utf8_safe(detail), "raw": safe_raw}
        if raw_base64 is not None:
            entry["raw_base64"] = raw_base64
        quarantine.append(entry)

    for row in parsed.rows:
        if row.reason is not None:
            reject(row.line, row.reason, row.detail or row.reason, row.raw, row.raw_base64)
            continue
        assert row.row is not None
        try:
            record = R.normalise_row(row.row, mapping)
        except R.RowRejected as exc:
            reject(row.line, exc.reason, exc.detail, row.raw)
            continue
        except Exception as exc:  # noqa: BLE001 - a row must never fail the batch; the detail names the error
            detail = f"unexpected error reading the row: {type(exc).__name__}: {str(exc)[:200]}"
            reject(row.line, R.MALFORMED, detail, row.raw)
            continue
        record_id = str(record[R.ID])
        if record_id in first_seen:
            reject(
                row.line, R.DUPLICATE_ID, f"id {record_id!r} was first seen on line {first_seen[record_id]}", row.raw
            )
            continue
        first_seen[record_id] = row.line
        columns.update(dict.fromkeys(record))
        records.append(record)
    ordered = list(columns)
    for record in records:
        for column in ordered:
            record.setdefault(column, None)
    if len(records) + len(quarantine) != parsed.rows_read:
        raise IngestCountError(
            f"{blob.uri}: {parsed.rows_read} rows read but {len(records)} accepted + {len(quarantine)} quarantined; "
            "this is a bug in airflow-provider-llmops, please report it (nothing was committed)"
        )
    reasons = dict(sorted(Counter(entry["reason"] for entry in quarantine).items()))
    return Batch(records, quarantine, ordered, parsed.columns, parsed.rows_read, parsed.blank_lines, reasons)


def records_to_parquet(records: list[dict[str, str | None]], columns: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [
        pa.field(
            c, pa.timestamp("us", tz="UTC") if c == R.TIMESTAMP else pa.string(), nullable=c not in R.REQUIRED_COLUMNS
        )
        for c in columns
    ]
    arrays = []
    for column in columns:
        values = [r.get(column) for r in records]
        if column == R.TIMESTAMP:
            arrays.append(
                pa.array([datetime.fromisoformat(v) if v else None for v in values], type=pa.timestamp("us", tz="UTC"))
            )
        else:
            arrays.append(pa.array(values, type=pa.string()))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


# Characters str.splitlines() breaks a line at that json.dumps(ensure_ascii=False) leaves unescaped
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _one_line(text: str) -> str:
    if text.isascii():
        return text
    for char, escape in _LINE_BREAKS.items():
        text = text.replace(char, escape)
    return text


def quarantine_to_jsonl(entries: list[dict[str, Any]]) -> bytes:
    """One JSON object per line; U+0085/U+2028/U+2029 escaped so any line reader keeps each entry whole."""
    return "".join(_one_line(json.dumps(e, ensure_ascii=False)) + "\n" for e in entries).encode("utf-8")


@dataclass(frozen=True)
class IngestResult:
    snapshot: SnapshotRef
    created: bool
    rows_read: int
    accepted: int
    quarantined: int
    blank_lines: int
    reasons: dict[str, int]
    columns: list[str]
    source_columns: list[str]
    source_sha256: str
    source_bytes: int

    def summary(self) -> dict[str, Any]:
        """Small, JSON-safe summary for XCom."""
        return {
            "dataset": self.snapshot.dataset,
            "snapshot_id": self.snapshot.snapshot_id,
            "snapshot_uri": self.snapshot.uri,
            "quarantine_uri": self.snapshot.quarantine_uri,
            "created": self.created,
            "rows_read": self.rows_read,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "quarantine_reasons": self.reasons,
            "source_sha256": self.source_sha256,
        }


def ingest(
    blob: SourceBlob,
    store: DatasetStore,
    dataset: str,
    mapping: R.ColumnMapping | None = None,
    *,
    max_row_bytes: int = 65536,
    run_info: dict[str, Any] | None = None,
) -> IngestResult:
    """Read `blob` into a snapshot of `dataset`. The same content always gives the same id and writes nothing new."""
    check_dataset_name(dataset)
    mapping = mapping or R.ColumnMapping()
    batch = build_batch(blob, mapping, max_row_bytes)
    snapshot_id = batch.snapshot_id()
    if store.exists(dataset, snapshot_id):
        ref, created = store.ref(dataset, snapshot_id), False
    else:
        manifest = {
            "schema_version": R.SCHEMA_VERSION,
            "dataset": dataset,
            "snapshot_id": snapshot_id,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "provider_version": __version__,
            "source": {
                "uri": blob.uri,
                "location": blob.location,
                "sha256": blob.sha256,
                "format": blob.file_format,
                "bytes": len(blob.data),
            },
            "counts": {
                "rows_read": batch.rows_read,
                "accepted": len(batch.records),
                "quarantined": len(batch.quarantine),
                "blank_lines_skipped": batch.blank_lines,
                "reasons": batch.reasons,
            },
            "schema": [
                {"name": c, "type": "timestamp" if c == R.TIMESTAMP else "string", "required": c in R.REQUIRED_COLUMNS}
                for c in batch.columns
            ],
            "mapping": {
                "rename": dict(mapping.rename),
                "metadata": list(mapping.metadata) if mapping.metadata is not None else None,
            },
            "ingest_run": run_info or {},
        }
        ref, created = store.commit_snapshot(
            dataset,
            snapshot_id,
            records_to_parquet(batch.records, batch.columns),
            quarantine_to_jsonl(batch.quarantine),
            manifest,
        )
    return IngestResult(
        snapshot=ref,
        created=created,
        rows_read=batch.rows_read,
        accepted=len(batch.records),
        quarantined=len(batch.quarantine),
        blank_lines=batch.blank_lines,
        reasons=batch.reasons,
        columns=batch.columns,
        source_columns=batch.source_columns,
        source_sha256=blob.sha256,
        source_bytes=len(blob.data),
    )
