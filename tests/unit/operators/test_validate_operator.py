"""ValidateBatchOperator.execute with an empty context, in both failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.errors import ConfigurationError, SnapshotNotFoundError, ValidationFailedError
from airflow_provider_llmops.operators.ingest import IngestBatchOperator
from airflow_provider_llmops.operators.validate import ValidateBatchOperator
from tests.unit.test_cli_ingest_validate import package_rows


def _ingest(tmp: Path, rows: list[dict], dataset: str = "tickets") -> str:
    (tmp / "batch.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    op = IngestBatchOperator(task_id="ingest", source_uri=str(tmp / "batch.jsonl"), dataset=dataset)
    return op.execute(context={})["snapshot_id"]


def _rows(n: int, label: str = "billing") -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "text": f"Ticket number {i} about my invoice",
            "label": label,
            "channel": "email",
            "language": "en",
        }
        for i in range(n)
    ]


def test_passing_snapshot_writes_report_and_returns_summary(allow_tmp: Path):
    snapshot_id = _ingest(allow_tmp, _rows(40))
    summary = ValidateBatchOperator(task_id="validate", dataset="tickets", snapshot_id=snapshot_id).execute(context={})
    assert summary["status"] == "passed" and summary["failed"] == [] and summary["rows"] == 40
    assert (summary["suite"], summary["suite_source"]) == ("generic", "default_suite")
    report = DatasetStore(str(allow_tmp / "store")).read_validation("tickets", snapshot_id)
    assert report["status"] == "passed" and report["great_expectations"]["success"] is True
    assert (report["suite"], report["suite_source"]) == ("generic", "default_suite")


def test_failing_snapshot_fails_listing_each_expectation_and_the_report(allow_tmp: Path):
    snapshot_id = _ingest(allow_tmp, _rows(40, label="unknown_queue"))
    op = ValidateBatchOperator(task_id="validate", dataset="tickets", snapshot_id=snapshot_id, suite="support_tickets")
    with pytest.raises(ValidationFailedError) as caught:
        op.execute(context={})
    message = str(caught.value)
    assert "failed 1 expectation(s)" in message and "expect_column_values_to_be_in_set on column 'label'" in message
    assert f"full report: file://{allow_tmp}/store/snapshots/tickets/{snapshot_id}/validation.json" in message
    assert DatasetStore(str(allow_tmp / "store")).read_validation("tickets", snapshot_id)["status"] == "failed"
    lineage = op.get_openlineage_facets_on_complete(None)
    assertions = lineage.inputs[0].inputFacets["dataQualityAssertions"].assertions
    assert [a.column for a in assertions if not a.success] == ["label"]


def test_skip_mode_marks_the_snapshot_rejected(allow_tmp: Path):
    snapshot_id = _ingest(allow_tmp, _rows(40, label="unknown_queue"))

    class RecordingTI:  # stands in for the TaskInstance, which only a real run provides (see the DAG test)
        pushed: dict = {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

    ti = RecordingTI()
    with pytest.raises(AirflowSkipException, match="rejected"):
        ValidateBatchOperator(
            task_id="validate", dataset="tickets", snapshot_id=snapshot_id, suite="support_tickets", on_failure="skip"
        ).execute(context={"ti": ti})
    assert ti.pushed["return_value"]["status"] == "rejected"
    pushed = ti.pushed["return_value"]
    assert (pushed["suite"], pushed["suite_source"]) == ("support_tickets", "argument")
    assert DatasetStore(str(allow_tmp / "store")).read_validation("tickets", snapshot_id)["status"] == "rejected"


def test_unknown_snapshot_and_bad_mode(allow_tmp: Path):
    with pytest.raises(SnapshotNotFoundError, match="not found"):
        ValidateBatchOperator(task_id="v", dataset="tickets", snapshot_id="a" * 32).execute(context={})
    with pytest.raises(ConfigurationError, match="on_failure"):
        ValidateBatchOperator(task_id="v", dataset="tickets", snapshot_id="a" * 32, on_failure="ignore").execute(
            context={}
        )


# --- suites by name, chosen by configuration unless an allowed argument/Param names one -------------------------


def test_suite_argument_is_a_name_never_a_path(allow_tmp: Path):
    """The old operator loaded any path it was given: a Param could point validation at a lax suite anyone can
    write (e.g. dropped into the incoming folder) and let any batch through."""
    snapshot_id = _ingest(allow_tmp, _rows(40, label="unknown_queue"))
    lax = allow_tmp / "lax.json"
    anything = [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 0}}]
    lax.write_text(json.dumps({"name": "lax", "expectations": anything}))

    def validate(suite: str) -> dict:
        op = ValidateBatchOperator(task_id="v", dataset="tickets", snapshot_id=snapshot_id, suite=suite)
        return op.execute(context={})

    for suite in (str(lax), str(lax.with_suffix("")), "../../etc/passwd", "/etc/passwd", f"file://{lax}"):
        with pytest.raises(ConfigurationError, match="never by path"):
            validate(suite)
    with pytest.raises(ConfigurationError, match=r"'nope' not found .* suites: \['generic', 'support_tickets'\]"):
        validate("nope")
    assert DatasetStore(str(allow_tmp / "store")).read_validation("tickets", snapshot_id) is None  # nothing validated


def test_symlinked_suite_escaping_the_suites_folder_is_refused(allow_tmp: Path, monkeypatch: pytest.MonkeyPatch):
    suites = allow_tmp / "suites"
    suites.mkdir()
    (allow_tmp / "lax.json").write_text(json.dumps({"name": "lax", "expectations": []}))
    (suites / "lax.json").symlink_to(allow_tmp / "lax.json")
    monkeypatch.setenv("AIRFLOW__LLMOPS__SUITES_DIRS", str(suites))
    snapshot_id = _ingest(allow_tmp, _rows(40))
    with pytest.raises(ConfigurationError, match="no symlinks out"):
        ValidateBatchOperator(task_id="v", dataset="tickets", snapshot_id=snapshot_id, suite="lax").execute(context={})


def test_allowed_suites_bound_what_an_argument_may_choose(allow_tmp: Path):
    snapshot_id = _ingest(allow_tmp, _rows(40, label="unknown_queue"))
    bounded = {"task_id": "v", "dataset": "tickets", "snapshot_id": snapshot_id, "allowed_suites": ["support_tickets"]}
    with pytest.raises(ConfigurationError, match="not one this DAG allows"):
        ValidateBatchOperator(**bounded, suite="generic").execute(context={})
    summary = ValidateBatchOperator(**bounded, suite="").execute(context={})
    assert summary["suite"] == "generic"  # empty: by configuration, which the Param cannot change


def test_dataset_suites_configuration_picks_the_suite(allow_tmp: Path, monkeypatch: pytest.MonkeyPatch):
    snapshot_id = _ingest(allow_tmp, _rows(40, label="unknown_queue"))
    by_config = ValidateBatchOperator(task_id="v", dataset="tickets", snapshot_id=snapshot_id)
    assert by_config.execute(context={})["status"] == "passed"
    monkeypatch.setenv("AIRFLOW__LLMOPS__DATASET_SUITES", json.dumps({"tickets": "support_tickets"}))
    with pytest.raises(ValidationFailedError, match="expect_column_values_to_be_in_set on column 'label'"):
        ValidateBatchOperator(task_id="v", dataset="tickets", snapshot_id=snapshot_id).execute(context={})
    report = DatasetStore(str(allow_tmp / "store")).read_validation("tickets", snapshot_id)
    assert (report["suite"], report["suite_source"]) == ("support_tickets", "dataset_suites")
    assert report["status"] == "failed"
    assert report["suite_path"].endswith("include/expectations/support_tickets.json")


def test_non_ticket_data_passes_by_default_and_failed_the_old_default(allow_tmp: Path):
    """~300 software-package descriptions labelled by category (no channel/language): the default configuration
    validates them with the generic suite; the ticket suite, the old default, fails them on its ticket-specific
    expectations only."""
    snapshot_id = _ingest(allow_tmp, package_rows(300), dataset="packages")
    summary = ValidateBatchOperator(task_id="v", dataset="packages", snapshot_id=snapshot_id).execute(context={})
    assert (summary["status"], summary["suite"], summary["suite_source"]) == ("passed", "generic", "default_suite")
    assert summary["rows"] == 300
    assert summary["successful"] == summary["evaluated"] == 7 and summary["skipped"] == []
    with pytest.raises(ValidationFailedError) as caught:
        op = ValidateBatchOperator(task_id="v", dataset="packages", snapshot_id=snapshot_id, suite="support_tickets")
        op.execute(context={})
    failed = sorted(line.split(" (")[0] for line in caught.value.failed)
    assert failed == [
        "expect_column_values_to_be_in_set on column 'label'",
        "expect_column_values_to_be_in_set on column 'language'",
        "expect_column_values_to_not_be_null on column 'channel'",
    ]


def test_suite_param_accepts_names_only():
    from airflow_provider_llmops.dags.ingest_validate import build_ingest_validate_dag

    dag = build_ingest_validate_dag("iv_param_test")
    param = dag.params.get_param("suite")
    assert param.value == "" and param.schema["enum"] == [""]  # by configuration, which a run cannot change
    assert param.resolve("") == ""
    for bad in ("generic", "../../etc/passwd", "/etc/passwd", "a/b", ".x"):
        with pytest.raises(Exception, match="is not one of"):
            param.resolve(bad)
    op = dag.get_task("validate")
    assert op.suite == "{{ params.suite }}" and op.allowed_suites == []
    own = build_ingest_validate_dag("iv_param_test1", suite="support_tickets")
    assert own.params.get_param("suite").schema["enum"] == ["", "support_tickets"]
    assert own.get_task("validate").allowed_suites == ["support_tickets"]
    bounded = build_ingest_validate_dag("iv_param_test2", allowed_suites=["support_tickets"])
    assert bounded.params.get_param("suite").schema["enum"] == ["", "support_tickets"]
    assert bounded.get_task("validate").allowed_suites == ["support_tickets"]
    with pytest.raises(Exception, match="is not one of"):
        bounded.params.get_param("suite").resolve("generic")
    with pytest.raises(ConfigurationError, match="never by path"):
        build_ingest_validate_dag("iv_param_test3", suite="/etc/passwd")
    with pytest.raises(ConfigurationError, match="is not one of allowed_suites"):
        build_ingest_validate_dag("iv_param_test4", suite="generic", allowed_suites=["support_tickets"])
