"""Prometheus drift gauges of one drift report (`core/metrics.py`'s `export` pushes them to the Pushgateway and
writes them as a node-exporter textfile)."""

from __future__ import annotations

from typing import Any


def drift_registry(report: dict[str, Any], dataset: str) -> Any:
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    score = Gauge(
        "llmops_drift_score",
        "Drift statistic of a feature against the reference profile",
        ["dataset", "feature", "statistic"],
        registry=registry,
    )
    threshold = Gauge(
        "llmops_drift_threshold",
        "Calibrated threshold of a feature's verdict statistic at this batch size",
        ["dataset", "feature"],
        registry=registry,
    )
    feature_drift = Gauge(
        "llmops_drift_feature_detected", "1 when a feature drifts", ["dataset", "feature"], registry=registry
    )
    detected = Gauge("llmops_drift_detected", "1 when the batch drifts", ["dataset"], registry=registry)
    rows = Gauge("llmops_drift_rows", "Rows scored", ["dataset"], registry=registry)
    statistic = report["rules"]["statistic"]
    for name, feature in report["features"].items():
        for stat, value in feature["scores"].items():
            score.labels(dataset, name, stat).set(value)
        threshold.labels(dataset, name).set(feature["calibrated_thresholds"][statistic])
        feature_drift.labels(dataset, name).set(1 if feature["verdict"]["drift"] else 0)
    embedding = report.get("embedding")
    if embedding:
        for stat in ("centroid_cosine_distance", "mmd2", "mmd_pvalue", "domain_auc"):
            score.labels(dataset, "embedding", stat).set(embedding[stat])
        feature_drift.labels(dataset, "embedding").set(1 if embedding["drift"] else 0)
    detected.labels(dataset).set(1 if report["drift"] else 0)
    rows.labels(dataset).set(report["rows"])
    return registry
