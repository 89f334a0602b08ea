"""LLMOpsBaseOperator: every operator derives from it, templates the common arguments and its own user-facing ones,
and shares one set of Param coercions and one lineage attribute."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from airflow_provider_llmops.errors import ConfigurationError
from airflow_provider_llmops.operators.base import LLMOpsBaseOperator, as_float, as_int, as_json, as_optional

COMMON = {"store_uri", "store_conn_id", "mlflow_conn_id"}

# (module, class, arguments to build it, its own user-facing template fields)
OPERATORS = [
    ("ingest", "IngestBatchOperator", {"source_uri": "x.jsonl", "dataset": "d"}, {"source_uri", "dataset"}),
    ("validate", "ValidateBatchOperator", {"dataset": "d", "snapshot_id": "s"}, {"dataset", "snapshot_id", "suite"}),
    ("drift", "DriftScoreOperator", {"dataset": "d"}, {"dataset", "snapshot_id", "model_name"}),
    ("train", "FineTuneOperator", {}, {"model_name", "dataset", "snapshots", "training"}),
    ("evaluate", "EvaluateModelOperator", {}, {"model_name", "challenger_version", "golden_path"}),
    ("promote", "PromoteModelOperator", {"evaluation": {}}, {"evaluation", "gate_override"}),
    ("rollback", "RollbackModelOperator", {}, {"model_name", "target_version", "reason"}),
]


def _class(module: str, name: str) -> Any:
    return getattr(importlib.import_module(f"airflow_provider_llmops.operators.{module}"), name)


@pytest.mark.parametrize(("module", "name", "kwargs", "own"), OPERATORS, ids=[o[1] for o in OPERATORS])
def test_every_operator_derives_from_the_base_and_templates_common_and_own_fields(
    module: str, name: str, kwargs: dict[str, Any], own: set[str]
):
    cls = _class(module, name)
    assert issubclass(cls, LLMOpsBaseOperator)
    fields = set(cls.template_fields)
    assert COMMON <= fields and own <= fields, sorted(COMMON | own - fields)
    assert len(cls.template_fields) == len(fields)  # no field twice
    assert "get_openlineage_facets_on_failure" not in vars(cls)  # the OpenLineage provider falls back to on_complete
    op = cls(task_id="t", store_uri="s3://bucket/store", store_conn_id="s3c", **kwargs)
    assert (op.store_uri, op.store_conn_id, op._lineage) == ("s3://bucket/store", "s3c", {})
    assert cls.get_openlineage_facets_on_complete.__annotations__["return"] == "OperatorLineage"


def test_rendered_common_arguments_reach_the_store_and_registry(monkeypatch: pytest.MonkeyPatch):
    from airflow_provider_llmops.operators import _common
    from airflow_provider_llmops.operators.evaluate import EvaluateModelOperator

    opened: list[tuple[str, Any]] = []
    monkeypatch.setattr(_common, "open_store", lambda uri, conn: opened.append(("store", (uri, conn))) or "STORE")
    monkeypatch.setattr(_common, "open_registry", lambda conn: opened.append(("registry", conn)) or "REGISTRY")
    op = EvaluateModelOperator(
        task_id="t", store_uri="{{ params.store }}", store_conn_id="{{ params.conn }}", mlflow_conn_id="None"
    )
    op.render_template_fields({"params": {"store": "s3://b/s", "conn": "c1"}})
    assert op.store == "STORE" and op.store is op.store and op.registry == "REGISTRY"
    assert opened == [("store", ("s3://b/s", "c1")), ("registry", None)]  # once each; "None" renders to no id


def test_store_falls_back_to_settings(monkeypatch: pytest.MonkeyPatch):
    from types import SimpleNamespace

    from airflow_provider_llmops.operators import _common
    from airflow_provider_llmops.operators.validate import ValidateBatchOperator

    monkeypatch.setattr(_common, "open_store", lambda uri, conn: (uri, conn))
    op = ValidateBatchOperator(task_id="t", dataset="d", snapshot_id="s", store_uri="", store_conn_id="None")
    op.settings = SimpleNamespace(store_uri="/default/store", store_conn_id="default_conn")  # type: ignore[misc]
    assert op.store == ("/default/store", "default_conn")


def test_audit_is_anchored_on_the_operators_model(monkeypatch: pytest.MonkeyPatch):
    from types import SimpleNamespace

    from airflow_provider_llmops.operators import _common
    from airflow_provider_llmops.operators.promote import PromoteModelOperator
    from airflow_provider_llmops.operators.rollback import RollbackModelOperator

    monkeypatch.setattr(_common, "open_audit", lambda settings, registry, model_name: (registry, model_name))
    monkeypatch.setattr(_common, "open_registry", lambda conn: "REGISTRY")
    settings = SimpleNamespace(model_name="default_model")
    rollback = RollbackModelOperator(task_id="t")
    rollback.settings = settings  # type: ignore[misc]
    assert rollback.audit == ("REGISTRY", "default_model")
    promote = PromoteModelOperator(task_id="t", evaluation={})
    promote.settings = settings  # type: ignore[misc]
    assert promote.audit == ("REGISTRY", None)  # promote anchors on the model each record names


@pytest.mark.parametrize("value", [None, "", "None"])
def test_unset_param_values_are_none(value: Any):
    assert as_optional(value) is None and as_int(value) is None and as_float(value) is None
    assert LLMOpsBaseOperator.as_optional(value) is None


def test_numbers_from_rendered_text():
    assert as_int("12") == 12 and as_int(7) == 7 and as_float("2.5") == 2.5 and as_float(3) == 3.0
    assert as_optional("v3") == "v3" and as_optional(0) == 0
    with pytest.raises(ValueError):
        as_int("twelve")


def test_json_text_becomes_a_dict_and_other_values_pass_through():
    assert as_json('{"a": 1}', "gate") == {"a": 1}
    assert as_json("  ", "gate") is None
    value = {"a": 1}
    assert as_json(value, "gate") is value and as_json(None, "gate") is None
    with pytest.raises(ConfigurationError, match="column_map is not a JSON object"):
        as_json("{not json", "column_map")
