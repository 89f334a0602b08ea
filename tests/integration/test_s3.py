"""S3 sources and an S3 dataset store against a real S3-compatible HTTP server (moto in server mode, 127.0.0.1)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from airflow_provider_llmops.core.data.s3 import S3Config, make_client
from airflow_provider_llmops.core.data.store import DATA_FILE, DatasetStore
from airflow_provider_llmops.errors import SourceError
from airflow_provider_llmops.operators.ingest import IngestBatchOperator
from tests.integration.dagrun import run_dag
from tests.openlineage_spec import validate_event

pytestmark = pytest.mark.integration
SECRET = "s3cr3t-value-that-must-never-be-logged"


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, sample_dir: Path, monkeypatch: pytest.MonkeyPatch):
    client = make_client(
        S3Config(endpoint_url=s3_endpoint, region_name="us-east-1", access_key_id="test", secret_access_key=SECRET)
    )
    for bucket in ("landing", "llmops-store"):
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
    client.upload_file(str(sample_dir / "tickets_batch_same.jsonl"), "landing", "batches/same.jsonl")
    conn = {
        "conn_type": "llmops_s3",
        "host": s3_endpoint,
        "login": "test",
        "password": SECRET,
        "extra": {"region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_LLMOPS_S3_TEST", json.dumps(conn))
    # remote sources are refused until allowed; the DAG run chooses this connection by its Param
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", "s3://landing/batches,s3://no-such-bucket")
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_SOURCE_CONN_IDS", "llmops_s3_test")
    return client


def test_hook_builds_a_client_from_the_connection(s3):
    from airflow_provider_llmops.hooks.object_store import ObjectStoreHook

    hook = ObjectStoreHook(s3_conn_id="llmops_s3_test")
    config = hook.get_config()
    assert config.region_name == "us-east-1" and config.access_key_id == "test"
    assert SECRET not in repr(config)
    assert hook.test_connection() == (True, "Connection to the object store works")
    assert {"landing", "llmops-store"} <= {b["Name"] for b in hook.get_conn().list_buckets()["Buckets"]}


def test_s3_source_into_s3_store(s3, allow_tmp: Path):
    op = IngestBatchOperator(
        task_id="ingest",
        source_uri="s3://landing/batches/same.jsonl",
        dataset="tickets",
        source_conn_id="llmops_s3_test",
        store_uri="s3://llmops-store/store",
        store_conn_id="llmops_s3_test",
    )
    summary = op.execute(context={})
    assert (
        summary["accepted"] == 1000
        and summary["snapshot_uri"] == f"s3://llmops-store/store/snapshots/tickets/{summary['snapshot_id']}"
    )
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="llmops-store", Prefix="store/")["Contents"]}
    prefix = f"store/snapshots/tickets/{summary['snapshot_id']}/"
    assert {prefix + "data.parquet", prefix + "manifest.json", prefix + "quarantine.jsonl"} <= keys
    lineage = op.get_openlineage_facets_on_complete(None)
    assert (lineage.inputs[0].namespace, lineage.inputs[0].name) == ("s3://landing", "batches/same.jsonl")
    assert (lineage.outputs[0].namespace, lineage.outputs[0].name) == ("s3://llmops-store", prefix.rstrip("/"))
    # idempotent on S3 too
    again = op.execute(context={})
    assert again["snapshot_id"] == summary["snapshot_id"] and again["created"] is False


def test_s3_missing_object_and_bucket_name_the_source(s3, allow_tmp: Path):
    for uri in ("s3://landing/batches/nope.jsonl", "s3://no-such-bucket/a.jsonl"):
        op = IngestBatchOperator(task_id="ingest", source_uri=uri, dataset="t", source_conn_id="llmops_s3_test")
        with pytest.raises(SourceError, match="does not exist") as caught:
            op.execute(context={})
        assert uri in str(caught.value)


def test_unreachable_s3_endpoint(allow_tmp: Path, monkeypatch: pytest.MonkeyPatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = {
        "conn_type": "llmops_s3",
        "host": f"http://127.0.0.1:{port}",
        "login": "a",
        "password": "b",
        "extra": {"region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_LLMOPS_S3_DOWN", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", "s3://landing")
    op = IngestBatchOperator(
        task_id="ingest", source_uri="s3://landing/a.jsonl", dataset="t", source_conn_id="llmops_s3_down"
    )
    with pytest.raises(SourceError, match="unreachable"):
        op.execute(context={})


def test_s3_prefix_without_manifest_is_invisible(s3):
    store = DatasetStore("s3://llmops-store/half", s3_client=s3)
    sid = "ab" * 16
    s3.put_object(Bucket="llmops-store", Key=f"half/snapshots/tickets/{sid}/{DATA_FILE}", Body=b"partial")
    assert not store.exists("tickets", sid) and store.list_snapshots("tickets") == []


def test_dag_run_with_s3_source_and_store(s3, airflow_db: Path, monkeypatch: pytest.MonkeyPatch, capfd):
    monkeypatch.setenv("AIRFLOW__LLMOPS__STORE_URI", "s3://llmops-store/dagrun")
    monkeypatch.setenv("AIRFLOW__LLMOPS__STORE_CONN_ID", "llmops_s3_test")
    outcome = run_dag(
        airflow_db,
        "llmops_ingest_validate",
        {"dataset": "tickets_s3", "source_uri": "s3://landing/batches/same.jsonl", "source_conn_id": "llmops_s3_test"},
    )
    assert outcome.tasks == {"ingest": "success", "validate": "success"}
    report_uri = outcome.xcom["validate"]["report_uri"]
    assert report_uri.startswith("s3://llmops-store/dagrun/snapshots/tickets_s3/")
    key = report_uri.removeprefix("s3://llmops-store/")
    assert json.loads(s3.get_object(Bucket="llmops-store", Key=key)["Body"].read())["status"] == "passed"
    for event in outcome.events:
        validate_event(event)
    ingest_done = next(
        e for e in outcome.events if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(".ingest")
    )
    assert ingest_done["inputs"][0]["namespace"] == "s3://landing"
    # the secret appears nowhere: not in logs, lineage, XCom or the stored manifest
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err
    assert SECRET not in json.dumps(outcome.events) + json.dumps(outcome.xcom)
    manifest_key = key.replace("validation.json", "manifest.json")
    assert SECRET.encode() not in s3.get_object(Bucket="llmops-store", Key=manifest_key)["Body"].read()
