"""The documented UI command (`llmops ui`) on the embedded default: scheduler (LocalExecutor), DAG processor,
triggerer and API server under one supervisor.

The DAG appears, its Params are offered, a bad Param is refused, and a run triggered with Params through the
REST API the UI itself calls succeeds on the scheduler + LocalExecutor. Every listener of every component binds
127.0.0.1, and SIGTERM to `llmops ui` alone stops every process it started. Bounded: every wait has a deadline.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.source_servers import RecordingServer, Route

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DAG_ID = "llmops_ingest_validate"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(method: str, url: str, body: dict | None = None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            raw = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"airflow standalone exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}"
            )
        try:
            result = predicate()
            if result:
                return result
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}:\n{log.read_text()[-3000:]}")


SECRET = "e2e-source-password-6f1d0c7a"  # the HTTP source connection's password: must appear in no task log
HTTP_DAG = """
from airflow_provider_llmops.dags.ingest_validate import build_ingest_validate_dag

dag = build_ingest_validate_dag(
    "e2e_http_ingest", schedule=None, dataset="http_batch", source_uri="{uri}", source_conn_id="e2e_http_source"
)
"""


@pytest.fixture
def http_source(sample_dir: Path):
    """A local HTTP source that serves a batch only with the connection's basic-auth credentials."""
    server = RecordingServer().start()
    body = (sample_dir / "tickets_batch_same.jsonl").read_bytes()
    token = base64.b64encode(f"reader:{SECRET}".encode()).decode()
    server.routes["/batch.jsonl"] = Route(200, body)
    try:
        yield server, f"Basic {token}"
    finally:
        server.stop()


