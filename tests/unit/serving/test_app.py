"""The inference service's HTTP behaviour through FastAPI's TestClient (the app's real routes, middleware, auth,
guardrails, quotas, batcher and audit log). The model is a small deterministic keyword classifier (mocked: loading a
transformers model per test would take seconds; tests/integration/test_serving.py serves real registered models
over a real uvicorn server)."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_llmops.core.governance.audit import records, verify
from airflow_provider_llmops.serving.app import Services, create_app
from airflow_provider_llmops.serving.audit_log import InferenceAuditLog, text_digest
from airflow_provider_llmops.serving.auth import TokenVerifier, local_auth_config, mint_token
from airflow_provider_llmops.serving.config import ServeConfig
from airflow_provider_llmops.serving.guardrails import GuardrailConfig, Guardrails
from airflow_provider_llmops.serving.metrics import ServeMetrics
from airflow_provider_llmops.serving.models import Desired, ModelManager, _bucket, parse_share
from airflow_provider_llmops.serving.quotas import QuotaBook

LABELS = ["billing", "bug", "other"]


class KeywordModel:
    """Deterministic: 'invoice' -> billing, 'crash' -> bug, else other; `flip` inverts billing/bug (a disagreeing
    canary); `fail_on` raises for texts containing it; `delay_s` sleeps per batch (a slow version)."""

    def __init__(self, version: str, flip: bool = False, fail_on: str | None = None, delay_s: float = 0.0) -> None:
        self.version, self.flip, self.fail_on, self.delay_s = version, flip, fail_on, delay_s
        self.labels = list(LABELS)
        self.seen: list[str] = []
        self.batches: list[int] = []

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.seen.extend(texts)
        self.batches.append(len(texts))
        if self.delay_s:
            time.sleep(self.delay_s)
        out = np.full((len(texts), 3), 0.05)
        for i, text in enumerate(texts):
            if self.fail_on and self.fail_on in text:
                raise RuntimeError("model exploded on /secret/path with token abc")
            best = 0 if "invoice" in text else 1 if "crash" in text else 2
            if self.flip and best in (0, 1):
                best = 1 - best
            out[i, best] = 0.9
        return out


class EchoGenerator:
    labels: list[str] = []

    def generate(self, prompts: list[str], max_new_tokens: int = 8) -> list[str]:
        return [f"reply to {prompt[:40]} contact ops@example.com" for prompt in prompts]


class FakeSource:
    """The registry's state, set by the test."""

    def __init__(self, versions: dict[str, str] | None = None, share: float = 0.0) -> None:
        self.versions = dict(versions or {})
        self.share = share
        self.models: dict[str, Any] = {}
        self.fail: set[str] = set()
        self.loads: list[str] = []

    def desired(self) -> Desired:
        return Desired(dict(self.versions), self.share)

    def load(self, version: str) -> tuple[Any, str, str]:
        self.loads.append(version)
        if version in self.fail:
            raise OSError(f"weights of version {version} are missing")
        model = self.models.setdefault(version, KeywordModel(version))
        return model, ("generator" if isinstance(model, EchoGenerator) else "classifier"), "torch"


def _services(tmp_path: Path, source: FakeSource, **config: Any) -> Services:
    cfg = ServeConfig(model_name="router", home=tmp_path, poll_interval_s=3600, **config)
    metrics = ServeMetrics()
    manager = ModelManager(
        source, metrics, poll_interval_s=cfg.poll_interval_s, max_batch_size=cfg.max_batch_size,
        max_wait_ms=cfg.max_wait_ms, max_queue=cfg.max_queue, mirror_fraction=cfg.mirror_fraction,
    )  # fmt: skip
    quotas = QuotaBook(cfg.quota_requests_per_day, cfg.quota_chars_per_day) if cfg.quota_requests_per_day else None
    audit = InferenceAuditLog(cfg.audit_path, raw_text=cfg.audit_raw_text, dropped=metrics.audit_dropped)
    shares: list[float] = []

    def write_share(share: float) -> None:
        shares.append(share)
        source.share = share

    services = Services(
        cfg, manager, TokenVerifier(local_auth_config(tmp_path)), metrics,
        Guardrails(GuardrailConfig.default()), quotas, audit, None, write_share,
    )  # fmt: skip
    services.shares = shares  # type: ignore[attr-defined]
    return services


def _token(home: Path, *scopes: str, sub: str = "alice", **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(local_auth_config(home), sub, list(scopes) or ['predict'], **kw)}"}


