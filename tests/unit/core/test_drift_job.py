"""core/drift/job.py without Airflow: which snapshots count as validated (and in which order), how the reference
is chosen, that a snapshot's profile is built once and then reused, what scoring stores beside the snapshot, and
the XCom summary. Real store, real profile and scoring with the packaged tokenizer; no embeddings, no model.
The operator around this job is tested in tests/unit/operators/test_drift_operator.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_llmops.core.data.ingest import records_to_parquet
from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.core.drift import job
from airflow_provider_llmops.core.drift.job import (
    DRIFT_HTML,
    DRIFT_JSON,
    ProfileSettings,
    ensure_profile,
    latest_passed,
    passed_snapshots,
    resolve_reference,
    score_snapshot,
    summary,
)
from airflow_provider_llmops.core.drift.profile import ScoreOptions
from airflow_provider_llmops.errors import ConfigurationError
from tests.unit.fake_model import add_snapshot, sample_rows

NO_EMBEDDINGS = ProfileSettings(embedding_sample=0)
OPTIONS = ScoreOptions(embeddings=False)


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(str(tmp_path / "store"))


def _commit(store: DatasetStore, dataset: str, snapshot_id: str, created_at: str, status: str | None) -> str:
    """A snapshot with a chosen id and commit time (ingest derives both), validated with `status` (None: never)."""
    rows = [{"id": "1", "text": "hello"}]
    manifest = {"dataset": dataset, "snapshot_id": snapshot_id, "created_at": created_at}
    store.commit_snapshot(dataset, snapshot_id, records_to_parquet(rows, ["id", "text"]), b"", manifest)
    if status is not None:
        store.write_validation(dataset, snapshot_id, {"status": status})
    return snapshot_id


def test_validated_snapshots_are_the_passed_ones_oldest_first(store: DatasetStore):
    newest = _commit(store, "d", "a" * 16, "2026-01-03T00:00:00Z", "passed")
    _commit(store, "d", "b" * 16, "2026-01-02T00:00:00Z", "failed")
    _commit(store, "d", "c" * 16, "2026-01-02T12:00:00Z", None)
    oldest = _commit(store, "d", "d" * 16, "2026-01-01T00:00:00Z", "passed")
    _commit(store, "other", "e" * 16, "2025-12-31T00:00:00Z", "passed")
    assert passed_snapshots(store, "d") == [oldest, newest]  # by commit time, not by id
    assert latest_passed(store, "d") == newest
    assert resolve_reference(store, "d", None, None) == ("d", oldest)  # the data the first model trains on
    assert resolve_reference(store, "d", "other", None) == ("other", "e" * 16)
    assert resolve_reference(store, "d", None, "b" * 16) == ("d", "b" * 16)  # given explicitly: taken as is
    assert passed_snapshots(store, "nothing") == []


def test_no_reference_and_nothing_to_score_are_errors_that_say_what_to_do(store: DatasetStore):
    _commit(store, "d", "b" * 16, "2026-01-02T00:00:00Z", "failed")
    with pytest.raises(ConfigurationError, match=r"reference snapshot '0{16}' of dataset 'd' does not exist in"):
        resolve_reference(store, "d", None, "0" * 16)
    with pytest.raises(
        ConfigurationError,
        match=r"no reference: dataset 'd' has no snapshot that passed validation in .*; ingest and validate the "
        "training data first, or pass reference_snapshot_id",
    ):
        resolve_reference(store, "d", None, None)
    with pytest.raises(ConfigurationError, match="dataset 'd' has no snapshot that passed validation in .*: nothing"):
        latest_passed(store, "d")


def test_a_profile_is_built_once_then_reused(store: DatasetStore, tmp_path: Path, sample_dir: Path, monkeypatch):
    snapshot = add_snapshot(store, "tickets", sample_rows(sample_dir, count=120))
    profile, created = ensure_profile(store, "tickets", snapshot, tmp_path / "cache", NO_EMBEDDINGS)
    assert created is True and store.has_profile("tickets", snapshot)
    assert profile.row_count == 120 and profile.snapshot_ids == [snapshot] and profile.embedding is None
    assert {"char_length", "token_count", "label", "meta:channel"} <= set(profile.features)

    def no_rebuild(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the stored profile must be reused, not rebuilt")

    monkeypatch.setattr(job, "build_profile", no_rebuild)
    again, created_again = ensure_profile(store, "tickets", snapshot, tmp_path / "cache", NO_EMBEDDINGS)
    assert created_again is False and again.profile_id == profile.profile_id


def test_a_reference_without_the_text_column_is_refused(store: DatasetStore, tmp_path: Path, sample_dir: Path):
    snapshot = add_snapshot(store, "tickets", sample_rows(sample_dir, count=20))
    with pytest.raises(ConfigurationError, match=r"reference has no text column 'body'; columns: \['channel', "):
        ensure_profile(store, "tickets", snapshot, tmp_path / "cache", ProfileSettings("body", embedding_sample=0))
    assert not store.has_profile("tickets", snapshot)


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> dict[str, Any]:
    """One reference profile and two scored batches, shared by the tests that only read them."""
    tmp_path = tmp_path_factory.mktemp("scored")
    store = DatasetStore(str(tmp_path / "store"))
    reference = add_snapshot(store, "tickets", sample_rows(sample_dir, count=400))
    same = add_snapshot(store, "tickets", sample_rows(sample_dir, "tickets_batch_same.jsonl", 400))
    drifted = add_snapshot(store, "tickets", sample_rows(sample_dir, "tickets_batch_drift.jsonl", 400))
    profile, _ = ensure_profile(store, "tickets", reference, tmp_path / "cache", NO_EMBEDDINGS)
    return {
        "store": store,
        "reference": reference,
        "profile": profile,
        "same": (same, *score_snapshot(store, "tickets", same, profile, OPTIONS)),
        "drifted": (drifted, *score_snapshot(store, "tickets", drifted, profile, OPTIONS)),
    }


def test_scoring_stores_the_report_and_page_beside_the_snapshot(scored: dict[str, Any]):
    store = scored["store"]
    snapshot, report, json_uri, html_uri = scored["drifted"]
    assert (report["dataset"], report["snapshot_id"], report["verdict"]) == ("tickets", snapshot, "drift")
    assert json_uri == store.ref("tickets", snapshot).uri + "/" + DRIFT_JSON
    assert json.loads(store.read_beside("tickets", snapshot, DRIFT_JSON)) == report
    page = store.read_beside("tickets", snapshot, DRIFT_HTML).decode()
    assert html_uri.endswith(DRIFT_HTML) and f"Drift of tickets snapshot {snapshot}" in page and "<svg" in page
    assert {"char_length", "label", "meta:channel"} <= set(report["drifting_features"])
    assert report["reference"]["profile_id"] == scored["profile"].profile_id and report["rows"] == 400
    assert store.read_beside("tickets", scored["reference"], DRIFT_JSON) is None  # only the scored snapshot


def test_a_batch_like_the_reference_does_not_drift(scored: dict[str, Any]):
    _, report, _, _ = scored["same"]
    assert report["verdict"] == "no_drift" and report["drift"] is False and report["drifting_features"] == []


def test_the_summary_is_small_and_names_the_reports(scored: dict[str, Any]):
    snapshot, report, json_uri, html_uri = scored["drifted"]
    out = summary(report, json_uri, html_uri)
    assert json.loads(json.dumps(out)) == out and len(json.dumps(out)) < 4000
    assert (out["dataset"], out["snapshot_id"], out["verdict"], out["drift"]) == ("tickets", snapshot, "drift", True)
    assert (out["report_uri"], out["html_uri"], out["embedding"]) == (json_uri, html_uri, None)
    assert out["drifting_features"] == report["drifting_features"] and out["rows"] == 400
    assert out["profile_id"] == scored["profile"].profile_id and out["reference_snapshot_ids"] == [scored["reference"]]
    assert out["top_features"] == report["top_features"] and "features" not in out
