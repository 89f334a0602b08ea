"""A hash-chained, append-only audit trail in JSON lines, optionally keyed (HMAC-SHA256) and anchored.

Each line is one record::

    {"seq": 0, "ts": "2024-05-01T12:00:00.000000Z", "event": "...", "actor": "..." | null,
     "data": {...}, "prev_hash": "<64 hex>", "hash": "<64 hex>"}

and, when the trail is written with a key, two more keys::

    ..., "key_id": "<8 hex>", "hash": "<64 hex>", "hmac": "<64 hex>"}

`hash` is the SHA-256 (hex) of the canonical JSON of the record without its `hash` and `hmac` keys
(`json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, UTF-8); `prev_hash` is the previous
record's `hash`, or 64 zeros for the first record; `seq` counts from 0. Editing, deleting, inserting or
reordering a record breaks the chain at that line, and `verify` says where.

Unkeyed, the chain proves order and integrity against accidents only: anyone who can write the file can edit a
record and recompute every hash after it. Keyed, `hmac` is the HMAC-SHA256 of the canonical JSON of the record
without `hmac` (so it covers `hash` and `prev_hash`, hence the whole chain before it) under a secret key, and
`key_id` is the first 8 hex digits of SHA-256(key) (never the key): a rewrite without the key is detected. A trail
may start unkeyed (written before a key was configured); from its first keyed record on, every record must be
keyed, and that record's HMAC covers the unkeyed records before it. A writer without the key refuses to extend a
keyed trail, and a keyed writer refuses to extend a keyed record whose HMAC does not match.

Removing records from the *end* cannot be seen from the file alone. `AuditTrail(anchor=...)` calls `anchor` with
every record it appended (under the file lock, so anchors move forward in order); the operators use it to write
`<seq>:<hash>` to the registered model's tag `llmops.audit_head`, and `check_anchors` compares
such heads with the file.

Appends from several threads or processes are serialised with an exclusive `fcntl.flock` on the file itself;
readers take a shared lock. Values of secret-looking keys are replaced by "***" before anything is written.
Stdlib only (POSIX), no Airflow.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac as _hmac
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from airflow_provider_llmops.errors import AuditError, ConfigurationError

__all__ = ["AnchorCheck", "AuditError", "AuditTrail", "VerifyResult", "check_anchors", "key_id", "verify"]

GENESIS_HASH = "0" * 64
KEYS = ("seq", "ts", "event", "actor", "data", "prev_hash", "hash")
KEYED_KEYS = ("key_id", "hmac")
MIN_KEY_BYTES = 16
REDACTED = "***"
SECRET_MARKERS = ("password", "secret", "token", "api_key", "apikey", "authorization", "credential")

_TAIL_CHUNK = 8192


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of `verify`: `records` valid records were read; `bad_line` (1-based) is the first broken line.

    `status` is "ok", "broken" (a bad line, a wrong HMAC, an unkeyed record after keyed ones), "unkeyed" (a key
    was given but no record is keyed: written before the key was configured, or rewritten without it) or
    "unverifiable" (keyed records but no key to check them; the plain chain is intact).
    `keyed` counts the records with an HMAC, `first_keyed_seq` is the seq of the first one, `key_ids` the key
    ids seen (in order), `models` the `data["model"]` values named by the valid records, `last_seq` the last
    valid record's seq."""

    ok: bool
    records: int
    bad_line: int | None
    reason: str
    last_hash: str | None
    status: str = "ok"
    keyed: int = 0
    first_keyed_seq: int | None = None
    key_ids: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    last_seq: int | None = None


def default_audit_path(home: Path) -> Path:
    """The audit trail of an embedded home."""
    return home / "audit" / "audit.jsonl"


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
    """SHA-256 hex of the canonical JSON of `record` without its `hash` and `hmac` keys."""
    return hashlib.sha256(_canonical({k: v for k, v in record.items() if k not in ("hash", "hmac")})).hexdigest()


def _key_bytes(key: bytes | str) -> bytes:
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(raw) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"the audit key is too short ({len(raw)} bytes, at least {MIN_KEY_BYTES}): use a random secret, e.g. "
            'python -c "import secrets; print(secrets.token_hex(32))"'
        )
    return raw


