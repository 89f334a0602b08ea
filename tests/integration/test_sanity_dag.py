"""llmops_nightly_sanity runs for real under dag.test() on the embedded home: green on a prepared state (a champion
trained, evaluated on the golden set and promoted by the real operators, a fresh drift-scored batch, its lineage
event), then red for one injected failure (the champion's weights removed from the registry's artifacts): the
champion task and the report fail, the report says why, and the alert reaches a webhook receiver on 127.0.0.1.
Faked: only training and classifier loading (tests/unit/fake_model.py), in this process, where dag.test() runs the
tasks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_llmops import embedded
from airflow_provider_llmops.core.drift.job import DRIFT_JSON
from airflow_provider_llmops.core.model.contract import CHAMPION
from airflow_provider_llmops.resources import sample_data_dir
from tests.integration.dagrun import run_dag
from tests.unit.core.test_sanity import append_events, lineage_event
from tests.unit.fake_model import add_snapshot, context, fake_models, sample_rows
from tests.unit.notifications.test_webhook import Receiver

pytestmark = [pytest.mark.integration]

GOLDEN = sample_data_dir() / "golden.jsonl"
DAG_FILE = """
from airflow_provider_llmops.dags.sanity import build_sanity_dag

dag = build_sanity_dag(
    {dag_id!r},
    model_name={model!r},
    datasets=[{dataset!r}],
    golden_path={golden!r},
    webhook_url={webhook!r},
    report_dir={report_dir!r},
    deadline_minutes=None,  # Airflow 3.3.2's dag.test() cannot finish a run of a DAG with a DeadlineAlert
)
"""


@pytest.fixture
def prepared(airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path) -> Iterator[Any]:
    from airflow_provider_llmops.operators._common import open_registry, open_store
    from airflow_provider_llmops.operators.evaluate import EvaluateModelOperator
    from airflow_provider_llmops.operators.promote import PromoteModelOperator
    from airflow_provider_llmops.operators.train import FineTuneOperator
    from airflow_provider_llmops.settings import load_settings

    fake_models(monkeypatch, "noisy")
    suffix = uuid.uuid4().hex[:8]
    model, dataset = f"router_sanity_{suffix}", f"sanity_{suffix}"
    store = open_store(load_settings().store_uri, None)
    snapshot = add_snapshot(store, dataset, sample_rows(sample_dir, count=160))
    FineTuneOperator(task_id="fine_tune", model_name=model, dataset=dataset, embedding_sample=0).execute(
        context(task_id="fine_tune")
    )
    evaluation = EvaluateModelOperator(
        task_id="evaluate", model_name=model, golden_path=str(GOLDEN), latency_sample=5, min_group_size=5
    ).execute(context(task_id="evaluate"))
    gate = {"floors": {"macro_f1": 0.0, "accuracy": 0.0}, "max_fairness_gap": None}
    PromoteModelOperator(task_id="promote", evaluation=evaluation, gate=gate).execute(context(task_id="promote"))
    registry = open_registry()
    assert registry.alias(model, CHAMPION) == "1"
    store.write_beside(dataset, snapshot, DRIFT_JSON, json.dumps({"snapshot_id": snapshot}).encode())
    append_events(embedded.lineage_file(airflow_db), lineage_event(model, "1"))

    receiver = Receiver()
    dag_id = f"llmops_nightly_sanity_{suffix}"
    path = airflow_db / "dags" / f"{dag_id}.py"
    report_dir = tmp_path / "reports"
    path.write_text(
        DAG_FILE.format(
            dag_id=dag_id,
            model=model,
            dataset=dataset,
            golden=str(GOLDEN),
            webhook=receiver.url,
            report_dir=str(report_dir),
        )  # fmt: skip
    )
    try:
        yield dag_id, registry, model, receiver, report_dir
    finally:
        receiver.stop()
        path.unlink()


def test_the_nightly_sanity_dag_is_green_then_red_with_an_alert(prepared: Any, airflow_db: Path):
    dag_id, registry, model, receiver, report_dir = prepared
    green = run_dag(airflow_db, dag_id, {})
    assert green.state == "success", green.tasks
    assert green.tasks == dict.fromkeys(["champion", "endpoint", "freshness", "audit", "lineage", "report"], "success")
    assert green.xcom["report"]["ok"] is True and green.xcom["report"]["alerted"] is False
    assert green.xcom["endpoint"]["skipped"] is True  # no [llmops] serve_url in the test environment
    assert "reproduces on the golden set" in green.xcom["champion"]["message"]
    report = json.loads((report_dir / "sanity.json").read_text())
    assert report["ok"] is True and [c["name"] for c in report["checks"]] == [
        "champion", "endpoint", "freshness", "audit", "lineage",
    ]  # fmt: skip
    metrics = (airflow_db / "metrics" / "llmops_sanity.prom").read_text()
    assert 'llmops_sanity_check_ok{check="champion"} 1.0' in metrics
    assert receiver.received == []

    version = registry.get_version(model, "1")  # inject: the champion's weights are gone from the registry
    artifacts = Path(version.source.removeprefix("file://"))
    (artifacts / "model.safetensors").unlink()
    red = run_dag(airflow_db, dag_id, {})
    assert red.state == "failed"
    assert red.tasks["champion"] == "failed" and red.tasks["report"] == "failed"
    assert {t: s for t, s in red.tasks.items() if t not in ("champion", "report")} == dict.fromkeys(
        ["endpoint", "freshness", "audit", "lineage"], "success"
    )
    report = json.loads((report_dir / "sanity.json").read_text())
    assert report["failed"] == ["champion"]
    (alert,) = receiver.received
    body = alert["body"]
    assert body["title"] == "LLMOps nightly sanity: 1 check(s) failed (champion)"
    assert f"champion {model} v1: its model artifacts lack model.safetensors" in body["message"]
    assert body["dag_id"] == dag_id and body["details"]["failed"][0]["name"] == "champion"
    metrics = (airflow_db / "metrics" / "llmops_sanity.prom").read_text()
    assert 'llmops_sanity_check_ok{check="champion"} 0.0' in metrics
