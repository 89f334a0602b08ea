"""llmops_deploy runs for real under dag.test() (the deferrable operator and its trigger included) against a real
HTTP stand-in of the service (tests/unit/fake_service.py) and the embedded SQLite registry: a healthy canary becomes
champion and is announced; a bad one is rolled back, the task fails after the cleanup and the DAG's rollback
notifier fires. Every lineage event validates, with the llmopsDeployment facet."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dagrun import run_dag
from tests.openlineage_spec import validate_event
from tests.unit.fake_service import FakeService

pytestmark = [pytest.mark.integration]

DAG_FILE = """
from pathlib import Path

from airflow_provider_llmops.dags.deploy import build_deploy_dag


def on_rollback(context):
    Path({marker!r}).write_text(str(context["ti"].task_id))


dag = build_deploy_dag(
    {dag_id!r},
    model_name={model!r},
    serve_url={url!r},
    policy={policy!r},
    on_rollback=[on_rollback],
)
"""
POLICY = {
    "step_weights": [0.5, 1.0], "analysis_interval_s": 0.2, "min_requests": 20, "max_error_rate": 0.05,
    "max_p95_latency_ms": 200.0, "max_disagreement": 0.2, "failure_threshold": 1, "progress_deadline_s": 20.0,
}  # fmt: skip


@pytest.fixture
def deployable(airflow_db: Path) -> Any:
    """A model with v1 champion and v2 candidate (gate passed) in the embedded registry; a DAG file per test."""
    from airflow_provider_llmops.core.model.contract import CANDIDATE, CHAMPION, TAG_GATE
    from airflow_provider_llmops.operators._common import open_registry

    registry = open_registry()
    registry.settle_s = 0.0
    name = f"router_deploy_{uuid.uuid4().hex[:8]}"
    registry.ensure_model(name)
    source = airflow_db / "incoming" / "dummy_model"
    source.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        registry.client.create_model_version(name, source=str(source), run_id=None)
    registry.compare_and_swap(name, {}, {CHAMPION: "1", CANDIDATE: "2"})
    registry.tag_version(name, "2", {TAG_GATE: "passed"})
    written: list[Path] = []

    def dag_for(service: FakeService) -> tuple[str, Path]:
        dag_id = f"llmops_deploy_{uuid.uuid4().hex[:6]}"
        marker = airflow_db / "incoming" / f"{dag_id}.rolled_back"
        path = airflow_db / "dags" / f"{dag_id}.py"
        path.write_text(DAG_FILE.format(marker=str(marker), dag_id=dag_id, model=name, url=service.url, policy=POLICY))
        written.append(path)
        return dag_id, marker

    yield registry, name, dag_for
    for path in written:
        path.unlink()


def test_a_healthy_canary_is_rolled_out_by_the_dag(deployable: Any, airflow_db: Path):
    registry, name, dag_for = deployable
    service = FakeService(registry, name, airflow_db, per_scrape=100)
    try:
        dag_id, marker = dag_for(service)
        outcome = run_dag(airflow_db, dag_id, {})
    finally:
        service.stop()
    assert outcome.state == "success", outcome.tasks
    result = outcome.xcom["deploy"]
    assert result["decision"] == "promoted" and result["champion"] == "2" and result["champion_event"] is True
    assert [s["share"] for s in result["steps"]] == [0.5, 1.0]
    assert registry.aliases(name) == {"champion": "2", "previous-champion": "1"}
    assert len(service.reloads) == 3 and not marker.exists()
    facets: set[str] = set()
    for event in outcome.events:
        facets.update(validate_event(event))
    assert "llmopsDeployment" in facets
    (complete,) = [
        e for e in outcome.events if e["eventType"] == "COMPLETE" and "llmopsDeployment" in e["run"]["facets"]
    ]
    assert complete["run"]["facets"]["llmopsDeployment"]["decision"] == "promoted"


def test_a_bad_canary_is_rolled_back_and_the_notifier_fires(deployable: Any, airflow_db: Path):
    registry, name, dag_for = deployable
    service = FakeService(registry, name, airflow_db, per_scrape=100, disagreement=0.6)
    try:
        dag_id, marker = dag_for(service)
        outcome = run_dag(airflow_db, dag_id, {})
    finally:
        service.stop()
    assert outcome.state == "failed" and outcome.tasks == {"deploy": "failed"}
    assert registry.aliases(name) == {"champion": "1"}  # the champion never moved
    assert marker.read_text() == "deploy"  # the DAG's rollback notifier ran
    tag = json.loads(registry.get_version(name, "2").tags["llmops.canary_rejected"])
    assert tag["failing"][0]["name"] == "disagreement"
    for event in outcome.events:
        validate_event(event)
    failed = [e for e in outcome.events if e["eventType"] == "FAIL" and "llmopsDeployment" in e["run"]["facets"]]
    assert failed and failed[-1]["run"]["facets"]["llmopsDeployment"]["decision"] == "rolled_back"
