"""Split a source blob into raw rows, each with its line (or row) number, or the reason it cannot be parsed.

JSONL: one physical line is one row; blank lines are skipped and counted. CSV: the first record is the header; a
row spans the physical lines of its record (quoted newlines included). Parquet: row N is the N-th row, from 1.

Each parser counts the rows it meets (`ParsedSource.rows_read`) as it reads them, apart from the outcome it gives
each row, so ingest can check that every row read got exactly one outcome. Whatever the bytes, a parser raises
nothing but `SourceError`, and only for a source unusable as a whole; a bad row becomes a `RawRow` with a reason.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_llmops.core.data import records as R
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
    rows_read: int  # rows met while reading (JSONL: non-blank lines, CSV: records, Parquet: the file's row count)
    blank_lines: int = 0


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key that appears twice (json.loads would silently keep the last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _DuplicateKey(f"key {R.show(duplicate)} appears twice in one object")
    return obj


_JSON = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _json_row(line: int, text: str) -> RawRow:
    """One JSONL line as a row, or as a malformed row saying why (never raises)."""
    try:
        value = _JSON.decode(text)
    except json.JSONDecodeError as exc:
        return RawRow(line=line, raw=text, reason=R.MALFORMED, detail=f"invalid JSON: {exc.msg} at column {exc.colno}")
    except _DuplicateKey as exc:
        return RawRow(line=line, raw=text, reason=R.MALFORMED, detail=f"invalid JSON row: {exc}")
    except ValueError as exc:  # an integer past the int<->str digit limit (sys.get_int_max_str_digits)
        return RawRow(line=line, raw=text, reason=R.MALFORMED, detail=f"unreadable JSON number: {exc}")
    except RecursionError:
        return RawRow(line=line, raw=text, reason=R.MALFORMED, detail="invalid JSON row: values nested too deeply")
    if not isinstance(value, dict):
        detail = f"a row must be a JSON object, got {type(value).__name__}"
        return RawRow(line=line, raw=text, reason=R.MALFORMED, detail=detail)
    return RawRow(line=line, raw=text, row=value)


def _printable_name(name: str) -> str:
    """A column name that can be written as UTF-8 (lone surrogates, e.g. from a JSON escape, are backslashed)."""
    return name if name.isascii() else name.encode("utf-8", "backslashreplace").decode("utf-8")


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
    read = 0
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for index, chunk in enumerate(data.split(b"\n"), start=1):
        chunk = chunk.rstrip(b"\r")
        if not chunk.strip():
            blank += 1
            continue
        read += 1
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            rows.append(_undecodable(index, chunk, exc))
            continue
        if len(chunk) > max_row_bytes:
            rows.append(_oversized(index, text, len(chunk), max_row_bytes))
            continue
        row = _json_row(index, text)
        if row.row is not None:
            columns.update(dict.fromkeys(row.row))
        rows.append(row)
    # a trailing newline yields one empty last chunk, which is not a blank line of the file
    if data.endswith(b"\n"):
        blank -= 1
    names = [_printable_name(c) for c in columns]
    return ParsedSource(columns=names, rows=rows, rows_read=read, blank_lines=max(blank, 0))


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
    duplicated = sorted({h for h in header if h and header.count(h) > 1})  # unnamed columns are not kept anyway
    if duplicated:
        raise SourceError(source, f"has duplicate CSV columns {duplicated}")
    rows: list[RawRow] = []
    blank = 0
    read = 0
    previous_end = reader.line_num
    while True:
        start = previous_end + 1
        error: csv.Error | None = None
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            error, fields = exc, []
        end = reader.line_num
        previous_end = end
        raw = "".join(lines[start - 1 : end]).rstrip("\r\n")
        if error is None and (not fields or (len(fields) == 1 and not fields[0].strip())):
            blank += 1
            continue
        read += 1
        raw_bytes = raw.encode("utf-8", errors="surrogateescape")
        if _has_surrogates(raw):
            try:
                raw_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                rows.append(_undecodable(start, raw_bytes, exc))
                continue
        if error is not None:
            reason = R.OVERSIZED if "field larger" in str(error) else R.MALFORMED
            rows.append(RawRow(line=start, raw=raw, reason=reason, detail=f"CSV error: {error}"))
            continue
        if len(raw_bytes) > max_row_bytes:
            rows.append(_oversized(start, raw, len(raw_bytes), max_row_bytes))
            continue
        if len(fields) != len(header):
            rows.append(
                RawRow(
                    line=start,
                    raw=raw,
                    reason=R.MALFORMED,
                    detail=f"expected {len(header)} CSV fields, got {len(fields)}",
                )
            )
            continue
        rows.append(RawRow(line=start, raw=raw, row=dict(zip(header, fields, strict=True))))
    return ParsedSource(columns=header, rows=rows, rows_read=read, blank_lines=blank)


def parse_parquet(data: bytes, max_row_bytes: int, source: str) -> ParsedSource:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(io.BytesIO(data)).read()  # not read_table: its dataset layer fails on duplicate names
    except Exception as exc:  # noqa: BLE001 - a corrupt file raises ArrowInvalid, OSError, ValueError, IndexError...
        raise SourceError(source, f"is not a readable Parquet file: {type(exc).__name__}: {exc}") from None
    names = [str(n) for n in table.column_names]
    duplicated = sorted({n for n in names if n and names.count(n) > 1})  # unnamed columns are not kept anyway
    if duplicated:
        raise SourceError(source, f"has duplicate Parquet columns {[_printable_name(n) for n in duplicated]}")
    values = [_column_values(column, pa) for column in table.columns]
    rows: list[RawRow] = []
    for index, cells in enumerate(zip(*values, strict=True), start=1):
        row = dict(zip(names, cells, strict=True))
        raw = json.dumps(row, ensure_ascii=False, default=str)
        size = len(raw.encode("utf-8"))
        if size > max_row_bytes:
            rows.append(_oversized(index, raw, size, max_row_bytes))
        else:
            rows.append(RawRow(line=index, raw=raw, row=row))
    return ParsedSource(columns=names, rows=rows, rows_read=table.num_rows)


def _column_values(column: Any, pa: Any) -> list[Any]:
    """A Parquet column as Python values; a cell Python cannot hold (a date past year 9999, a string that is not
    UTF-8) becomes `records.Unreadable`, so only the rows that use it are rejected."""
    try:
        return column.to_pylist()
    except Exception:  # noqa: BLE001 - fall back to cell by cell, to find which cells fail
        pass
    cells: list[Any] = []
    for index in range(len(column)):
        try:
            cells.append(column[index].as_py())
        except UnicodeDecodeError as exc:
            cells.append(R.Unreadable(R.INVALID_UTF8, f"{column.type} value is not valid UTF-8 ({exc.reason})"))
        except (ValueError, OverflowError, ArithmeticError, pa.ArrowException) as exc:
            cells.append(R.Unreadable(R.WRONG_TYPE, f"{column.type} value cannot be read: {exc}"))
    return cells


def parse(data: bytes, file_format: str, max_row_bytes: int, source: str) -> ParsedSource:
    if file_format == "jsonl":
        return parse_jsonl(data, max_row_bytes)
    if file_format == "csv":
        return parse_csv(data, max_row_bytes, source)
    if file_format == "parquet":
        return parse_parquet(data, max_row_bytes, source)
    raise SourceError(source, f"unknown format {file_format!r}")
