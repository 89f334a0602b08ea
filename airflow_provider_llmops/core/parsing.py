"""Split a source blob into raw rows, each with its line (or row) number, or the reason it cannot be parsed.

JSONL: one physical line is one row; blank lines are skipped and counted. CSV: the first record is the header; a
row spans the physical lines of its record (quoted newlines included). Parquet: row N is the N-th row, from 1.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_llmops.core import records as R
from airflow_provider_llmops.errors import SourceError


@dataclass
class RawRow:
    line: int
    raw: str
    row: dict[str, Any] | None = None
    reason: str | None = None
    detail: str | None = None
    raw_base64: str | None = None


@dataclass
class ParsedSource:
    columns: list[str]  # source columns (header for CSV/Parquet, union of keys for JSONL)
    rows: list[RawRow]
    blank_lines: int = 0


def _undecodable(line_no: int, data: bytes, exc: UnicodeDecodeError) -> RawRow:
    return RawRow(
        line=line_no,
        raw=data.decode("utf-8", errors="backslashreplace"),
        reason=R.INVALID_UTF8,
        detail=f"byte {exc.start} is not valid UTF-8 ({exc.reason})",
        raw_base64=base64.b64encode(data).decode("ascii"),
    )


def _oversized(line_no: int, raw: str, size: int, limit: int) -> RawRow:
    return RawRow(line=line_no, raw=raw, reason=R.OVERSIZED, detail=f"row is {size} bytes, over the limit of {limit}")


def parse_jsonl(data: bytes, max_row_bytes: int) -> ParsedSource:
    rows: list[RawRow] = []
    columns: dict[str, None] = {}
    blank = 0
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for index, chunk in enumerate(data.split(b"\n"), start=1):
        chunk = chunk.rstrip(b"\r")
        if not chunk.strip():
            blank += 1
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            rows.append(_undecodable(index, chunk, exc))
            continue
        if len(chunk) > max_row_bytes:
            rows.append(_oversized(index, text, len(chunk), max_row_bytes))
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            rows.append(RawRow(line=index, raw=text, reason=R.MALFORMED, detail=f"invalid JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(value, dict):
            rows.append(RawRow(line=index, raw=text, reason=R.MALFORMED, detail=f"a row must be a JSON object, got {type(value).__name__}"))
            continue
        columns.update(dict.fromkeys(value))
        rows.append(RawRow(line=index, raw=text, row=value))
    # a trailing newline yields one empty last chunk, which is not a blank line of the file
    if data.endswith(b"\n"):
        blank -= 1
    return ParsedSource(columns=list(columns), rows=rows, blank_lines=max(blank, 0))


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def parse_csv(data: bytes, max_row_bytes: int, source: str) -> ParsedSource:
    text = data.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    physical = text.split("\n")
    lines = [line + "\n" for line in physical[:-1]] + ([physical[-1]] if physical[-1] else [])
    reader = csv.reader(iter(lines))
    try:
        header = next(reader)
    except StopIteration:
        raise SourceError(source, "is empty (no CSV header)") from None
    except csv.Error as exc:
        raise SourceError(source, f"has an unreadable CSV header: {exc}") from None
    if _has_surrogates("".join(header)):
        raise SourceError(source, "has a CSV header that is not valid UTF-8")
    header = [h.strip() for h in header]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise SourceError(source, f"has duplicate CSV columns {duplicated}")
    rows: list[RawRow] = []
    blank = 0
    previous_end = reader.line_num
    while True:
        start = previous_end + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            end = reader.line_num
            raw = "".join(lines[start - 1 : end]).rstrip("\r\n")
            reason = R.OVERSIZED if "field larger" in str(exc) else R.MALFORMED
            rows.append(RawRow(line=start, raw=raw, reason=reason, detail=f"CSV error: {exc}"))
            previous_end = end
            continue
        end = reader.line_num
        previous_end = end
        raw = "".join(lines[start - 1 : end]).rstrip("\r\n")
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            blank += 1
            continue
        raw_bytes = raw.encode("utf-8", errors="surrogateescape")
        if _has_surrogates(raw):
            try:
                raw_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                rows.append(_undecodable(start, raw_bytes, exc))
                continue
        if len(raw_bytes) > max_row_bytes:
            rows.append(_oversized(start, raw, len(raw_bytes), max_row_bytes))
            continue
        if len(fields) != len(header):
            rows.append(RawRow(line=start, raw=raw, reason=R.MALFORMED, detail=f"expected {len(header)} CSV fields, got {len(fields)}"))
            continue
        rows.append(RawRow(line=start, raw=raw, row=dict(zip(header, fields))))
    return ParsedSource(columns=header, rows=rows, blank_lines=blank)


def parse_parquet(data: bytes, max_row_bytes: int, source: str) -> ParsedSource:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise SourceError(source, f"is not a readable Parquet file: {exc}") from None
    rows: list[RawRow] = []
    for index, row in enumerate(table.to_pylist(), start=1):
        raw = json.dumps(row, ensure_ascii=False, default=str)
        size = len(raw.encode("utf-8"))
        if size > max_row_bytes:
            rows.append(_oversized(index, raw, size, max_row_bytes))
        else:
            rows.append(RawRow(line=index, raw=raw, row=row))
    return ParsedSource(columns=list(table.column_names), rows=rows)


def parse(data: bytes, file_format: str, max_row_bytes: int, source: str) -> ParsedSource:
    if file_format == "jsonl":
        return parse_jsonl(data, max_row_bytes)
    if file_format == "csv":
        return parse_csv(data, max_row_bytes, source)
    if file_format == "parquet":
        return parse_parquet(data, max_row_bytes, source)
    raise SourceError(source, f"unknown format {file_format!r}")

