"""Every error a user can cause is an LLMOpsError whose message says what to change (and, for the core's
validation of arguments, still a ValueError for code that catches that)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from airflow_provider_llmops.core.data.records import ColumnMapping
from airflow_provider_llmops.core.drift.statistics import DriftRules
from airflow_provider_llmops.core.governance.gate import GateSpec
from airflow_provider_llmops.errors import AuditError, ConfigurationError, LLMOpsError


@pytest.mark.parametrize(
    ("cause", "message"),
    [
        (lambda: GateSpec.from_dict({"floor": {"macro_f1": 0.9}}), "unknown GateSpec key"),
        (lambda: GateSpec.from_dict({"guards": {"accuracy": -1}}), r"guards\['accuracy'\] must be >= 0"),
        (lambda: GateSpec.from_dict({"fairness_unmeasured": "maybe"}), "must be one of pass, fail"),
        (lambda: DriftRules(statistic="wasserstein"), "statistic must be one of"),
        (lambda: DriftRules(mode="sometimes"), "mode must be both, fixed or calibrated"),
        (lambda: ColumnMapping.from_config({"a": "text", "b": "text"}), "map each canonical column once"),
    ],
)
def test_user_errors_are_configuration_errors_that_say_what_is_wrong(cause, message):
    with pytest.raises(ConfigurationError, match=message) as caught:
        cause()
    assert isinstance(caught.value, LLMOpsError) and isinstance(caught.value, ValueError)


def test_audit_errors_are_in_the_hierarchy():
    assert issubclass(AuditError, LLMOpsError)


# ------------------------------------------------------------------------------------------------------------------
# Errors converted to the hierarchy, each reached the way a user reaches it: a DAG's Asset URI, an operator argument,
# a rendered Param, a broken model file.


def test_a_wrong_mlflow_asset_uri_in_a_dag_is_a_configuration_error():
    from airflow.sdk import Asset

    with pytest.raises(ConfigurationError, match=r"mlflow://<tracking host>/models/<name>") as caught:
        Asset(name="champion", uri="mlflow://mlflow:5000/experiments/1")
    assert isinstance(caught.value, ValueError)  # what Airflow expects from a URI check
    assert "use champion_asset(model_name, tracking_host)" in str(caught.value)
    assert Asset(name="ok", uri="mlflow://mlflow:5000/models/router").uri == "mlflow://mlflow:5000/models/router"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_group_size": 0}, r"min_group_size must be an integer >= 1 \(the fewest rows .*\), got 0"),
        ({"min_group_size": "30"}, r"min_group_size must be an integer >= 1 .*got '30'"),
        ({"min_group_size": True}, r"min_group_size must be an integer >= 1 .*got True"),
        ({"latency_sample": -1}, r"latency_sample must be an integer >= 0 \(how many examples .*; 0: none\), got -1"),
    ],
)
def test_evaluate_counts_are_refused_when_the_dag_is_built(kwargs: dict[str, Any], message: str):
    from airflow_provider_llmops.operators.evaluate import EvaluateModelOperator

    with pytest.raises(ConfigurationError, match=message):
        EvaluateModelOperator(task_id="evaluate", **kwargs)
    assert EvaluateModelOperator(task_id="evaluate", latency_sample=0, min_group_size=1).latency_sample == 0


def test_the_fairness_metric_refuses_a_bad_min_group_size_as_a_configuration_error():
    from airflow_provider_llmops.core.model.evaluation import group_gap

    with pytest.raises(ConfigurationError, match=r"min_group_size must be a positive integer .*got 0; .*default is 30"):
        group_gap(["a"], ["a"], {"region": ["EU"]}, ["a"], min_group_size=0)


def test_a_model_that_outputs_nan_is_a_model_output_error_that_says_to_retrain(monkeypatch: pytest.MonkeyPatch):
    """What evaluate reaches with a model whose training diverged (NaN weights give NaN probabilities)."""
    from airflow_provider_llmops.core.model import evaluate_job, modeling
    from airflow_provider_llmops.errors import ModelOutputError

    class Diverged:
        labels = ["billing", "technical"]

        def predict_proba(self, texts: list[str]) -> np.ndarray:
            out = np.full((len(texts), 2), 0.5)
            out[1:] = np.nan
            return out

        def latencies(self, texts: list[str]) -> list[float]:
            return [0.001] * len(texts)

    monkeypatch.setattr(modeling, "load_classifier", lambda *a, **k: Diverged())
    rows = [{"text": f"ticket {i}", "label": "billing", "_part": "golden"} for i in range(3)]
    with pytest.raises(ModelOutputError, match=r"not finite \(NaN or infinite\) for 2 of 3 rows.*retrain") as caught:
        evaluate_job._score_classifier(Path("unused"), rows, ["billing", "technical"], "text", "label", 3, 30)
    assert isinstance(caught.value, LLMOpsError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"PSI": 0.3}, r"unknown statistic\(s\) \['PSI'\]: use psi, js, kl, kl_symmetric, e.g. thresholds="),
        ({"psi": "0.3"}, r"thresholds\['psi'\] must be a non-negative number, got '0.3'"),
        ({"js": -0.1}, r"thresholds\['js'\] must be a non-negative number, got -0.1"),
        ({"kl": float("nan")}, r"thresholds\['kl'\] must be a non-negative number"),
        ("psi=0.3", r"thresholds must be a dict of statistic name -> fixed threshold"),
    ],
)
def test_drift_thresholds_are_checked_when_the_dag_is_built(thresholds: Any, message: str):
    from airflow_provider_llmops.operators.drift import DriftScoreOperator

    with pytest.raises(ConfigurationError, match=message):
        DriftScoreOperator(task_id="drift", dataset="tickets", thresholds=thresholds)
    assert DriftScoreOperator(task_id="drift", dataset="tickets", thresholds={"psi": 0.25}).thresholds == {"psi": 0.25}


@pytest.fixture
def no_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Operators get a local store under tmp_path and a registry that must not matter."""
    from airflow_provider_llmops.operators import _common

    monkeypatch.setenv("AIRFLOW__LLMOPS__STORE_URI", str(tmp_path / "store"))
    monkeypatch.setattr(_common, "open_registry", lambda *a, **k: SimpleNamespace(tracking_uri="sqlite:///unused"))
    return tmp_path


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"training": '{"epochs": "two"}'}, r"training has a value of the wrong type .*give numbers for epochs"),
        ({"training": "[1, 2]"}, r"training must be a dict of TrainConfig fields, e.g. "),
        ({"max_steps": "twelve"}, r"max_steps must be a whole number of optimizer steps .*got max_steps='twelve'"),
        ({"max_train_minutes": "soon"}, r"max_train_minutes a number of minutes .*max_train_minutes='soon'"),
        ({"snapshots": ""}, r"no validated snapshot of dataset 'tickets' .*ingest and validate a batch of it first"),
        (
            {"snapshots": "tickets/" + "ab" * 8},
            r"snapshot tickets/abababababababab does not exist .*dataset/snapshot_id",
        ),
    ],
)
def test_fine_tune_arguments_rendered_from_params_fail_with_what_to_change(
    no_registry: Path, kwargs: dict[str, Any], message: str
):
    from airflow_provider_llmops.operators.train import FineTuneOperator

    op = FineTuneOperator(task_id="fine_tune", dataset="tickets", **kwargs)
    with pytest.raises(ConfigurationError, match=message):
        op.execute(context={})
