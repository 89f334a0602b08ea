"""The FastAPI app of the LLMOps view, mounted by the plugin in Airflow's API server under `/llmops`.

A plugin's app does not inherit the API server's authentication, so every route declares Airflow's own
auth-manager dependency (`GetUserDep`: a JWT from the `Authorization: Bearer` header or the UI's `_token` cookie;
none or a bad one: 401/403) and every part of the page goes through the auth manager's DAG access check:
- a model is shown when the user may read (GET) every DAG that made its shown versions (version tag
  `llmops.dag_id`), or `llmops_retrain` when none is tagged;
- its retrain / rollback buttons are shown when the user may trigger (POST, DAG runs) that DAG;
- datasets (snapshots, validation and drift verdicts, drift history, report files) when the user may read
  `llmops_ingest_validate` or `llmops_drift`; the audit trail's status when at least one model is shown.

Routes: `GET /` (the page), `GET /api/state` (the same content as JSON), `GET /reports/<dataset>/<snapshot>/<file>`
(validation.json, drift.json, drift.html beside a snapshot, served under a no-script Content-Security-Policy).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from airflow_provider_llmops.plugins import render
from airflow_provider_llmops.plugins.state import (
    REPORT_FILES,
    AuditState,
    DatasetState,
    ModelState,
    audit_state,
    dataset_state,
    managed_models,
    model_state,
)

URL_PREFIX = "/llmops"
RETRAIN_DAG = "llmops_retrain"
ROLLBACK_DAG = "llmops_rollback"
DATASET_DAGS = ("llmops_ingest_validate", "llmops_drift")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _team(dag_id: str) -> str | None:
    from airflow.configuration import conf

    if not conf.getboolean("core", "multi_team", fallback=False):
        return None
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id)


def may(user: Any, dag_id: str, method: str = "GET", run: bool = False) -> bool:
    """The auth manager's DAG access check (`run`: on the DAG's runs, e.g. POST = trigger)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return bool(
        get_auth_manager().is_authorized_dag(
            method=method,  # type: ignore[arg-type]
            access_entity=DagAccessEntity.RUN if run else None,
            details=DagDetails(id=dag_id, team_name=_team(dag_id)),
            user=user,
        )
    )


def _registry(settings: Any) -> Any | None:
    """The operators' registry; None when the embedded MLflow store does not exist yet (nothing to show)."""
    if not settings.mlflow_conn_id and not settings.mlflow_tracking_uri:
        if not (settings.home / "mlflow" / "mlflow.db").is_file():
            return None
    from airflow_provider_llmops.operators._common import open_registry

    return open_registry()


def _audit_keys(settings: Any) -> list[bytes] | None:
    if not settings.audit_conn_id:
        return None
    from airflow_provider_llmops.operators._common import audit_key

    try:
        return [audit_key(settings.audit_conn_id)]
    except Exception:  # without the key the chain is still checked; keyed records read as "unverifiable"
        return None


def _may_see_datasets(user: Any) -> bool:
    return any(may(user, dag_id) for dag_id in DATASET_DAGS)


def collect(user: Any) -> dict[str, Any]:
    """Everything the page shows that `user` may see."""
    from airflow_provider_llmops.core.governance.audit import default_audit_path
    from airflow_provider_llmops.operators._common import open_store
    from airflow_provider_llmops.settings import load_settings

    settings = load_settings()
    models: list[ModelState] = []
    triggers: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    registry = _registry(settings)
    if registry is None:
        notes.append("no MLflow registry yet: run llmops_retrain to train the first model")
    else:
        for name in managed_models(registry, settings.model_name):
            state = model_state(registry, name)
            if not all(may(user, dag_id) for dag_id in (state.dag_ids or {RETRAIN_DAG})):
                continue
            models.append(state)
            retrain = next((v.dag_id for v in state.versions if v.dag_id), None) or RETRAIN_DAG
            offered = {"Retrain": retrain, "Roll back": ROLLBACK_DAG}
            triggers[name] = {label: dag for label, dag in offered.items() if may(user, dag, "POST", run=True)}
    datasets: list[DatasetState] = []
    if _may_see_datasets(user):
        names = [settings.dataset, *(d for m in models for d in m.datasets)]
        store = open_store(settings.store_uri, settings.store_conn_id)
        for name in dict.fromkeys(names):
            try:
                datasets.append(dataset_state(store, name))
            except Exception as exc:  # a bad name or an unreachable store: say so on that part of the page
                datasets.append(DatasetState(name, error=f"cannot read dataset {name!r}: {exc}"))
    audit: AuditState | None = None
    if models:
        audit = audit_state(default_audit_path(settings.home), _audit_keys(settings))
    return {"models": models, "triggers": triggers, "datasets": datasets, "audit": audit, "notes": notes}


def _ui_base(request: Request) -> str:
    root = request.scope.get("root_path", "") or ""
    return root[: -len(URL_PREFIX)] if root.endswith(URL_PREFIX) else root


def create_app() -> FastAPI:
    app = FastAPI(title="LLMOps view", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def view(request: Request, user: GetUserDep) -> HTMLResponse:
        data = collect(user)
        base = _ui_base(request)
        report_base = f"{base}{URL_PREFIX}/reports"
        sections = [render.model_section(m, base, data["triggers"].get(m.name, {})) for m in data["models"]]
        sections += [render.dataset_section(d, report_base) for d in data["datasets"]]
        if data["audit"] is not None:
            sections.append(render.audit_section(data["audit"]))
        if not sections:
            data["notes"].append("nothing to show: you may not read any of the provider's DAGs")
        html = render.page("LLMOps", sections, " ".join(data["notes"]))
        return HTMLResponse(html, headers=SECURITY_HEADERS)

    @app.get("/api/state")
    def api_state(user: GetUserDep) -> Response:
        data = collect(user)
        body = {
            "models": [{**dataclasses.asdict(m), "triggers": data["triggers"].get(m.name, {})} for m in data["models"]],
            "datasets": [dataclasses.asdict(d) for d in data["datasets"]],
            "audit": dataclasses.asdict(data["audit"]) if data["audit"] else None,
            "notes": data["notes"],
        }
        return Response(json.dumps(body, default=str), media_type="application/json", headers=SECURITY_HEADERS)

    @app.get("/reports/{dataset}/{snapshot_id}/{name}")
    def report(dataset: str, snapshot_id: str, name: str, user: GetUserDep) -> Response:
        from airflow_provider_llmops.errors import LLMOpsError
        from airflow_provider_llmops.operators._common import open_store
        from airflow_provider_llmops.settings import load_settings

        if not _may_see_datasets(user):
            raise HTTPException(403, "Forbidden")
        if name not in REPORT_FILES:
            raise HTTPException(404, f"no such report: {name}")
        settings = load_settings()
        try:
            raw = open_store(settings.store_uri, settings.store_conn_id).read_beside(dataset, snapshot_id, name)
        except LLMOpsError:  # an invalid dataset name or snapshot id, or a snapshot that does not exist
            raw = None
        if raw is None:
            raise HTTPException(404, "no such report")
        media = "text/html; charset=utf-8" if name.endswith(".html") else "application/json"
        return Response(raw, media_type=media, headers=SECURITY_HEADERS)

    return app
