"""A real Pushgateway, Prometheus and Alertmanager (the Debian packages) on 127.0.0.1: the drift task pushes its
metrics, Prometheus scrapes them with the shipped rules loaded, the LLMOpsDriftDetected alert fires and Alertmanager,
configured like include/alertmanager/alertmanager.yml, posts it to a local webhook receiver.

Random free ports, temporary directories, 1 s scrape and evaluation interval, every wait bounded; the processes are
killed at the end. A missing binary fails the test with the install line."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring import exported_metrics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
RULES = ROOT / "include" / "prometheus" / "rules" / "llmops.rules.yml"
ALERTMANAGER = ROOT / "include" / "alertmanager" / "alertmanager.yml"
INSTALL = "apt-get install -y prometheus prometheus-pushgateway prometheus-alertmanager (scripts/setup.sh does)"
WAIT_S = 60


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: {INSTALL}")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (127.0.0.1 only)
            return response.status, response.read()
    except OSError:
        return 0, b""


def _until(what: str, probe: Callable[[], Any], logs: list[Path], timeout_s: float = WAIT_S) -> Any:
    """Call `probe` every 0.25 s until it returns something truthy; fail with the processes' log tails if not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.25)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in logs if p.exists())
    pytest.fail(f"{what} within {timeout_s:.0f} s\n{tails}")


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append({"path": self.path, "body": json.loads(body)})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Stack:
    """Started processes and their logs; `stop()` kills what is still running."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, name: str, *args: str) -> None:
        log = self.workdir / f"{name}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.processes.append(
                subprocess.Popen([_binary(name), *args], stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
            )

    def alive(self) -> bool:
        return all(process.poll() is None for process in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/llmops/alerts", _Receiver.received
    server.shutdown()
    server.server_close()


def _start_stack(work: Path, webhook_url: str) -> tuple[Stack, dict[str, Any]]:
    """Start the three servers on fresh free ports and wait until each is ready. A port another process took
    between choosing and binding makes that server exit: the caller checks `alive()` and tries again."""
    gateway, prometheus, alertmanager = _free_port(), _free_port(), _free_port()
    # Alertmanager: the shipped routing, with the local receiver's URL and waits short enough for a test
    am_config = yaml.safe_load(ALERTMANAGER.read_text())
    am_config["receivers"][0]["webhook_configs"][0]["url"] = webhook_url
    am_config["route"].update(group_wait="1s", group_interval="1s")
    for route in am_config["route"].get("routes", []):
        route.update(group_wait="1s", group_interval="1s")
    (work / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
    # Prometheus: the shipped rules, the gateway as in include/prometheus/prometheus.yml, 1 s intervals
    prom_config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager}"]}]}]},
        "scrape_configs": [
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{gateway}"]}],
            }
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
    processes = Stack(work)
    try:
        # Debian's default persistence file (/var/lib/prometheus/) is shared by every run: this one gets its own
        processes.start(
            "prometheus-pushgateway",
            f"--web.listen-address=127.0.0.1:{gateway}",
            f"--persistence.file={work / 'pushgateway.data'}",
        )
        processes.start(
            "prometheus-alertmanager",
            f"--config.file={work / 'alertmanager.yml'}",
            f"--storage.path={work / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{alertmanager}",
            "--cluster.listen-address=",
        )
        processes.start(
            "prometheus",
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prometheus}",
        )
        for port, name in ((gateway, "Pushgateway"), (alertmanager, "Alertmanager"), (prometheus, "Prometheus")):
            _until(
                f"{name} is not ready",
                lambda p=port: _get(f"http://127.0.0.1:{p}/-/ready")[0] == 200 or not processes.alive(),
                processes.logs,
            )
    except BaseException:  # a missing binary or a server that never got ready: stop what did start
        processes.stop()
        raise
    time.sleep(0.5)  # a server that lost its port exits right after the others answered
    urls = {"gateway": f"127.0.0.1:{gateway}", "prometheus": f"http://127.0.0.1:{prometheus}"}
    return processes, urls


@pytest.fixture
def stack(tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    for attempt in range(3):
        work = tmp_path / f"monitoring-{attempt}"
        work.mkdir()
        processes, urls = _start_stack(work, receiver[0])
        if processes.alive():
            break
        processes.stop()
    else:
        tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1000:]}" for p in processes.logs)
        pytest.fail(f"the monitoring servers did not stay up in 3 attempts (ports taken?)\n{tails}")
    try:
        yield {**urls, "logs": processes.logs}
    finally:
        processes.stop()


def _query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    status, body = _get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    return json.loads(body)["data"]["result"] if status == 200 else []


def test_drift_task_metrics_reach_prometheus_and_the_alert_reaches_the_webhook(
    allow_tmp: Path,
    sample_dir: Path,
    stack: dict[str, Any],
    receiver: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_llmops.operators.drift import DriftScoreOperator
    from airflow_provider_llmops.operators.ingest import IngestBatchOperator
    from airflow_provider_llmops.operators.validate import ValidateBatchOperator

    monkeypatch.setenv("AIRFLOW__LLMOPS__HOME", str(allow_tmp / "home"))
    monkeypatch.setenv("AIRFLOW__LLMOPS__PUSHGATEWAY_URL", stack["gateway"])
    snapshots = []
    for source in ("tickets_reference.jsonl", "tickets_batch_drift.jsonl"):
        ingest = IngestBatchOperator(task_id="ingest", source_uri=str(sample_dir / source), dataset="tickets")
        snapshot_id = ingest.execute(context={})["snapshot_id"]
        ValidateBatchOperator(task_id="validate", dataset="tickets", snapshot_id=snapshot_id).execute(context={})
        snapshots.append(snapshot_id)
    drift = DriftScoreOperator(task_id="score_drift", dataset="tickets", snapshot_id=snapshots[1], embeddings=False)
    result = drift.execute(context={})
    assert result["metrics_pushed"] is True and result["verdict"] == "drift"

    prometheus, logs = stack["prometheus"], stack["logs"]
    detected = _until(
        "llmops_drift_detected did not reach Prometheus",
        lambda: _query(prometheus, 'llmops_drift_detected{dataset="tickets"}'),
        logs,
    )
    assert [(s["metric"], s["value"][1]) for s in detected] == [
        ({"__name__": "llmops_drift_detected", "dataset": "tickets", "job": "llmops_drift"}, "1")
    ]  # honor_labels: the job and grouping key the task pushed with, not the scrape job's

    drifting = {
        s["metric"]["feature"] for s in _query(prometheus, 'llmops_drift_feature_detected{dataset="tickets"} == 1')
    }
    assert drifting == set(result["drifting_features"]) and {"char_length", "label"} <= drifting
    rows = _query(prometheus, 'llmops_drift_rows{dataset="tickets"}')
    assert float(rows[0]["value"][1]) > 0
    assert _query(prometheus, 'push_time_seconds{job="llmops_drift", dataset="tickets"}')

    # every pushed series carries only the labels the monitoring tests assume it has
    catalog = exported_metrics()
    selector = urllib.parse.urlencode({"match[]": '{job="llmops_drift"}'})
    status, body = _get(f"{prometheus}/api/v1/series?{selector}")
    assert status == 200
    series = [s for s in json.loads(body)["data"] if s["__name__"].startswith("llmops_drift_")]
    assert {s["__name__"] for s in series} == {
        "llmops_drift_score",
        "llmops_drift_threshold",
        "llmops_drift_feature_detected",
        "llmops_drift_detected",
        "llmops_drift_rows",
    }
    for labels in series:
        assert set(labels) - {"__name__"} <= catalog[labels["__name__"]], labels

    # the shipped rules run on them: recording rule and alert
    count = _until(
        "the recording rule llmops:drift_features_drifting:count did not evaluate",
        lambda: _query(prometheus, 'llmops:drift_features_drifting:count{dataset="tickets"}'),
        logs,
    )
    assert float(count[0]["value"][1]) == len(drifting)
    firing = _until(
        "LLMOpsDriftDetected did not fire",
        lambda: _query(prometheus, 'ALERTS{alertname="LLMOpsDriftDetected", alertstate="firing"}'),
        logs,
    )
    assert firing[0]["metric"]["dataset"] == "tickets" and firing[0]["metric"]["severity"] == "warning"

    # ... and Alertmanager posts it to the webhook, grouped as shipped
    url, received = receiver

    def drift_message() -> dict[str, Any] | None:
        groups = [m for m in received if m["body"]["groupLabels"].get("alertname") == "LLMOpsDriftDetected"]
        return groups[0] if groups else None

    message = _until("Alertmanager did not post the alert to the webhook", drift_message, logs)
    assert {m["body"]["groupLabels"]["alertname"] for m in received} == {"LLMOpsDriftDetected"}, received
    assert message["path"] == urllib.parse.urlparse(url).path
    body = message["body"]
    assert body["status"] == "firing" and body["receiver"] == "llmops-webhook"
    assert body["groupLabels"] == {"alertname": "LLMOpsDriftDetected", "dataset": "tickets"}
    [alert] = body["alerts"]
    assert alert["labels"]["component"] == "drift"
    assert "drift.html" in alert["annotations"]["description"]
