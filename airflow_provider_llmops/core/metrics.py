"""Prometheus metrics of the batch tasks: one registry per push, pushed to a Pushgateway (`[llmops]
pushgateway_url`) as one group (job + grouping key) and written as a node-exporter textfile. Failing to push is
logged, never raised: metrics must not break the pipeline.

The series (gauges; include/prometheus/rules/ and include/grafana/dashboards/ read them):

* validate (job `llmops_validation`, grouping {dataset}): `llmops_validation_success{dataset, suite}` (1 passed,
  0 failed), `llmops_validation_failed_expectations{dataset, suite}`,
  `llmops_validation_last_run_timestamp_seconds{dataset}`
* evaluate (job `llmops_evaluation`, grouping {model, version}): `llmops_model_evaluation_metric{model, version,
  metric}` (every finite number of the challenger's metrics), `llmops_model_evaluation_timestamp_seconds{model,
  version}`
* deploy (job `llmops_deploy`, grouping {model}): `llmops_canary_decision_timestamp_seconds{model, version,
  decision}` (decision `promoted` or `rolled_back`; the group holds the model's last decision only)
* nightly sanity (job `llmops_sanity`): `llmops_sanity_check_ok{check}` (1 passed, 0 failed),
  `llmops_sanity_last_run_timestamp_seconds`
* DAG runs (job `llmops_pipeline`, grouping {dag_id}): `llmops_pipeline_last_success_timestamp_seconds{dag_id}`
  with `llmops_pipeline_max_age_seconds{dag_id}` (when the DAG has one), or
  `llmops_pipeline_last_failure_timestamp_seconds{dag_id}`; pushed with `replace_group=False` (POST), so a failure
  keeps the last success in the group and the other way round.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DECISIONS = ("promoted", "rolled_back")


def _registry_with(*gauges: tuple[str, str, Iterable[str]]) -> tuple[Any, list[Any]]:
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    return registry, [Gauge(name, doc, list(labels), registry=registry) for name, doc, labels in gauges]


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def validation_registry(
    dataset: str, suite: str, success: bool, failed_expectations: int, now: float | None = None
) -> Any:
    registry, (ok, failed, last) = _registry_with(
        ("llmops_validation_success", "1 when the last snapshot passed its suite", ("dataset", "suite")),
        ("llmops_validation_failed_expectations", "Expectations the last snapshot failed", ("dataset", "suite")),
        ("llmops_validation_last_run_timestamp_seconds", "When the last validation ran (Unix time)", ("dataset",)),
    )
    ok.labels(dataset, suite).set(1 if success else 0)
    failed.labels(dataset, suite).set(failed_expectations)
    last.labels(dataset).set(_now(now))
    return registry


def evaluation_registry(model: str, version: str, metrics: Mapping[str, Any], now: float | None = None) -> Any:
    """Every finite number in `metrics` (e.g. accuracy, macro_f1, `<part>.macro_f1`); other values are left out."""
    registry, (metric, last) = _registry_with(
        ("llmops_model_evaluation_metric", "Evaluation metric of a model version", ("model", "version", "metric")),
        (
            "llmops_model_evaluation_timestamp_seconds",
            "When the version was evaluated (Unix time)",
            ("model", "version"),
        ),
    )
    for name, value in sorted(metrics.items()):
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            metric.labels(model, str(version), name).set(value)
    last.labels(model, str(version)).set(_now(now))
    return registry


def canary_decision_registry(model: str, version: str, decision: str, now: float | None = None) -> Any:
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
    registry, (decided,) = _registry_with(
        (
            "llmops_canary_decision_timestamp_seconds",
            "When the model's last canary was promoted or rolled back (Unix time)",
            ("model", "version", "decision"),
        ),
    )
    decided.labels(model, str(version), decision).set(_now(now))
    return registry


def sanity_registry(checks: Mapping[str, bool], now: float | None = None) -> Any:
    registry, (ok, last) = _registry_with(
        ("llmops_sanity_check_ok", "1 when the nightly sanity check passed", ("check",)),
        ("llmops_sanity_last_run_timestamp_seconds", "When the nightly sanity run finished (Unix time)", ()),
    )
    for check, passed in sorted(checks.items()):
        ok.labels(check).set(1 if passed else 0)
    last.set(_now(now))
    return registry


def pipeline_run_registry(
    dag_id: str, succeeded: bool, max_age_s: float | None = None, now: float | None = None
) -> Any:
    outcome = "success" if succeeded else "failure"
    gauges = [(f"llmops_pipeline_last_{outcome}_timestamp_seconds", f"Last DAG run {outcome} (Unix time)", ("dag_id",))]
    if succeeded and max_age_s:
        gauges.append(("llmops_pipeline_max_age_seconds", "Longest time allowed without a success", ("dag_id",)))
    registry, made = _registry_with(*gauges)
    made[0].labels(dag_id).set(_now(now))
    if len(made) > 1:
        made[1].labels(dag_id).set(max_age_s)
    return registry


def export(
    registry: Any,
    *,
    job: str,
    grouping: dict[str, str],
    pushgateway_url: str | None,
    textfile: Path | None,
    replace_group: bool = True,
) -> dict[str, Any]:
    """Push to the Pushgateway (if configured) and write a textfile (if a path is given). Returns what happened.
    `replace_group`: PUT (the group's metrics are replaced) or POST (only metrics of the same names are)."""
    from prometheus_client import push_to_gateway, pushadd_to_gateway, write_to_textfile

    outcome: dict[str, Any] = {"pushed": False, "textfile": None}
    if textfile is not None:
        textfile.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(textfile), registry)
        outcome["textfile"] = str(textfile)
    if pushgateway_url:
        push = push_to_gateway if replace_group else pushadd_to_gateway
        try:
            push(pushgateway_url, job=job, grouping_key=grouping, registry=registry, timeout=10)
            outcome["pushed"] = True
        except Exception as exc:  # an unreachable gateway must not fail the task
            log.warning("could not push metrics to %s: %s", pushgateway_url, exc)
            outcome["error"] = str(exc)
    return outcome
