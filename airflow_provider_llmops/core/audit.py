"""A hash-chained, append-only audit trail in JSON lines.

Each line is one record::

    {"seq": 0, "ts": "2024-05-01T12:00:00.000000Z", "event": "...", "actor": "..." | null,
     "data": {...}, "prev_hash": "<64 hex>", "hash": "<64 hex>"}

`hash` is the SHA-256 (hex) of the canonical JSON of the record without its `hash` key
(`json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, UTF-8); `prev_hash` is the previous
record's `hash`, or 64 zeros for the first record; `seq` counts from 0. Editing, deleting, inserting or
reordering a record breaks the chain at that line, and `verify` says where. Removing records from the *end*
cannot be seen from the file alone: keep `VerifyResult.last_hash` somewhere else to detect that.

Appends from several threads or processes are serialised with an exclusive `fcntl.flock` on the file itself;
readers take a shared lock. Values of secret-looking keys are replaced by "***" before anything is written.
Stdlib only (POSIX), no Airflow.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

GENESIS_HASH = "0" * 64
KEYS = ("seq", "ts", "event", "actor", "data", "prev_hash", "hash")
REDACTED = "***"
SECRET_MARKERS = ("password", "secret", "token", "api_key", "apikey", "authorization", "credential")

_TAIL_CHUNK = 8192


class AuditError(Exception):
    """The audit trail cannot be appended to or read (e.g. a truncated or corrupt record)."""


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of `verify`: `records` valid records were read; `bad_line` (1-based) is the first broken line."""

    ok: bool
    records: int
    bad_line: int | None
    reason: str
    last_hash: str | None


def default_audit_path(home: Path) -> Path:
    """The audit trail of an embedded home."""
    return home / "audit" / "audit.jsonl"


def actor_of(run: Mapping[str, Any]) -> str:
    """Who acted, for the `actor` field: the Airflow task of a run (`airflow:<dag>/<run>/<task>`), else the CLI."""
    if run.get("dag_id"):
        return f"airflow:{run.get('dag_id')}/{run.get('run_id')}/{run.get('task_id')}"
    return "llmops-cli"


def _is_secret_key(key: object) -> bool:
    name = str(key).lower()
    return any(marker in name for marker in SECRET_MARKERS)


def _redact_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_key(k) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    return value


