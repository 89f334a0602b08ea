"""The canonical record schema, column mapping and per-row normalisation.

A canonical record has `id` (unique, non-empty string), `text` (non-empty string), optional `label` (string),
optional `timestamp` (ISO 8601, UTC) and any metadata columns, kept as strings. A raw row that cannot be turned
into one is rejected with a reason code; nothing is silently dropped or coerced beyond the rules below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

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
REASONS = (MALFORMED, INVALID_UTF8, MISSING_COLUMN, WRONG_TYPE, EMPTY_TEXT, EMPTY_ID, INVALID_TIMESTAMP, DUPLICATE_ID, OVERSIZED)


class RowRejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ColumnMapping:
    """How source columns become canonical ones.

    `rename` maps a source column name to a canonical name (`{"ticket_id": "id", "body": "text"}`).
    `metadata` lists the source columns kept as metadata; `None` keeps every column that is not canonical.
    """

    rename: Mapping[str, str] = field(default_factory=dict)
    metadata: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, rename: Mapping[str, str] | None = None, metadata: list[str] | tuple[str, ...] | None = None) -> ColumnMapping:
        rename = dict(rename or {})
        targets = list(rename.values())
        duplicates = sorted({t for t in targets if targets.count(t) > 1})
        if duplicates:
            raise ValueError(f"column mapping sends several source columns to {duplicates}")
        return cls(rename=rename, metadata=tuple(metadata) if metadata is not None else None)

    def canonical_name(self, source_column: str) -> str:
        return self.rename.get(source_column, source_column)

    def missing_required(self, source_columns: list[str]) -> list[str]:
        present = {self.canonical_name(c) for c in source_columns}
        return [c for c in REQUIRED_COLUMNS if c not in present]

    def keeps_metadata(self, canonical: str) -> bool:
        return canonical not in CANONICAL_COLUMNS and (self.metadata is None or canonical in self.metadata)


def _as_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RowRejected(WRONG_TYPE, f"column 'id' must be a string or integer, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise RowRejected(EMPTY_ID, "column 'id' is empty")
    return text


def _as_text(value: Any) -> str:
    if not isinstance(value, str):
        raise RowRejected(WRONG_TYPE, f"column 'text' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RowRejected(EMPTY_TEXT, "column 'text' is empty or whitespace only")
    return value


def _as_label(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RowRejected(WRONG_TYPE, f"column 'label' must be a string or integer, got {type(value).__name__}")
    return str(value).strip()


def _as_timestamp(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise RowRejected(INVALID_TIMESTAMP, f"timestamp {value!r} is not finite")
        moment = datetime.fromtimestamp(value, tz=timezone.utc)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RowRejected(INVALID_TIMESTAMP, f"timestamp {value!r} is not ISO 8601") from None
    else:
        raise RowRejected(INVALID_TIMESTAMP, f"timestamp must be ISO 8601 text or epoch seconds, got {type(value).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _as_metadata(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float)):
        return str(value)
    raise RowRejected(WRONG_TYPE, f"metadata column {name!r} must be a scalar, got {type(value).__name__}")


def normalise_row(raw: Mapping[str, Any], mapping: ColumnMapping) -> dict[str, str | None]:
    """Turn one parsed source row into a canonical record or raise `RowRejected`."""
    renamed: dict[str, Any] = {}
    for column, value in raw.items():
        renamed[mapping.canonical_name(str(column))] = value
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
            record[column] = _as_metadata(column, value)
    return record
