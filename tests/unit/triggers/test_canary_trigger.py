"""CanaryAnalysisTrigger against a real HTTP server on 127.0.0.1 that serves a scripted, changing /metrics page:
pass, fail, deadline (unreachable service, garbage page, no traffic), a broken analysis, and serialize() that
round-trips the way the triggerer rebuilds a trigger. Every run is bounded by the step's deadline."""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_llmops.core.governance.deploy_job import CanaryPolicy
from airflow_provider_llmops.triggers.canary import CanaryAnalysisTrigger
from tests.unit.fake_service import render

POLICY = CanaryPolicy(
    step_weights=(0.25, 1.0), analysis_interval_s=0.1, min_requests=20, max_error_rate=0.05,
    max_p95_latency_ms=200.0, max_disagreement=0.2, failure_threshold=2, progress_deadline_s=3.0,
).to_dict()  # fmt: skip
BOUND_S = 10.0


class ScriptedMetrics:
    """Serves `pages` in order on GET /metrics (the last one repeats); counts scrapes."""

    def __init__(self, pages: list[str], status: int = 200) -> None:
        self.pages, self.status, self.scrapes = pages, status, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                page = outer.pages[min(outer.scrapes, len(outer.pages) - 1)]
                outer.scrapes += 1
                body = page.encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ScriptedMetrics] = []

    def start(pages: list[str], status: int = 200) -> ScriptedMetrics:
        servers.append(ScriptedMetrics(pages, status))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def trigger(url: str, deadline_s: float = 3.0, **kwargs: Any) -> CanaryAnalysisTrigger:
    fields = {"metrics_url": url, "version": "2", "step": 0, "share": 0.25, "policy": POLICY,
              "deadline": time.time() + deadline_s, **kwargs}  # fmt: skip
    return CanaryAnalysisTrigger(**fields)


def first_event(t: CanaryAnalysisTrigger) -> tuple[dict[str, Any], float]:
    """The trigger's first event, rebuilt from serialize() first as the triggerer does; and the seconds it took."""
    classpath, kwargs = t.serialize()
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)

    async def first() -> Any:
        async for event in rebuilt.run():
            return event
        raise AssertionError("the trigger ended without an event")

    started = time.monotonic()
    event = asyncio.run(asyncio.wait_for(first(), BOUND_S))
    return event.payload, time.monotonic() - started


def page(**kwargs: Any) -> str:
    return render("2", **{"share": 0.25, **kwargs})


def test_serialize_round_trips():
    t = trigger("http://127.0.0.1:1/metrics", failures=1)
    classpath, kwargs = t.serialize()
    assert classpath == "airflow_provider_llmops.triggers.canary.CanaryAnalysisTrigger"
    assert CanaryAnalysisTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert kwargs["policy"] == POLICY and kwargs["failures"] == 1 and kwargs["share"] == 0.25
    assert kwargs["carry"] is None


def test_a_healthy_step_passes_once_the_share_is_applied(serve: Any):
    server = serve([page(share=0.0), page(), page(requests=10, mirrored=30), page(requests=40, mirrored=120)])
    payload, seconds = first_event(trigger(server.url, carry={"deployment": {"version": "2"}, "steps": []}))
    assert payload["status"] == "passed" and payload["windows"] == 1 and payload["failing"] == []
    assert payload["carry"] == {"deployment": {"version": "2"}, "steps": []}  # handed back unchanged
    assert {c["name"]: c["passed"] for c in payload["checks"]} == {
        "loaded": True, "requests": True, "error_rate": True, "latency_p95_ms": True, "disagreement": True,
    }  # fmt: skip
    assert server.scrapes == 4 and seconds < 2


def test_a_failing_step_fails_after_the_threshold_of_failed_windows(serve: Any):
    server = serve([page(), page(requests=40, errors=10, mirrored=120), page(requests=80, errors=20, mirrored=240)])
    payload, _ = first_event(trigger(server.url))
    assert payload["status"] == "failed" and payload["failures"] == 2
    assert [c["name"] for c in payload["failing"]] == ["error_rate"]


def test_a_failure_before_this_step_counts(serve: Any):
    server = serve([page(), page(requests=40, mirrored=120, latency_s=0.9)])
    payload, _ = first_event(trigger(server.url, failures=1))
    assert payload["status"] == "failed" and payload["failing"][0]["name"] == "latency_p95_ms"


@pytest.mark.parametrize(
    ("pages", "status", "message"),
    [
        (["this is not { prometheus"], 200, "MetricsParseError"),
        (["oops"], 503, "HTTPStatusError"),
        ([page(), page(requests=3, mirrored=9)], 200, "not enough data"),
        ([page(share=0.5)], 200, "the service never applied the step's share"),
    ],
)
def test_no_verdict_by_the_deadline_ends_the_step(serve: Any, pages: list[str], status: int, message: str):
    server = serve(pages, status)
    payload, seconds = first_event(trigger(server.url, deadline_s=0.5))
    assert payload["status"] == "deadline" and message in payload["message"]
    assert 0.4 < seconds < 2 and server.scrapes <= 8  # one scrape per interval, bounded by the deadline


def test_an_unreachable_service_meets_the_deadline():
    payload, seconds = first_event(trigger("http://127.0.0.1:9/metrics", deadline_s=0.3))
    assert payload["status"] == "deadline" and "ConnectError" in payload["message"] and seconds < 3


def test_a_broken_analysis_still_ends_in_an_event():
    payload, _ = first_event(trigger("http://127.0.0.1:9/metrics", policy={"step_weights": "x"}))
    assert payload["status"] == "error" and "ConfigurationError" in payload["message"]