def redact(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of `data` with the values of secret-looking keys (at any depth, also inside lists) set to "***"."""
    return {k: REDACTED if _is_secret_key(k) else _redact_value(v) for k, v in data.items()}


def _jsonable(value: Any) -> Any:
    """`value` as plain JSON types; anything else becomes `str(value)` (like `json.dumps(default=str)`)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # NaN/Infinity are not JSON
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates cannot be written as UTF-8
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {str(_jsonable(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return _jsonable(str(value))


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of `record` without its `hash` key."""
    return hashlib.sha256(_canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _check_shape(record: object) -> str | None:
    """Why `record` is not a well-formed audit record, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [k for k in KEYS if k not in record]
    if missing:
        return f"missing key(s): {', '.join(missing)}"
    extra = sorted(set(record) - set(KEYS))
    if extra:
        return f"unexpected key(s): {', '.join(extra)}"
    if not isinstance(record["seq"], int) or isinstance(record["seq"], bool) or record["seq"] < 0:
        return f"seq is not a non-negative integer: {record['seq']!r}"
    if not _is_hex64(record["prev_hash"]):
        return "prev_hash is not a 64-character hex digest"
    if not _is_hex64(record["hash"]):
        return "hash is not a 64-character hex digest"
    return None


def _parse_line(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a well-formed line (with its newline), else (None, reason)."""
    if not raw.endswith(b"\n"):
        return None, "truncated record (no trailing newline)"
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"not valid JSON ({exc})"
    problem = _check_shape(record)
    if problem:
        return None, problem
    return record, None


def _read_last_line(f: IO[bytes]) -> bytes | None:
    """The last line of `f` (with its newline, if it has one), or None for an empty file."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return None
    pos, buf = end, b""
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step) + buf
        cut = buf.rfind(b"\n", 0, len(buf) - 1)  # a newline before the final byte ends the previous line
        if cut != -1:
            return buf[cut + 1 :]
    return buf


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditTrail:
    """Appends hash-chained records to one JSON-lines file; safe across threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, event: str, data: dict[str, Any], actor: str | None = None) -> dict[str, Any]:
        """Redact `data`, append one record after the current last one and return it (with its hash)."""
        if not isinstance(event, str) or not event:
            raise ValueError("event must be a non-empty string")
        if actor is not None and not isinstance(actor, str):
            raise ValueError("actor must be a string or None")
        if not isinstance(data, dict):
            raise ValueError("data must be a dict")
        payload = _jsonable(redact(data))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        with open(self.path, "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                seq, prev_hash = self._tail(f)
                record: dict[str, Any] = {
                    "seq": seq,
                    "ts": _utc_now(),
                    "event": _jsonable(event),
                    "actor": None if actor is None else _jsonable(actor),
                    "data": payload,
                    "prev_hash": prev_hash,
                }
                record["hash"] = record_hash(record)
                line = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
                f.seek(0, os.SEEK_END)
                f.write(line)  # "a" mode: always at the end, and the lock keeps other writers out
                f.flush()
                os.fsync(f.fileno())
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        if created:
            _fsync_dir(self.path.parent)
        return record

    def _tail(self, f: IO[bytes]) -> tuple[int, str]:
        """(next seq, previous hash), refusing to extend a chain whose last record is broken."""
        raw = _read_last_line(f)
        if raw is None:
            return 0, GENESIS_HASH
        last, problem = _parse_line(raw)
        if last is None:
            raise AuditError(f"{self.path}: last record is corrupt: {problem}; not appending to a broken chain")
        if record_hash(last) != last["hash"]:
            raise AuditError(f"{self.path}: last record (seq {last['seq']}) does not match its hash; not appending to a broken chain")
        return last["seq"] + 1, last["hash"]


@contextmanager
def _read_locked(path: str | Path) -> Iterator[IO[bytes]]:
    """`path` opened for reading under a shared lock, so no half-written line of a concurrent append is seen."""
    with open(path, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_SH)
        try:
            yield f
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of the trail in file order (no chain check; see `verify`). Raises AuditError on a bad line."""
    with _read_locked(path) as f:
        for lineno, raw in enumerate(f, 1):
            record, problem = _parse_line(raw)
            if record is None:
                raise AuditError(f"{path}: line {lineno}: {problem}")
            yield record


def verify(path: str | Path) -> VerifyResult:
    """Check every line, `seq`, `prev_hash` and `hash`; report the first broken line. FileNotFoundError if missing."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such audit trail")
    count, prev_hash = 0, GENESIS_HASH
    last_hash: str | None = None
    with _read_locked(path) as f:
        for lineno, raw in enumerate(f, 1):
            record, problem = _parse_line(raw)
            if record is None:
                return VerifyResult(False, count, lineno, problem or "bad record", last_hash)
            if record["seq"] != count:
                why = f"seq {record['seq']}, expected {count} (a record is missing, duplicated or out of order)"
                return VerifyResult(False, count, lineno, why, last_hash)
            if record["prev_hash"] != prev_hash:
                why = "prev_hash does not match the previous record's hash (a record was removed, inserted or rewritten)"
                return VerifyResult(False, count, lineno, why, last_hash)
            if record_hash(record) != record["hash"]:
                why = "hash does not match the record's content (the record was edited)"
                return VerifyResult(False, count, lineno, why, last_hash)
            count += 1
            prev_hash = last_hash = record["hash"]
    return VerifyResult(True, count, None, "ok", last_hash)
