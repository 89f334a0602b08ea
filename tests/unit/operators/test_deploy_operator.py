"""DeployModelOperator end to end without a scheduler: execute -> TaskDeferred -> the real trigger (rebuilt from
serialize(), against a real HTTP stand-in of the service, tests/unit/fake_service.py) -> execute_complete, on a
real SQLite MLflow registry and audit trail; the reload call carries an admin token minted with the local key and
checked by the service's own verifier. The lineage facet is validated against its schema and the official spec."""

from __future__ import annotations

import asyncio
import importlib
import json
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_llmops.core.governance.deploy_job import CanaryRejected, PolicyOverrideRefused
from airflow_provider_llmops.core.model.contract import (
    CANARY,
    CANDIDATE,
    CHAMPION,
    PREVIOUS,
    TAG_CANARY_REJECTED,
    TAG_GATE,
)
from airflow_provider_llmops.core.model.registry import ModelRegistry
from tests.openlineage_spec import validate_event
from tests.unit.core.test_promote_job import World
from tests.unit.fake_service import FakeService

POLICY = {
    "step_weights": [0.25, 0.5, 1.0], "analysis_interval_s": 0.1, "min_requests": 20, "max_error_rate": 0.05,
    "max_p95_latency_ms": 200.0, "max_disagreement": 0.2, "failure_threshold": 1, "progress_deadline_s": 5.0,
}  # fmt: skip
MAX_DEFERRALS = 10


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    ModelRegistry(uri, artifact_root=str(root / "artifacts")).ensure_model("warmup")
    return uri


@pytest.fixture
def world(registry_uri: str, tmp_path: Path) -> World:
    w = World(registry_uri, tmp_path)
    w.registry.compare_and_swap(w.name, {}, {CHAMPION: "1", CANDIDATE: "2"})
    w.registry.tag_version(w.name, "2", {TAG_GATE: "passed"})
    return w


def context(run_id: str = "asset__1", try_number: int = 1) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="llmops_deploy", run_id=run_id, task_id="deploy", try_number=try_number)
    return {"ti": ti}


def operator(world: World, url: str, **kwargs: Any) -> Any:
    from airflow_provider_llmops.operators.deploy import DeployModelOperator

    op = DeployModelOperator(task_id="deploy", model_name=world.name, policy=POLICY, serve_url=url, **kwargs)
    op.registry = world.registry  # the cached resources, pointed at this test's registry and trail
    op.audit = world.audit
    return op


