"""The LLMOps view inside Airflow's own API server app (`airflow.api_fastapi.app.create_app`, SimpleAuthManager
with real users, not all-admins): the provider info registers the plugin and Airflow mounts it at `/llmops`;
an anonymous request to any of its routes is refused; an authenticated one gets the page, whose content is the
registry's, store's and audit trail's state (escaped); what a user sees and may trigger goes through the auth
manager's DAG access check."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import pytest

from airflow_provider_llmops.get_provider_info import get_provider_info
from tests.llmops_view import world

pytestmark = [pytest.mark.integration]
PLUGIN_CLASS = "airflow_provider_llmops.plugins.llmops_view.LLMOpsViewPlugin"
ROUTES = ("/llmops/", "/llmops/api/state", f"/llmops/reports/{world.DATASET}/{world.SNAPSHOTS[2]}/drift.json")


def test_the_provider_info_registers_the_plugin():
    assert get_provider_info()["plugins"] == [{"name": "llmops_view", "plugin-class": PLUGIN_CLASS}]


def test_the_airflow_plugins_entry_point_registers_it():
    """Airflow 3.3 loads the provider info's plugins only with `[core] lazy_discover_providers = False` (default
    True); plugins of the `airflow.plugins` entry point always load (the OpenLineage provider does both too)."""
    import importlib.metadata

    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="airflow.plugins")}
    assert points.get("llmops_view") == PLUGIN_CLASS.rsplit(".", 1)[0] + ":LLMOpsViewPlugin"


def test_airflow_loads_the_plugin():
    from airflow import plugins_manager

    loaded = {p.name: p for p in plugins_manager._get_plugins()[0]}
    assert "llmops_view" in loaded, sorted(loaded)
    plugin = loaded["llmops_view"]
    assert [(a["url_prefix"], a["name"]) for a in plugin.fastapi_apps] == [("/llmops", "LLMOps view")]
    view = plugin.external_views[0]
    assert (view["url_route"], view["destination"], view["href"]) == ("llmops", "nav", "/llmops/")


@pytest.fixture(scope="module")
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("view-home")
    world.build(home)
    return home


@pytest.fixture
def client(airflow_db: Path, state_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "ada:admin,vic:viewer")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(tmp_path / "passwords.json"))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "llmops-view-test-secret-" + "0123456789abcdef" * 4)
    monkeypatch.setenv("AIRFLOW__LLMOPS__HOME", str(state_home))
    monkeypatch.setenv("AIRFLOW__LLMOPS__STORE_URI", str(state_home / "store"))
    monkeypatch.delenv("AIRFLOW__LLMOPS__MLFLOW_UI_URL", raising=False)
    from airflow.api_fastapi.app import create_app, purge_cached_app

    purge_cached_app()
    app = create_app("core")
    assert "/llmops" in [getattr(r, "path", None) for r in app.routes]  # mounted by Airflow from the plugin
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client
    purge_cached_app()


def _token(username: str, role: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))


@pytest.mark.parametrize("route", ROUTES)
def test_anonymous_and_forged_requests_are_refused(client, route: str):
    assert client.get(route).status_code == 401
    assert client.get(route, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403)
    assert client.get(route, cookies={"_token": "forged"}).status_code in (401, 403)


def test_an_admin_sees_models_versions_drift_snapshots_audit_and_trigger_buttons(client):
    headers = {"Authorization": f"Bearer {_token('ada', 'admin')}"}
    response = client.get("/llmops/", headers=headers)
    assert response.status_code == 200, response.text
    assert "script-src" not in response.headers["content-security-policy"]  # default-src 'none': no script runs
    html = response.text
    assert "<script" not in html and escape(world.EVIL) in html  # the feature name is shown, escaped
    assert "&lt;b&gt;v2&lt;/b&gt;" in html  # gate reasons escaped too
    for alias, version in (("champion", "2"), ("previous-champion", "1"), ("candidate", "3")):
        assert f'data-alias="{alias}"><div class="alias">{alias}</div><div>version <b>{version}</b>' in html
    assert "<td>macro_f1</td><td>0.78</td>" in html and '<span class="bad">fail</span>' in html
    assert 'href="/dags/llmops_retrain"' in html and 'href="/dags/llmops_rollback"' in html
    assert html.count('class="drift-plot"') == 2 and html.count("<circle") == 6
    assert html.count('<tr class="snapshot"') == 3
    assert f"/llmops/reports/{world.DATASET}/{world.SNAPSHOTS[2]}/drift.html" in html
    assert '<div id="audit-status">chain: <span class="ok">ok</span>, 2 records' in html

    state = client.get("/llmops/api/state", headers=headers).json()
    model = state["models"][0]
    assert model["name"] == world.MODEL
    assert [(v["alias"], v["version"], v["gate"]) for v in model["versions"]] == [
        ("champion", "2", "pass"),
        ("candidate", "3", "fail"),
        ("previous-champion", "1", "pass"),
    ]
    assert model["triggers"] == {"Retrain": "llmops_retrain", "Roll back": "llmops_rollback"}
    series = state["datasets"][0]["series"]
    assert [p["value"] for p in series[world.EVIL]] == [0.02, 0.05, 0.4]
    assert [p["drift"] for p in series[world.EVIL]] == [False, False, True]
    assert state["audit"]["status"] == "ok" and state["audit"]["records"] == 2

    report = client.get(ROUTES[2], headers=headers)
    assert report.status_code == 200 and json.loads(report.text)["verdict"] == "drift"
    html_report = client.get(ROUTES[2].replace("drift.json", "drift.html"), headers=headers)
    assert (
        html_report.headers["content-type"].startswith("text/html")
        and "default-src 'none'" in (html_report.headers["content-security-policy"])
    )
    # only the report files, only valid names: no path escapes the store
    for bad in ("manifest.json", "data.parquet", "..%2F..%2Fmanifest.json"):
        path = f"/llmops/reports/{world.DATASET}/{world.SNAPSHOTS[2]}/{bad}"
        assert client.get(path, headers=headers).status_code == 404
    assert (
        client.get(f"/llmops/reports/..%2F..%2Fetc/{world.SNAPSHOTS[2]}/drift.json", headers=headers).status_code == 404
    )


def test_a_viewer_sees_the_state_but_no_trigger_buttons(client):
    headers = {"Authorization": f"Bearer {_token('vic', 'viewer')}"}
    state = client.get("/llmops/api/state", headers=headers).json()
    assert state["models"][0]["name"] == world.MODEL and state["models"][0]["triggers"] == {}
    html = client.get("/llmops/", headers=headers).text
    assert 'href="/dags/llmops_retrain"' not in html and 'data-alias="champion"' in html


def test_models_and_datasets_are_filtered_by_the_auth_managers_dag_check(client, monkeypatch: pytest.MonkeyPatch):
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    original = manager.is_authorized_dag
    asked: list[tuple[str, str | None]] = []

    def deny_llmops(*, method, access_entity=None, details=None, user):
        asked.append((method, details.id if details else None))
        if details is not None and details.id and details.id.startswith("llmops_"):
            return False
        return original(method=method, access_entity=access_entity, details=details, user=user)

    monkeypatch.setattr(manager, "is_authorized_dag", deny_llmops)
    headers = {"Authorization": f"Bearer {_token('ada', 'admin')}"}
    state = client.get("/llmops/api/state", headers=headers).json()
    assert state["models"] == [] and state["datasets"] == [] and state["audit"] is None
    assert ("GET", "llmops_retrain") in asked and ("GET", "llmops_drift") in asked
    assert client.get(ROUTES[2], headers=headers).status_code == 403
    assert "nothing to show" in client.get("/llmops/", headers=headers).text
