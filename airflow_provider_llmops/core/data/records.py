"""The canonical record schema, column mapping and per-row normalisation.

A canonical record has `id` (unique, non-empty string), `text` (non-empty string), optional `label` (string),
optional `timestamp` (ISO 8601, UTC) and any metadata columns, kept as strings. A raw row that cannot be turned
into one is rejected with a reason code; nothing is silently dropped or coerced beyond the rules below (one
such rule: a source column named "" is not kept, as nothing downstream could name it).

Normalisation never raises anything but `RowRejected`, whatever the parsed values: out-of-range timestamps,
integers past Python's int<->str digit limit, lone UTF-16 surrogates (no UTF-8 form, so they cannot be written to
Parquet), NaN/Infinity, nested values, two source columns mapped onto one name, and cells a parser could not
convert (`Unreadable`) are all reasons, not crashes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from airflow_provider_llmops.errors import ConfigurationError

ID, TEXT, LABEL, TIMESTAMP = "id", "text", "label", "timestamp"
REQUIRED_COLUMNS = (ID, TEXT)
CANONICAL_COLUMNS = (ID, TEXT, LABEL, TIMESTAMP)
SCHEMA_VERSION = 1

# Reason codes written to quarantine.jsonl. Stable: downstream tooling may group by them.
MALFORMED = "malformed_row"
INVALID_UTF8 = "invalid_utf8"
MISSING_COLUMN = "missing_column"
WRONG_TYPE = "wrong_type"
EMPTY_TEXT = "empty_text"
EMPTY_ID = "empty_id"
INVALID_TIMESTAMP = "invalid_timestamp"
DUPLICATE_ID = "duplicate_id"
OVERSIZED = "oversized_row"
REASONS = (
    MALFORMED,
    INVALID_UTF8,
    MISSING_COLUMN,
    WRONG_TYPE,
    EMPTY_TEXT,
    EMPTY_ID,
    INVALID_TIMESTAMP,
    DUPLICATE_ID,
    OVERSIZED,
)


class RowRejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Unreadable:
    """A cell a parser could not turn into a Python value (e.g. a Parquet date past year 9999, a string column
    holding bytes that are not UTF-8). A row that uses such a cell is rejected with `reason`."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"<unreadable: {self.detail}>"


_SHOWN_CHARS = 60