def drive(op: Any, ctx: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Run the operator as Airflow would: each deferral's trigger rebuilt from serialize() and its kwargs through
    JSON (what the metadata DB keeps), then the resume method. Returns (result, trigger kwargs of each step)."""
    from airflow.sdk.exceptions import TaskDeferred

    triggers: list[dict[str, Any]] = []
    try:
        return op.execute(ctx), triggers
    except TaskDeferred as deferred:
        current = deferred
    for _ in range(MAX_DEFERRALS):
        classpath, kwargs = current.trigger.serialize()
        triggers.append(kwargs)
        module, name = classpath.rsplit(".", 1)
        trigger = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))

        async def first(t: Any = trigger) -> Any:
            async for event in t.run():
                return event
            raise AssertionError("no event")

        event = asyncio.run(asyncio.wait_for(first(), 15))
        resume = json.loads(json.dumps(current.kwargs or {}))  # the state rides in the event (dag.test drops kwargs)
        try:
            return getattr(op, current.method_name)(ctx, event=event.payload, **resume), triggers
        except TaskDeferred as again:
            current = again
    raise AssertionError(f"more than {MAX_DEFERRALS} deferrals")


def validated_facet(op: Any) -> dict[str, Any]:
    from openlineage.client.serde import Serde

    lineage = op.get_openlineage_facets_on_complete(None)
    facet = json.loads(Serde.to_json(lineage.run_facets["llmopsDeployment"]))
    facet["_producer"] = "https://github.com/airflow-provider-llmops/airflow-provider-llmops"
    event = {
        "eventType": "COMPLETE", "eventTime": "2026-11-27T08:00:00Z", "producer": facet["_producer"],
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4()), "facets": {"llmopsDeployment": facet}},
        "job": {"namespace": "llmops", "name": "llmops_deploy.deploy"},
        "inputs": [json.loads(Serde.to_json(d)) for d in lineage.inputs],
        "outputs": [json.loads(Serde.to_json(d)) for d in lineage.outputs],
    }  # fmt: skip
    assert validate_event(event) == ["llmopsDeployment"]
    return {**facet, "outputs": event["outputs"]}


@pytest.fixture
def home() -> Path:
    from airflow_provider_llmops.settings import load_settings

    return load_settings().home


def test_a_healthy_canary_is_promoted_step_by_step_without_holding_a_worker(world: World, home: Path):
    service = FakeService(world.registry, world.name, home, per_scrape=100)
    try:
        result, triggers = drive(operator(world, service.url + "/"), context())
    finally:
        service.stop()
    assert [t["share"] for t in triggers] == [0.25, 0.5, 1.0]  # one deferral per step
    assert result["decision"] == "promoted" and result["champion"] == "2" and result["announce"] is True
    assert [s["status"] for s in result["steps"]] == ["passed", "passed", "passed"]
    assert world.registry.aliases(world.name) == {CHAMPION: "2", PREVIOUS: "1"}
    assert len(service.reloads) == 4 and all(s.startswith("airflow:") for s in service.reloads)  # authorised
    assert len(world.events("model.canary_started")) == len(world.events("model.deployed")) == 1
    facet = validated_facet(_operator_after(world, service.url, result))
    assert facet["decision"] == "promoted" and [s["share"] for s in facet["steps"]] == [0.25, 0.5, 1.0]
    assert facet["steps"][0]["checks"][2] == {
        "name": "error_rate", "value": 0.0, "bound": 0.05, "passed": True, "enoughData": True,
        "detail": facet["steps"][0]["checks"][2]["detail"],
    }  # fmt: skip
    assert facet["outputs"][0]["name"] == f"models/{world.name}/versions/2"


def _operator_after(world: World, url: str, result: dict[str, Any]) -> Any:
    op = operator(world, url)
    op._set_lineage({"steps": result["steps"], "policy_override": result["policy_override"]}, result)
    return op


@pytest.mark.parametrize(("behaviour", "failing"), [({"error_rate": 0.5}, "error_rate"), ({"loads": False}, "loaded")])
def test_a_bad_canary_is_rolled_back_then_the_task_fails(
    world: World, home: Path, behaviour: dict[str, Any], failing: str
):
    service = FakeService(world.registry, world.name, home, per_scrape=100, **behaviour)
    op = operator(world, service.url)
    try:
        with pytest.raises(CanaryRejected, match=r"rolled back: step 1 \(25%\) failed") as caught:
            drive(op, context())
    finally:
        service.stop()
    assert caught.value.failing[0]["name"] == failing
    assert world.registry.aliases(world.name) == {CHAMPION: "1"}  # cleaned up before the task failed
    assert json.loads(world.registry.get_version(world.name, "2").tags[TAG_CANARY_REJECTED])["failing"]
    facet = validated_facet(op)
    assert facet["decision"] == "rolled_back" and facet["failingChecks"] == [failing] and facet["outputs"] == []
    with pytest.raises(CanaryRejected):  # a retry of the task: the verdict stands, nothing is redeployed
        drive(operator(world, service.url), context(try_number=2))
    assert len(world.events("model.canary_rejected")) == 1


def test_a_looser_policy_param_is_refused_before_anything_changes(world: World):
    op = operator(world, "http://127.0.0.1:9", policy_override={"max_error_rate": 0.5})
    with pytest.raises(PolicyOverrideRefused, match="max_error_rate 0.05 -> 0.5"):
        op.execute(context())
    assert world.registry.aliases(world.name) == {CHAMPION: "1", CANDIDATE: "2"}


def test_an_allowed_looser_policy_is_applied_and_audited(world: World, home: Path):
    service = FakeService(world.registry, world.name, home, per_scrape=100, error_rate=0.1)
    op = operator(world, service.url, policy_override='{"max_error_rate": 0.2}', allow_policy_override=True)
    try:
        result, _ = drive(op, context())
    finally:
        service.stop()
    assert result["decision"] == "promoted" and result["policy"]["max_error_rate"] == 0.2
    (record,) = world.events("model.policy_override")
    assert record["data"]["fields"] == [{"field": "max_error_rate", "from": 0.05, "to": 0.2}]
    assert validated_facet(_operator_after(world, service.url, result))["policyOverride"]["applied"] is True


def test_no_service_configured_is_a_configuration_error(world: World, monkeypatch: pytest.MonkeyPatch):
    from airflow_provider_llmops.errors import ConfigurationError

    monkeypatch.delenv("AIRFLOW__LLMOPS__SERVE_URL", raising=False)
    with pytest.raises(ConfigurationError, match=r"set \[llmops\] serve_url"):
        operator(world, None).execute(context())
    with pytest.raises(ConfigurationError, match="http"):
        operator(world, "file:///etc/passwd").execute(context())
    assert world.registry.aliases(world.name) == {CHAMPION: "1", CANDIDATE: "2"}
    assert CANARY not in world.registry.aliases(world.name)


def test_the_deploy_dag_is_scheduled_on_the_candidate_and_bounds_its_params():
    from airflow.sdk import Param

    from airflow_provider_llmops.dags.deploy import build_deploy_dag

    dag = build_deploy_dag(model_name="router", policy={"max_error_rate": 0.02}, on_rollback=lambda ctx: None)
    assert "llmops_candidate_router" in repr(dag.timetable.asset_condition)
    task = dag.get_task("deploy")
    assert task.pool == "llmops_registry" and task.model_name == "router" and set(dag.params) == {"policy"}
    assert [o.name for o in task.outlets] == ["llmops_champion"] and len(task.on_failure_callback) == 1
    schema = dag.params.get_param("policy").schema
    for bad in ({"max_error_rate": 2}, {"min_requests": 0}, {"step_weights": [0]}, {"model_name": "other"}):
        with pytest.raises(Exception, match="validat|Invalid|not valid"):
            Param(bad, **schema).resolve()
    assert Param({"max_error_rate": 0.01}, **schema).resolve() == {"max_error_rate": 0.01}