def _wait_ready(client: TestClient, timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get("/readyz")
        if response.status_code == 200:
            return response.json()
        time.sleep(0.02)
    raise AssertionError(f"not ready: {client.get('/readyz').json()}")


@pytest.fixture
def served(tmp_path: Path):
    source = FakeSource({"champion": "1"})
    services = _services(tmp_path, source)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        _wait_ready(client)
        yield client, source, services, tmp_path


def test_healthz_answers_before_any_model_and_readyz_waits(tmp_path: Path):
    source = FakeSource({})  # the registry has no champion yet
    with TestClient(create_app(_services(tmp_path, source)), raise_server_exceptions=False) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        response = client.post("/v1/predict", json={"text": "hello"}, headers=_token(tmp_path))
        assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
        assert "no model version is loaded" in response.json()["detail"]
        source.versions = {"champion": "4"}
        reload = client.post("/v1/admin/reload", headers=_token(tmp_path, "admin"))
        assert reload.status_code == 200 and reload.json()["serving"]["champion"]["version"] == "4"
        assert client.get("/readyz").status_code == 200


def test_predict_one_and_many(served):
    client, source, _, home = served
    one = client.post("/v1/predict", json={"text": "my invoice is wrong"}, headers=_token(home))
    assert one.status_code == 200, one.text
    body = one.json()
    assert (body["model"], body["model_version"], body["role"], body["backend"]) == ("router", "1", "champion", "torch")
    assert body["predictions"][0]["label"] == "billing" and body["fallback"] is None
    assert set(body["predictions"][0]["scores"]) == set(LABELS)
    assert one.headers["x-request-id"] == body["request_id"]
    many = client.post("/v1/predict", json={"texts": ["app crash", "invoice", "hello"]}, headers=_token(home))
    assert [p["label"] for p in many.json()["predictions"]] == ["bug", "billing", "other"]


def test_pii_is_redacted_before_the_model_and_reported(served):
    client, source, _, home = served
    response = client.post("/v1/predict", json={"text": "invoice for bob@example.com card 4111 1111 1111 1111"},
                           headers=_token(home))  # fmt: skip
    decisions = response.json()["predictions"][0]["guardrails"]["input"]["decisions"]
    assert {d["rule"] for d in decisions} >= {"pii_email", "pii_card"} or len(decisions) >= 2, decisions
    seen = source.models["1"].seen[-1]
    assert "bob@example.com" not in seen and "4111" not in seen
    assert "bob@example.com" not in response.text  # never echoed back


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, None),
        ({"Authorization": "Bearer not-a-jwt"}, 401, "malformed"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "malformed"),
    ],
)
def test_unauthenticated_requests_get_401(served, headers: dict[str, str], status: int, code: str | None):
    client, *_ = served
    response = client.post("/v1/predict", json={"text": "x"}, headers=headers)
    assert response.status_code == status and response.headers["www-authenticate"].startswith("Bearer")
    if code:
        assert code in response.headers["www-authenticate"]


