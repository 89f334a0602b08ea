"""A stand-in for the inference service in canary tests: a real HTTP server on 127.0.0.1 that converges on the
registry (the `canary` alias and the share tag) on `POST /v1/admin/reload` (admin token checked with the service's
own `TokenVerifier`) and on every scrape, and whose `GET /metrics` is rendered by the service's own `ServeMetrics`.

Each scrape first simulates `per_scrape` requests: the canary takes `share` of them (with `error_rate` 5xx answers
and `latency_s` each), the champion the rest, every champion request is mirrored to the canary and `disagreement`
of those disagree. `loads=False` makes the canary fail to load (as a version that fails its smoke prediction).
Only model inference is missing; the registry, HTTP, auth and metrics are real.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from airflow_provider_llmops.core.governance.deploy_job import current_share
from airflow_provider_llmops.core.model.contract import CANARY, CHAMPION
from airflow_provider_llmops.serving.metrics import ServeMetrics


def render(
    version: str,
    *,
    requests: int = 0,
    errors: int = 0,
    latency_s: float = 0.02,
    mirrored: int = 0,
    disagreements: int = 0,
    loaded: bool = True,
    share: float = 0.1,
    load_failures: int = 0,
    champion: str = "1",
) -> str:
    """The /metrics text of a service whose canary `version` answered `requests` (`errors` of them 5xx)."""
    m = ServeMetrics()
    m.requests.labels(route="/v1/predict", status="200", model_version=version, role="canary").inc(requests - errors)
    if errors:
        m.requests.labels(route="/v1/predict", status="500", model_version=version, role="canary").inc(errors)
    m.requests.labels(route="/v1/predict", status="200", model_version=champion, role="champion").inc(1000)
    m.requests.labels(route="/metrics", status="200", model_version="none", role="none").inc(7)
    for _ in range(requests):
        m.latency.labels(route="/v1/predict", model_version=version, role="canary").observe(latency_s)
    if mirrored:
        m.mirrored.labels(version=version).inc(mirrored)
    if disagreements:
        m.disagreements.labels(version=version).inc(disagreements)
    if load_failures:
        m.load_failures.labels(version=version).inc(load_failures)
    m.set_loaded("champion", champion)
    m.set_loaded("canary", version if loaded else None)
    m.canary_share.set(share)
    return m.render()[0].decode()


class FakeService:
    """See the module docstring. `url` is the base URL; `stop()` shuts it down."""

    def __init__(
        self,
        registry: Any,
        model_name: str,
        home: Path | None = None,
        *,
        per_scrape: int = 40,
        error_rate: float = 0.0,
        latency_s: float = 0.02,
        disagreement: float = 0.0,
        loads: bool = True,
    ) -> None:
        self.registry, self.model_name = registry, model_name
        self.per_scrape, self.error_rate, self.latency_s = per_scrape, error_rate, latency_s
        self.disagreement, self.loads = disagreement, loads
        self.metrics = ServeMetrics()
        self.reloads: list[str] = []  # subject of each authorised reload
        self.scrapes = 0
        self.lock = threading.Lock()
        self.verifier = None
        if home is not None:
            from airflow_provider_llmops.serving.auth import TokenVerifier, local_auth_config

            self.verifier = TokenVerifier(local_auth_config(home))
        self.serving: dict[str, str] = {}
        self.share = 0.0
        self.sync()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                if self.path != "/metrics":
                    self._send(404, b"{}")
                    return
                self._send(200, service.scrape().encode(), "text/plain; version=0.0.4")

            def do_POST(self) -> None:  # noqa: N802
                if self.path != "/v1/admin/reload":
                    self._send(404, b"{}")
                    return
                if service.verifier is not None:
                    try:
                        principal = service.verifier.verify(self.headers.get("Authorization"), "admin")
                    except Exception:
                        self._send(401, b'{"detail": "unauthorized"}')
                        return
                    service.reloads.append(principal.subject)
                else:
                    service.reloads.append("anonymous")
                self._send(200, json.dumps(service.sync()).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def sync(self) -> dict[str, Any]:
        """Converge on the registry, as the service's poll and reload do."""
        with self.lock:
            aliases = self.registry.aliases(self.model_name)
            self.serving = {role: aliases[alias] for role, alias in (("champion", CHAMPION), ("canary", CANARY))
                            if alias in aliases}  # fmt: skip
            self.share = current_share(self.registry, self.model_name) if "canary" in self.serving else 0.0
            m = self.metrics
            m.set_loaded("champion", self.serving.get("champion"))
            canary = self.serving.get("canary")
            m.set_loaded("canary", canary if canary and self.loads else None)
            if canary and not self.loads:
                m.load_failures.labels(version=canary).inc()
            m.canary_share.set(self.share)
            return {"serving": {role: {"version": v} for role, v in self.serving.items()}, "canary_share": self.share}

    def scrape(self) -> str:
        self.sync()
        with self.lock:
            self.scrapes += 1
            m = self.metrics
            canary, champion = self.serving.get("canary"), self.serving.get("champion", "none")
            to_canary = round(self.per_scrape * self.share) if canary and self.loads else 0
            to_champion = self.per_scrape - to_canary
            if to_canary:
                errors = round(to_canary * self.error_rate)
                labels = {"route": "/v1/predict", "model_version": canary, "role": "canary"}
                m.requests.labels(status="200", **labels).inc(to_canary - errors)
                if errors:
                    m.requests.labels(status="500", **labels).inc(errors)
                for _ in range(to_canary):
                    m.latency.labels(**labels).observe(self.latency_s)
            if to_champion:
                m.requests.labels(route="/v1/predict", status="200", model_version=champion, role="champion").inc(
                    to_champion
                )
                if canary and self.loads:
                    m.mirrored.labels(version=canary).inc(to_champion)
                    m.disagreements.labels(version=canary).inc(round(to_champion * self.disagreement))
            return m.render()[0].decode()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
