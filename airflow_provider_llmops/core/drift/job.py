"""Drift of a stored snapshot against a reference profile: pick the reference, build or reuse its profile, score,
store the report beside the snapshot."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_llmops.core.data.batches import iter_chunks
from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.core.drift.profile import ReferenceProfile, ScoreOptions, build_profile, score
from airflow_provider_llmops.errors import ConfigurationError

DRIFT_JSON = "drift.json"
DRIFT_HTML = "drift.html"


def passed_snapshots(store: DatasetStore, dataset: str) -> list[str]:
    """Snapshots of `dataset` that passed validation, oldest first (by commit time)."""
    passed = []
    for snapshot_id in store.list_snapshots(dataset):
        validation = store.read_validation(dataset, snapshot_id)
        if validation and validation.get("status") == "passed":
            passed.append((store.read_manifest(dataset, snapshot_id).get("created_at", ""), snapshot_id))
    return [snapshot_id for _, snapshot_id in sorted(passed)]


def resolve_reference(
    store: DatasetStore, dataset: str, reference_dataset: str | None, reference_snapshot_id: str | None
) -> tuple[str, str]:
    """The reference snapshot: the one given, else the earliest snapshot of the reference dataset that passed
    validation (the data the first model will be trained on)."""
    ref_dataset = reference_dataset or dataset
    if reference_snapshot_id:
        if not store.exists(ref_dataset, reference_snapshot_id):
            raise ConfigurationError(
                f"reference snapshot {reference_snapshot_id!r} of dataset {ref_dataset!r} does not exist in {store.uri}"
            )
        return ref_dataset, reference_snapshot_id
    passed = passed_snapshots(store, ref_dataset)
    if not passed:
        raise ConfigurationError(
            f"no reference: dataset {ref_dataset!r} has no snapshot that passed validation in {store.uri}; "
            "ingest and validate the training data first, or pass reference_snapshot_id"
        )
    return ref_dataset, passed[0]


def latest_passed(store: DatasetStore, dataset: str) -> str:
    passed = passed_snapshots(store, dataset)
    if not passed:
        raise ConfigurationError(
            f"dataset {dataset!r} has no snapshot that passed validation in {store.uri}: nothing to score"
        )
    return passed[-1]


@dataclass(frozen=True)
class ProfileSettings:
    text_column: str = "text"
    label_column: str | None = "label"
    model_dir: str | None = None
    embedding_sample: int = 1000


def ensure_profile(
    store: DatasetStore, dataset: str, snapshot_id: str, cache_dir: Path, settings: ProfileSettings
) -> tuple[ReferenceProfile, bool]:
    """Load the snapshot's reference profile, building and committing it first if it does not exist yet."""
    created = False
    if not store.has_profile(dataset, snapshot_id):
        profile = build_profile(
            lambda: iter_chunks(store.data_source(dataset, snapshot_id), "parquet"),
            text_column=settings.text_column,
            label_column=settings.label_column,
            model_dir=settings.model_dir,
            embedding_sample=settings.embedding_sample,
            snapshot_ids=[snapshot_id],
        )
        created = store.commit_profile(dataset, snapshot_id, profile.to_files())
    return ReferenceProfile.load(store.fetch_profile(dataset, snapshot_id, cache_dir)), created


def score_snapshot(
    store: DatasetStore,
    dataset: str,
    snapshot_id: str,
    profile: ReferenceProfile,
    options: ScoreOptions,
    predictor: Any = None,
) -> tuple[dict[str, Any], str, str]:
    """Score a snapshot; store drift.json and drift.html beside it. Returns (report, json_uri, html_uri)."""
    from airflow_provider_llmops.core.report_html import render

    report = score(
        profile, iter_chunks(store.data_source(dataset, snapshot_id), "parquet"), options, predictor=predictor
    )
    report["dataset"], report["snapshot_id"] = dataset, snapshot_id
    json_uri = store.write_beside(
        dataset, snapshot_id, DRIFT_JSON, json.dumps(report, indent=1, allow_nan=False).encode()
    )
    page = render(report, f"Drift of {dataset} snapshot {snapshot_id}")
    html_uri = store.write_beside(dataset, snapshot_id, DRIFT_HTML, page.encode())
    return report, json_uri, html_uri


def summary(report: dict[str, Any], json_uri: str, html_uri: str) -> dict[str, Any]:
    """Small, JSON-safe XCom summary of a drift report."""
    embedding = report.get("embedding")
    return {
        "dataset": report.get("dataset"),
        "snapshot_id": report.get("snapshot_id"),
        "verdict": report["verdict"],
        "drift": report["drift"],
        "rows": report["rows"],
        "drifting_features": report["drifting_features"],
        "top_features": report["top_features"],
        "embedding": None
        if not embedding
        else {k: embedding[k] for k in ("drift", "centroid_cosine_distance", "mmd_pvalue", "domain_auc")},
        "checks": report.get("checks", {}),
        "profile_id": report["reference"]["profile_id"],
        "reference_snapshot_ids": report["reference"]["snapshot_ids"],
        "report_uri": json_uri,
        "html_uri": html_uri,
    }
