"""The nightly sanity checks of the whole loop, as plain functions (no Airflow): each returns a `CheckResult`
(name, ok, message, details) whose message, on failure, says what is wrong and where to look.

* `check_champion`: the `champion` alias points at a version whose model files (weights, tokenizer, `MLmodel`),
  drift profile and stored evaluation (`llmops.evaluation` -> `evaluation.json`, whose SHA-256 must be
  `llmops.evaluation_sha256`) are present and loadable, and whose stored metrics still reproduce: the champion is
  scored again, in-process, on the golden set (compared with the evaluation's `golden.<metric>`, else its overall
  `<metric>`) or, with no golden set, on the evaluation's frozen set (`eval_set.parquet`, at most `sample_rows`
  rows, taken by a hash of the row id when it has more; compared with the overall `<metric>`). It fails when
  |now - stored| > tolerance[metric] for any metric of `tolerances`. A frozen set larger than `sample_rows` makes the
  comparison a sample's, so the tolerance then also absorbs the sampling error.
* `check_endpoint`: the live service (POST `/v1/predict`) answers the golden texts with the registry champion's
  version and, text by text, the labels the champion gives in-process. Answers from a canary are asked again (at
  most `canary_retries` times): a canary in progress is not a failure. No `serve_url`: ok, skipped, saying so.
* `check_freshness`: the newest snapshot that passed validation (validation's `validated_at`, else the manifest's
  `created_at`) is younger than `max_age`; the newest drift report (`drift.json` beside a snapshot) is for that
  snapshot, unless the snapshot is younger than `drift_grace` (its drift run may still be on its way), in which case
  the one before it is enough.
* `check_audit`: the trail verifies (chain, HMACs with `keys`) and the model's registry anchor matches it; the
  last champion change (last `model.promoted` / `model.deployed` / `model.rolled_back` record of the model) names
  the current champion, the version carries its tags (`llmops.promoted_at`, and `llmops.promoted_by` = the
  decision or deployment id; for a rollback, `llmops.rolled_back_by` = the rollback id on the version rolled back
  from), and the lineage log holds a COMPLETE event writing `models/<model>/versions/<champion>` no earlier than
  `LINEAGE_SLACK` before the record. A lineage transport that is not a file cannot be read back: then that part is
  reported as not checkable (details), not as a failure.
* `check_lineage`: the OpenLineage file log received at least `min_events` events within `within` (read from its
  last `MAX_LINEAGE_BYTES`).

`write_report` writes `sanity.json` and `sanity.html` for the results.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.core.drift.job import DRIFT_JSON
from airflow_provider_llmops.core.governance.audit import check_anchors, records, verify
from airflow_provider_llmops.core.model.contract import (
    CHAMPION,
    CONFIG_FILE,
    LABEL_MAP_FILE,
    MLMODEL_FILE,
    TAG_AUDIT_HEAD,
    TAG_EVALUATION,
    TAG_EVALUATION_SHA256,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
    TAG_ROLLED_BACK_BY,
    TAG_TASK,
    TOKENIZER_FILE,
    fetch_model,
    fetch_profile,
)
from airflow_provider_llmops.core.model.evaluate_job import EvaluationIntegrityError, load_evaluation, read_golden
from airflow_provider_llmops.core.model.registry import ModelRegistry
from airflow_provider_llmops.errors import LLMOpsError

CHECKS = ("champion", "endpoint", "freshness", "audit", "lineage")
DEFAULT_TOLERANCES: dict[str, float] = {"macro_f1": 0.02, "accuracy": 0.02}
DEFAULT_MAX_AGE = timedelta(hours=26)
DEFAULT_DRIFT_GRACE = timedelta(hours=2)
CHAMPION_EVENTS = {"model.promoted": "version", "model.deployed": "version", "model.rolled_back": "to"}
LINEAGE_SLACK = timedelta(minutes=5)  # a task's COMPLETE event follows its audit record; clocks may differ a little
MAX_LINEAGE_BYTES = 16 << 20
FROZEN_SET = "eval_set.parquet"
WEIGHT_FILES = ("model.safetensors",)


class SanityCheckFailed(LLMOpsError):
    """A nightly sanity check failed; the message says what is wrong and where to look."""


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome. `skipped`: nothing to check (ok, and the message says why)."""

    name: str
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        return cls(
            name=str(data["name"]),
            ok=bool(data["ok"]),
            message=str(data.get("message", "")),
            details=dict(data.get("details") or {}),
            skipped=bool(data.get("skipped", False)),
        )


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---- 1. champion ---------------------------------------------------------------------------------------------


