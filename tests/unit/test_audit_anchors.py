"""The keyed audit trail as the operators open it (`open_audit`: key from an Airflow connection, heads anchored on
the registered models' `llmops.audit_head` tag in a real SQLite MLflow registry) and `llmops audit verify` reading
both back: truncation, missing and wrong keys, and the key never written or printed anywhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_provider_llmops.cli import main
from airflow_provider_llmops.core.governance.audit import AuditTrail, default_audit_path, key_id, records, verify
from airflow_provider_llmops.core.model.contract import TAG_AUDIT_HEAD
from airflow_provider_llmops.core.model.registry import ModelRegistry, default_config
from airflow_provider_llmops.errors import AuditError
from airflow_provider_llmops.operators._common import open_audit
from airflow_provider_llmops.settings import load_settings

KEY = "audit-hmac-key-9c1e7b55d0a24f38"
WRONG_KEY = "not-the-audit-key-31f0aa9e62c7"


@pytest.fixture(scope="module")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a migrated, empty embedded MLflow store (created once; each test copies it)."""
    home = tmp_path_factory.mktemp("registry-template") / "home"
    ModelRegistry.from_config(default_config(home))
    return home


def _conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, password: str) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "generic", "password": password}))


@pytest.fixture
def world(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry_template: Path
) -> SimpleNamespace:
    home = tmp_path / "home"
    shutil.copytree(registry_template, home)
    conn_id = f"audit_key_{request.node.name.removeprefix('test_')[:40]}"  # one connection id per test
    _conn(monkeypatch, conn_id, KEY)
    monkeypatch.setenv("AIRFLOW__LLMOPS__HOME", str(home))
    monkeypatch.setenv("AIRFLOW__LLMOPS__AUDIT_CONN_ID", conn_id)
    for var in ("AIRFLOW__LLMOPS__MLFLOW_TRACKING_URI", "AIRFLOW__LLMOPS__MLFLOW_CONN_ID"):
        monkeypatch.delenv(var, raising=False)
    registry = ModelRegistry.from_config(default_config(home))
    for name in ("m1", "m2"):
        registry.ensure_model(name)
    return SimpleNamespace(home=home, path=default_audit_path(home), registry=registry, conn_id=conn_id, root=tmp_path)


def _head(world: SimpleNamespace, model: str) -> str | None:
    return world.registry.client.get_registered_model(model).tags.get(TAG_AUDIT_HEAD)


def _verify(world: SimpleNamespace, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["--home", str(world.home), "audit", "verify", *extra])
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert KEY not in out
    return code, out


def _decide(world: SimpleNamespace, models: list[str | None]) -> list[dict]:
    trail = open_audit(load_settings(), world.registry, "m1")
    written = []
    for i, model in enumerate(models):
        data = {"i": i} if model is None else {"i": i, "model": model}
        written.append(trail.append("model.decided", data, actor="test"))
    return written


def test_open_audit_keys_every_record_and_anchors_each_append(
    world: SimpleNamespace, capsys: pytest.CaptureFixture[str]
):
    trail = open_audit(load_settings(), world.registry, "m1")
    assert trail.path == world.path and KEY not in repr(trail)
    first = trail.append("model.registered", {"model": "m1", "version": "1"})
    assert _head(world, "m1") == f"0:{first['hash']}" and _head(world, "m2") is None
    second = trail.append("model.promoted", {"model": "m2", "version": "3"})
    assert _head(world, "m2") == f"1:{second['hash']}" and _head(world, "m1") == f"0:{first['hash']}"
    third = trail.append("note", {"text": "no model named: anchored on the operator's model"})
    assert _head(world, "m1") == f"2:{third['hash']}"
    assert {r["key_id"] for r in records(world.path)} == {key_id(KEY)}
    assert verify(world.path, keys=[KEY]).ok

    code, out = _verify(world, capsys)
    assert code == 0, out
    assert f"audit trail {world.path}: OK, 3 records, last hash {third['hash']}" in out
    assert f"mode: keyed (HMAC-SHA256, key from connection {world.conn_id} (key id {key_id(KEY)}))" in out
    assert "model m1: anchored at seq 2, matches" in out and "model m2: anchored at seq 1, matches" in out
    for path in world.root.rglob("*"):  # the trail, the MLflow DB, everything under the test's directory
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_truncation_is_detected_through_the_registry_anchor(world: SimpleNamespace, capsys: pytest.CaptureFixture[str]):
    written = _decide(world, ["m1", "m2", "m1", "m2"])
    lines = world.path.read_bytes().splitlines(keepends=True)
    world.path.write_bytes(b"".join(lines[:3]))  # the last decision (about m2) is cut off
    assert verify(world.path, keys=[KEY]).ok  # the file alone cannot tell
    code, out = _verify(world, capsys)
    assert code == 1, out
    assert (
        f"audit trail {world.path}: BROKEN: the registry's anchor for model m2 says the trail reached seq 3 "
        f"(hash {written[3]['hash'][:16]}...), the file ends at seq 2: records were removed from the end"
    ) in out
    assert "the chain itself is intact: 3 records" in out

    code, out = _verify(world, capsys, "--no-anchors")
    assert code == 0 and "anchors: not checked (--no-anchors)" in out

    world.path.write_bytes(lines[0])  # now no record names m2 any more: the registry's tags still say so
    code, out = _verify(world, capsys)
    assert code == 1, out
    assert "anchor for model m2 says the trail reached seq 3" in out
    assert "anchor for model m1 says the trail reached seq 2" in out


