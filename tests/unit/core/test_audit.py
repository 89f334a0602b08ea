"""The hash-chained audit trail: chain checks, tamper detection, redaction and concurrent appends."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_llmops.core.audit import (
    GENESIS_HASH,
    AuditError,
    AuditTrail,
    default_audit_path,
    record_hash,
    records,
    redact,
    verify,
)


def _trail(path: Path, n: int = 5) -> list[dict]:
    trail = AuditTrail(path)
    return [trail.append(f"event_{i}", {"i": i, "nested": {"k": [i, "x"]}}, actor="alice" if i % 2 else None) for i in range(n)]


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_default_path_and_parents_created(tmp_path: Path):
    path = default_audit_path(tmp_path)
    assert path == tmp_path / "audit" / "audit.jsonl"
    AuditTrail(path).append("created", {})
    assert path.is_file()


def test_chain_of_records_verifies(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    written = _trail(path, 6)
    assert [r["seq"] for r in written] == list(range(6))
    assert written[0]["prev_hash"] == GENESIS_HASH
    for prev, cur in zip(written, written[1:]):
        assert cur["prev_hash"] == prev["hash"]
    on_disk = list(records(path))
    assert on_disk == written
    for r in on_disk:
        assert list(r) == ["seq", "ts", "event", "actor", "data", "prev_hash", "hash"]
        assert record_hash(r) == r["hash"]
        ts = datetime.fromisoformat(r["ts"].replace("Z", "+00:00"))
        assert ts.utcoffset() == timezone.utc.utcoffset(None)
    # the hash is the sha256 of the canonical JSON without the hash key
    first = dict(on_disk[0])
    del first["hash"]
    canonical = json.dumps(first, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert hashlib.sha256(canonical).hexdigest() == on_disk[0]["hash"]
    result = verify(path)
    assert result.ok and result.records == 6 and result.bad_line is None and result.last_hash == written[-1]["hash"]


def test_empty_file_is_ok_and_missing_file_raises(tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    result = verify(empty)
    assert result.ok and result.records == 0 and result.last_hash is None
    with pytest.raises(FileNotFoundError):
        verify(tmp_path / "missing.jsonl")
    assert AuditTrail(empty).append("first", {})["seq"] == 0


def test_edited_middle_record_is_pinpointed(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _trail(path, 6)
    lines = _lines(path)
    record = json.loads(lines[2])
    record["data"]["i"] = 99
    lines[2] = (json.dumps(record) + "\n").encode()
    path.write_bytes(b"".join(lines))
    result = verify(path)
    assert not result.ok and result.bad_line == 3 and result.records == 2
    assert "edited" in result.reason


def test_edited_record_with_recomputed_hash_breaks_the_next_link(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _trail(path, 6)
    lines = _lines(path)
    record = json.loads(lines[2])
    record["actor"] = "mallory"
    record["hash"] = record_hash(record)
    lines[2] = (json.dumps(record) + "\n").encode()
    path.write_bytes(b"".join(lines))
    result = verify(path)
    assert not result.ok and result.bad_line == 4 and "prev_hash" in result.reason


def test_deleted_middle_record_is_detected(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _trail(path, 6)
    lines = _lines(path)
    path.write_bytes(b"".join(lines[:3] + lines[4:]))
    result = verify(path)
    assert not result.ok and result.bad_line == 4 and result.records == 3
    assert "seq 4, expected 3" in result.reason


def test_deleted_first_record_is_detected(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _trail(path, 3)
    path.write_bytes(b"".join(_lines(path)[1:]))
    result = verify(path)
    assert not result.ok and result.bad_line == 1


def test_reordered_records_are_detected(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _trail(path, 6)
    lines = _lines(path)
    lines[2], lines[3] = lines[3], lines[2]
    path.write_bytes(b"".join(lines))
    result = verify(path)
    assert not result.ok and result.bad_line == 3


def test_missing_key_and_non_json_line(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _trail(path, 3)
    lines = _lines(path)
    record = json.loads(lines[1])
    del record["prev_hash"]
    path.write_bytes(lines[0] + (json.dumps(record) + "\n").encode() + lines[2])
    result = verify(path)
    assert not result.ok and result.bad_line == 2 and "missing key(s): prev_hash" in result.reason

    path.write_bytes(lines[0] + b"this is not json\n" + lines[2])
    result = verify(path)
    assert not result.ok and result.bad_line == 2 and "not valid JSON" in result.reason


def test_truncated_last_line_stops_appends_and_fails_verify(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _trail(path, 4)
    data = path.read_bytes()
    path.write_bytes(data[:-20])  # a crashed writer: half of the last line, no newline
    before = path.read_bytes()
    with pytest.raises(AuditError, match="corrupt"):
        AuditTrail(path).append("after_crash", {})
    assert path.read_bytes() == before  # nothing was appended
    result = verify(path)
    assert not result.ok and result.bad_line == 4 and result.records == 3 and "truncated" in result.reason
    with pytest.raises(AuditError, match="line 4"):
        list(records(path))


def test_edited_last_record_stops_appends(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _trail(path, 2)
    lines = _lines(path)
    record = json.loads(lines[-1])
    record["event"] = "rewritten"
    path.write_bytes(lines[0] + (json.dumps(record) + "\n").encode())
    with pytest.raises(AuditError, match="does not match its hash"):
        AuditTrail(path).append("next", {})


def test_redact_nested_and_never_written(tmp_path: Path):
    secret = "hunter2-S3CR3T"
    data = {
        "user": "bob",
        "Password": secret,
        "db": {"host": "localhost", "db_password": secret, "options": {"ssl": True}},
        "headers": [{"Authorization": f"Bearer {secret}"}, {"accept": "json"}],
        "OPENAI_API_KEY": secret,
        "apiKey": secret,
        "refresh_token": secret,
        "client_secret": secret,
        "aws_credentials": {"key": secret, "nested": [secret]},
    }
    redacted = redact(data)
    assert redacted["user"] == "bob" and redacted["Password"] == "***"
    assert redacted["db"] == {"host": "localhost", "db_password": "***", "options": {"ssl": True}}
    assert redacted["headers"] == [{"Authorization": "***"}, {"accept": "json"}]
    assert all(redacted[k] == "***" for k in ("OPENAI_API_KEY", "apiKey", "refresh_token", "client_secret", "aws_credentials"))
    assert data["Password"] == secret and data["db"]["db_password"] == secret  # the input is not modified

    path = tmp_path / "audit.jsonl"
    written = AuditTrail(path).append("login", data, actor="bob")
    assert secret.encode() not in path.read_bytes()
    assert secret not in json.dumps(written)
    assert verify(path).ok


def test_non_serialisable_values_become_strings(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    written = AuditTrail(path).append("odd", {"path": Path("/x/y"), "when": when, "t": (1, 2), "nan": float("nan"), 3: "int key", "ü": "ünïcode"})
    (on_disk,) = list(records(path))
    assert on_disk == written
    assert on_disk["data"] == {"path": "/x/y", "when": str(when), "t": [1, 2], "nan": "nan", "3": "int key", "ü": "ünïcode"}
    assert "ünïcode".encode() in path.read_bytes()  # ensure_ascii=False
    assert verify(path).ok


def _append_many(path: str, worker: int, count: int) -> None:
    trail = AuditTrail(path)
    for i in range(count):
        trail.append("concurrent", {"worker": worker, "i": i}, actor=f"w{worker}")


def _process_worker(path: str, worker: int, count: int, barrier: Any) -> None:
    barrier.wait()
    _append_many(path, worker, count)


def _check_concurrent(path: Path, workers: int, count: int) -> None:
    result = verify(path)
    assert result.ok, result
    assert result.records == workers * count
    rows = list(records(path))
    assert [r["seq"] for r in rows] == list(range(workers * count))
    for w in range(workers):  # each writer's records are all there, in its own order
        assert [r["data"]["i"] for r in rows if r["data"]["worker"] == w] == list(range(count))


def test_concurrent_appends_from_processes(tmp_path: Path):
    path = tmp_path / "audit" / "audit.jsonl"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_process_worker, args=(str(path), w, 25, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    _check_concurrent(path, 4, 25)


def test_concurrent_appends_from_threads(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    threads = [threading.Thread(target=_append_many, args=(str(path), w, 25)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check_concurrent(path, 4, 25)