def _evaluation_key(report_uri: str) -> str:
    """The evaluation key of a stored report's URI (`.../evaluations/<model>/<key>/evaluation.json`)."""
    parts = report_uri.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 else ""


def _read_frozen_set(store: DatasetStore, model: str, key: str) -> list[dict[str, Any]]:
    """The rows of an evaluation's frozen set (`eval_set.parquet` beside its `evaluation.json`)."""
    import pyarrow.parquet as pq

    uri = store.evaluation_uri(model, key, FROZEN_SET)
    if store.is_local:
        raw = Path(uri.removeprefix("file://")).read_bytes()
    else:  # the store has no public reader for the files beside evaluation.json yet
        raw = store._backend.get(f"evaluations/{model}/{key}/{FROZEN_SET}")  # noqa: SLF001
    return pq.read_table(io.BytesIO(raw)).to_pylist()


def _sample(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """At most `limit` rows, chosen by a hash of the row (stable across runs), in their original order."""
    if len(rows) <= limit:
        return rows

    def digest(row: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()

    keep = {id(r) for r in sorted(rows, key=digest)[:limit]}
    return [r for r in rows if id(r) in keep]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_champion(
    *,
    registry: ModelRegistry,
    store: DatasetStore,
    model_name: str,
    cache_dir: Path,
    golden_path: str | Path | None = None,
    tolerances: Mapping[str, float] | None = None,
    sample_rows: int = 2000,
    require_mlmodel: bool = True,
    text_column: str = "text",
    label_column: str = "label",
) -> CheckResult:
    """Check 1 (see the module docstring). Scores with `modeling.load_classifier`."""
    from airflow_provider_llmops.core.model.evaluate_job import _score_classifier

    name = "champion"
    tolerances = dict(DEFAULT_TOLERANCES if tolerances is None else tolerances)
    where = f"registry {registry.tracking_uri}"
    version_id = registry.alias(model_name, CHAMPION)
    if not version_id:
        return CheckResult(
            name,
            False,
            f"model {model_name!r} has no '{CHAMPION}' alias in {where}: nothing serves. Promote a version "
            "(llmops_retrain) or roll back to a former champion (llmops_rollback)",
        )
    version = registry.get_version(model_name, version_id)
    url = registry.version_url(model_name, version_id) or where
    label = f"champion {model_name} v{version_id}"
    details: dict[str, Any] = {"model": model_name, "version": version_id, "version_url": url}

    try:
        model_dir = fetch_model(registry, version, cache_dir)
    except Exception as exc:
        return CheckResult(
            name,
            False,
            f"{label}: its model files cannot be downloaded from {version.source} ({type(exc).__name__}: {exc}); "
            f"look at the run's `model/` artifacts ({url}), or roll back",
            details,
        )
    wanted = [CONFIG_FILE, TOKENIZER_FILE, *WEIGHT_FILES, *([MLMODEL_FILE] if require_mlmodel else [])]
    missing = [f for f in wanted if not (model_dir / f).is_file()]
    if missing:
        return CheckResult(
            name,
            False,
            f"{label}: its model artifacts lack {', '.join(missing)} (source {version.source}; look at the run's "
            f"`model/` artifacts in MLflow: {url}). The version cannot be served or reloaded: roll back to the "
            "previous champion (llmops_rollback) and retrain",
            {**details, "missing": missing},
        )

    try:
        profile_dir = fetch_profile(registry, version, cache_dir)
        if profile_dir is None:
            raise FileNotFoundError("the version has no training run, hence no profile")
        from airflow_provider_llmops.core.drift.profile import ReferenceProfile

        profile = ReferenceProfile.load(profile_dir)
        details["profile_id"] = profile.profile_id
    except Exception as exc:
        return CheckResult(
            name,
            False,
            f"{label}: its drift profile (`profile/` of run {version.run_id}) is missing or unreadable "
            f"({type(exc).__name__}: {exc}); the drift DAG cannot score against it. Look at {url}",
            details,
        )

    report_uri = version.tags.get(TAG_EVALUATION, "")
    report_sha = version.tags.get(TAG_EVALUATION_SHA256, "")
    if not report_uri or not report_sha:
        return CheckResult(
            name,
            False,
            f"{label}: it has no stored evaluation (tags {TAG_EVALUATION} / {TAG_EVALUATION_SHA256} missing on the "
            f"version, {url}): it was made champion without the evaluate step. Evaluate it (llmops_retrain's "
            "evaluate task) or roll back",
            details,
        )
    reference = {
        "model_name": model_name,
        "key": _evaluation_key(report_uri),
        "report_uri": report_uri,
        "report_sha256": report_sha,
    }
    try:
        summary, _digest = load_evaluation(store, reference)
    except (EvaluationIntegrityError, LLMOpsError, ValueError) as exc:
        return CheckResult(name, False, f"{label}: its stored evaluation fails its check: {exc}", details)
    details["evaluation"] = report_uri
    if str(summary.get("challenger_version")) != str(version_id):
        return CheckResult(
            name,
            False,
            f"{label}: the evaluation its tag {TAG_EVALUATION} names ({report_uri}) is of v"
            f"{summary.get('challenger_version')}, not of v{version_id}: the tag was copied or rewritten",
            details,
        )
    task = version.tags.get(TAG_TASK, "sequence-classification")
    if task != "sequence-classification":
        return CheckResult(
            name,
            True,
            f"{label}: artifacts, profile and evaluation present; its stored evaluation is not re-scored ({task}: "
            "only classifiers are reproduced)",
            details,
        )

    stored_report = json.loads(store.read_evaluation_bytes(model_name, reference["key"]) or b"{}")
    stored = summary.get("challenger") or {}
    if golden_path:
        source = f"the golden set {golden_path}"
        rows = [{**r, "_part": "golden"} for r in read_golden(golden_path)]
        prefix = "golden." if any(k.startswith("golden.") for k in stored) else ""
        if not prefix:
            details["note"] = "the stored evaluation has no golden part: compared with its overall metrics"
    else:
        source = f"the frozen evaluation set of {report_uri}"
        try:
            rows = _read_frozen_set(store, model_name, reference["key"])
        except Exception as exc:
            return CheckResult(
                name,
                False,
                f"{label}: the frozen evaluation set beside {report_uri} cannot be read ({type(exc).__name__}: "
                f"{exc}); configure a golden set ([llmops] golden_sets) or re-run evaluate",
                details,
            )
        details["frozen_rows"] = len(rows)
        rows = _sample(rows, sample_rows)
        prefix = ""
    rows = [r for r in rows if str(r.get(text_column) or "").strip() and r.get(label_column) is not None]
    if not rows:
        return CheckResult(name, False, f"{label}: {source} has no labelled rows to score", details)
    details["rows"] = len(rows)
    labels_file = json.loads((model_dir / LABEL_MAP_FILE).read_text()).get("labels", [])
    labels = sorted(
        {str(x) for x in stored_report.get("labels", [])}
        | {str(r[label_column]) for r in rows}
        | {str(x) for x in labels_file}
    )
    try:
        scored = _score_classifier(model_dir, rows, labels, text_column, label_column, 1, 30)
    except Exception as exc:
        return CheckResult(
            name,
            False,
            f"{label}: the model does not load or cannot score ({type(exc).__name__}: {exc}); the service cannot "
            f"load it either. Look at {url} and roll back (llmops_rollback)",
            details,
        )
    now_metrics = scored["metrics"]
    compared: dict[str, dict[str, Any]] = {}
    drifted: list[str] = []
    for metric, tolerance in sorted(tolerances.items()):
        before = stored.get(f"{prefix}{metric}")
        after = now_metrics.get(f"golden.{metric}" if golden_path else metric)
        if not (_finite(before) and _finite(after)):
            compared[metric] = {"stored": before, "now": after, "tolerance": tolerance, "compared": False}
            continue
        diff = abs(float(after) - float(before))
        compared[metric] = {"stored": before, "now": after, "tolerance": tolerance, "diff": diff, "compared": True}
        if diff > tolerance:
            drifted.append(f"{metric} {float(after):.4f} now vs {float(before):.4f} stored (tolerance {tolerance:g})")
    details["metrics"] = compared
    if not any(c["compared"] for c in compared.values()):
        return CheckResult(
            name,
            False,
            f"{label}: none of the metrics {sorted(tolerances)} is in both its stored evaluation ({report_uri}) and "
            f"the new scores on {source}: set the tolerances to metrics the evaluation reports",
            details,
        )
    if drifted:
        return CheckResult(
            name,
            False,
            f"{label} no longer reproduces its stored evaluation on {source}: {'; '.join(drifted)}. The model files, "
            f"the scoring code or the data changed since {report_uri}; compare with {url}, re-evaluate, or roll back",
            details,
        )
    shown = ", ".join(f"{m} {c['now']:.4f}" for m, c in compared.items() if c["compared"])
    return CheckResult(
        name, True, f"{label}: artifacts, profile and evaluation ok; reproduces on {source} ({shown})", details
    )


def champion_labels(
    registry: ModelRegistry, model_name: str, cache_dir: Path, texts: Sequence[str]
) -> tuple[str, list[str]]:
    """(champion version, its labels for `texts` scored in-process), for `check_endpoint`."""
    from airflow_provider_llmops.core.model import modeling

    version_id = registry.alias(model_name, CHAMPION)
    if not version_id:
        raise SanityCheckFailed(f"model {model_name!r} has no '{CHAMPION}' alias in {registry.tracking_uri}")
    model_dir = fetch_model(registry, registry.get_version(model_name, version_id), cache_dir)
    return version_id, [str(x) for x in modeling.load_classifier(model_dir).predict(list(texts))]


def frozen_texts(
    registry: ModelRegistry, store: DatasetStore, model_name: str, limit: int, text_column: str = "text"
) -> list[str]:
    """Texts of the champion's frozen evaluation set (at most `limit`, chosen as `check_champion` samples), for
    `check_endpoint` when no golden set is configured; [] when the champion has no stored evaluation."""
    version_id = registry.alias(model_name, CHAMPION)
    uri = registry.get_version(model_name, version_id).tags.get(TAG_EVALUATION, "") if version_id else ""
    if not uri:
        return []
    rows = _sample(_read_frozen_set(store, model_name, _evaluation_key(uri)), limit)
    return [str(r[text_column]) for r in rows if str(r.get(text_column) or "").strip()]


# ---- 2. endpoint ---------------------------------------------------------------------------------------------


def check_endpoint(
    *,
    serve_url: str | None,
    champion_version: str | None,
    texts: Sequence[str],
    expected: Sequence[str],
    token: str | None,
    timeout_s: float = 10.0,
    batch_size: int = 32,
    canary_retries: int = 5,
    client: Any = None,
) -> CheckResult:
    """Check 2. `expected`: the champion's in-process label per text. `client`: an httpx.Client (tests)."""
    name = "endpoint"
    if not serve_url:
        return CheckResult(
            name, True, "no inference service configured ([llmops] serve_url is empty): nothing to check", {}, True
        )
    import httpx

    url = serve_url.rstrip("/") + "/v1/predict"
    details: dict[str, Any] = {"url": url, "expected_version": champion_version, "texts": len(texts)}
    if not texts:
        return CheckResult(name, False, f"no golden texts to send to {url}: configure [llmops] golden_sets", details)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    own = client is None
    http = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
    mismatches: list[dict[str, Any]] = []
    versions: set[str] = set()
    try:
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            body: dict[str, Any] = {}
            for _attempt in range(canary_retries + 1):
                try:
                    response = http.post(url, json={"texts": chunk}, headers=headers, timeout=timeout_s)
                except httpx.HTTPError as exc:
                    return CheckResult(
                        name,
                        False,
                        f"the inference service at {url} cannot be reached ({type(exc).__name__}: {exc}); is "
                        "`llmops serve` running? Look at its log and /readyz",
                        details,
                    )
                if response.status_code != 200:
                    hint = (
                        " (the sanity token was refused: check the serve_jwt_* settings)"
                        if response.status_code
                        in (
                            401,
                            403,
                        )
                        else ""
                    )
                    return CheckResult(
                        name,
                        False,
                        f"the inference service at {url} answered HTTP {response.status_code}{hint}: "
                        f"{response.text[:200]}",
                        details,
                    )
                body = response.json()
                if body.get("role") != "canary":
                    break
            versions.add(str(body.get("model_version")))
            if str(body.get("model_version")) != str(champion_version):
                return CheckResult(
                    name,
                    False,
                    f"the inference service at {url} answers with version {body.get('model_version')} (role "
                    f"{body.get('role')}), the registry's champion is v{champion_version}: the service has not "
                    "converged on the registry. Look at its log (registry polling) or POST /v1/admin/reload",
                    {**details, "served_version": body.get("model_version")},
                )
            for i, prediction in enumerate(body.get("predictions") or []):
                want = expected[start + i]
                got = prediction.get("label")
                if got != want:
                    mismatches.append({"text": chunk[i][:80], "service": got, "in_process": want})
    finally:
        if own:
            http.close()
    details["versions"] = sorted(versions)
    if mismatches:
        details["mismatches"] = mismatches[:20]
        return CheckResult(
            name,
            False,
            f"the inference service at {url} gives {len(mismatches)} of {len(texts)} golden texts another label than "
            f"champion v{champion_version} in-process (e.g. {mismatches[0]['service']!r} vs "
            f"{mismatches[0]['in_process']!r}): its backend (ONNX?), guardrails or model files differ. Look at the "
            "service's log and its /metrics",
            details,
        )
    return CheckResult(
        name, True, f"{url} answers {len(texts)} golden texts with v{champion_version}, as in-process", details
    )


# ---- 3. freshness --------------------------------------------------------------------------------------------


def _validated(store: DatasetStore, dataset: str) -> list[tuple[datetime, str]]:
    """(validated time, snapshot id) of the snapshots that passed validation, oldest first."""
    found = []
    for snapshot_id in store.list_snapshots(dataset):
        validation = store.read_validation(dataset, snapshot_id) or {}
        if validation.get("status") != "passed":
            continue
        when = _parse_time(validation.get("validated_at")) or _parse_time(
            store.read_manifest(dataset, snapshot_id).get("created_at")
        )
        if when is not None:
            found.append((when, snapshot_id))
    return sorted(found)


def check_freshness(
    *,
    store: DatasetStore,
    datasets: Iterable[str],
    max_age: timedelta = DEFAULT_MAX_AGE,
    drift_grace: timedelta = DEFAULT_DRIFT_GRACE,
    now: datetime | None = None,
) -> CheckResult:
    """Check 3 (see the module docstring), for every dataset of `datasets`."""
    name = "freshness"
    now = _now(now)
    problems: list[str] = []
    details: dict[str, Any] = {}
    for dataset in datasets:
        validated = _validated(store, dataset)
        where = store.dataset_uri(dataset)
        if not validated:
            problems.append(
                f"dataset {dataset!r} has no snapshot that passed validation in {where}: look at the "
                "llmops_ingest_validate runs (quarantine and validation reports beside each snapshot)"
            )
            continue
        when, newest = validated[-1]
        age = now - when
        info: dict[str, Any] = {"newest": newest, "validated_at": when.isoformat(), "age_s": age.total_seconds()}
        if age > max_age:
            problems.append(
                f"dataset {dataset!r}: the newest validated snapshot {newest} is {age.total_seconds() / 3600:.1f} h "
                f"old (bound {max_age.total_seconds() / 3600:g} h): no batch arrived or passed since. Look at "
                f"llmops_ingest_validate's last runs and the source; snapshots in {where}"
            )
        drifted = [sid for _, sid in validated if store.read_beside(dataset, sid, DRIFT_JSON) is not None]
        info["last_drift"] = drifted[-1] if drifted else None
        accepted = {newest} | ({validated[-2][1]} if len(validated) > 1 and age < drift_grace else set())
        if age < drift_grace and len(validated) == 1:
            accepted = set()  # the only batch is young: its drift run may still come
        if accepted and not (drifted and drifted[-1] in accepted):
            last = drifted[-1] if drifted else None
            older = f"the last drift report is of snapshot {last}" if last else "no drift report exists"
            problems.append(
                f"dataset {dataset!r}: {older}, older than the last validated batch {newest} (validated "
                f"{when.isoformat()}): llmops_drift did not run on it or failed. Look at llmops_drift's runs; "
                f"drift.json is written beside the snapshot in {where}"
            )
        details[dataset] = info
    if problems:
        return CheckResult(name, False, "; ".join(problems), details)
    shown = ", ".join(f"{d} {i['age_s'] / 3600:.1f} h" for d, i in details.items())
    return CheckResult(name, True, f"newest validated snapshots are fresh and drift-scored ({shown})", details)


# ---- lineage log ---------------------------------------------------------------------------------------------


def read_lineage(path: Path, max_bytes: int = MAX_LINEAGE_BYTES) -> list[dict[str, Any]]:
    """The events of an OpenLineage file transport log (JSON lines), from its last `max_bytes`."""
    if not path.is_file():
        return []
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - max_bytes))
        raw = f.read()
    lines = raw.split(b"\n")
    if size > max_bytes:
        lines = lines[1:]  # the first line is cut
    events = []
    for line in lines:
        if line.strip():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def check_lineage(
    *,
    lineage_file: Path | None,
    transport: str,
    within: timedelta = timedelta(days=1),
    min_events: int = 1,
    now: datetime | None = None,
) -> CheckResult:
    """Check 5. `transport`: what is configured, in words (for the messages); `lineage_file` None: not a file."""
    name = "lineage"
    now = _now(now)
    if lineage_file is None:
        return CheckResult(
            name,
            True,
            f"lineage goes to {transport}, not to a file: what it received cannot be read back here (check it there)",
            {"transport": transport},
            True,
        )
    events = read_lineage(lineage_file)
    recent = [e for e in events if (t := _parse_time(e.get("eventTime"))) is not None and now - t <= within]
    last = max((_parse_time(e.get("eventTime")) for e in events), default=None, key=lambda t: t or datetime.min)
    details = {"file": str(lineage_file), "recent": len(recent), "last_event": last.isoformat() if last else None}
    if len(recent) < min_events:
        since = f"the last one is from {last.isoformat()}" if last else "it holds none"
        return CheckResult(
            name,
            False,
            f"the OpenLineage file transport {lineage_file} received {len(recent)} event(s) in the last "
            f"{within.total_seconds() / 3600:g} h ({since}): is the OpenLineage provider disabled or its transport "
            "changed? Look at [openlineage] transport and the task logs",
            details,
        )
    return CheckResult(name, True, f"{len(recent)} lineage events in the last {within}", details)


