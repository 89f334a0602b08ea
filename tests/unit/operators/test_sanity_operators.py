"""SanityCheckOperator, SanityReportOperator and the llmops_nightly_sanity factory, with a stand-in task context:
a check records its result before it fails; the report gathers the recorded results, writes sanity.json/html and
the metrics textfile, and alerts a real receiver on 127.0.0.1 only when a check failed; the DAG's shape, its
schedule and deadline, and the arguments refused when it is built."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_llmops.core.governance.sanity import CheckResult, SanityCheckFailed
from airflow_provider_llmops.errors import ConfigurationError
from airflow_provider_llmops.operators.sanity import RESULT_KEY, SanityCheckOperator, lineage_transport
from airflow_provider_llmops.operators.sanity_report import SanityReportOperator
from tests.unit.notifications.test_webhook import Receiver


class TI(SimpleNamespace):
    """A task instance stand-in with an XCom table shared by the tasks of one run."""

    def xcom_push(self, key: str, value: Any) -> None:
        self.table[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        return self.table.get((task_ids, key))


def ctx(table: dict[Any, Any], task_id: str) -> dict[str, Any]:
    return {"ti": TI(dag_id="llmops_nightly_sanity", run_id="scheduled__1", task_id=task_id, try_number=1, table=table)}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIRFLOW__LLMOPS__HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIRFLOW__LLMOPS__STORE_URI", str(tmp_path / "store"))
    monkeypatch.delenv("AIRFLOW__LLMOPS__PUSHGATEWAY_URL", raising=False)
    return tmp_path / "home"


def test_a_failing_check_records_its_result_then_raises(home: Path):
    table: dict[Any, Any] = {}
    op = SanityCheckOperator(task_id="freshness", check="freshness", datasets="tickets")
    with pytest.raises(SanityCheckFailed, match="sanity check freshness failed: dataset 'tickets' has no snapshot"):
        op.execute(ctx(table, "freshness"))
    recorded = table[("freshness", RESULT_KEY)]
    assert (
        recorded["name"] == "freshness" and recorded["ok"] is False and "llmops_ingest_validate" in recorded["message"]
    )


def test_a_check_that_cannot_run_is_a_recorded_failure(home: Path):
    table: dict[Any, Any] = {}
    op = SanityCheckOperator(task_id="freshness", check="freshness", max_age_hours="-1")
    with pytest.raises(SanityCheckFailed, match="could not run: ConfigurationError: max_age_hours must be"):
        op.execute(ctx(table, "freshness"))
    assert table[("freshness", RESULT_KEY)]["ok"] is False


def test_endpoint_without_a_service_passes_as_skipped(home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AIRFLOW__LLMOPS__SERVE_URL", raising=False)
    table: dict[Any, Any] = {}
    result = SanityCheckOperator(task_id="endpoint", check="endpoint").execute(ctx(table, "endpoint"))
    assert (result["ok"], result["skipped"]) == (True, True) and table[("endpoint", RESULT_KEY)] == result


def test_lineage_transport_is_read_from_the_openlineage_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    log = tmp_path / "events.jsonl"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "file", "log_file_path": str(log)}))
    assert lineage_transport() == (f"file {log}", log)
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "http", "url": "http://marquez:5000"}))
    assert lineage_transport() == ("a 'http' transport", None)
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "True")
    assert lineage_transport()[1] is None and "disabled" in lineage_transport()[0]


def test_unknown_check_is_refused():
    with pytest.raises(ConfigurationError, match="check must be one of champion, endpoint"):
        SanityCheckOperator(task_id="x", check="vibes")


def _record(table: dict[Any, Any], *results: CheckResult) -> None:
    for result in results:
        table[(result.name, RESULT_KEY)] = result.to_dict()


def test_report_all_green_writes_report_and_metrics_and_sends_nothing(home: Path):
    receiver = Receiver()
    try:
        table: dict[Any, Any] = {}
        _record(table, CheckResult("champion", True, "fine"), CheckResult("audit", True, "intact"))
        op = SanityReportOperator(task_id="report", checks=["champion", "audit"], webhook_url=receiver.url)
        summary = op.execute(ctx(table, "report"))
    finally:
        receiver.stop()
    assert summary["ok"] is True and summary["alerted"] is False and receiver.received == []
    assert json.loads((home / "reports" / "sanity" / "sanity.json").read_text())["ok"] is True
    metrics = (home / "metrics" / "llmops_sanity.prom").read_text()
    assert 'llmops_sanity_check_ok{check="champion"} 1.0' in metrics
    assert 'llmops_sanity_check_ok{check="audit"} 1.0' in metrics
    assert "llmops_sanity_last_run_timestamp_seconds " in metrics
    assert op.trigger_rule == "all_done"


def test_report_with_a_failed_and_a_silent_check_alerts_once_and_fails(home: Path):
    receiver = Receiver()
    try:
        table: dict[Any, Any] = {}
        _record(table, CheckResult("champion", False, "champion router v1: its model artifacts lack MLmodel"))
        op = SanityReportOperator(task_id="report", checks=["champion", "lineage"], webhook_url=receiver.url)
        with pytest.raises(SanityCheckFailed, match=r"2 of 2 checks failed \(champion: champion router v1"):
            op.execute(ctx(table, "report"))
    finally:
        receiver.stop()
    (alert,) = receiver.received
    body = alert["body"]
    assert body["title"] == "LLMOps nightly sanity: 2 check(s) failed (champion, lineage)"
    assert "lineage: the lineage task recorded no result" in body["message"]
    assert [c["name"] for c in body["details"]["failed"]] == ["champion", "lineage"]
    assert (body["dag_id"], body["run_id"], body["task_id"]) == ("llmops_nightly_sanity", "scheduled__1", "report")
    assert table[("report", "sanity_report")]["alerted"] is True
    metrics = (home / "metrics" / "llmops_sanity.prom").read_text()
    assert 'llmops_sanity_check_ok{check="lineage"} 0.0' in metrics


def test_the_shipped_dag(home: Path):
    from airflow.dag_processing.dagbag import DagBag

    from airflow_provider_llmops.resources import dag_files_dir

    bag = DagBag(dag_folder=str(dag_files_dir() / "llmops_nightly_sanity.py"))
    assert bag.import_errors == {}
    dag = bag.dags["llmops_nightly_sanity"]
    assert {t.task_id for t in dag.tasks} == {"champion", "endpoint", "freshness", "audit", "lineage", "report"}
    assert {t.task_id for t in dag.get_task("report").upstream_list} == {
        "champion", "endpoint", "freshness", "audit", "lineage",
    }  # fmt: skip
    assert dag.get_task("report").trigger_rule == "all_done" and dag.catchup is False
    assert "0 3 * * *" in repr(dag.timetable) and dag.max_active_runs == 1
    (deadline,) = dag.deadline
    assert deadline.interval == timedelta(minutes=60) and deadline.name == "llmops_sanity_deadline"
    assert deadline.callback.path == "airflow_provider_llmops.notifications.webhook.WebhookNotifier"
    assert all(t.retries == 0 for t in dag.tasks)


def test_the_dag_serializes_with_its_deadline():
    from airflow.serialization.serialized_objects import DagSerialization

    from airflow_provider_llmops.dags.sanity import build_sanity_dag

    data = DagSerialization.to_dict(build_sanity_dag(webhook_url="http://127.0.0.1:1/hook"))
    assert "WebhookNotifier" in json.dumps(data) and "llmops_sanity_deadline" in json.dumps(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tolerances": {"macro_f1": -0.1}}, r"tolerances\['macro_f1'\] must be a number >= 0"),
        ({"checks": ["champion", "vibes"]}, r"unknown: \['vibes'\]"),
        ({"checks": []}, "non-empty subset"),
    ],
)
def test_wrong_arguments_fail_when_the_dag_is_built(kwargs: dict[str, Any], message: str):
    from airflow_provider_llmops.dags.sanity import build_sanity_dag

    with pytest.raises(ConfigurationError, match=message):
        build_sanity_dag(**kwargs)


def test_factory_choices(home: Path):
    from airflow_provider_llmops.dags.sanity import build_sanity_dag

    dag = build_sanity_dag("sanity_hourly", schedule="@hourly", checks=["freshness"], deadline_minutes=None)
    assert [t.task_id for t in dag.tasks] == ["freshness", "report"] and not dag.deadline


def test_the_deploy_dag_alerts_the_configured_webhook_on_rollback(monkeypatch: pytest.MonkeyPatch):
    from airflow_provider_llmops.dags.deploy import build_deploy_dag
    from airflow_provider_llmops.notifications.webhook import WebhookNotifier

    monkeypatch.delenv("AIRFLOW__LLMOPS__ALERT_WEBHOOK_URL", raising=False)
    assert not build_deploy_dag(dag_id="d1").get_task("deploy").on_failure_callback
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALERT_WEBHOOK_URL", "http://127.0.0.1:9/alerts")
    callbacks = build_deploy_dag(dag_id="d2").get_task("deploy").on_failure_callback
    assert [type(c) for c in callbacks] == [WebhookNotifier] and "rolled back" in callbacks[0].title
