"""The metrics the project exports, built from its code, for the monitoring tests (tests/unit/test_monitoring_config.py,
tests/integration/test_prometheus_pushgateway.py): `exported_metrics()` maps each series name to its labels, and
PENDING lists the metrics the rules and dashboards use that are proposed but not exported yet."""

from __future__ import annotations

from typing import Any

# Labels Prometheus adds to every scraped or pushed series.
TARGET_LABELS = frozenset({"job", "instance"})

# Proposed metrics, not exported yet: name -> labels (the rules and dashboards may use them; a test fails once the
# code exports one, so the list shrinks as they land).
PENDING: dict[str, frozenset[str]] = {}


def _small_drift_report() -> dict[str, Any]:
    """The fields `drift_registry` reads, for two features and the embedding check."""
    scores = {"psi": 0.31, "js": 0.05, "kl": 0.12}
    return {
        "rules": {"statistic": "psi"},
        "drift": True,
        "rows": 120,
        "features": {
            "char_length": {"scores": scores, "calibrated_thresholds": {"psi": 0.2}, "verdict": {"drift": True}},
            "label": {"scores": scores, "calibrated_thresholds": {"psi": 0.25}, "verdict": {"drift": False}},
        },
        "embedding": {
            "centroid_cosine_distance": 0.02,
            "mmd2": 0.001,
            "mmd_pvalue": 0.4,
            "domain_auc": 0.52,
            "drift": False,
        },
    }


def _names_and_labels(registry: Any) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) | TARGET_LABELS for name, labels in found.items()}


def exported_metrics() -> dict[str, frozenset[str]]:
    """Every series name the project exports today, with its labels (target labels included)."""
    from prometheus_client.metrics import MetricWrapperBase

    from airflow_provider_llmops.core import metrics as M
    from airflow_provider_llmops.core.drift.metrics import drift_registry
    from airflow_provider_llmops.serving.metrics import ServeMetrics

    serve = ServeMetrics()
    collectors = [c for c in vars(serve).values() if isinstance(c, MetricWrapperBase)]
    assert len(collectors) >= 15, "ServeMetrics' collectors were not found as attributes"
    for collector in collectors:
        if collector._labelnames:  # one child per labelled collector, so its samples (and labels) show
            collector.labels(*["x"] * len(collector._labelnames))
    batch = [
        drift_registry(_small_drift_report(), "t"),
        M.validation_registry("t", "suite", False, 2),
        M.evaluation_registry("m", "1", {"accuracy": 0.9}),
        M.canary_decision_registry("m", "1", "rolled_back"),
        M.sanity_registry({"check": True}),
        M.pipeline_run_registry("dag", True, 3600.0),
        M.pipeline_run_registry("dag", False),
    ]
    found = _names_and_labels(serve.registry)
    for registry in batch:
        found.update(_names_and_labels(registry))
    return found