# ---- 4. audit ------------------------------------------------------------------------------------------------


def check_audit(
    *,
    audit_path: Path,
    registry: ModelRegistry,
    model_name: str,
    keys: Sequence[bytes] | None = None,
    lineage_file: Path | None = None,
    transport: str = "file",
) -> CheckResult:
    """Check 4 (see the module docstring)."""
    name = "audit"
    if not audit_path.is_file():
        return CheckResult(
            name,
            False,
            f"no audit trail at {audit_path}: promotions are not being recorded (is [llmops] home the one the "
            "operators write to?)",
        )
    result = verify(audit_path, keys=keys)
    details: dict[str, Any] = {"path": str(audit_path), "records": result.records, "status": result.status}
    if not result.ok and result.status != "unverifiable":
        where = f" at line {result.bad_line}" if result.bad_line else ""
        return CheckResult(
            name,
            False,
            f"the audit trail {audit_path} is BROKEN{where}: {result.reason}. Run `llmops audit verify` and compare "
            "with a backup; do not append until it is understood",
            details,
        )
    if result.status == "unverifiable":
        details["note"] = result.reason
    anchor = (registry.client.get_registered_model(model_name).tags or {}).get(TAG_AUDIT_HEAD)
    if anchor:
        (anchored,) = check_anchors(audit_path, {model_name: anchor})
        if not anchored.ok:
            return CheckResult(
                name, False, f"the audit trail {audit_path} does not match the registry: {anchored.message}", details
            )
    champion = registry.alias(model_name, CHAMPION)
    if not champion:
        return CheckResult(name, True, f"audit trail intact ({result.records} records); {model_name} has no champion")
    last: dict[str, Any] | None = None
    for record in records(audit_path):
        data = record.get("data") or {}
        if record.get("event") in CHAMPION_EVENTS and data.get("model") == model_name:
            last = record
    if last is None:
        return CheckResult(
            name,
            False,
            f"{model_name} v{champion} is champion but the audit trail {audit_path} has no model.promoted, "
            "model.deployed or model.rolled_back record of the model: the alias was moved outside the provider "
            "(by hand in MLflow?). Look at the registry's alias history and roll back if it was not intended",
            details,
        )
    data = last["data"]
    event = last["event"]
    details["record"] = {"seq": last["seq"], "event": event, "ts": last["ts"]}
    target = str(data.get(CHAMPION_EVENTS[event]))
    if target != str(champion):
        return CheckResult(
            name,
            False,
            f"{model_name} v{champion} is champion, but the last champion change in the audit trail (seq "
            f"{last['seq']}, {event}) made v{target} champion: the alias was moved without an audit record. "
            "Look at the registry's aliases and the audit trail (`llmops audit show`)",
            details,
        )
    tags = registry.get_version(model_name, champion).tags
    missing = [] if tags.get(TAG_PROMOTED_AT) else [TAG_PROMOTED_AT]
    if event == "model.promoted" and tags.get(TAG_PROMOTED_BY) != data.get("decision_id"):
        missing.append(f"{TAG_PROMOTED_BY}={data.get('decision_id')}")
    if event == "model.deployed" and tags.get(TAG_PROMOTED_BY) != data.get("deploy_id"):
        missing.append(f"{TAG_PROMOTED_BY}={data.get('deploy_id')}")
    if event == "model.rolled_back" and data.get("from"):
        before = registry.get_version(model_name, str(data["from"])).tags
        if before.get(TAG_ROLLED_BACK_BY) != data.get("rollback_id"):
            missing.append(f"{TAG_ROLLED_BACK_BY}={data.get('rollback_id')} on v{data['from']}")
    if missing:
        return CheckResult(
            name,
            False,
            f"{model_name} v{champion}: the champion change (audit seq {last['seq']}, {event}) lacks its registry "
            f"tags {', '.join(missing)}: the change was interrupted; re-run the task that made it (its retry "
            "completes it) or look at the version's tags in MLflow",
            details,
        )
    if lineage_file is None:
        details["lineage"] = f"not checkable: lineage goes to {transport}, not to a file"
        return CheckResult(
            name,
            True,
            f"audit trail intact ({result.records} records); v{champion}'s {event} (seq {last['seq']}) has its "
            f"tags; its lineage event is not checkable (transport {transport})",
            details,
        )
    output = f"models/{model_name}/versions/{champion}"
    since = (_parse_time(last["ts"]) or datetime.min.replace(tzinfo=UTC)) - LINEAGE_SLACK
    found = [
        e
        for e in read_lineage(lineage_file)
        if e.get("eventType") == "COMPLETE"
        and any(o.get("name") == output for o in e.get("outputs") or [])
        and (t := _parse_time(e.get("eventTime"))) is not None
        and t >= since
    ]
    if not found:
        return CheckResult(
            name,
            False,
            f"{model_name} v{champion}'s {event} (audit seq {last['seq']}, {last['ts']}) has no lineage event: no "
            f"COMPLETE event writing {output} in {lineage_file} since then. Was the OpenLineage transport off when "
            "it ran? Look at that task's log",
            details,
        )
    details["lineage_event"] = found[-1].get("run", {}).get("runId")
    return CheckResult(
        name,
        True,
        f"audit trail intact ({result.records} records); v{champion}'s {event} (seq {last['seq']}) has its tags "
        "and its lineage event",
        details,
    )


