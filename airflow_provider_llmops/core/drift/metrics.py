"""Prometheus metrics: drift gauges, pushed to a Pushgateway when one is configured and written as a
node-exporter textfile. Failing to push is logged, never raised: metrics must not break the pipeline."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


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


def export(
    registry: Any, *, job: str, grouping: dict[str, str], pushgateway_url: str | None, textfile: Path | None
) -> dict[str, Any]:
    """Push to the Pushgateway (if configured) and write a textfile (if a path is given). Returns what happened."""
    from prometheus_client import push_to_gateway, write_to_textfile

    outcome: dict[str, Any] = {"pushed": False, "textfile": None}
    if textfile is not None:
        textfile.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(textfile), registry)
        outcome["textfile"] = str(textfile)
    if pushgateway_url:
        try:
            push_to_gateway(pushgateway_url, job=job, grouping_key=grouping, registry=registry, timeout=10)
            outcome["pushed"] = True
        except Exception as exc:  # an unreachable gateway must not fail the task
            log.warning("could not push metrics to %s: %s", pushgateway_url, exc)
            outcome["error"] = str(exc)
    return outcome
