"""The real inference service with real models from the registry: tiny BERT classifiers fine-tuned and registered by
the training job (MLflow Models with their ONNX export) in a SQLite MLflow, served by two `llmops serve` processes on
127.0.0.1. The replicas converge on the registry without being told; a reload under traffic loses no request; a
healthy canary is rolled out and a disagreeing or unloadable one is rolled back with no human, through the same
deploy job the llmops_deploy DAG runs (its analysis reads the service's real /metrics)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_llmops.core.governance.audit import AuditTrail, records
from airflow_provider_llmops.core.governance.deploy_job import (
    CanaryPolicy,
    CanaryRejected,
    run_canary,
    service_endpoints,
)
from airflow_provider_llmops.core.model.contract import (
    CANARY,
    CANDIDATE,
    CHAMPION,
    PREVIOUS,
    TAG_CANARY_REJECTED,
    TAG_CANARY_SHARE,
    TAG_GATE,
)
from airflow_provider_llmops.core.model.registry import ModelRegistry
from airflow_provider_llmops.core.model.train_job import SnapshotSel, train_and_register
from airflow_provider_llmops.core.model.training import TrainConfig
from airflow_provider_llmops.serving.auth import AuthConfig, mint_token
from tests.unit.core.test_training import build_tiny_bert
from tests.unit.fake_model import _template_db

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "router"
SECRET = "integration-test-secret-of-more-than-32-bytes!"
POLICY = CanaryPolicy(
    step_weights=(0.5, 1.0), analysis_interval_s=1.0, min_requests=6, max_error_rate=0.0,
    max_p95_latency_ms=5000.0, max_disagreement=0.2, failure_threshold=1, progress_deadline_s=40.0,
)  # fmt: skip


class _Store:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def read_table(self, dataset: str, snapshot_id: str) -> Any:
        import pyarrow as pa

        return pa.Table.from_pylist(self.rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _register(
    registry: ModelRegistry, root: Path, rows: list[dict[str, Any]], key: str, base: Path, **training: Any
) -> str:
    options = {"max_length": 32, "batch_size": 16, "epochs": 1, "max_steps": 3, "seed": 7, **training}
    config = TrainConfig(base_model=str(base), **options)
    work = root / f"work-{key}"
    work.mkdir()
    summary = train_and_register(
        store=_Store(rows), registry=registry, model_name=MODEL, snapshots=[SnapshotSel("tickets", key)],  # type: ignore[arg-type]
        config=config, key=key, run={"dag_id": "test", "run_id": key}, work_dir=work, embedding_sample=0,
        log=lambda _: None,
    )  # fmt: skip
    return str(summary["version"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path, test_home: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("serving-real")
    shutil.copy(_template_db(str(test_home)), root / "mlflow.db")
    registry = ModelRegistry(f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "artifacts"))
    registry.settle_s = 0.0
    rows = [json.loads(line) for line in (sample_dir / "tickets_reference.jsonl").read_text().splitlines()[:192]]
    base = build_tiny_bert(root / "tiny-bert", layers=1)
    versions = {"v1": _register(registry, root, rows, "a", base)}
    versions["same"] = _register(registry, root, rows, "b", base)  # same data and seed: answers like v1
    # the same weights with the label names rotated: every answer names another label (a canary that disagrees)
    other = root / "other"
    shutil.copytree(registry_model_dir(registry, versions["v1"], root), other)
    label_file = other / "label_map.json"
    label_map = json.loads(label_file.read_text())
    label_map["labels"] = label_map["labels"][1:] + label_map["labels"][:1]
    label_file.write_text(json.dumps(label_map))
    versions["other"] = registry.register(MODEL, str(other), None, {}).version
    from airflow_provider_llmops.core.model.modeling import load_classifier

    texts = [str(r["text"]) for r in rows[:60]]
    answers = {k: load_classifier(registry_model_dir(registry, versions[k], root)).predict(texts) for k in versions}
    assert answers["same"] == answers["v1"]  # the premise of the healthy canary
    differ = sum(a != b for a, b in zip(answers["other"], answers["v1"], strict=True)) / len(texts)
    assert differ > 0.5, differ  # the premise of the disagreeing one
    # a version whose weights are gone: it cannot load
    broken = root / "broken"
    shutil.copytree(registry_model_dir(registry, versions["v1"], root), broken)
    for weights in broken.glob("*.safetensors"):
        weights.unlink()
    versions["broken"] = registry.register(MODEL, str(broken), None, {}).version
    registry.client.set_registered_model_alias(MODEL, CHAMPION, versions["v1"])

    replicas = []
    for name in ("a", "b"):
        home, port = root / f"home-{name}", _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__LLMOPS__")}
        env.pop("AIRFLOW_HOME", None)
        env.update({
            "LLMOPS_HOME": str(home), "HF_HUB_OFFLINE": "1",
            "AIRFLOW__LLMOPS__MLFLOW_TRACKING_URI": registry.tracking_uri, "AIRFLOW__LLMOPS__MODEL_NAME": MODEL,
            "AIRFLOW__LLMOPS__SERVE_POLL_INTERVAL": "1", "AIRFLOW__LLMOPS__SERVE_JWT_SECRET": SECRET,
            "AIRFLOW__LLMOPS__SERVE_MIRROR_FRACTION": "1.0",
        })  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_llmops.cli", "serve", "--port", str(port)], env=env,
            stdout=open(root / f"serve-{name}.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        replicas.append({"url": f"http://127.0.0.1:{port}", "process": process, "log": root / f"serve-{name}.log"})
    auth = AuthConfig(algorithms=("HS256",), issuer="llmops-local", audience="llmops-serve", secret=SECRET)
    world = {
        "registry": registry, "root": root, "versions": versions, "replicas": replicas,
        "predict": {"Authorization": f"Bearer {mint_token(auth, 'tester', ['predict'])}"},
        "admin_token": mint_token(auth, "deployer", ["admin"]),
        "texts": [str(r["text"]) for r in rows[:60]],
    }  # fmt: skip
    try:
        for replica in replicas:
            _wait(lambda r=replica: _serving(r["url"]).get("champion") == versions["v1"], 120, replica["log"])
        yield world
    finally:
        for replica in replicas:
            if replica["process"].poll() is None:
                os.killpg(replica["process"].pid, signal.SIGTERM)
            replica["process"].wait(timeout=30)


def registry_model_dir(registry: ModelRegistry, version: str, root: Path) -> Path:
    from airflow_provider_llmops.core.model.contract import fetch_model

    return fetch_model(registry, registry.get_version(MODEL, version), root / "cache")


def _serving(url: str) -> dict[str, str]:
    try:
        state = httpx.get(f"{url}/readyz", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return {role: info["version"] for role, info in (state.get("serving") or {}).items()}


def _wait(condition: Any, timeout_s: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"condition not met in {timeout_s} s" + (f"; log:\n{log.read_text()[-3000:]}" if log else ""))


def _set(registry: ModelRegistry, **aliases: str | None) -> None:
    for alias, version in aliases.items():
        name = {"champion": CHAMPION, "candidate": CANDIDATE, "canary": CANARY}[alias]
        if version is None:
            try:
                registry.client.delete_registered_model_alias(MODEL, name)
            except Exception:
                pass
        else:
            registry.client.set_registered_model_alias(MODEL, name, version)


class Traffic:
    """Requests to one replica from a few threads until stopped (bounded in count and time)."""

    def __init__(self, url: str, headers: dict[str, str], texts: list[str], threads: int = 2) -> None:
        self.url, self.headers, self.texts = url, headers, texts
        self.results: list[tuple[int, str | None, str | None]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, offset: int) -> None:
        started = time.monotonic()
        with httpx.Client(timeout=30) as client:
            for i in range(5000):
                if self.stop.is_set() or time.monotonic() - started > 120:
                    return
                r = client.post(f"{self.url}/v1/predict", json={"text": self.texts[(i + offset) % len(self.texts)]},
                                headers=self.headers)  # fmt: skip
                body = r.json() if r.status_code == 200 else {}
                self.results.append((r.status_code, body.get("model_version"), body.get("role")))
                time.sleep(0.01)

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


def test_two_replicas_converge_on_the_registry_without_being_told(world):
    registry, versions, replicas = world["registry"], world["versions"], world["replicas"]
    _set(registry, champion=versions["same"])
    for replica in replicas:
        _wait(lambda r=replica: _serving(r["url"]).get("champion") == versions["same"], 60, replica["log"])
        answer = httpx.post(f"{replica['url']}/v1/predict", json={"text": world["texts"][0]}, headers=world["predict"])
        assert answer.status_code == 200 and answer.json()["model_version"] == versions["same"]
    _set(registry, champion=versions["v1"])
    for replica in replicas:
        _wait(lambda r=replica: _serving(r["url"]).get("champion") == versions["v1"], 60, replica["log"])


def test_a_reload_under_traffic_loses_no_request(world):
    registry, versions = world["registry"], world["versions"]
    replica = world["replicas"][0]
    with Traffic(replica["url"], world["predict"], world["texts"]) as traffic:
        _wait(lambda: len(traffic.results) >= 20, 60)
        _set(registry, champion=versions["other"])
        reload = httpx.post(f"{replica['url']}/v1/admin/reload", timeout=60,
                            headers={"Authorization": f"Bearer {world['admin_token']}"})  # fmt: skip
        assert reload.status_code == 200 and reload.json()["serving"]["champion"]["version"] == versions["other"]
        count = len(traffic.results)
        _wait(lambda: len(traffic.results) >= count + 20, 60)
    statuses = {status for status, _, _ in traffic.results}
    assert statuses == {200}, statuses
    assert {version for _, version, _ in traffic.results} == {versions["v1"], versions["other"]}
    _set(registry, champion=versions["v1"])
    _wait(lambda: _serving(replica["url"]).get("champion") == versions["v1"], 60)


def _deploy(world: dict[str, Any], candidate: str) -> dict[str, Any]:
    registry, replica = world["registry"], world["replicas"][0]
    registry.tag_version(MODEL, candidate, {TAG_GATE: "passed"})  # what promotion writes when the gate passes
    _set(registry, candidate=candidate)
    scrape, reload = service_endpoints(replica["url"], world["admin_token"])
    audit = AuditTrail(world["root"] / "audit.jsonl")
    with Traffic(replica["url"], world["predict"], world["texts"]):
        return run_canary(
            registry=registry, audit=audit, model_name=MODEL, policy=POLICY, run={"dag_id": "t", "run_id": candidate},
            scrape=scrape, reload=reload, log=lambda _: None,
        )  # fmt: skip


def test_a_healthy_canary_is_rolled_out(world):
    registry, versions = world["registry"], world["versions"]
    result = _deploy(world, versions["same"])
    assert result["decision"] == "promoted" and [s["status"] for s in result["steps"]][-1] == "passed"
    aliases = registry.aliases(MODEL)
    assert aliases.get(CHAMPION) == versions["same"] and aliases.get(PREVIOUS) == versions["v1"]
    assert CANARY not in aliases and CANDIDATE not in aliases
    model = registry.client.get_registered_model(MODEL)
    assert float(model.tags.get(TAG_CANARY_SHARE, "0")) == 0.0
    _wait(lambda: _serving(world["replicas"][0]["url"]) == {"champion": versions["same"]}, 60)
    assert "model.deployed" in [r["event"] for r in records(world["root"] / "audit.jsonl")]
    _set(registry, champion=versions["v1"])


@pytest.mark.parametrize("which", ["other", "broken"])
def test_a_bad_canary_is_rolled_back_with_no_human(world, which: str):
    registry, versions = world["registry"], world["versions"]
    champion_before = registry.aliases(MODEL)[CHAMPION]
    with pytest.raises(CanaryRejected) as rejected:
        _deploy(world, versions[which])
    failing = {check["name"] if isinstance(check, dict) else str(check) for check in rejected.value.failing}
    assert failing & ({"disagreement"} if which == "other" else {"loaded"}), rejected.value.failing
    aliases = registry.aliases(MODEL)
    assert aliases.get(CHAMPION) == champion_before and CANARY not in aliases
    tags = registry.get_version(MODEL, versions[which]).tags
    assert json.loads(tags[TAG_CANARY_REJECTED])["reason"]
    assert float(registry.client.get_registered_model(MODEL).tags.get(TAG_CANARY_SHARE, "0")) == 0.0
    _wait(lambda: _serving(world["replicas"][0]["url"]) == {"champion": champion_before}, 60)
    _set(registry, candidate=None)


def test_a_causal_lm_registered_by_the_pipeline_generates_through_the_service(
    tmp_path: Path, sample_dir: Path, test_home: Path
):
    """A tiny GPT-2 (built from a config) trained and registered by the training job, served in-process by the real
    app over the real registry: /v1/generate answers with bounded new tokens and guardrails on prompt and output."""
    from fastapi.testclient import TestClient

    from airflow_provider_llmops.serving.app import Services, create_app
    from airflow_provider_llmops.serving.audit_log import InferenceAuditLog
    from airflow_provider_llmops.serving.auth import TokenVerifier
    from airflow_provider_llmops.serving.config import ServeConfig
    from airflow_provider_llmops.serving.guardrails import GuardrailConfig, Guardrails
    from airflow_provider_llmops.serving.metrics import ServeMetrics
    from airflow_provider_llmops.serving.models import ModelManager, RegistrySource
    from tests.unit.core.test_training import build_tiny_gpt

    shutil.copy(_template_db(str(test_home)), tmp_path / "mlflow.db")
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "artifacts"))
    registry.settle_s = 0.0
    rows = [json.loads(line) for line in (sample_dir / "tickets_reference.jsonl").read_text().splitlines()[:64]]
    config = TrainConfig(
        task="causal-lm", base_model=str(build_tiny_gpt(tmp_path / "gpt", layers=1)), max_length=32, batch_size=16,
        epochs=1, max_steps=2,
    )  # fmt: skip
    (tmp_path / "work").mkdir()
    summary = train_and_register(
        store=_Store(rows), registry=registry, model_name="writer", snapshots=[SnapshotSel("tickets", "s")],  # type: ignore[arg-type]
        config=config, key="gpt", run={"dag_id": "t", "run_id": "r"}, work_dir=tmp_path / "work", embedding_sample=0,
        log=lambda _: None,
    )  # fmt: skip
    registry.client.set_registered_model_alias("writer", CHAMPION, summary["version"])
    cfg = ServeConfig(model_name="writer", home=tmp_path, poll_interval_s=3600, max_new_tokens=8)
    metrics = ServeMetrics()
    auth = AuthConfig(algorithms=("HS256",), issuer="llmops-local", audience="llmops-serve", secret=SECRET)
    services = Services(
        cfg, ModelManager(RegistrySource(registry, "writer", cfg.cache_dir), metrics), TokenVerifier(auth), metrics,
        Guardrails(GuardrailConfig.default()), None, InferenceAuditLog(cfg.audit_path), None, None,
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {mint_token(auth, 'writer-client', ['predict'])}"}
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        _wait(lambda: client.get("/readyz").status_code == 200, 120)
        response = client.post("/v1/generate", headers=headers,
                               json={"prompt": "my email is eve@example.com and", "max_new_tokens": 500})  # fmt: skip
        body = response.json()
        assert response.status_code == 200, body
        assert body["model_version"] == str(summary["version"]) and body["max_new_tokens"] == 8
        assert isinstance(body["text"], str) and body["blocked"] is False
        assert {d["rule"] for d in body["guardrails"]["input"]["decisions"]} == {"pii_email"}
        assert client.post("/v1/predict", json={"text": "x"}, headers=headers).status_code == 422
    assert [r["data"]["route"] for r in records(cfg.audit_path)] == ["/v1/generate"]


def test_jobs_queued_on_redis_are_answered_by_a_worker_process(world):
    """`POST /v1/jobs` on a service with Redis, drained by `llmops serve --worker` (a separate process with the same
    registry and models); a client reads only its own jobs."""
    registry, root = world["registry"], world["root"]
    namespace_db = "redis://127.0.0.1:6379/0"
    home, port = root / "home-jobs", _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__LLMOPS__")}
    env.pop("AIRFLOW_HOME", None)
    env.update({
        "LLMOPS_HOME": str(home), "HF_HUB_OFFLINE": "1", "AIRFLOW__LLMOPS__MLFLOW_TRACKING_URI": registry.tracking_uri,
        "AIRFLOW__LLMOPS__MODEL_NAME": MODEL, "AIRFLOW__LLMOPS__SERVE_POLL_INTERVAL": "1",
        "AIRFLOW__LLMOPS__SERVE_JWT_SECRET": SECRET, "AIRFLOW__LLMOPS__SERVE_REDIS_URL": namespace_db,
    })  # fmt: skip
    cli = [sys.executable, "-m", "airflow_provider_llmops.cli", "serve"]
    server = subprocess.Popen([*cli, "--port", str(port)], env=env, stdout=open(root / "jobs-serve.log", "wb"),
                              stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    worker = subprocess.Popen([*cli, "--worker"], env=env, stdout=open(root / "jobs-worker.log", "wb"),
                              stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _serving(url).get("champion") is not None, 120, root / "jobs-serve.log")
        queued = httpx.post(f"{url}/v1/jobs", json={"texts": world["texts"][:3]}, headers=world["predict"], timeout=30)
        assert queued.status_code == 202, queued.text
        job_id = queued.json()["job_id"]
        result: dict[str, Any] = {}

        def done() -> bool:
            result.update(httpx.get(f"{url}/v1/jobs/{job_id}", headers=world["predict"], timeout=10).json())
            return result.get("status") in ("done", "failed")

        _wait(done, 120, root / "jobs-worker.log")
        assert result["status"] == "done", result
        labels = [answer["label"] for answer in result["result"]]
        assert len(labels) == 3 and {a["model_version"] for a in result["result"]} == {_serving(url)["champion"]}
        other = {"Authorization": f"Bearer {mint_token(_auth(), 'someone-else', ['predict'])}"}
        assert httpx.get(f"{url}/v1/jobs/{job_id}", headers=other, timeout=10).status_code == 404
        assert httpx.get(f"{url}/v1/jobs/not-a-job", headers=world["predict"], timeout=10).status_code == 404
    finally:
        for process in (server, worker):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def _auth() -> AuthConfig:
    return AuthConfig(algorithms=("HS256",), issuer="llmops-local", audience="llmops-serve", secret=SECRET)