# ---- report --------------------------------------------------------------------------------------------------


def summarise(
    results: Sequence[CheckResult], now: datetime | None = None, run: Mapping[str, Any] | None = None
) -> dict:
    failed = [r.name for r in results if not r.ok]
    return {
        "ok": not failed,
        "failed": failed,
        "finished_at": _now(now).isoformat().replace("+00:00", "Z"),
        "run": dict(run or {}),
        "checks": [r.to_dict() for r in results],
    }


def render_html(report: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(c['name'])}</td>"
        f'<td class="{"ok" if c["ok"] else "bad"}">{"skipped" if c.get("skipped") else "ok" if c["ok"] else "FAILED"}'
        f"</td><td>{html.escape(c['message'])}</td></tr>"
        for c in report["checks"]
    )
    verdict = "all checks passed" if report["ok"] else f"FAILED: {', '.join(report['failed'])}"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>LLMOps nightly sanity</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2330;max-width:1100px}"
        "td,th{padding:.3rem .6rem;border-bottom:1px solid #e3e6ec;text-align:left;vertical-align:top}"
        ".ok{color:#1b7a35}.bad{color:#b3261e;font-weight:600}</style></head><body>"
        f'<h1>LLMOps nightly sanity</h1><p class="{"ok" if report["ok"] else "bad"}">{html.escape(verdict)}</p>'
        f"<p>finished {html.escape(report['finished_at'])}</p>"
        f"<table><tr><th>check</th><th>result</th><th>message</th></tr>{rows}</table></body></html>"
    )


