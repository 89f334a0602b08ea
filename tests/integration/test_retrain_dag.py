"""llmops_retrain and llmops_rollback run for real under dag.test(): the first model is trained, evaluated and
promoted (through a DAG whose author allowed gate overrides: the looser gate Param is applied and audited); a
second run finds nothing to do; a rollback without a previous champion fails clearly; every lineage event
validates, with the training, evaluation and gate facets and the model version as a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.dagrun import run_dag
from tests.openlineage_spec import validate_event

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONF = {
    "dataset": "retrain_e2e",
    "model_name": "router_e2e",
    "max_steps": 4,
    "training": {"max_length": 32, "batch_size": 16, "epochs": 1},
    "gate": {"floors": {"macro_f1": 0.0, "accuracy": 0.0}, "max_fairness_gap": None},
}


LENIENT_DAG = """
from airflow_provider_llmops.dags.retrain import build_retrain_dag

dag = build_retrain_dag("llmops_retrain_lenient", allow_gate_override=True)
"""


@pytest.fixture
def lenient_dag(airflow_db: Path):
    """A retrain DAG whose author allows run-time gates to loosen the gate (4 training steps cannot pass it)."""
    path = airflow_db / "dags" / "llmops_retrain_lenient.py"
    path.write_text(LENIENT_DAG)
    yield "llmops_retrain_lenient"
    path.unlink()


def test_retrain_dag_trains_promotes_and_then_rests(airflow_db: Path, sample_dir: Path, lenient_dag: str):
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    with create_session() as session:  # the embedded default creates the pool registry-changing tasks run in
        assert session.query(Pool).filter(Pool.pool == "llmops_registry").one().slots == 1
    source = airflow_db / "incoming" / "retrain_slice.jsonl"
    source.write_text("".join((sample_dir / "tickets_reference.jsonl").read_text().splitlines(keepends=True)[:240]))
    ingest = run_dag(airflow_db, "llmops_ingest_validate", {"dataset": "retrain_e2e", "source_uri": str(source)})
    assert ingest.tasks == {"ingest": "success", "validate": "success"}

    first = run_dag(airflow_db, lenient_dag, CONF)
    assert first.state == "success", first.tasks
    assert first.tasks == {
        "should_retrain": "success",
        "fine_tune": "success",
        "evaluate": "success",
        "promote": "success",
        "no_retrain": "skipped",
    }
    trained, evaluated, promoted = first.xcom["fine_tune"], first.xcom["evaluate"], first.xcom["promote"]
    assert trained["version"] == evaluated["challenger_version"] == promoted["champion"]
    assert (
        promoted["promoted"] is True
        and promoted["first_model"] is True
        and promoted["aliases"] == {"champion": trained["version"]}
    )
    assert promoted["announce"] is True and promoted["champion_event"] is True
    assert promoted["gate_override"]["applied"] is True
    assert {c["field"] for c in promoted["gate_override"]["loosened"]} == {
        "floors.macro_f1",
        "floors.accuracy",
        "max_fairness_gap",
    }
    audit = [json.loads(line) for line in (airflow_db / "audit" / "audit.jsonl").read_text().splitlines()]
    (override,) = [r for r in audit if r["event"] == "model.gate_override" and r["data"]["model"] == "router_e2e"]
    assert override["data"]["decision_id"] == promoted["decision_id"] and override["actor"].startswith(
        f"airflow:{lenient_dag}/"
    )
    assert trained["run_url"].startswith("http://127.0.0.1:5000/#/experiments/")

    facets = set()
    for event in first.events:
        facets.update(validate_event(event))
    assert {"llmopsTraining", "llmopsEvaluation", "llmopsGate"} <= facets
    (gate,) = [
        e["run"]["facets"]["llmopsGate"]
        for e in first.events
        if e["eventType"] == "COMPLETE" and "llmopsGate" in e["run"].get("facets", {})
    ]
    assert gate["gateOverride"]["applied"] is True and gate["decisionId"] == promoted["decision_id"]
    outputs = [
        (d["namespace"], d["name"]) for e in first.events if e["eventType"] == "COMPLETE" for d in e.get("outputs", [])
    ]
    assert ("mlflow://localhost", f"models/router_e2e/versions/{trained['version']}") in outputs

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        announced = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == "llmops_champion_router_e2e")
            .all()
        )
        assert [(e.extra["version"], e.extra["action"]) for e in announced] == [(trained["version"], "promote")]
        assert (
            session.query(AssetModel).filter(AssetModel.name == "llmops_champion_router_e2e").one().uri
            == "mlflow://localhost/models/router_e2e"
        )

    second = run_dag(airflow_db, "llmops_retrain", {k: v for k, v in CONF.items() if k != "gate"})
    assert (
        second.tasks["should_retrain"] == "success"
        and second.tasks["no_retrain"] == "success"
        and second.tasks["fine_tune"] == "skipped"
    )

    rollback = run_dag(
        airflow_db, "llmops_rollback", {"model_name": "router_e2e", "reason": "end-to-end test of the rollback DAG"}
    )
    assert rollback.tasks == {"rollback": "failed"}  # only one champion so far: nothing to roll back to
    for event in rollback.events:
        validate_event(event)
