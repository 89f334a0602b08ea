"""`llmops drift` exit codes and outputs, as a user runs it (a subprocess, no Airflow)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_exit_codes_and_reports(sample_dir: Path, tmp_path: Path):
    ref = str(sample_dir / "tickets_reference.jsonl")
    same = run_cli(
        "llmops",
        "drift",
        "--reference",
        ref,
        "--current",
        str(sample_dir / "tickets_batch_same.jsonl"),
        "--no-embeddings",
        "--save-profile",
        str(tmp_path / "profile"),
    )
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["verdict"] == "no_drift" and "no_drift" in same.stderr
    drifted = run_cli(
        "llmops",
        "drift",
        "--reference",
        str(tmp_path / "profile"),
        "--current",
        str(sample_dir / "tickets_batch_drift.jsonl"),
        "--no-embeddings",
        "--format",
        "html",
        "--out",
        str(tmp_path / "drift.html"),
    )
    assert drifted.returncode == 1, drifted.stderr
    assert "<svg" in (tmp_path / "drift.html").read_text()


def test_bad_input_exits_2_with_a_message(sample_dir: Path, tmp_path: Path):
    ref = str(sample_dir / "tickets_reference.jsonl")
    missing = run_cli("llmops", "drift", "--reference", ref, "--current", str(tmp_path / "nope.csv"), "--no-embeddings")
    assert missing.returncode == 2 and "nope.csv: does not exist" in missing.stderr
    (tmp_path / "export.csv").write_text("ticket,body\n1,hello\n")
    wrong = run_cli("llmops", "drift", "--reference", ref, "--current", str(tmp_path / "export.csv"), "--no-embeddings")
    assert wrong.returncode == 2 and "no text column 'text'" in wrong.stderr
    mapped = run_cli(
        "llmops",
        "drift",
        "--reference",
        str(tmp_path / "export.csv"),
        "--current",
        str(tmp_path / "export.csv"),
        "--text-column",
        "body",
        "--label-column",
        "",
        "--no-embeddings",
    )
    assert mapped.returncode == 0, mapped.stderr  # --text-column maps other layouts; a one-row batch gets no verdict
    assert json.loads(mapped.stdout)["verdict"] == "insufficient_data"