def test_expired_not_yet_valid_and_wrong_scope(served):
    client, _, _, home = served
    old = _token(home, "predict", now=time.time() - 7200, ttl_s=60)
    assert client.post("/v1/predict", json={"text": "x"}, headers=old).status_code == 401
    future = _token(home, "predict", now=time.time() + 3600)
    assert client.post("/v1/predict", json={"text": "x"}, headers=future).status_code == 401
    admin_only = _token(home, "admin")
    assert client.post("/v1/predict", json={"text": "x"}, headers=admin_only).status_code == 403
    predict_only = _token(home, "predict")
    assert client.post("/v1/admin/reload", headers=predict_only).status_code == 403
    assert client.put("/v1/admin/canary", json={"share": 0.5}, headers=predict_only).status_code == 403


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 422),
        (json.dumps({"text": 5}).encode(), 422),
        (json.dumps({"text": ["a"]}).encode(), 422),
        (json.dumps({"texts": "a"}).encode(), 422),
        (json.dumps({"text": "a", "extra": 1}).encode(), 422),
        (json.dumps({}).encode(), 422),
        (json.dumps({"text": "a", "texts": ["b"]}).encode(), 422),
        (json.dumps({"text": "   "}).encode(), 422),
        (json.dumps({"texts": []}).encode(), 422),
        (json.dumps({"texts": ["a"] * 65}).encode(), 422),
        (json.dumps({"text": "a" * 8193}).encode(), 422),
        (b"[1, 2]", 422),
        (b"null", 422),
    ],
)
def test_bad_bodies_get_422_never_500(served, body: bytes, status: int):
    client, _, _, home = served
    response = client.post("/v1/predict", content=body, headers={**_token(home), "Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text and "a" * 100 not in response.text


def test_oversized_body_gets_413_before_it_is_read(served):
    client, _, _, home = served
    big = json.dumps({"text": "x" * (1 << 20)}).encode()
    response = client.post("/v1/predict", content=big, headers={**_token(home), "Content-Type": "application/json"})
    assert response.status_code == 413
    metrics = client.get("/metrics").text
    assert 'llmops_serve_rejections_total{reason="too_large"} 1.0' in metrics


def test_a_model_error_is_a_500_without_details_and_the_batch_next_to_it_survives(served, caplog):
    client, source, _, home = served
    source.models["1"].fail_on = "boom"
    caplog.set_level(logging.DEBUG)
    response = client.post("/v1/predict", json={"text": "boom"}, headers=_token(home))
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error", "request_id": response.headers["x-request-id"]}
    assert "/secret/path" not in caplog.text and "Traceback" not in caplog.text
    assert client.post("/v1/predict", json={"text": "invoice"}, headers=_token(home)).status_code == 200


def test_canary_share_routes_traffic_and_is_written_to_the_registry(served):
    client, source, services, home = served
    source.versions = {"champion": "1", "canary": "2"}
    response = client.put("/v1/admin/canary", json={"share": 1.0}, headers=_token(home, "admin"))
    assert response.status_code == 200 and services.shares == [1.0]
    assert response.json()["serving"]["canary"]["version"] == "2"
    answers = [client.post("/v1/predict", json={"text": "invoice"}, headers=_token(home)).json() for _ in range(5)]
    assert {(a["model_version"], a["role"]) for a in answers} == {("2", "canary")}
    client.put("/v1/admin/canary", json={"share": 0}, headers=_token(home, "admin"))
    answers = [client.post("/v1/predict", json={"text": "invoice"}, headers=_token(home)).json() for _ in range(5)]
    assert {(a["model_version"], a["role"]) for a in answers} == {("1", "champion")}
    bad = client.put("/v1/admin/canary", json={"share": 1.5}, headers=_token(home, "admin"))
    assert bad.status_code == 422 and services.shares == [1.0, 0.0]


def test_mirrored_traffic_measures_canary_disagreement(served):
    client, source, services, home = served
    source.models["2"] = KeywordModel("2", flip=True)
    source.versions = {"champion": "1", "canary": "2"}
    client.post("/v1/admin/reload", headers=_token(home, "admin"))
    for text in ["invoice", "crash", "hello", "invoice"]:
        assert client.post("/v1/predict", json={"text": text}, headers=_token(home)).json()["role"] == "champion"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        metrics = client.get("/metrics").text
        if 'llmops_serve_canary_mirrored_total{version="2"} 4.0' in metrics:
            break
        time.sleep(0.02)
    assert 'llmops_serve_canary_mirrored_total{version="2"} 4.0' in metrics
    assert 'llmops_serve_canary_disagreements_total{version="2"} 3.0' in metrics  # hello agrees


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(served):
    client, source, _, home = served
    source.fail.add("3")
    source.versions = {"champion": "3"}
    state = client.post("/v1/admin/reload", headers=_token(home, "admin")).json()
    assert state["serving"]["champion"]["version"] == "1" and "3" in state["failed"]
    assert "missing" in state["failed"]["3"]
    assert client.post("/v1/predict", json={"text": "x"}, headers=_token(home)).json()["model_version"] == "1"
    assert 'llmops_serve_model_load_failures_total{version="3"} 1.0' in client.get("/metrics").text


def test_a_version_failing_its_smoke_prediction_is_not_swapped_in(served):
    client, source, _, home = served

    class Broken(KeywordModel):
        def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
            return np.full((len(texts), 3), np.nan)

    source.models["5"] = Broken("5")
    source.versions = {"champion": "5"}
    state = client.post("/v1/admin/reload", headers=_token(home, "admin")).json()
    assert state["serving"]["champion"]["version"] == "1" and "probability" in state["failed"]["5"]


def test_reload_under_traffic_loses_no_request(served):
    client, source, _, home = served
    source.models["1"].delay_s = 0.01
    results: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def traffic() -> None:
        headers = _token(home)
        for _ in range(60):
            if stop.is_set():
                return
            response = client.post("/v1/predict", json={"text": "invoice"}, headers=headers)
            results.append(response.status_code)
            if response.status_code == 200:
                versions.add(response.json()["model_version"])

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    source.versions = {"champion": "2"}
    client.post("/v1/admin/reload", headers=_token(home, "admin"))
    for t in threads:
        t.join(60)
    stop.set()
    assert results and set(results) == {200}, sorted(set(results))
    assert versions == {"1", "2"}


def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path):
    source = FakeSource({"champion": "1"})
    source.models["1"] = KeywordModel("1", delay_s=0.3)
    services = _services(tmp_path, source, max_queue=2, max_batch_size=1, max_wait_ms=0)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        _wait_ready(client)
        headers = _token(tmp_path)
        codes: list[tuple[int, str | None]] = []

        def call() -> None:
            r = client.post("/v1/predict", json={"text": "invoice"}, headers=headers)
            codes.append((r.status_code, r.headers.get("retry-after")))

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses = sorted(c for c, _ in codes)
        assert statuses.count(200) >= 2 and statuses.count(503) >= 1, codes
        assert all(int(retry) >= 1 for code, retry in codes if code == 503)


def test_quota_per_client(tmp_path: Path):
    source = FakeSource({"champion": "1"})
    with TestClient(
        create_app(_services(tmp_path, source, quota_requests_per_day=2)), raise_server_exceptions=False
    ) as client:
        _wait_ready(client)
        alice, bob = _token(tmp_path, sub="alice"), _token(tmp_path, sub="bob")
        assert [client.post("/v1/predict", json={"text": "x"}, headers=alice).status_code for _ in range(3)] == [
            200, 200, 429,
        ]  # fmt: skip
        spent = client.post("/v1/predict", json={"text": "x"}, headers=alice)
        assert 1 <= int(spent.headers["retry-after"]) <= 86400
        assert client.post("/v1/predict", json={"text": "x"}, headers=bob).status_code == 200
        assert 'llmops_serve_quota_exhausted_total{limit="requests"} 2.0' in client.get("/metrics").text


def test_generate_applies_guardrails_to_prompt_and_output(tmp_path: Path):
    source = FakeSource({"champion": "7"})
    source.models["7"] = EchoGenerator()
    with TestClient(create_app(_services(tmp_path, source)), raise_server_exceptions=False) as client:
        _wait_ready(client)
        response = client.post("/v1/generate", json={"prompt": "hi, I am eve@example.com", "max_new_tokens": 5000},
                               headers=_token(tmp_path))  # fmt: skip
        body = response.json()
        assert response.status_code == 200 and body["max_new_tokens"] == 64  # bounded by serve_max_new_tokens
        assert "eve@example.com" not in body["text"] and "ops@example.com" not in body["text"]
        assert body["guardrails"]["output"]["decisions"]
        wrong = client.post("/v1/predict", json={"text": "x"}, headers=_token(tmp_path))
        assert wrong.status_code == 422 and "/v1/generate" in wrong.json()["detail"]


def test_metrics_carry_route_status_version_and_role(served):
    client, _, _, home = served
    client.post("/v1/predict", json={"text": "invoice"}, headers=_token(home))
    client.post("/v1/predict", json={"text": "invoice"})
    text = client.get("/metrics").text
    assert 'llmops_serve_requests_total{model_version="1",role="champion",route="/v1/predict",status="200"} 1.0' in text
    assert 'llmops_serve_requests_total{model_version="none",role="none",route="/v1/predict",status="401"} 1.0' in text
    assert 'llmops_serve_loaded_version{role="champion",version="1"} 1.0' in text
    assert "llmops_serve_batch_size_bucket" in text and "llmops_serve_request_latency_seconds_bucket" in text


def test_every_answer_is_in_the_chained_inference_audit_log(tmp_path: Path):
    source = FakeSource({"champion": "1"})
    services = _services(tmp_path, source)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        _wait_ready(client)
        ids = [
            client.post("/v1/predict", json={"text": f"invoice {i}"}, headers=_token(tmp_path)).json()["request_id"]
            for i in range(3)
        ]
    logged = list(records(services.config.audit_path))
    assert [r["data"]["request_id"] for r in logged] == ids
    assert logged[0]["data"]["input_sha256"] == text_digest(["invoice 0"]) and "input" not in logged[0]["data"]
    assert logged[0]["actor"] == "alice" and logged[0]["data"]["model_version"] == "1"
    assert verify(services.config.audit_path).ok


def test_share_parsing_and_stable_buckets():
    assert [parse_share(v) for v in (None, "0.1", "10%", "1", "2", "-0.1", "nan", "x")] == [0, 0.1, 0.1, 1, 0, 0, 0, 0]
    assert _bucket("request-1") == _bucket("request-1") and 0 <= _bucket("x") < 10000
    shares = [_bucket(f"r{i}") < 1000 for i in range(5000)]
    assert 0.08 < sum(shares) / len(shares) < 0.12  # about 10 % of keys fall under a 0.1 share


def test_a_canary_that_keeps_failing_is_cut_off_by_its_circuit_breaker(served):
    client, source, services, home = served
    source.models["2"] = KeywordModel("2", fail_on="invoice")  # version 2 fails on every ticket about invoices
    source.versions, source.share = {"champion": "1", "canary": "2"}, 1.0
    client.post("/v1/admin/reload", headers=_token(home, "admin"))
    codes = [client.post("/v1/predict", json={"text": "invoice"}, headers=_token(home)) for _ in range(8)]
    assert [c.status_code for c in codes[:5]] == [500] * 5  # counted against the canary (the analysis sees them)
    after = [c.json() for c in codes[5:]]
    assert all(a["role"] == "champion" and a["fallback"] == "canary_circuit_open" for a in after), after
    metrics = client.get("/metrics").text
    assert 'llmops_serve_circuit_state{name="canary"} 2.0' in metrics
    assert 'llmops_serve_fallback_total{reason="canary_circuit_open"} 3.0' in metrics
    assert 'route="/v1/predict",status="500"} 5.0' in metrics


def test_cors_is_off_by_default_and_lists_only_configured_origins(tmp_path: Path):
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    for origins, allowed in (((), False), (("https://app.example.com",), True)):
        services = _services(tmp_path, FakeSource({"champion": "1"}), cors_origins=origins)
        with TestClient(create_app(services), raise_server_exceptions=False) as client:
            response = client.options("/v1/predict", headers=preflight)
            assert (response.headers.get("access-control-allow-origin") == "https://app.example.com") is allowed
            other = client.options("/v1/predict", headers={**preflight, "Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers


def test_fallback_takes_champion_traffic_while_its_queue_is_deep(tmp_path: Path):
    source = FakeSource({"champion": "1", "fallback": "9"})
    source.models["1"] = KeywordModel("1", delay_s=0.2)
    services = _services(tmp_path, source, max_batch_size=1, max_wait_ms=0, fallback_queue_depth=1)
    services.manager.fallback_queue_depth = 1
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        _wait_ready(client)
        _wait(lambda: client.get("/readyz").json()["serving"].get("fallback") is not None)
        answers: list[dict[str, Any]] = []

        def call() -> None:
            answers.append(client.post("/v1/predict", json={"text": "invoice"}, headers=_token(tmp_path)).json())

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    roles = [(a["role"], a["fallback"]) for a in answers]
    assert ("fallback", "queue_depth") in roles and ("champion", None) in roles, roles


def _wait(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(JSON_VALUES.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200),
                      st.fixed_dictionaries({"text": JSON_VALUES}).map(lambda v: json.dumps(v).encode()),
                      st.fixed_dictionaries({"texts": JSON_VALUES}).map(lambda v: json.dumps(v).encode())))  # fmt: skip
def test_property_no_body_crashes_the_server(served, body: bytes):
    client, _, _, home = served
    response = client.post("/v1/predict", content=body, headers={**_token(home), "Content-Type": "application/json"})
    assert response.status_code in (200, 413, 422), (body, response.status_code, response.text)
    assert "Traceback" not in response.text


def test_the_inference_log_is_keyed_like_the_pipeline_trail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from airflow_provider_llmops.serving import server

    key = "inference-audit-key-0123456789"
    monkeypatch.setenv("AIRFLOW_CONN_AUDIT_SERVE", json.dumps({"conn_type": "generic", "password": key}))
    monkeypatch.setenv("AIRFLOW__LLMOPS__AUDIT_CONN_ID", "audit_serve")
    source = server._audit_key_source()
    log = InferenceAuditLog(tmp_path / "inference.jsonl", key=source)
    log.start()
    log.record({"request_id": "r1", "client": "c"}, ["text"])
    log.close()
    (record,) = list(records(tmp_path / "inference.jsonl"))
    assert record["key_id"] and key not in (tmp_path / "inference.jsonl").read_text()
    assert (
        verify(tmp_path / "inference.jsonl", keys=[key]).ok
        and not verify(tmp_path / "inference.jsonl", keys=["x" * 32]).ok
    )
    monkeypatch.delenv("AIRFLOW__LLMOPS__AUDIT_CONN_ID")
    assert server._audit_key_source() is None
