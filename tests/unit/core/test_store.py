from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_provider_llmops.core.data import store as S
from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.errors import ConfigurationError, SnapshotNotFoundError

SID = "0123456789abcdef0123456789abcdef"


def _commit(store: DatasetStore, sid: str = SID):
    return store.commit_snapshot("tickets", sid, b"parquet-bytes", b'{"line": 1}\n', {"snapshot_id": sid})


def test_commit_then_read(tmp_path: Path):
    store = DatasetStore(str(tmp_path))
    ref, created = _commit(store)
    assert created and store.exists("tickets", SID)
    assert store.read_data("tickets", SID) == b"parquet-bytes"
    assert store.read_manifest("tickets", SID) == {"snapshot_id": SID}
    assert store.read_quarantine("tickets", SID) == [{"line": 1}]
    assert ref.uri == (tmp_path / "snapshots" / "tickets" / SID).as_uri()
    assert store.list_snapshots("tickets") == [SID]


def test_second_commit_of_same_id_writes_nothing(tmp_path: Path):
    store = DatasetStore(str(tmp_path))
    _commit(store)
    manifest = tmp_path / "snapshots" / "tickets" / SID / S.MANIFEST_FILE
    before = manifest.stat().st_mtime_ns
    _, created = store.commit_snapshot("tickets", SID, b"other", b"", {"snapshot_id": "changed"})
    assert not created
    assert manifest.stat().st_mtime_ns == before
    assert store.read_data("tickets", SID) == b"parquet-bytes"


def test_crash_before_commit_leaves_nothing_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = DatasetStore(str(tmp_path))

    def crash(src, dst):
        raise OSError("disk full during commit")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError, match="disk full"):
        _commit(store)
    monkeypatch.undo()
    assert not store.exists("tickets", SID)
    assert store.list_snapshots("tickets") == []
    dataset_dir = tmp_path / "snapshots" / "tickets"
    assert not (dataset_dir / SID).exists()
    assert list((dataset_dir / ".staging").iterdir()) == []  # staging is cleaned up too
    with pytest.raises(SnapshotNotFoundError):
        store.read_data("tickets", SID)


def test_uncommitted_directory_is_invisible(tmp_path: Path):
    store = DatasetStore(str(tmp_path))
    half = tmp_path / "snapshots" / "tickets" / SID
    half.mkdir(parents=True)
    (half / S.DATA_FILE).write_bytes(b"partial")
    assert not store.exists("tickets", SID)
    assert store.list_snapshots("tickets") == []


def test_validation_report_is_written_beside_the_snapshot(tmp_path: Path):
    store = DatasetStore(str(tmp_path))
    _commit(store)
    assert store.read_validation("tickets", SID) is None
    uri = store.write_validation("tickets", SID, {"status": "passed"})
    assert uri.endswith(f"/{SID}/validation.json")
    assert store.read_validation("tickets", SID) == {"status": "passed"}
    with pytest.raises(SnapshotNotFoundError):
        store.write_validation("tickets", "f" * 32, {"status": "passed"})


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "x" * 200, "a..b"])
def test_dataset_names_cannot_escape_the_store(tmp_path: Path, name):
    with pytest.raises(ConfigurationError, match="invalid dataset name"):
        DatasetStore(str(tmp_path)).ref(name, SID)


def test_snapshot_ids_are_checked(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="invalid snapshot id"):
        DatasetStore(str(tmp_path)).ref("tickets", "../../x")


def test_s3_store_needs_a_client():
    with pytest.raises(ConfigurationError, match="no S3 client"):
        DatasetStore("s3://bucket/prefix")
    with pytest.raises(ConfigurationError, match="unsupported store"):
        DatasetStore("gs://bucket")


def test_names_are_matched_whole_one_rule_for_datasets_and_suites():
    from airflow_provider_llmops.core.data.store import check_dataset_name
    from airflow_provider_llmops.core.data.validation import check_suite_name
    from airflow_provider_llmops.errors import ConfigurationError

    for check in (check_dataset_name, check_suite_name):
        assert check("tickets_v2.1") == "tickets_v2.1"
        for bad in ("tickets\n", "a..b", "../x", "", "-x"):
            with pytest.raises(ConfigurationError):
                check(bad)
