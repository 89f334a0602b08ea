"""The canary analysis reads the real service's /metrics: the app (real routes, middleware, batcher, metrics) with
the keyword model of test_app serving a champion and a canary, real traffic through TestClient, then
`deploy_job.parse_metrics` / `analyse` on two scrapes. A healthy canary passes; one that errors or disagrees fails
on exactly that check. Keeps the metric names and labels the service exports and the analysis reads in step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from airflow_provider_llmops.core.governance.deploy_job import CanaryPolicy, analyse, parse_metrics
from airflow_provider_llmops.serving.app import create_app
from tests.unit.serving.test_app import FakeSource, KeywordModel, _services, _token, _wait_ready

POLICY = CanaryPolicy(min_requests=10, max_error_rate=0.05, max_p95_latency_ms=2000.0, max_disagreement=0.2)
TEXTS = ["invoice overdue", "app crash on start", "hello there", "invoice copy please"]


def _window(tmp_path: Path, canary: KeywordModel, requests: int = 80) -> dict[str, Any]:
    source = FakeSource({"champion": "1", "canary": "2"}, share=0.5)
    source.models["2"] = canary
    services = _services(tmp_path, source)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        _wait_ready(client)
        client.post("/v1/admin/reload", headers=_token(tmp_path, "admin"))
        before = parse_metrics(client.get("/metrics").text, "2")
        headers = _token(tmp_path)
        for i in range(requests):
            client.post("/v1/predict", json={"text": TEXTS[i % len(TEXTS)]}, headers=headers)
        expected = requests - parse_metrics(client.get("/metrics").text, "2").requests  # champion answers, mirrored
        deadline = time.monotonic() + 5  # the mirrored comparisons finish in the background
        after = parse_metrics(client.get("/metrics").text, "2")
        moved = time.monotonic()
        while after.mirrored < expected and time.monotonic() - moved < 0.5 and time.monotonic() < deadline:
            time.sleep(0.02)  # until every mirror is counted, or the count stood still for 0.5 s (failed mirrors)
            now = parse_metrics(client.get("/metrics").text, "2")
            if now != after:
                after, moved = now, time.monotonic()
    result = analyse(before, after, POLICY, share=0.5)
    return {"verdict": result.verdict, "failing": [c.name for c in result.failing], "after": after, "before": before}


def test_a_healthy_canary_of_the_real_service_passes(tmp_path: Path):
    found = _window(tmp_path, KeywordModel("2"))
    after = found["after"]
    assert after.loaded is True and after.share == 0.5 and after.errors == 0
    assert 20 <= after.requests <= 60 and after.mirrored == 80 - after.requests  # about half, by request id
    assert found["verdict"] == "passed" and found["failing"] == []


@pytest.mark.parametrize(
    ("canary", "failing"),
    [(KeywordModel("2", fail_on="invoice"), "error_rate"), (KeywordModel("2", flip=True), "disagreement")],
)
def test_a_bad_canary_of_the_real_service_fails_on_that_check(tmp_path: Path, canary: KeywordModel, failing: str):
    found = _window(tmp_path, canary)
    assert found["verdict"] == "failed" and found["failing"] == [failing]
