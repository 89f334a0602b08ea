"""A small provider state for the LLMOps view's tests, written straight through the core modules (no training):
an embedded MLflow registry with three versions of the model behind champion / previous-champion / candidate
(evaluation and gate tags as the promote job writes them), three validated snapshots with drift reports (the
newest drifted on one feature, whose name is HTML to prove escaping) and an audit trail of two records.

The champion was trained on the newest snapshot, so `llmops_retrain` triggered by hand decides there is nothing
to retrain (task `no_retrain`): the browser test's run is cheap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.core.drift.job import DRIFT_HTML, DRIFT_JSON
from airflow_provider_llmops.core.governance.audit import AuditTrail, default_audit_path
from airflow_provider_llmops.core.model.contract import (
    CANDIDATE,
    CHAMPION,
    PREVIOUS,
    TAG_DAG_ID,
    TAG_DAG_RUN,
    TAG_EVAL_PREFIX,
    TAG_GATE,
    TAG_GATE_REASONS,
    TAG_SNAPSHOTS,
)
from airflow_provider_llmops.core.model.registry import ModelRegistry, default_config

MODEL = "support_ticket_router"
DATASET = "support_tickets"
EVIL = "<script>alert('x')</script>"  # a feature name that must be escaped wherever it is shown
SNAPSHOTS = ("a" * 16, "b" * 16, "c" * 16)
PSI = {  # snapshot -> feature -> (psi, drift decided)
    SNAPSHOTS[0]: {"length": (0.01, False), EVIL: (0.02, False)},
    SNAPSHOTS[1]: {"length": (0.03, False), EVIL: (0.05, False)},
    SNAPSHOTS[2]: {"length": (0.02, False), EVIL: (0.40, True)},
}


def _drift_report(snapshot_id: str) -> dict[str, Any]:
    features = {
        name: {"kind": "numeric", "scores": {"psi": psi, "js": psi / 2}, "verdict": {"drift": drift, "monitored": True}}
        for name, (psi, drift) in PSI[snapshot_id].items()
    }
    drifting = [name for name, (_, drift) in PSI[snapshot_id].items() if drift]
    return {
        "verdict": "drift" if drifting else "no_drift",
        "drift": bool(drifting),
        "rows": 100,
        "rules": {"statistic": "psi"},
        "drifting_features": drifting,
        "features": features,
        "dataset": DATASET,
        "snapshot_id": snapshot_id,
    }


def build(home: Path) -> dict[str, Any]:
    store = DatasetStore(str(home / "store"))
    for i, snapshot_id in enumerate(SNAPSHOTS):
        manifest = {
            "dataset": DATASET,
            "snapshot_id": snapshot_id,
            "created_at": f"2026-11-2{i + 1}T10:00:00Z",
            "counts": {"rows_read": 102, "accepted": 100, "quarantined": 2},
        }
        store.commit_snapshot(DATASET, snapshot_id, b"", b"", manifest)
        store.write_validation(DATASET, snapshot_id, {"status": "passed", "dataset": DATASET})
        store.write_beside(DATASET, snapshot_id, DRIFT_JSON, json.dumps(_drift_report(snapshot_id)).encode())
        store.write_beside(DATASET, snapshot_id, DRIFT_HTML, b"<!doctype html><title>drift</title><p>drift report</p>")

    registry = ModelRegistry.from_config(default_config(home))
    registry.ensure_model(MODEL)
    versions = {}
    for n, (f1, gate, reasons, snapshots) in enumerate(
        [
            (0.71, "pass", "first model", SNAPSHOTS[:1]),
            (0.78, "pass", "macro_f1 +0.07 over v1", SNAPSHOTS),
            (0.74, "fail", "macro_f1 -0.04 under the champion <b>v2</b>", SNAPSHOTS),
        ],
        start=1,
    ):
        tags = {
            f"{TAG_EVAL_PREFIX}macro_f1": str(f1),
            f"{TAG_EVAL_PREFIX}accuracy": f"{f1 + 0.05:.2f}",
            TAG_GATE: gate,
            TAG_GATE_REASONS: reasons,
            TAG_DAG_ID: "llmops_retrain",
            TAG_DAG_RUN: f"manual__2026-11-2{n}",
            TAG_SNAPSHOTS: ",".join(f"{DATASET}/{s}" for s in snapshots),
        }
        source = home / "mlflow" / "fake" / str(n)
        source.mkdir(parents=True, exist_ok=True)
        mv = registry.client.create_model_version(MODEL, source=source.as_uri(), tags=tags)
        versions[n] = str(mv.version)
    registry.client.set_registered_model_alias(MODEL, PREVIOUS, versions[1])
    registry.client.set_registered_model_alias(MODEL, CHAMPION, versions[2])
    registry.client.set_registered_model_alias(MODEL, CANDIDATE, versions[3])

    trail = AuditTrail(default_audit_path(home))
    trail.append("promotion", {"model": MODEL, "version": versions[1]})
    trail.append("promotion", {"model": MODEL, "version": versions[2]})
    return {"versions": versions, "store": store}
