"""The operators over HTTP against a real `mlflow server` backed by PostgreSQL, with proxied artifacts: training
uploads its model through the server, evaluation downloads it back, the gate's alias swap and the rollback go
through the REST API, and links and lineage name the server. Needs PostgreSQL on 127.0.0.1:5432 (trust auth);
skipped when it is not reachable."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import psycopg2
import pytest

from airflow_provider_llmops.core.governance.audit import default_audit_path, verify
from airflow_provider_llmops.core.model.contract import CHALLENGER, CHAMPION, PREVIOUS
from airflow_provider_llmops.hooks.mlflow import MlflowHook
from airflow_provider_llmops.operators.evaluate import EvaluateModelOperator
from airflow_provider_llmops.operators.promote import PromoteModelOperator
from airflow_provider_llmops.operators.rollback import RollbackModelOperator
from airflow_provider_llmops.operators.train import FineTuneOperator
from tests.integration.modelworld import LENIENT, TRAINING, model_world
from tests.integration.modelworld import context as stand_in_context

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN_ID = "llmops_mlflow_pg"
EXPERIMENT = "llmops-pg"
MODEL = "router_pg"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
STARTUP_TIMEOUT_S = 120


def _admin() -> Any:
    """An autocommit connection to the maintenance database. CI has PostgreSQL: an unreachable one fails the run
    (scripts/check_services.sh, called by scripts/test.sh, tries to start it first)."""
    try:
        conn = psycopg2.connect(**PG, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG['host']}:{PG['port']} as {PG['user']}: {str(exc).strip()}")
    conn.autocommit = True
    return conn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """The server forks uvicorn (and, unless disabled, job runners): signal its whole process group."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; make sure nothing else of the group is left
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < STARTUP_TIMEOUT_S:
        if proc.poll() is not None:
            pytest.fail(
                f"mlflow server exited with {proc.returncode} before answering /health; "
                f"its log:\n{log.read_text()[-8000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=3) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(
        f"mlflow server did not answer {url}/health within {STARTUP_TIMEOUT_S} s; its log:\n{log.read_text()[-8000:]}"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A fresh database, an `mlflow server` on it with proxied artifacts, and the Airflow connection to it."""
    admin = _admin()
    database = f"llmops_mlflow_{secrets.token_hex(6)}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{database}"')
    root = tmp_path_factory.mktemp("mlflow-server")
    artifacts = root / "artifacts"
    artifacts.mkdir()
    log = root / "server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; name the driver that the dev extra installs.
    backend = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{database}"
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--backend-store-uri", backend,
        "--serve-artifacts", "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # No background job runners (huey consumers): nothing here uses MLflow server jobs.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    for key in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
    ):
        env.pop(key, None)
    proc: subprocess.Popen[bytes] | None = None
    mp = pytest.MonkeyPatch()
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        startup = _wait_healthy(url, proc, log)
        for key in (
            "MLFLOW_TRACKING_URI",
            "MLFLOW_REGISTRY_URI",
            "AIRFLOW__LLMOPS__MLFLOW_UI_URL",
            "AIRFLOW__LLMOPS__MLFLOW_CONN_ID",
            "AIRFLOW__LLMOPS__MLFLOW_TRACKING_URI",
        ):
            mp.delenv(key, raising=False)
        mp.setenv(
            f"AIRFLOW_CONN_{CONN_ID.upper()}",
            json.dumps({"conn_type": "llmops_mlflow", "host": url, "extra": {"experiment": EXPERIMENT}}),
        )
        yield SimpleNamespace(
            url=url, port=port, artifacts=artifacts, database=database, log=log, command=command, startup_s=startup
        )
    finally:
        mp.undo()
        if proc is not None:
            _stop(proc)
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def world(server: Any, tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Any:
    root = tmp_path_factory.mktemp("pg-lifecycle")
    with model_world(root, sample_dir) as snapshots:
        yield SimpleNamespace(server=server, root=root, home=root / "home", snapshots=snapshots, results={})


def _client(server: Any) -> Any:
    """A client of its own, not the provider's: what anyone else would read back from the server."""
    from mlflow import MlflowClient

    return MlflowClient(server.url)


def _train(run_id: str, snapshots: list[str]) -> tuple[FineTuneOperator, dict[str, Any], dict[str, Any]]:
    op = FineTuneOperator(
        task_id="fine_tune",
        model_name=MODEL,
        dataset="tickets",
        snapshots=snapshots,
        training=TRAINING,
        max_steps=4,
        embedding_sample=32,
        mlflow_conn_id=CONN_ID,
    )
    context = stand_in_context(run_id)
    return op, op.execute(context=context), context


def _uploaded(server: Any, artifact_uri: str) -> Path:
    """Where the server's artifact proxy put a run's `mlflow-artifacts:/<experiment>/<run>/artifacts` on disk."""
    parsed = urlparse(artifact_uri)
    assert parsed.scheme == "mlflow-artifacts", artifact_uri
    return server.artifacts / parsed.path.lstrip("/")


def _assert_links(server: Any, pushed: dict[str, Any], version: str, run: bool = True) -> None:
    assert pushed["mlflow_version_url"] == f"{server.url}/#/models/{MODEL}/versions/{version}"
    if run:
        assert (
            pushed["mlflow_run_url"].startswith(f"{server.url}/#/experiments/") and "/runs/" in pushed["mlflow_run_url"]
        )


def test_connection_test_button_reaches_the_server(server: Any):
    ok, message = MlflowHook(mlflow_conn_id=CONN_ID).test_connection()
    assert ok, message


def test_first_model_is_trained_uploaded_evaluated_and_promoted_over_http(world: Any):
    server = world.server
    op, result, context = _train("pg-run-1", [world.snapshots["ref"]])
    assert result["version"] == "1" and result["reused"] is False
    assert result["tracking_uri"] == server.url and result["training"]["stopped_by"] == "max_steps"

    client = _client(server)
    version = client.get_model_version(MODEL, "1")
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.info.artifact_uri.startswith("mlflow-artifacts:") and version.source == f"{run.info.artifact_uri}/model"
    uploaded = _uploaded(server, run.info.artifact_uri)
    for relative in (
        "model/model.safetensors",
        "model/label_map.json",
        "model/tokenizer.json",
        "profile/profile.json",
        "plots/loss_curve.png",
        "split/split.json",
    ):
        assert (uploaded / relative).is_file(), f"{relative} was not uploaded through the server to {uploaded}"
    assert client.get_model_version_by_alias(MODEL, CHALLENGER).version == "1"

    outputs = op.get_openlineage_facets_on_complete(None).outputs
    assert (
        outputs[0].namespace == f"mlflow://127.0.0.1:{server.port}" and outputs[0].name == f"models/{MODEL}/versions/1"
    )
    _assert_links(server, context["pushed"], "1")
    assert (
        context["pushed"]["mlflow_run_url"]
        == f"{server.url}/#/experiments/{run.info.experiment_id}/runs/{result['run_id']}"
    )

    evaluate = EvaluateModelOperator(task_id="evaluate", model_name=MODEL, latency_sample=5, mlflow_conn_id=CONN_ID)
    eval_context = stand_in_context("pg-run-1", task_id="evaluate")
    summary = evaluate.execute(context=eval_context)  # downloads the model back through the server
    assert summary["champion_version"] is None and summary["challenger_version"] == "1"
    assert 0.0 < summary["challenger"]["macro_f1"] <= 1.0 and 0.0 < summary["challenger"]["accuracy"] <= 1.0
    _assert_links(server, eval_context["pushed"], "1")
    inputs = evaluate.get_openlineage_facets_on_complete(None).inputs
    assert inputs[0].namespace == f"mlflow://127.0.0.1:{server.port}"

    promote = PromoteModelOperator(task_id="promote", evaluation=summary, gate=LENIENT, mlflow_conn_id=CONN_ID)
    promote_context = stand_in_context("pg-run-1", task_id="promote")
    promoted = promote.execute(context=promote_context)
    assert promoted["promoted"] is True and promoted["first_model"] is True
    _assert_links(server, promote_context["pushed"], "1", run=False)
    assert dict(_client(server).get_registered_model(MODEL).aliases) == {CHAMPION: "1"}
    world.results["run1"] = result


def test_second_model_is_promoted_with_the_first_as_previous_champion(world: Any):
    server = world.server
    _, result, context = _train("pg-run-2", [world.snapshots["ref"], world.snapshots["drift"]])
    assert (
        result["version"] == "2" and result["reused"] is False and result["run_id"] != world.results["run1"]["run_id"]
    )
    client = _client(server)
    assert dict(client.get_registered_model(MODEL).aliases) == {CHAMPION: "1", CHALLENGER: "2"}
    assert (
        _uploaded(server, client.get_run(result["run_id"]).info.artifact_uri) / "model" / "model.safetensors"
    ).is_file()
    _assert_links(server, context["pushed"], "2")

    summary = EvaluateModelOperator(
        task_id="evaluate", model_name=MODEL, latency_sample=5, mlflow_conn_id=CONN_ID
    ).execute(context={})
    assert summary["champion_version"] == "1" and summary["challenger_version"] == "2"
    # Real metrics of two 4-step models are close to chance; raise the challenger's in the stored report (the gate
    # judges the stored report, never XCom metrics) and hand over its new hash, so the gate passes and the alias
    # swap over HTTP is what is under test (the gate's decisions are covered on hand-made sets in test_gate).
    report_path = Path(urlparse(summary["report_uri"]).path)
    report = json.loads(report_path.read_bytes())
    report["summary"]["challenger"].update(macro_f1=0.9, accuracy=0.9, ece=0.0)
    report_path.write_text(json.dumps(report))
    boosted = {**summary, "report_sha256": hashlib.sha256(report_path.read_bytes()).hexdigest()}
    promote = PromoteModelOperator(task_id="promote", evaluation=boosted, gate=LENIENT, mlflow_conn_id=CONN_ID)
    promoted = promote.execute(context={})
    assert promoted["promoted"] is True and promoted["champion_before"] == "1"
    assert dict(_client(server).get_registered_model(MODEL).aliases) == {CHAMPION: "2", PREVIOUS: "1"}
    outputs = promote.get_openlineage_facets_on_complete(None).outputs
    assert (
        outputs[0].namespace == f"mlflow://127.0.0.1:{server.port}" and outputs[0].name == f"models/{MODEL}/versions/2"
    )


def test_rollback_over_http_restores_the_first_model(world: Any):
    server = world.server
    op = RollbackModelOperator(task_id="rollback", model_name=MODEL, reason="canary error rate", mlflow_conn_id=CONN_ID)
    context = stand_in_context("pg-rollback-1", task_id="rollback", dag_id="llmops_rollback")
    result = op.execute(context=context)
    assert result["champion"] == "1" and result["rolled_back_from"] == "2"
    client = _client(server)
    assert dict(client.get_registered_model(MODEL).aliases) == {CHAMPION: "1"}
    assert "llmops.rolled_back" in client.get_model_version(MODEL, "2").tags
    assert sorted(mv.version for mv in client.search_model_versions(f"name = '{MODEL}'")) == ["1", "2"]
    _assert_links(server, context["pushed"], "1", run=False)
    outputs = op.get_openlineage_facets_on_complete(None).outputs
    assert (
        outputs[0].namespace == f"mlflow://127.0.0.1:{server.port}" and outputs[0].name == f"models/{MODEL}/versions/1"
    )


def test_the_registry_lives_in_postgresql(world: Any):
    conn = psycopg2.connect(**{**PG, "dbname": world.server.database}, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version FROM model_versions WHERE name = %s ORDER BY version", (MODEL,))
            assert [row[0] for row in cur.fetchall()] == [1, 2]
            cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (MODEL,))
            assert dict(cur.fetchall()) == {CHAMPION: 1}
    finally:
        conn.close()


def test_the_decisions_are_in_a_verifiable_audit_trail(world: Any):
    path = default_audit_path(world.home)
    result = verify(path)
    assert result.ok, result.reason
    events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert events.count("model.promoted") == 2 and events.count("model.rolled_back") == 1