def show(value: Any) -> str:
    """A short, printable rendering of `value` for a quarantine detail (never raises, never the whole value)."""
    try:
        text = repr(value)
    except ValueError:  # an int past the int->str digit limit
        text = f"<{type(value).__name__} too large to print>"
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def _unicode(what: str, column: str, value: str) -> str:
    """`value` unchanged, or `RowRejected(invalid_utf8)` when it holds a lone surrogate (no UTF-8 form).
    `what` names the place for the detail, with `{}` standing for the column name (formatted only on failure)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        where = what.format(show(column))
        raise RowRejected(
            INVALID_UTF8, f"{where} holds {value[exc.start]!r}, a lone UTF-16 surrogate that has no UTF-8 form"
        ) from None
    return value


def _int_text(column: str, value: int) -> str:
    try:
        return str(value)
    except ValueError:  # over sys.get_int_max_str_digits()
        raise RowRejected(WRONG_TYPE, f"column {show(column)} holds an integer too long to write as text") from None


@dataclass(frozen=True)
class ColumnMapping:
    """How source columns become canonical ones.

    `rename` maps a source column name to a canonical name (`{"ticket_id": "id", "body": "text"}`).
    `metadata` lists the source columns kept as metadata; `None` keeps every column that is not canonical.
    """

    rename: Mapping[str, str] = field(default_factory=dict)
    metadata: tuple[str, ...] | None = None

    @classmethod
    def from_config(
        cls, rename: Mapping[str, str] | None = None, metadata: list[str] | tuple[str, ...] | None = None
    ) -> ColumnMapping:
        rename = dict(rename or {})
        targets = list(rename.values())
        duplicates = sorted({t for t in targets if targets.count(t) > 1})
        if duplicates:
            raise ConfigurationError(
                f"column mapping sends several source columns to {duplicates}: map each canonical column once"
            )
        return cls(rename=rename, metadata=tuple(metadata) if metadata is not None else None)

    def canonical_name(self, source_column: str) -> str:
        return self.rename.get(source_column, source_column)

    def missing_required(self, source_columns: list[str]) -> list[str]:
        present = {self.canonical_name(c) for c in source_columns}
        return [c for c in REQUIRED_COLUMNS if c not in present]

    def colliding(self, source_columns: list[str]) -> dict[str, list[str]]:
        """Canonical names that several source columns map to (e.g. `body` renamed to `text` beside a `text`)."""
        targets: dict[str, list[str]] = {}
        for column in source_columns:
            if column:
                targets.setdefault(self.canonical_name(column), []).append(column)
        return {target: sources for target, sources in targets.items() if len(sources) > 1}

    def keeps_metadata(self, canonical: str) -> bool:
        """Whether a (renamed) column is kept as metadata: not canonical, named (a column named "" is not
        kept: nothing downstream could name it), and listed when a metadata list is configured."""
        if canonical in CANONICAL_COLUMNS or canonical == "":
            return False
        return self.metadata is None or canonical in self.metadata


def _unreadable(column: str, value: Unreadable, reason: str | None = None) -> RowRejected:
    return RowRejected(reason or value.reason, f"column {show(column)}: {value.detail}")


def _as_id(value: Any) -> str:
    if isinstance(value, str):
        text = (value if value.isascii() else _unicode("column {}", ID, value)).strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        text = _int_text(ID, value)
    elif isinstance(value, Unreadable):
        raise _unreadable(ID, value)
    else:
        raise RowRejected(WRONG_TYPE, f"column 'id' must be a string or integer, got {type(value).__name__}")
    if not text:
        raise RowRejected(EMPTY_ID, "column 'id' is empty")
    return text


def _as_text(value: Any) -> str:
    if isinstance(value, Unreadable):
        raise _unreadable(TEXT, value)
    if not isinstance(value, str):
        raise RowRejected(WRONG_TYPE, f"column 'text' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RowRejected(EMPTY_TEXT, "column 'text' is empty or whitespace only")
    return value if value.isascii() else _unicode("column {}", TEXT, value)


def _as_label(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return (value if value.isascii() else _unicode("column {}", LABEL, value)).strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_text(LABEL, value)
    if isinstance(value, Unreadable):
        raise _unreadable(LABEL, value)
    raise RowRejected(WRONG_TYPE, f"column 'label' must be a string or integer, got {type(value).__name__}")


def _as_timestamp(value: Any) -> str | None:
    """ISO 8601 UTC text ending in `Z`. Accepts ISO 8601 text (`Z`, an offset, or naive = UTC), epoch seconds,
    a datetime (naive = UTC) or a date (midnight UTC); anything else, or a moment outside years 1-9999 in UTC
    (e.g. year 99999, epoch 1e20, 9999-12-31T23:59:59-01:00), is `invalid_timestamp`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise RowRejected(INVALID_TIMESTAMP, f"timestamp {value!r} is not finite")
            moment = datetime.fromtimestamp(value, tz=UTC)
        elif isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                raise RowRejected(INVALID_TIMESTAMP, f"timestamp {show(value)} is not ISO 8601") from None
        elif isinstance(value, Unreadable):
            raise _unreadable(TIMESTAMP, value, INVALID_TIMESTAMP)
        else:
            raise RowRejected(
                INVALID_TIMESTAMP, f"timestamp must be ISO 8601 text or epoch seconds, got {type(value).__name__}"
            )
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise RowRejected(INVALID_TIMESTAMP, f"timestamp {show(value)} is out of range: {exc}") from None
    if type(moment) is not datetime:  # e.g. pandas.Timestamp from a nanosecond column: keep microseconds
        moment = datetime(*moment.timetuple()[:6], moment.microsecond, tzinfo=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _as_metadata(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value if value.isascii() else _unicode("metadata column {}", name, value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _int_text(name, value)
    if isinstance(value, float):
        return str(value) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Unreadable):
        raise _unreadable(name, value)
    raise RowRejected(
        WRONG_TYPE,
        f"metadata column {show(name)} must be a scalar (text, number, boolean, date/time), got {type(value).__name__}",
    )


def normalise_row(raw: Mapping[str, Any], mapping: ColumnMapping) -> dict[str, str | None]:
    """Turn one parsed source row into a canonical record or raise `RowRejected` (and nothing else)."""
    renamed: dict[str, Any] = {}
    for column, value in raw.items():
        name = mapping.canonical_name(str(column))
        if name in renamed:
            first = next(c for c in raw if mapping.canonical_name(str(c)) == name)
            raise RowRejected(MALFORMED, f"columns {show(first)} and {show(column)} both map to {show(name)}")
        renamed[name] = value
    for column in REQUIRED_COLUMNS:
        if column not in renamed or renamed[column] is None:
            raise RowRejected(MISSING_COLUMN, f"required column {column!r} is missing or null")
    record: dict[str, str | None] = {
        ID: _as_id(renamed[ID]),
        TEXT: _as_text(renamed[TEXT]),
        LABEL: _as_label(renamed.get(LABEL)),
        TIMESTAMP: _as_timestamp(renamed.get(TIMESTAMP)),
    }
    for column, value in renamed.items():
        if mapping.keeps_metadata(column):
            if not column.isascii():
                _unicode("the column name {}", column, column)
            record[column] = _as_metadata(column, value)
    return record
