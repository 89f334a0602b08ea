"""What the LLMOps view shows, read from the registry, the dataset store and the audit trail (no Airflow, no HTML).

- Models: the registered models the provider manages (model tag `llmops.managed`) plus `[llmops] model_name`;
  per model the versions behind the aliases champion, canary, candidate, previous-champion and challenger, each
  with its evaluation metrics (version tags `llmops.eval.<metric>`), gate decision and reasons, the DAG and run
  that made it and the snapshots it was trained on. All tag names come from `core/model/contract.py`.
- Datasets: the last `limit` committed snapshots of a dataset (oldest first by manifest `created_at`), each with
  its validation status (`validation.json`) and drift verdict (`drift.json`), and per feature the drift statistic
  of every scored snapshot (`rules.statistic` of its report, e.g. PSI) with its drift decision: the history the
  view plots.
- Audit: the verdict of `core/governance/audit.verify` on the trail.
Every read is bounded (models, snapshots, features) and a failing source becomes an `error` string on its part of
the page instead of failing the whole page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_llmops.core.data.store import VALIDATION_FILE, DatasetStore
from airflow_provider_llmops.core.drift.job import DRIFT_HTML, DRIFT_JSON
from airflow_provider_llmops.core.governance.audit import verify
from airflow_provider_llmops.core.model.contract import (
    CANARY,
    CANDIDATE,
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    TAG_CANARY_SHARE,
    TAG_DAG_ID,
    TAG_DAG_RUN,
    TAG_EVAL_PREFIX,
    TAG_GATE,
    TAG_GATE_REASONS,
    TAG_MANAGED,
    TAG_PROMOTED_AT,
    TAG_SNAPSHOTS,
)

SHOWN_ALIASES = (CHAMPION, CANARY, CANDIDATE, PREVIOUS, CHALLENGER)
REPORT_FILES = (VALIDATION_FILE, DRIFT_JSON, DRIFT_HTML)  # the files the view links to (and serves)
MAX_MODELS = 50
MAX_FEATURES = 24


@dataclass(frozen=True)
class VersionCard:
    alias: str
    version: str
    metrics: dict[str, str]
    gate: str | None
    gate_reasons: str | None
    dag_id: str | None
    dag_run_id: str | None
    snapshots: tuple[str, ...]
    promoted_at: str | None
    url: str | None


@dataclass
class ModelState:
    name: str
    versions: list[VersionCard] = field(default_factory=list)
    canary_share: str | None = None
    error: str | None = None

    @property
    def dag_ids(self) -> set[str]:
        """The DAGs that made the shown versions (version tag `llmops.dag_id`)."""
        return {v.dag_id for v in self.versions if v.dag_id}

    @property
    def datasets(self) -> list[str]:
        seen: list[str] = []
        for card in self.versions:
            for ref in card.snapshots:
                dataset = ref.split("/", 1)[0]
                if dataset and dataset not in seen:
                    seen.append(dataset)
        return seen


@dataclass(frozen=True)
class SnapshotRow:
    dataset: str
    snapshot_id: str
    created_at: str
    accepted: int | None
    quarantined: int | None
    validation: str | None  # status of validation.json; None: not validated
    drift: str | None  # verdict of drift.json; None: not scored
    drifting_features: tuple[str, ...]
    reports: tuple[str, ...]  # which of REPORT_FILES exist beside it


@dataclass(frozen=True)
class DriftPoint:
    snapshot_id: str
    created_at: str
    value: float
    drift: bool


@dataclass
class DatasetState:
    name: str
    snapshots: list[SnapshotRow] = field(default_factory=list)  # oldest first
    series: dict[str, list[DriftPoint]] = field(default_factory=dict)  # feature -> points, oldest first
    statistic: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class AuditState:
    path: str
    exists: bool
    ok: bool
    status: str
    records: int
    reason: str
    last_seq: int | None


def managed_models(registry: Any, default_name: str | None) -> list[str]:
    """Names of the registered models the provider manages (tag `llmops.managed`), the default model first."""
    names: list[str] = []
    found = registry.client.search_registered_models(
        filter_string=f"tags.`{TAG_MANAGED}` = 'true'", max_results=MAX_MODELS
    )
    for model in found:
        if model.name not in names:
            names.append(model.name)
    if default_name:
        names = [default_name, *(n for n in names if n != default_name)]
    return names[:MAX_MODELS]


def _card(registry: Any, name: str, alias: str, version: Any) -> VersionCard:
    tags = dict(version.tags or {})
    metrics = {k[len(TAG_EVAL_PREFIX) :]: v for k, v in sorted(tags.items()) if k.startswith(TAG_EVAL_PREFIX)}
    snapshots = tuple(s for s in tags.get(TAG_SNAPSHOTS, "").split(",") if s)
    return VersionCard(
        alias=alias,
        version=str(version.version),
        metrics=metrics,
        gate=tags.get(TAG_GATE),
        gate_reasons=tags.get(TAG_GATE_REASONS),
        dag_id=tags.get(TAG_DAG_ID),
        dag_run_id=tags.get(TAG_DAG_RUN),
        snapshots=snapshots,
        promoted_at=tags.get(TAG_PROMOTED_AT),
        url=registry.version_url(name, str(version.version)),
    )


def model_state(registry: Any, name: str) -> ModelState:
    """The aliased versions of one registered model (an absent model has none and no error)."""
    from mlflow.exceptions import MlflowException

    state = ModelState(name)
    try:
        model = registry.client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            state.error = f"cannot read model {name!r} from the registry: {type(exc).__name__}"
        return state
    state.canary_share = (model.tags or {}).get(TAG_CANARY_SHARE)
    aliases = {alias: str(version) for alias, version in (model.aliases or {}).items()}
    for alias in SHOWN_ALIASES:
        if alias in aliases:
            state.versions.append(_card(registry, name, alias, registry.client.get_model_version(name, aliases[alias])))
    return state


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json_beside(store: DatasetStore, dataset: str, snapshot_id: str, name: str) -> dict[str, Any] | None:
    raw = store.read_beside(dataset, snapshot_id, name)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def dataset_state(store: DatasetStore, dataset: str, limit: int = 30) -> DatasetState:
    """The last `limit` snapshots of `dataset` and the per-feature drift history across them."""
    state = DatasetState(dataset)
    dated = []
    for snapshot_id in store.list_snapshots(dataset):
        manifest = store.read_manifest(dataset, snapshot_id)
        dated.append((str(manifest.get("created_at", "")), snapshot_id, manifest))
    for created_at, snapshot_id, manifest in sorted(dated)[-limit:]:
        counts = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
        validation = _json_beside(store, dataset, snapshot_id, VALIDATION_FILE)
        drift = _json_beside(store, dataset, snapshot_id, DRIFT_JSON)
        reports = tuple(n for n in REPORT_FILES if store.read_beside(dataset, snapshot_id, n) is not None)
        state.snapshots.append(
            SnapshotRow(
                dataset=dataset,
                snapshot_id=snapshot_id,
                created_at=created_at,
                accepted=_int(counts.get("accepted")),
                quarantined=_int(counts.get("quarantined")),
                validation=str(validation.get("status")) if validation else None,
                drift=str(drift.get("verdict")) if drift else None,
                drifting_features=tuple(str(f) for f in (drift or {}).get("drifting_features") or ()),
                reports=reports,
            )
        )
        if not drift:
            continue
        statistic = str((drift.get("rules") or {}).get("statistic") or "psi")
        state.statistic = state.statistic or statistic
        features = drift.get("features") if isinstance(drift.get("features"), dict) else {}
        for feature, body in sorted(features.items()):
            value = ((body or {}).get("scores") or {}).get(statistic)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if feature not in state.series and len(state.series) >= MAX_FEATURES:
                continue
            decided = bool(((body or {}).get("verdict") or {}).get("drift"))
            point = DriftPoint(snapshot_id, created_at, float(value), decided)
            state.series.setdefault(feature, []).append(point)
    return state


def audit_state(path: Path, keys: list[bytes] | None = None) -> AuditState:
    """`verify` of the audit trail at `path` (a missing file: nothing recorded yet, which is not an error)."""
    if not path.is_file():
        return AuditState(str(path), False, True, "empty", 0, "no audit record yet", None)
    result = verify(path, keys=keys)
    return AuditState(str(path), True, result.ok, result.status, result.records, result.reason, result.last_seq)
