"""Governance at the operator and DAG level, without training: a run-time gate only tightens unless the DAG allows
overrides; registry-changing tasks run in the registry pool; the rollback reason is required; the golden set is
per model and by configuration; `llmops_retrain` follows `[llmops] model_name` / `dataset`."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_llmops.core.governance.gate import GateOverrideRefused
from airflow_provider_llmops.resources import sample_data_dir

REFERENCE = {"model_name": "m", "key": "v2-vs-v1-abc", "report_uri": "file:///x", "report_sha256": "0" * 64}


def test_a_looser_gate_param_is_refused_before_anything_is_touched(monkeypatch: pytest.MonkeyPatch):
    from airflow_provider_llmops.operators import _common
    from airflow_provider_llmops.operators.promote import PromoteModelOperator

    monkeypatch.setattr(_common, "open_registry", lambda *a, **k: pytest.fail("the registry must not be opened"))
    looser = {"floors": {"macro_f1": 0.0}, "max_fairness_gap": None}
    gate = {"floors": {"macro_f1": 0.6}}
    op = PromoteModelOperator(task_id="promote", evaluation=REFERENCE, gate=gate, gate_override=looser)
    with pytest.raises(GateOverrideRefused, match=r"floors.macro_f1 0.6 -> 0.0; max_fairness_gap 0.25 -> None"):
        op.execute(context={})
    assert "gate" not in PromoteModelOperator.template_fields  # the author's gate cannot come from a template


def test_a_stricter_gate_param_needs_no_opt_in():
    from airflow_provider_llmops.operators.promote import _resolve

    resolved = _resolve({"floors": {"macro_f1": 0.6}}, '{"floors": {"macro_f1": 0.7}, "max_latency_p95_ms": 50}', False)
    assert resolved.loosened == [] and resolved.spec.floors["macro_f1"] == 0.7
    assert resolved.spec.max_latency_p95_ms == 50.0
    allowed = _resolve({}, {"floors": {"macro_f1": 0.0}}, True)
    assert allowed.loosened == [{"field": "floors.macro_f1", "from": 0.5, "to": 0.0}]


@pytest.mark.parametrize(
    ("model", "golden_path", "expected"),
    [
        ("support_ticket_router", None, str(sample_data_dir() / "golden.jsonl")),  # the embedded default's mapping
        ("package_classifier", None, None),  # another model never gets the ticket golden set
        ("support_ticket_router", "", None),  # explicitly none
        ("package_classifier", "/data/pkg_golden.jsonl", "/data/pkg_golden.jsonl"),
    ],
)
def test_the_golden_set_is_per_model_and_optional(
    monkeypatch: pytest.MonkeyPatch, model: str, golden_path: str | None, expected: str | None
):
    from airflow_provider_llmops.core.model import evaluate_job
    from airflow_provider_llmops.operators import _common
    from airflow_provider_llmops.operators.evaluate import EvaluateModelOperator

    seen: dict[str, Any] = {}

    def fake_evaluate(**kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs)
        return {"model_name": kwargs["model_name"], "challenger_version": "1", "mlflow_run_id": None}

    registry = SimpleNamespace(tracking_uri="sqlite:///x", version_url=lambda *a: None)
    monkeypatch.setattr(evaluate_job, "evaluate", fake_evaluate)
    monkeypatch.setattr(_common, "open_registry", lambda *a, **k: registry)
    monkeypatch.setattr(_common, "open_store", lambda *a, **k: None)
    EvaluateModelOperator(task_id="evaluate", model_name=model, golden_path=golden_path).execute(context={})
    assert seen["golden_path"] == expected


def test_registry_changing_tasks_run_in_the_registry_pool(monkeypatch: pytest.MonkeyPatch):
    from airflow_provider_llmops.dags.retrain import build_retrain_dag
    from airflow_provider_llmops.dags.rollback import build_rollback_dag

    retrain = build_retrain_dag()
    assert retrain.get_task("fine_tune").pool == retrain.get_task("promote").pool == "llmops_registry"
    assert retrain.get_task("evaluate").pool == "default_pool"  # scoring does not change the registry
    assert build_rollback_dag().get_task("rollback").pool == "llmops_registry"
    monkeypatch.setenv("AIRFLOW__LLMOPS__REGISTRY_POOL", "mlops_serial")
    assert build_retrain_dag().get_task("promote").pool == "mlops_serial"
    assert build_retrain_dag(train_pool="gpu").get_task("fine_tune").pool == "gpu"


def test_the_retrain_dag_follows_the_configured_model_and_dataset(monkeypatch: pytest.MonkeyPatch):
    from airflow_provider_llmops.dags.retrain import build_retrain_dag

    monkeypatch.setenv("AIRFLOW__LLMOPS__MODEL_NAME", "package_classifier")
    monkeypatch.setenv("AIRFLOW__LLMOPS__DATASET", "packages")
    dag = build_retrain_dag()
    assert dag.params["model_name"] == "package_classifier" and dag.params["dataset"] == "packages"
    assert "llmops_retrain_requested_packages" in repr(dag.timetable.asset_condition)
    explicit = build_retrain_dag("r2", model_name="m2", dataset="d2")
    assert explicit.params["model_name"] == "m2" and explicit.params["dataset"] == "d2"
    promote = dag.get_task("promote")
    assert promote.gate == {} and promote.gate_override == "{{ params.gate }}" and promote.allow_gate_override is False
    assert build_retrain_dag("r3", allow_gate_override=True).get_task("promote").allow_gate_override is True


def test_the_rollback_reason_is_required(monkeypatch: pytest.MonkeyPatch):
    from airflow.sdk.definitions.param import ParamValidationError

    from airflow_provider_llmops.dags.rollback import build_rollback_dag

    monkeypatch.setenv("AIRFLOW__LLMOPS__MODEL_NAME", "package_classifier")
    dag = build_rollback_dag()
    reason = dag.params.get_param("reason")
    with pytest.raises(ParamValidationError):
        reason.resolve()
    with pytest.raises(ParamValidationError, match="too short"):
        reason.resolve("because")
    assert reason.resolve("canary error rate above 2%") == "canary error rate above 2%"
    assert dag.params["model_name"] == "package_classifier"


def test_the_embedded_default_creates_the_registry_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from airflow_provider_llmops import embedded

    calls: list[list[str]] = []
    monkeypatch.setattr(embedded.subprocess, "run", lambda command, **kwargs: calls.append(list(command)))
    embedded.prepare(tmp_path, {})
    assert calls[-1][-5:-1] == ["pools", "set", "llmops_registry", "1"] and calls[-1][-1].startswith("llmops")
