"""The documented UI command (`llmops ui`) on the embedded default: Airflow standalone with the LocalExecutor.

The DAG appears, its Params are offered, a bad Param is refused, and a run triggered with Params through the
REST API the UI itself calls succeeds on the scheduler + LocalExecutor. Bounded: every wait has a deadline.
"""

from __future__ import annotations

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

import pytest

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
            pytest.fail(f"airflow standalone exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}")
        try:
            result = predicate()
            if result:
                return result
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.fixture
def standalone(tmp_path: Path):
    port = _free_port()
    log = tmp_path / "standalone.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["LLMOPS_HOME"] = str(tmp_path / "home")
    llmops = Path(sys.executable).with_name("llmops")
    with open(log, "w") as out:
        proc = subprocess.Popen([str(llmops), "ui", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", proc, log, tmp_path / "home"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_trigger_with_params_from_the_ui_api(standalone, sample_dir: Path):
    base, proc, log, home = standalone
    api = f"{base}/api/v2"

    def healthy():
        status, body = _call("GET", f"{api}/monitor/health")
        return status == 200 and all(body[c]["status"] == "healthy" for c in ("metadatabase", "scheduler", "dag_processor"))

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
    conf = {"dataset": "support_tickets", "source_uri": str(sample_dir / "tickets_batch_drift.jsonl")}
    status, run = _call("POST", f"{api}/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})
    assert status == 200, run
    run_path = f"{api}/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"

    def finished():
        state = _call("GET", run_path)[1]["state"]
        return state if state in ("success", "failed") else None

    assert _wait(finished, 240, "the triggered run to finish", proc, log) == "success"
    status, xcom = _call("GET", f"{run_path}/taskInstances/ingest/xcomEntries/return_value")
    assert status == 200 and xcom["value"]["dataset"] == "support_tickets" and xcom["value"]["accepted"] == 1000
    snapshot = home / "store" / "snapshots" / "support_tickets" / xcom["value"]["snapshot_id"]
    assert json.loads((snapshot / "validation.json").read_text())["status"] == "passed"
    assert (home / "lineage" / "events.jsonl").stat().st_size > 0

    # validation emitted the validated-dataset asset, which schedules llmops_drift on the scheduler by itself
    def drift_run_for_this_snapshot():
        for r in _call("GET", f"{api}/dags/llmops_drift/dagRuns")[1]["dag_runs"]:
            if r["run_type"] != "asset_triggered" or r["state"] not in ("success", "failed"):
                continue
            path = f"{api}/dags/llmops_drift/dagRuns/{urllib.parse.quote(r['dag_run_id'], safe='')}/taskInstances/score_drift/xcomEntries/return_value"
            status, entry = _call("GET", path)
            if status == 200 and entry["value"]["snapshot_id"] == xcom["value"]["snapshot_id"]:
                return r, entry["value"]
        return None

    drift_run, drift = _wait(drift_run_for_this_snapshot, 300, "an asset-triggered llmops_drift run on the new snapshot", proc, log)
    assert drift_run["state"] == "success" and drift["verdict"] == "drift"
