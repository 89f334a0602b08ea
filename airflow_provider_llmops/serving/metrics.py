"""Prometheus metrics of the inference service, in one registry per app (so tests and several apps in one process
never share counters). Every name starts with `llmops_serve_`; the labels are the ones the deploy analysis and the
dashboards read:

* `llmops_serve_requests_total{route, status, model_version, role}` (role: champion, canary, fallback, none)
* `llmops_serve_request_latency_seconds{route, model_version, role}` histogram (whole request, server side)
* `llmops_serve_batch_size{model_version}` histogram (texts per forward pass), `llmops_serve_queue_depth{model_version}`
* `llmops_serve_rejections_total{reason}` (unauthorized, forbidden, too_large, invalid, overloaded, quota, blocked...)
* `llmops_serve_loaded_version{role, version}` (1 while loaded), `llmops_serve_model_load_failures_total{version}`
* `llmops_serve_canary_share`, `llmops_serve_canary_mirrored_total{version}`,
  `llmops_serve_canary_disagreements_total{version}` (canary vs champion label on mirrored traffic)
* `llmops_serve_guardrail_decisions_total{rule, action}`, `llmops_serve_quota_exhausted_total{limit}`
* `llmops_serve_circuit_state{name}` (0 closed, 1 half-open, 2 open), `llmops_serve_fallback_total{reason}`
"""

from __future__ import annotations

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}


class ServeMetrics:
    """The service's collectors, registered in their own `CollectorRegistry`."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llmops_serve_requests", "Requests by route, HTTP status, model version and role",
            ["route", "status", "model_version", "role"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "llmops_serve_request_latency_seconds", "Request latency (server side)",
            ["route", "model_version", "role"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "llmops_serve_batch_size", "Texts per forward pass", ["model_version"], buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "llmops_serve_batch_seconds", "Forward pass time per batch", ["model_version"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge("llmops_serve_queue_depth", "Texts waiting for a batch", ["model_version"], registry=r)
        self.rejections = Counter("llmops_serve_rejections", "Requests refused, by reason", ["reason"], registry=r)
        self.loaded = Gauge(
            "llmops_serve_loaded_version", "1 per loaded (role, version)", ["role", "version"], registry=r
        )
        self.load_failures = Counter(
            "llmops_serve_model_load_failures", "Versions that failed to load or to pass the smoke prediction",
            ["version"], registry=r,
        )  # fmt: skip
        self.canary_share = Gauge("llmops_serve_canary_share", "Share of traffic routed to the canary", registry=r)
        self.mirrored = Counter(
            "llmops_serve_canary_mirrored", "Champion requests mirrored to the canary", ["version"], registry=r
        )
        self.disagreements = Counter(
            "llmops_serve_canary_disagreements", "Mirrored requests where canary and champion labels differ",
            ["version"], registry=r,
        )  # fmt: skip
        self.guardrails = Counter(
            "llmops_serve_guardrail_decisions", "Guardrail decisions by rule and action", ["rule", "action"], registry=r
        )
        self.quota = Counter("llmops_serve_quota_exhausted", "Refused: quota spent", ["limit"], registry=r)
        self.circuit = Gauge("llmops_serve_circuit_state", "0 closed, 1 half-open, 2 open", ["name"], registry=r)
        self.fallback = Counter("llmops_serve_fallback", "Answered by the fallback", ["reason"], registry=r)
        self.audit_dropped = Counter(
            "llmops_serve_audit_dropped", "Inference audit records not written (queue full)", registry=r
        )
        self.jobs = Counter("llmops_serve_jobs", "Queued jobs by outcome", ["outcome"], registry=r)

        self._loaded: set[tuple[str, str]] = set()

    def set_loaded(self, role: str, version: str | None) -> None:
        """`version` now serves as `role` (None: nothing does); the role's previous version leaves the gauge."""
        for old in [pair for pair in self._loaded if pair[0] == role and pair[1] != version]:
            self.loaded.remove(*old)
            self._loaded.discard(old)
        if version is not None:
            self.loaded.labels(role=role, version=version).set(1)
            self._loaded.add((role, version))

    def circuit_changed(self, name: str, state: str) -> None:
        self.circuit.labels(name=name).set(CIRCUIT_STATES.get(state, 2))

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