def write_report(report: Mapping[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write `sanity.json` and `sanity.html` into `directory` (each replaced atomically); returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file, text in (
        ("sanity.json", json.dumps(report, indent=1, default=str)),
        ("sanity.html", render_html(report)),
    ):
        target = directory / file
        staging = directory / f".{file}.tmp"
        staging.write_text(text, encoding="utf-8")
        staging.replace(target)
        written.append(target)
    return written[0], written[1]


def results_from(raw: Mapping[str, Any | None], expected: Sequence[str]) -> list[CheckResult]:
    """CheckResults from what the check tasks recorded ({check: result dict or None}); a check that recorded
    nothing failed before it could run (e.g. its worker died): reported as failed, saying so."""
    out = []
    for check in expected:
        data = raw.get(check)
        if isinstance(data, Mapping) and "ok" in data:
            out.append(CheckResult.from_dict({**data, "name": check}))
        else:
            out.append(
                CheckResult(check, False, f"the {check} task recorded no result: it did not run; look at its log")
            )
    return out


def tolerance_map(value: Any) -> dict[str, float]:
    """Tolerances per metric from a mapping (or None: the defaults); each finite and >= 0."""
    from airflow_provider_llmops.errors import ConfigurationError

    if value is None:
        return dict(DEFAULT_TOLERANCES)
    if not isinstance(value, Mapping) or not value:
        raise ConfigurationError(
            f'tolerances must be a non-empty mapping of metric to number, e.g. {{"macro_f1": 0.02}}, got {value!r}'
        )
    out = {}
    for metric, bound in value.items():
        if not _finite(bound) or bound < 0:
            raise ConfigurationError(f"tolerance of {metric!r} must be a number >= 0, got {bound!r}")
        out[str(metric)] = float(bound)
    return out