@pytest.fixture
def standalone(tmp_path: Path, http_source):
    server, _ = http_source
    port = _free_port()
    log = tmp_path / "standalone.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["LLMOPS_HOME"] = str(tmp_path / "home")
    # the DAG author's own HTTP source, with a connection bound to that host (environment connection)
    env["AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES"] = f"{server.base}/"
    connection = {"conn_type": "http", "host": "127.0.0.1", "login": "reader", "password": SECRET,
                  "extra": {"allowed_hosts": [f"127.0.0.1:{server.port}"]}}  # fmt: skip
    env["AIRFLOW_CONN_E2E_HTTP_SOURCE"] = json.dumps(connection)
    (tmp_path / "home" / "dags").mkdir(parents=True)
    (tmp_path / "home" / "dags" / "e2e_http_ingest.py").write_text(HTTP_DAG.format(uri=f"{server.base}/batch.jsonl"))
    llmops = Path(sys.executable).with_name("llmops")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(llmops), "ui", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield f"http://127.0.0.1:{port}", proc, log, tmp_path / "home"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # only reached when the test failed before its own stop


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _listeners(pids: set[int]) -> list[tuple[int, str, int]]:
    return [
        (c.pid, c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]


def test_trigger_with_params_from_the_ui_api(standalone, http_source, sample_dir: Path):
    base, proc, log, home = standalone
    server, authorization = http_source
    api = f"{base}/api/v2"

    def healthy():
        status, body = _call("GET", f"{api}/monitor/health")
        return status == 200 and all(
            body[c]["status"] == "healthy" for c in ("metadatabase", "scheduler", "dag_processor")
        )

    _wait(healthy, 180, "a healthy scheduler, DAG processor and API", proc, log)
    _wait(lambda: _call("GET", f"{api}/dags/{DAG_ID}")[0] == 200, 120, "the DAG to be parsed", proc, log)

    status, page = _call("GET", f"{base}/")
    assert status == 200 and "<title>Airflow</title>" in page
    status, details = _call("GET", f"{api}/dags/{DAG_ID}/details")
    assert status == 200 and {"source_uri", "dataset", "on_validation_failure"} <= set(details["params"])

    status, _ = _call("POST", f"{api}/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"dataset": "../escape"}})
    assert status == 400  # the dataset Param's pattern is enforced before anything runs

    _wait(lambda: _call("GET", f"{api}/dags/llmops_drift")[0] == 200, 120, "the drift DAG to be parsed", proc, log)
    assert _call("PATCH", f"{api}/dags/llmops_drift", {"is_paused": False})[0] == 200
    assert _call("PATCH", f"{api}/dags/{DAG_ID}", {"is_paused": False})[0] == 200

    def ingest(source: str) -> tuple[str, dict]:
        conf = {"dataset": "support_tickets", "source_uri": str(sample_dir / source)}
        status, run = _call("POST", f"{api}/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})
        assert status == 200, run
        run_path = f"{api}/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"

        def finished():
            state = _call("GET", run_path)[1]["state"]
            return state if state in ("success", "failed") else None

        assert _wait(finished, 240, f"the triggered run on {source} to finish", proc, log) == "success"
        status, entry = _call("GET", f"{run_path}/taskInstances/ingest/xcomEntries/return_value")
        assert status == 200
        return run_path, entry["value"]

    # the reference first, explicitly: drift scores against the earliest validated snapshot of the dataset
    _, reference = ingest("tickets_reference.jsonl")
    assert reference["accepted"] == 3000
    run_path, value = ingest("tickets_batch_drift.jsonl")
    xcom = {"value": value}
    assert xcom["value"]["dataset"] == "support_tickets" and xcom["value"]["accepted"] == 1000
    snapshot = home / "store" / "snapshots" / "support_tickets" / xcom["value"]["snapshot_id"]
    assert json.loads((snapshot / "validation.json").read_text())["status"] == "passed"
    assert (home / "lineage" / "events.jsonl").stat().st_size > 0

    # validation emitted the validated-dataset asset, which schedules llmops_drift on the scheduler by itself
    def drift_run_for_this_snapshot():
        for r in _call("GET", f"{api}/dags/llmops_drift/dagRuns")[1]["dag_runs"]:
            if r["run_type"] != "asset_triggered" or r["state"] not in ("success", "failed"):
                continue
            path = (
                f"{api}/dags/llmops_drift/dagRuns/{urllib.parse.quote(r['dag_run_id'], safe='')}"
                "/taskInstances/score_drift/xcomEntries/return_value"
            )
            status, entry = _call("GET", path)
            if status == 200 and entry["value"]["snapshot_id"] == xcom["value"]["snapshot_id"]:
                return r, entry["value"]
        return None

    drift_run, drift = _wait(
        drift_run_for_this_snapshot, 300, "an asset-triggered llmops_drift run on the new snapshot", proc, log
    )
    assert drift_run["state"] == "success" and drift["verdict"] == "drift"
    assert drift["reference_snapshot_ids"] == [reference["snapshot_id"]]

    # the author's HTTP source with its connection: the credentials reach the source host, and no task log file
    # on disk (nor the lineage file) holds the password or the encoded basic-auth header
    _wait(lambda: _call("GET", f"{api}/dags/e2e_http_ingest")[0] == 200, 120, "the HTTP DAG to be parsed", proc, log)
    assert _call("PATCH", f"{api}/dags/e2e_http_ingest", {"is_paused": False})[0] == 200
    status, http_run = _call("POST", f"{api}/dags/e2e_http_ingest/dagRuns", {"logical_date": None, "conf": {}})
    assert status == 200, http_run
    http_run_path = f"{api}/dags/e2e_http_ingest/dagRuns/{urllib.parse.quote(http_run['dag_run_id'], safe='')}"

    def http_finished():
        state = _call("GET", http_run_path)[1]["state"]
        return state if state in ("success", "failed") else None

    assert _wait(http_finished, 240, "the HTTP-source run to finish", proc, log) == "success"
    assert [r.headers.get("authorization") for r in server.requests] == [authorization]
    task_logs = [p for p in (home / "airflow" / "logs").rglob("*") if p.is_file()]
    assert any("e2e_http_ingest" in str(p) and "task_id=ingest" in str(p) for p in task_logs), task_logs
    for path in [*task_logs, home / "lineage" / "events.jsonl", log]:
        text = path.read_bytes()
        assert SECRET.encode() not in text and authorization.split()[1].encode() not in text, path

    # a task's log is readable through the API without any log server (read from the local file)
    status, task_log = _call("GET", f"{run_path}/taskInstances/ingest/logs/1?full_content=true")
    assert status == 200 and "snapshot" in json.dumps(task_log)

    # every listener of every process `llmops ui` started is on the loopback interface
    processes = _tree(proc.pid)
    assert len(processes) >= 5  # the supervisor and its four components (and their workers)
    listeners = _listeners({p.pid for p in processes})
    assert ("127.0.0.1", int(base.rsplit(":", 1)[1])) in {(ip, port) for _, ip, port in listeners}
    assert [entry for entry in listeners if entry[1] not in ("127.0.0.1", "::1")] == []

    # SIGTERM to `llmops ui` alone (not to its group) stops every process it started
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes[1:]
    ):
        time.sleep(0.5)
    survivors = [(p.pid, p.name()) for p in processes[1:] if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == []
    assert "stopping every component" in log.read_text()