def _id_of(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def key_id(key: bytes | str) -> str:
    """The id recorded with each keyed record: the first 8 hex digits of SHA-256(key). Never the key itself."""
    return _id_of(_key_bytes(key))


def record_hmac(record: dict[str, Any], key: bytes | str) -> str:
    """HMAC-SHA256 (hex) under `key` of the canonical JSON of `record` without its `hmac` key."""
    body = _canonical({k: v for k, v in record.items() if k != "hmac"})
    return _hmac.new(_key_bytes(key), body, hashlib.sha256).hexdigest()


def is_keyed(record: Mapping[str, Any]) -> bool:
    return "hmac" in record


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _is_hex(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and all(c in "0123456789abcdef" for c in value)


def _is_hex64(value: object) -> bool:
    return _is_hex(value, 64)


def _check_shape(record: object) -> str | None:
    """Why `record` is not a well-formed audit record, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [k for k in KEYS if k not in record]
    if missing:
        return f"missing key(s): {', '.join(missing)}"
    extra = sorted(set(record) - set(KEYS) - set(KEYED_KEYS))
    if extra:
        return f"unexpected key(s): {', '.join(extra)}"
    half = [k for k in KEYED_KEYS if k in record]
    if half and len(half) != len(KEYED_KEYS):
        return f"{half[0]} without {({*KEYED_KEYS} - {half[0]}).pop()} (a keyed record needs both)"
    if half and not _is_hex(record["key_id"], 8):
        return "key_id is not an 8-character hex key id"
    if half and not _is_hex64(record["hmac"]):
        return "hmac is not a 64-character hex digest"
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
    """Appends hash-chained records to one JSON-lines file; safe across threads and processes.

    `key` (bytes, str, or a callable returning one, called once at the first append): records carry `key_id`
    and `hmac`; None: a plain (unkeyed) chain. `anchor`: called with each appended record while the file lock
    is held (so anchors move forward in order); if it raises, the record stays written and `append` raises
    AuditError saying so."""

    def __init__(
        self,
        path: str | Path,
        *,
        key: bytes | str | Callable[[], bytes | str] | None = None,
        anchor: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self._key_source = key
        self._key: bytes | None = None
        self.anchor = anchor

    def __repr__(self) -> str:  # never shows the key
        mode = "keyed" if self._key_source is not None else "unkeyed"
        return f"AuditTrail(path={str(self.path)!r}, {mode}, anchored={self.anchor is not None})"

    @property
    def keyed(self) -> bool:
        return self._key_source is not None

    def _resolve_key(self) -> bytes | None:
        if self._key_source is None:
            return None
        if self._key is None:
            source = self._key_source
            self._key = _key_bytes(source() if callable(source) else source)
        return self._key

    def append(self, event: str, data: dict[str, Any], actor: str | None = None) -> dict[str, Any]:
        """Redact `data`, append one record after the current last one, anchor it and return it (with its hash)."""
        # preconditions of the caller (events are literals of this package, data its own dicts): plain ValueError
        if not isinstance(event, str) or not event:
            raise ValueError("event must be a non-empty string")
        if actor is not None and not isinstance(actor, str):
            raise ValueError("actor must be a string or None")
        if not isinstance(data, dict):
            raise ValueError("data must be a dict")
        payload = _jsonable(redact(data))
        key = self._resolve_key()  # before the lock: a secrets backend may be slow
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        with open(self.path, "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                seq, prev_hash = self._tail(f, key)
                record: dict[str, Any] = {
                    "seq": seq,
                    "ts": _utc_now(),
                    "event": _jsonable(event),
                    "actor": None if actor is None else _jsonable(actor),
                    "data": payload,
                    "prev_hash": prev_hash,
                }
                if key is not None:
                    record["key_id"] = _id_of(key)
                record["hash"] = record_hash(record)
                if key is not None:
                    record["hmac"] = record_hmac(record, key)
                line = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
                f.seek(0, os.SEEK_END)
                f.write(line)  # "a" mode: always at the end, and the lock keeps other writers out
                f.flush()
                os.fsync(f.fileno())
                if created:
                    _fsync_dir(self.path.parent)
                if self.anchor is not None:
                    try:
                        self.anchor(dict(record))
                    except Exception as exc:
                        raise AuditError(
                            f"{self.path}: record seq {seq} ({record['event']}) was written, but anchoring its head "
                            f"outside the file failed: {type(exc).__name__}: {exc}; the next append anchors again"
                        ) from exc
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return record

    def verified_records(self) -> Iterator[dict[str, Any]]:
        """The records, after checking the whole chain (and, keyed, every HMAC with this trail's key): what a
        decision may rely on (e.g. "was this version champion before?"). Raises AuditError when the trail is
        broken, or keyed and this trail has no key. A trail with no keyed record yet is accepted (a key was just
        configured: the next append adopts it). A missing file has no records."""
        if not self.path.is_file():
            return
        key = self._resolve_key()
        result = verify(self.path, keys=[key] if key is not None else None)
        if result.status not in ("ok", "unkeyed"):
            where = f" at line {result.bad_line}" if result.bad_line else ""
            raise AuditError(
                f"{self.path}: not relying on an audit trail that does not verify{where}: {result.reason}; "
                "run `llmops audit verify`"
            )
        for i, record in enumerate(records(self.path)):
            if i >= result.records:  # appended after the check: checked by the next call
                return
            yield record

    def _tail(self, f: IO[bytes], key: bytes | None) -> tuple[int, str]:
        """(next seq, previous hash), refusing to extend a chain whose last record is broken or forged, and
        refusing to extend a keyed trail without a key."""
        raw = _read_last_line(f)
        if raw is None:
            return 0, GENESIS_HASH
        last, problem = _parse_line(raw)
        if last is None:
            raise AuditError(f"{self.path}: last record is corrupt: {problem}; not appending to a broken chain")
        if record_hash(last) != last["hash"]:
            raise AuditError(
                f"{self.path}: last record (seq {last['seq']}) does not match its hash; not appending to a broken chain"
            )
        if is_keyed(last):
            if key is None:
                raise AuditError(
                    f"{self.path}: the trail is keyed (last record seq {last['seq']}, key id {last['key_id']}) but no "
                    "audit key is configured; set [llmops] audit_conn_id to the connection whose password is the key "
                    "(not appending unkeyed records to a keyed trail)"
                )
            if last["key_id"] == _id_of(key) and not _hmac.compare_digest(record_hmac(last, key), last["hmac"]):
                raise AuditError(
                    f"{self.path}: last record (seq {last['seq']}) does not match its HMAC (rewritten without the "
                    "key); not appending to a forged chain: run `llmops audit verify`"
                )
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


def _keys_by_id(keys: Iterable[bytes | str] | None) -> dict[str, bytes] | None:
    if keys is None:
        return None
    by_id = {key_id(k): _key_bytes(k) for k in keys}
    return by_id or None


def verify(path: str | Path, keys: Iterable[bytes | str] | None = None) -> VerifyResult:
    """Check every line, `seq`, `prev_hash`, `hash` and, with `keys` (the current key first, older ones after a
    rotation), every `hmac`; report the first broken line. FileNotFoundError if the file is missing.

    Without keys, keyed records are checked as a plain chain and the result is "unverifiable". With keys, a
    trail in which no record is keyed is "unkeyed" (not ok), and an unkeyed record after a keyed one is "broken"."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such audit trail")
    by_id = _keys_by_id(keys)
    count, prev_hash = 0, GENESIS_HASH
    last_hash: str | None = None
    keyed, first_keyed = 0, None
    key_ids: list[str] = []
    models: dict[str, None] = {}

    def result(ok: bool, bad_line: int | None, reason: str, status: str) -> VerifyResult:
        last_seq = count - 1 if count else None
        return VerifyResult(
            ok, count, bad_line, reason, last_hash, status, keyed, first_keyed, tuple(key_ids), tuple(models), last_seq
        )

    with _read_locked(path) as f:
        for lineno, raw in enumerate(f, 1):
            record, problem = _parse_line(raw)
            if record is None:
                return result(False, lineno, problem or "bad record", "broken")
            if record["seq"] != count:
                why = f"seq {record['seq']}, expected {count} (a record is missing, duplicated or out of order)"
                return result(False, lineno, why, "broken")
            if record["prev_hash"] != prev_hash:
                why = (
                    "prev_hash does not match the previous record's hash (a record was removed, inserted or rewritten)"
                )
                return result(False, lineno, why, "broken")
            if record_hash(record) != record["hash"]:
                why = "hash does not match the record's content (the record was edited)"
                return result(False, lineno, why, "broken")
            if is_keyed(record):
                rid = record["key_id"]
                if by_id is not None:
                    if rid not in by_id:
                        why = (
                            f"record seq {record['seq']} was signed with key id {rid}, not with the given key "
                            f"(id {', '.join(by_id)}): a wrong key, or the key was rotated "
                            "(give the key that signed it)"
                        )
                        return result(False, lineno, why, "broken")
                    if not _hmac.compare_digest(record_hmac(record, by_id[rid]), record["hmac"]):
                        why = "hmac does not match (the record was rewritten by someone without the key)"
                        return result(False, lineno, why, "broken")
                if first_keyed is None:
                    first_keyed = record["seq"]
                if rid not in key_ids:
                    key_ids.append(rid)
                keyed += 1
            elif first_keyed is not None:
                why = (
                    f"record seq {record['seq']} has no hmac after keyed records (a downgrade: it was written or "
                    "rewritten without the key)"
                )
                return result(False, lineno, why, "broken")
            model = record["data"].get("model") if isinstance(record["data"], dict) else None
            if isinstance(model, str) and model:
                models[model] = None
            count += 1
            prev_hash = last_hash = record["hash"]
    if keyed and by_id is None:
        why = (
            f"{keyed} of {count} records carry an HMAC (key id {', '.join(key_ids)}) that cannot be checked without "
            "the key; the plain hash chain is intact"
        )
        return result(False, None, why, "unverifiable")
    if by_id is not None and count and not keyed:
        why = (
            f"a key was given but none of the {count} records carries an HMAC: the trail was written before the "
            "key was configured (nothing appended since), or rewritten by someone without the key"
        )
        return result(False, None, why, "unkeyed")
    return result(True, None, "ok", "ok")


@dataclass(frozen=True)
class AnchorCheck:
    """One model's anchor (`<seq>:<hash>` from the registry) compared with the file."""

    model: str
    anchor: str
    ok: bool
    message: str


def anchor_value(record: Mapping[str, Any]) -> str:
    """The head written outside the file after `record` was appended: `<seq>:<hash>`."""
    return f"{record['seq']}:{record['hash']}"


def check_anchors(path: str | Path, anchors: Mapping[str, str]) -> list[AnchorCheck]:
    """Compare each model's anchor (`{model: "<seq>:<hash>"}`, as read from the registry) with the records of
    `path` (read up to its first unreadable line): the anchored seq must exist with that hash. One check per
    model, in the order given."""
    wanted: dict[int, str] = {}
    parsed: dict[str, tuple[int, str] | None] = {}
    for model, value in anchors.items():
        seq_text, _, digest = str(value).partition(":")
        if seq_text.isdigit() and _is_hex64(digest):
            parsed[model] = (int(seq_text), digest)
            wanted[int(seq_text)] = ""
        else:
            parsed[model] = None
    last_seq: int | None = None
    found: dict[int, str] = {}
    with _read_locked(path) as f:
        for raw in f:
            record, _problem = _parse_line(raw)
            if record is None:
                break
            last_seq = record["seq"]
            if last_seq in wanted and last_seq not in found:
                found[last_seq] = record["hash"]
    checks = []
    for model, value in anchors.items():
        head = parsed[model]
        if head is None:
            message = f"model {model}: the registry's anchor {value!r} is not <seq>:<hash>"
            checks.append(AnchorCheck(model, value, False, message))
            continue
        seq, digest = head
        if seq not in found:
            ends = "the file is empty" if last_seq is None else f"the file ends at seq {last_seq}"
            message = (
                f"the registry's anchor for model {model} says the trail reached seq {seq} (hash {digest[:16]}...), "
                f"{ends}: records were removed from the end"
            )
            checks.append(AnchorCheck(model, value, False, message))
        elif found[seq] != digest:
            message = (
                f"the registry's anchor for model {model} says seq {seq} has hash {digest[:16]}..., the file's "
                f"record seq {seq} has hash {found[seq][:16]}...: the trail was rewritten"
            )
            checks.append(AnchorCheck(model, value, False, message))
        else:
            checks.append(AnchorCheck(model, value, True, f"model {model}: anchored at seq {seq}, matches"))
    return checks