def test_rewritten_trail_is_detected_through_the_anchor_even_unkeyed(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.delenv("AIRFLOW__LLMOPS__AUDIT_CONN_ID")
    _decide(world, ["m1", "m2"])
    code, out = _verify(world, capsys)
    assert code == 0 and "mode: UNKEYED hash chain (embedded default)" in out
    world.path.unlink()  # someone who can write the file starts it over: a consistent chain, but not the anchored one
    forged = AuditTrail(world.path)  # the attacker cannot write the registry: no anchor
    forged.append("model.decided", {"i": 0, "model": "m1"}, actor="test")
    forged.append("model.decided", {"i": 1, "model": "m2"}, actor="test")
    code, out = _verify(world, capsys)
    assert code == 1 and "anchor for model m1 says seq 0 has hash" in out and "the trail was rewritten" in out


def test_keyed_trail_without_key_cannot_verify_and_wrong_key_is_broken(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    _decide(world, ["m1", "m1"])
    _conn(monkeypatch, "audit_wrong_key", WRONG_KEY)
    code, out = _verify(world, capsys, "--conn-id", "audit_wrong_key")
    assert code == 1, out
    assert (
        f"BROKEN at line 1: record seq 0 was signed with key id {key_id(KEY)}, "
        f"not with the given key (id {key_id(WRONG_KEY)})"
    ) in out
    assert WRONG_KEY not in out

    code, out = _verify(world, capsys, "--conn-id", "audit_no_such_conn")
    assert code == 2 and "connection 'audit_no_such_conn' cannot be read" in out

    monkeypatch.delenv("AIRFLOW__LLMOPS__AUDIT_CONN_ID")
    code, out = _verify(world, capsys)
    assert code == 2, out
    assert f"CANNOT VERIFY: 2 of 2 records carry an HMAC (key id {key_id(KEY)})" in out
    assert "set [llmops] audit_conn_id (or --conn-id)" in out
    # and the operators, without the key, refuse to extend the keyed trail
    with pytest.raises(AuditError, match="the trail is keyed"):
        open_audit(load_settings(), world.registry, "m1").append("model.decided", {"model": "m1"})


def test_anchor_on_a_model_missing_from_the_registry_fails_loudly(world: SimpleNamespace):
    trail = open_audit(load_settings(), world.registry, "m1")
    with pytest.raises(AuditError, match=r"record seq 0 \(model.registered\) was written, but anchoring"):
        trail.append("model.registered", {"model": "not_registered"})
    assert [r["seq"] for r in records(world.path)] == [0]


def test_every_audit_trail_of_the_package_is_opened_through_open_audit():
    """So the key and the anchor apply to every record: only `open_audit` constructs the pipeline's AuditTrail (the
    inference service's own log, serving/audit_log.py, is a separate trail keyed by the same key source)."""
    import ast

    package = Path(__file__).resolve().parents[2] / "airflow_provider_llmops"
    calls = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name == "AuditTrail":
                    calls.append(str(path.relative_to(package)))
    assert calls == ["operators/_common.py", "serving/audit_log.py"]


def test_a_rotated_key_verifies_with_both_connections(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    _decide(world, ["m1"])
    _conn(monkeypatch, "audit_new_key", WRONG_KEY)
    monkeypatch.setenv("AIRFLOW__LLMOPS__AUDIT_CONN_ID", "audit_new_key")
    _decide(world, ["m1"])  # the new key extends the old key's chain
    code, out = _verify(world, capsys)
    assert code == 1 and f"signed with key id {key_id(KEY)}" in out
    code, out = _verify(world, capsys, "--conn-id", "audit_new_key", "--conn-id", world.conn_id)
    assert code == 0, out
    given = f"audit_new_key (key id {key_id(WRONG_KEY)}), {world.conn_id} (key id {key_id(KEY)})"
    assert f"keyed (HMAC-SHA256, key from connection {given})" in out
    assert "model m1: anchored at seq 1, matches" in out and WRONG_KEY not in out
