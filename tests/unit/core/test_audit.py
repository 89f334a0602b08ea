"""The hash-chained audit trail: chain checks, tamper detection, redaction and concurrent appends."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_llmops.core.governance.audit import (
    GENESIS_HASH,
    AuditTrail,
    anchor_value,
    check_anchors,
    default_audit_path,
    key_id,
    record_hash,
    records,
    redact,
    verify,
)
from airflow_provider_llmops.errors import AuditError


def _trail(path: Path, n: int = 5) -> list[dict]:
    trail = AuditTrail(path)
    return [
        trail.append(f"event_{i}", {"i": i, "nested": {"k": [i, "x"]}}, actor="alice" if i % 2 else None)
        for i in range(n)
    ]


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
    for prev, cur in zip(written, written[1:], strict=False):
        assert cur["prev_hash"] == prev["hash"]
    on_disk = list(records(path))
    assert on_disk == written
    for r in on_disk:
        assert list(r) == ["seq", "ts", "event", "actor", "data", "prev_hash", "hash"]
        assert record_hash(r) == r["hash"]
        ts = datetime.fromisoformat(r["ts"].replace("Z", "+00:00"))
        assert ts.utcoffset() == UTC.utcoffset(None)
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
    assert all(
        redacted[k] == "***" for k in ("OPENAI_API_KEY", "apiKey", "refresh_token", "client_secret", "aws_credentials")
    )
    assert data["Password"] == secret and data["db"]["db_password"] == secret  # the input is not modified

    path = tmp_path / "audit.jsonl"
    written = AuditTrail(path).append("login", data, actor="bob")
    assert secret.encode() not in path.read_bytes()
    assert secret not in json.dumps(written)
    assert verify(path).ok


def test_non_serialisable_values_become_strings(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    when = datetime(2024, 5, 1, tzinfo=UTC)
    written = AuditTrail(path).append(
        "odd", {"path": Path("/x/y"), "when": when, "t": (1, 2), "nan": float("nan"), 3: "int key", "ü": "ünïcode"}
    )
    (on_disk,) = list(records(path))
    assert on_disk == written
    assert on_disk["data"] == {
        "path": "/x/y",
        "when": str(when),
        "t": [1, 2],
        "nan": "nan",
        "3": "int key",
        "ü": "ünïcode",
    }
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


# ---- keyed trails (HMAC-SHA256) --------------------------------------------------------------------------------

KEY = "k3y-0f-the-audit-trail-7f1c9a2e"
OTHER_KEY = "an0ther-key-entirely-5b8d0c4e11"


def _keyed(path: Path, n: int = 5, key: str = KEY) -> list[dict]:
    trail = AuditTrail(path, key=key)
    return [trail.append(f"event_{i}", {"i": i, "model": "m"}, actor="alice") for i in range(n)]


def _rewrite_chain(lines: list[bytes], edit: Any, start: int = 0) -> list[bytes]:
    """What an attacker without the key can do: edit records and recompute every plain SHA-256 link after them."""
    out, prev = [], None
    for i, raw in enumerate(lines):
        record = json.loads(raw)
        if i >= start:
            if prev is not None:
                record["prev_hash"] = prev
            edit(i, record)
            record["hash"] = record_hash(record)
        prev = record["hash"]
        out.append((json.dumps(record) + "\n").encode())
    return out


def test_audit_error_is_an_llmops_error():
    from airflow_provider_llmops.errors import LLMOpsError

    assert issubclass(AuditError, LLMOpsError)


def test_keyed_records_carry_key_id_and_an_hmac_that_verifies(tmp_path: Path):
    import hmac as hmac_mod

    path = tmp_path / "audit.jsonl"
    written = _keyed(path, 4)
    expected_id = hashlib.sha256(KEY.encode()).hexdigest()[:8]
    assert key_id(KEY) == expected_id
    for r in written:
        assert list(r) == ["seq", "ts", "event", "actor", "data", "prev_hash", "key_id", "hash", "hmac"]
        assert r["key_id"] == expected_id
        body = {k: v for k, v in r.items() if k != "hmac"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert r["hmac"] == hmac_mod.new(KEY.encode(), canonical, hashlib.sha256).hexdigest()
    result = verify(path, keys=[KEY])
    assert (result.ok, result.status, result.records, result.keyed) == (True, "ok", 4, 4)
    assert (result.first_keyed_seq, result.key_ids, result.models, result.last_seq) == (0, (expected_id,), ("m",), 3)
    assert KEY.encode() not in path.read_bytes()
    assert KEY not in repr(AuditTrail(path, key=KEY)) and "keyed" in repr(AuditTrail(path, key=KEY))


def test_keyed_trail_rewritten_with_recomputed_sha256_is_detected(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _keyed(path, 6)

    def edit(i: int, record: dict) -> None:
        if i == 2:
            record["data"]["i"] = 99

    path.write_bytes(b"".join(_rewrite_chain(_lines(path), edit, start=2)))
    plain = verify(path)  # the plain chain is consistent again: that is why the key matters
    assert (plain.ok, plain.status, plain.bad_line) == (False, "unverifiable", None)
    result = verify(path, keys=[KEY])
    assert (result.ok, result.status, result.bad_line, result.records) == (False, "broken", 3, 2)
    assert "hmac does not match" in result.reason


def test_wrong_key_is_broken_and_names_both_key_ids(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _keyed(path, 3)
    result = verify(path, keys=[OTHER_KEY])
    assert (result.ok, result.status, result.bad_line) == (False, "broken", 1)
    assert f"signed with key id {key_id(KEY)}" in result.reason and key_id(OTHER_KEY) in result.reason


def test_keyed_trail_without_key_is_unverifiable(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _keyed(path, 3)
    result = verify(path)
    assert (result.ok, result.status, result.records, result.keyed) == (False, "unverifiable", 3, 3)
    assert result.bad_line is None
    assert f"key id {key_id(KEY)}" in result.reason and "cannot be checked without the key" in result.reason


def test_rotation_verifies_with_both_keys(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _keyed(path, 2, KEY)
    _keyed(path, 2, OTHER_KEY)  # the new key extends the old key's chain
    assert verify(path, keys=[OTHER_KEY, KEY]).ok
    only_new = verify(path, keys=[OTHER_KEY])
    assert not only_new.ok and only_new.bad_line == 1 and "rotated" in only_new.reason
    assert verify(path, keys=[OTHER_KEY, KEY]).key_ids == (key_id(KEY), key_id(OTHER_KEY))


def test_stripping_the_hmacs_is_a_downgrade(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _keyed(path, 4)
    original = _lines(path)

    def strip(i: int, record: dict) -> None:
        record.pop("hmac", None)
        record.pop("key_id", None)

    path.write_bytes(b"".join(_rewrite_chain(original, strip, start=0)))
    assert verify(path).ok  # as a plain chain it is consistent
    result = verify(path, keys=[KEY])
    assert (result.ok, result.status) == (False, "unkeyed") and "none of the 4 records carries an HMAC" in result.reason

    path.write_bytes(b"".join(_rewrite_chain(original, strip, start=3)))
    result = verify(path, keys=[KEY])
    assert (result.ok, result.bad_line) == (False, 4) and "no hmac after keyed records" in result.reason
    assert not verify(path).ok  # even without the key, an unkeyed record after keyed ones is a downgrade


def test_unkeyed_prefix_is_adopted_by_the_first_keyed_record(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _trail(path, 3)  # written before a key was configured
    _keyed(path, 2)
    result = verify(path, keys=[KEY])
    assert (result.ok, result.records, result.keyed, result.first_keyed_seq) == (True, 5, 2, 3)

    def edit(i: int, record: dict) -> None:
        if i == 0:
            record["actor"] = "mallory"

    path.write_bytes(b"".join(_rewrite_chain(_lines(path), edit, start=0)))
    result = verify(path, keys=[KEY])
    assert (result.ok, result.bad_line) == (False, 4) and "hmac does not match" in result.reason


def test_writer_without_key_refuses_a_keyed_trail(tmp_path: Path):
    from airflow_provider_llmops.errors import LLMOpsError

    path = tmp_path / "audit.jsonl"
    _keyed(path, 2)
    before = path.read_bytes()
    with pytest.raises(LLMOpsError, match="the trail is keyed .*audit_conn_id"):
        AuditTrail(path).append("sneaky", {})
    assert path.read_bytes() == before


def test_keyed_writer_refuses_a_forged_last_record(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    _keyed(path, 3)

    def edit(i: int, record: dict) -> None:
        if i == 2:
            record["event"] = "forged"

    path.write_bytes(b"".join(_rewrite_chain(_lines(path), edit, start=2)))
    before = path.read_bytes()
    with pytest.raises(AuditError, match="does not match its HMAC"):
        AuditTrail(path, key=KEY).append("next", {})
    assert path.read_bytes() == before


def test_short_key_is_refused_without_echoing_it(tmp_path: Path):
    from airflow_provider_llmops.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="too short") as info:
        AuditTrail(tmp_path / "a.jsonl", key="tiny-key-x").append("e", {})
    assert "tiny-key-x" not in str(info.value)
    assert not (tmp_path / "a.jsonl").exists()


def test_key_callable_is_read_once_lazily(tmp_path: Path):
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return KEY

    trail = AuditTrail(tmp_path / "a.jsonl", key=provider)
    assert calls == []
    for i in range(3):
        trail.append("e", {"i": i})
    assert calls == [1] and verify(tmp_path / "a.jsonl", keys=[KEY]).ok


# ---- anchors ---------------------------------------------------------------------------------------------------


def test_anchor_is_called_with_each_record_in_order(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    seen: list[str] = []
    lock = threading.Lock()

    def anchor(record: dict) -> None:
        with lock:
            seen.append(anchor_value(record))

    def worker(w: int) -> None:
        trail = AuditTrail(path, key=KEY, anchor=anchor)
        for i in range(25):
            trail.append("concurrent", {"worker": w, "i": i})

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = list(records(path))
    assert seen == [f"{r['seq']}:{r['hash']}" for r in rows]  # one anchor per record, in seq order
    assert verify(path, keys=[KEY]).records == 100


def test_anchor_failure_keeps_the_record_and_says_so(tmp_path: Path):
    path = tmp_path / "audit.jsonl"

    def anchor(record: dict) -> None:
        raise RuntimeError("registry down")

    with pytest.raises(AuditError, match=r"record seq 0 \(decided\) was written, but anchoring .*registry down"):
        AuditTrail(path, anchor=anchor).append("decided", {"model": "m"})
    assert [r["event"] for r in records(path)] == ["decided"]
    assert AuditTrail(path).append("next", {})["seq"] == 1  # the lock was released


def test_check_anchors_detects_truncation_and_rewrites(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    written = _keyed(path, 5)
    heads = {"a": anchor_value(written[4]), "b": anchor_value(written[1]), "c": "nonsense"}
    checks = {c.model: c for c in check_anchors(path, heads)}
    assert checks["a"].ok and checks["b"].ok and not checks["c"].ok
    assert checks["a"].message == "model a: anchored at seq 4, matches"

    path.write_bytes(b"".join(_lines(path)[:3]))  # records 3 and 4 dropped from the end
    assert verify(path, keys=[KEY]).ok  # the file alone looks fine
    checks = {c.model: c for c in check_anchors(path, heads)}
    assert not checks["a"].ok and checks["b"].ok
    assert checks["a"].message == (
        f"the registry's anchor for model a says the trail reached seq 4 (hash {written[4]['hash'][:16]}...), "
        "the file ends at seq 2: records were removed from the end"
    )
    path.write_bytes(b"")
    assert "the file is empty" in check_anchors(path, {"a": heads["a"]})[0].message

    _trail(path, 3)  # a different trail of the same length: seq 1 exists with another hash
    (check,) = check_anchors(path, {"b": heads["b"]})
    assert not check.ok and "the trail was rewritten" in check.message


def _keyed_process_worker(path: str, worker: int, count: int, barrier: Any) -> None:
    barrier.wait()
    trail = AuditTrail(path, key=KEY)
    for i in range(count):
        trail.append("concurrent", {"worker": worker, "i": i}, actor=f"w{worker}")


def test_concurrent_keyed_appends_from_processes(tmp_path: Path):
    path = tmp_path / "audit" / "audit.jsonl"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_keyed_process_worker, args=(str(path), w, 25, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    result = verify(path, keys=[KEY])
    assert (result.ok, result.records, result.keyed) == (True, 100, 100)
    rows = list(records(path))
    for w in range(4):
        assert [r["data"]["i"] for r in rows if r["data"]["worker"] == w] == list(range(25))


def test_verified_records_refuse_a_forged_trail(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    written = _keyed(path, 3)
    trail = AuditTrail(path, key=KEY)
    assert list(trail.verified_records()) == written
    assert list(AuditTrail(tmp_path / "none.jsonl", key=KEY).verified_records()) == []

    def edit(i: int, record: dict) -> None:
        if i == 1:
            record["data"]["i"] = 7  # e.g. make an old version look like a former champion

    path.write_bytes(b"".join(_rewrite_chain(_lines(path), edit, start=1)))
    assert [r["data"]["i"] for r in records(path)] == [0, 7, 2]  # unchecked reads see the forgery
    with pytest.raises(AuditError, match="not relying on an audit trail that does not verify at line 2: hmac"):
        list(trail.verified_records())
    with pytest.raises(AuditError, match="cannot be checked without the key"):
        list(AuditTrail(path).verified_records())

    plain = tmp_path / "plain.jsonl"
    _trail(plain, 2)  # written before the key was configured: still usable, the next keyed append adopts it
    assert [r["seq"] for r in AuditTrail(plain, key=KEY).verified_records()] == [0, 1]
