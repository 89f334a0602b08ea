"""Every error a user can cause is an LLMOpsError whose message says what to change (and, for the core's
validation of arguments, still a ValueError for code that catches that)."""

from __future__ import annotations

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
