"""`llmops audit verify|show`, run in-process through `cli.main` (no Airflow needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_llmops.cli import main
from airflow_provider_llmops.core.governance.audit import AuditTrail, default_audit_path


def _write(path: Path, n: int) -> list[dict]:
    trail = AuditTrail(path)
    return [trail.append(f"step_{i}", {"i": i, "token": "s3cr3t"}, actor="ci" if i % 2 else None) for i in range(n)]


def test_verify_ok_with_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "trail.jsonl"
    written = _write(path, 12)
    assert main(["audit", "verify", "--path", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"audit trail {path}: OK, 12 records, last hash {written[-1]['hash']}" in out
    assert (
        "mode: UNKEYED hash chain (embedded default): proves order and integrity against accidents, not against "
        "someone who can write the file"
    ) in out


def test_verify_defaults_to_the_home_trail(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    home = tmp_path / "home"
    _write(default_audit_path(home), 3)
    assert main(["--home", str(home), "audit", "verify"]) == 0
    assert f"audit trail {default_audit_path(home.resolve())}: OK, 3 records" in capsys.readouterr().out


def test_verify_broken_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "trail.jsonl"
    _write(path, 6)
    lines = path.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[4])
    record["data"]["i"] = 42
    lines[4] = (json.dumps(record) + "\n").encode()
    path.write_bytes(b"".join(lines))
    assert main(["audit", "verify", "--path", str(path)]) == 1
    assert f"audit trail {path}: BROKEN at line 5: hash does not match" in capsys.readouterr().out


def test_missing_trail_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    missing = tmp_path / "nope.jsonl"
    assert main(["audit", "verify", "--path", str(missing)]) == 2
    assert f"{missing}: no audit trail (file does not exist)" in capsys.readouterr().err
    assert main(["audit", "show", "--path", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_show_last_n(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "trail.jsonl"
    written = _write(path, 30)
    assert main(["audit", "show", "--path", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 20  # default --last
    assert lines[0].split()[0] == "10" and lines[-1].split()[0] == "29"
    assert main(["audit", "show", "--path", str(path), "--last", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["27", "28", "29"]
    assert lines[-1].split()[1:4] == [written[-1]["ts"], "step_29", "ci"]
    assert lines[-1].endswith('{"i":29,"token":"***"}')
    assert "s3cr3t" not in "\n".join(lines)


def test_show_reports_a_corrupt_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "trail.jsonl"
    _write(path, 3)
    with open(path, "ab") as f:
        f.write(b'{"seq": 3, "ts"')
    assert main(["audit", "show", "--path", str(path)]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3  # what could be read is still shown
    assert "line 4: truncated record" in captured.err
