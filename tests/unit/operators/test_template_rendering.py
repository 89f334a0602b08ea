"""Every template field of every operator really renders: for each (operator, field) the field is given a Jinja
expression over `params` and `render_template_fields` must replace it with the Param's value (a field listed in
`template_fields` but renamed or reset in `__init__` would keep the expression or lose the value). Values nested in
dict and list fields render too, and the arguments the DAG author owns (`gate`) are never rendered.
test_base_operator.py checks the field lists; this checks that they work."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest

import airflow_provider_llmops.operators as operators_package
from airflow_provider_llmops.operators.base import LLMOpsBaseOperator

# (module, class, the arguments every instance needs)
OPERATORS = [
    ("ingest", "IngestBatchOperator", {"source_uri": "x.jsonl", "dataset": "d"}),
    ("validate", "ValidateBatchOperator", {"dataset": "d", "snapshot_id": "s"}),
    ("drift", "DriftScoreOperator", {"dataset": "d"}),
    ("train", "FineTuneOperator", {}),
    ("evaluate", "EvaluateModelOperator", {}),
    ("promote", "PromoteModelOperator", {"evaluation": {}}),
    ("rollback", "RollbackModelOperator", {}),
    ("deploy", "DeployModelOperator", {}),
    ("sanity", "SanityCheckOperator", {"check": "freshness"}),
    ("sanity_report", "SanityReportOperator", {"checks": ["freshness"]}),
]


def _class(module: str, name: str) -> Any:
    return getattr(importlib.import_module(f"airflow_provider_llmops.operators.{module}"), name)


CASES = [
    pytest.param(module, name, kwargs, field, id=f"{name}.{field}")
    for module, name, kwargs in OPERATORS
    for field in _class(module, name).template_fields
]


def test_the_cases_cover_every_operator_of_the_package():
    found = set()
    for info in pkgutil.iter_modules(operators_package.__path__):
        module = importlib.import_module(f"airflow_provider_llmops.operators.{info.name}")
        found |= {
            obj.__name__
            for obj in vars(module).values()
            if isinstance(obj, type)
            and issubclass(obj, LLMOpsBaseOperator)
            and obj is not LLMOpsBaseOperator
            and obj.__module__ == module.__name__
        }
    assert found == {name for _, name, _ in OPERATORS}
    assert len(CASES) == sum(len(_class(m, n).template_fields) for m, n, _ in OPERATORS) >= 7 * 4


@pytest.mark.parametrize(("module", "name", "kwargs", "field"), CASES)
def test_each_template_field_renders_a_param(module: str, name: str, kwargs: dict[str, Any], field: str):
    op = _class(module, name)(task_id="t", **{**kwargs, field: "{{ params.value }}-{{ params.suffix }}"})
    assert getattr(op, field) == "{{ params.value }}-{{ params.suffix }}"  # kept as given until rendered
    op.render_template_fields({"params": {"value": f"rendered {field}", "suffix": 7}})
    assert getattr(op, field) == f"rendered {field}-7"


INGEST = ("ingest", "IngestBatchOperator", {"source_uri": "x", "dataset": "d"})
NESTED = {  # field: (operator, value with templates inside, the value rendered with n=3)
    "training": (
        ("train", "FineTuneOperator", {}),
        {"seed": "{{ params.n }}", "epochs": 2},
        {"seed": "3", "epochs": 2},
    ),
    "snapshots": (("train", "FineTuneOperator", {}), ["d/{{ params.n }}", "e/f"], ["d/3", "e/f"]),
    "evaluation": (("promote", "PromoteModelOperator", {}), {"key": "v{{ params.n }}"}, {"key": "v3"}),
    "gate_override": (
        ("promote", "PromoteModelOperator", {"evaluation": {}}),
        {"floors": {"x": "{{ params.n }}"}},
        {"floors": {"x": "3"}},
    ),
    "policy_override": (
        ("deploy", "DeployModelOperator", {}),
        {"min_requests": "{{ params.n }}"},
        {"min_requests": "3"},
    ),
    "column_map": (INGEST, {"body": "{{ params.n }}"}, {"body": "3"}),
    "metadata_columns": (INGEST, ["c{{ params.n }}"], ["c3"]),
}


@pytest.mark.parametrize("field", sorted(NESTED))
def test_values_nested_in_dict_and_list_fields_render(field: str):
    (module, name, kwargs), value, rendered = NESTED[field]
    op = _class(module, name)(task_id="t", **{**kwargs, field: value})
    op.render_template_fields({"params": {"n": 3}})
    assert getattr(op, field) == rendered


@pytest.mark.parametrize(
    ("module", "name"), [("promote", "PromoteModelOperator"), ("rollback", "RollbackModelOperator")]
)
def test_the_authors_gate_is_never_rendered(module: str, name: str):
    gate = {"floors": {"macro_f1": "{{ params.loose }}"}}
    kwargs = {"evaluation": {}} if name == "PromoteModelOperator" else {}
    op = _class(module, name)(task_id="t", gate=gate, **kwargs)
    op.render_template_fields({"params": {"loose": 0.0}})
    assert op.gate == {"floors": {"macro_f1": "{{ params.loose }}"}} and "gate" not in op.template_fields


def test_the_authors_canary_policy_is_never_rendered():
    policy = {"max_error_rate": "{{ params.loose }}"}
    op = _class("deploy", "DeployModelOperator")(task_id="t", policy=policy)
    op.render_template_fields({"params": {"loose": 0.9}})
    assert op.policy == {"max_error_rate": "{{ params.loose }}"} and "policy" not in op.template_fields


@pytest.mark.parametrize("native", [True, False], ids=["native", "text"])
def test_rendered_training_params_reach_the_train_config(native: bool):
    """The retrain DAG renders Params as native objects (a dict stays a dict, null stays None); a DAG that renders
    text gets JSON and "None" strings. Both end in the same TrainConfig."""
    from airflow.sdk import DAG

    from airflow_provider_llmops.operators.train import FineTuneOperator

    with DAG("render_probe", schedule=None, render_template_as_native_obj=native):
        op = FineTuneOperator(
            task_id="fine_tune",
            training="{{ params.training | tojson }}" if not native else "{{ params.training }}",
            max_steps="{{ params.max_steps }}",
            max_train_minutes="{{ params.max_train_minutes }}",
        )
    params = {"training": {"epochs": 1, "seed": 9}, "max_steps": None, "max_train_minutes": 2.5}
    op.render_template_fields({"params": params})
    assert isinstance(op.training, dict) is native and (op.max_steps is None) is native
    config = op._config()
    assert (config.epochs, config.seed, config.max_steps, config.max_train_minutes) == (1, 9, None, 2.5)
