"""The nightly sanity checks (core/governance/sanity.py) on a real world: a SQLite MLflow registry, a store, the
audit trail, with a champion trained (fake model: tests/unit/fake_model.py), evaluated on the golden set and
promoted by the real operators. Each check is green on that state and red, with the message that says what is wrong
and where to look, for each injected failure. Only training and classifier loading are faked."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_llmops.core.drift.job import DRIFT_JSON
from airflow_provider_llmops.core.governance import sanity
from airflow_provider_llmops.core.governance.sanity import CheckResult
from airflow_provider_llmops.core.model.contract import CHAMPION, TAG_EVALUATION, TAG_PROMOTED_BY
from airflow_provider_llmops.operators.evaluate import EvaluateModelOperator
from airflow_provider_llmops.operators.promote import PromoteModelOperator
from airflow_provider_llmops.operators.train import FineTuneOperator
from airflow_provider_llmops.resources import sample_data_dir
from tests.unit.fake_model import ModelEnv, add_snapshot, context, fake_models, sample_rows

DATASET = "tickets"
MODEL = "router"
GOLDEN = sample_data_dir() / "golden.jsonl"


class World:
    def __init__(self, env: ModelEnv, snapshot: str, tmp: Path) -> None:
        self.env, self.snapshot, self.tmp = env, snapshot, tmp
        self.cache = tmp / "cache"
        self.lineage = env.home / "lineage" / "events.jsonl"
        env.registry.ui_url = "http://mlflow.test"  # as open_registry sets it from [llmops] mlflow_ui_url

    def champion(self, **kwargs: Any) -> CheckResult:
        args = {"golden_path": GOLDEN, **kwargs}
        return sanity.check_champion(
            registry=self.env.registry, store=self.env.store, model_name=MODEL, cache_dir=self.cache, **args
        )

    def audit(self, **kwargs: Any) -> CheckResult:
        args = {"lineage_file": self.lineage, **kwargs}
        return sanity.check_audit(audit_path=self.env.audit_path, registry=self.env.registry, model_name=MODEL, **args)

    def artifact(self, name: str) -> Path:
        (path,) = (self.tmp / "mlflow" / "artifacts").rglob(f"model/{name}")
        return path


def lineage_event(model: str, version: str, when: datetime | None = None) -> dict[str, Any]:
    """What the OpenLineage file transport writes for a promote task's COMPLETE event (the fields read here)."""
    return {
        "eventType": "COMPLETE",
        "eventTime": (when or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "llmops", "name": "llmops_retrain.promote"},
        "outputs": [{"namespace": "mlflow://localhost", "name": f"models/{model}/versions/{version}"}],
    }


def append_events(path: Path, *events: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for event in events:
            f.write(json.dumps(event) + "\n")


LENIENT = {"floors": {"macro_f1": 0.0, "accuracy": 0.0}, "max_fairness_gap": None}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, test_home: Path, sample_dir: Path) -> Iterator[tuple]:
    """The world, built once per module (training, evaluation and promotion take seconds), and a copy of it."""
    import shutil

    root = tmp_path_factory.mktemp("sanity")
    tmp = root / "world"
    tmp.mkdir()
    mp = pytest.MonkeyPatch()
    try:
        env = ModelEnv(tmp, mp, test_home)
        fake_models(mp, "noisy")
        snapshot = add_snapshot(env.store, DATASET, sample_rows(sample_dir, count=200))
        FineTuneOperator(task_id="fine_tune", model_name=MODEL, dataset=DATASET, embedding_sample=0).execute(
            context(task_id="fine_tune")
        )
        evaluation = EvaluateModelOperator(
            task_id="evaluate", model_name=MODEL, golden_path=str(GOLDEN), latency_sample=5, min_group_size=5
        ).execute(context(task_id="evaluate"))
        PromoteModelOperator(task_id="promote", evaluation=evaluation, gate=LENIENT).execute(context(task_id="promote"))
        assert env.registry.alias(MODEL, CHAMPION) == "1"
        shutil.copytree(tmp, root / "pristine")
        yield env, snapshot, tmp, root / "pristine"
    finally:
        mp.undo()


@pytest.fixture
def world(pristine: tuple) -> World:
    """The pristine world, restored in place before each test (which may break it). The MLflow database is
    restored through SQLite's backup API into the same file: MLflow keeps its engine per URI open across tests."""
    import shutil
    import sqlite3

    env, snapshot, tmp, copy = pristine
    for child in tmp.iterdir():
        if child.name != "mlflow":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.rmtree(tmp / "mlflow" / "artifacts")
    shutil.copytree(copy, tmp, ignore=lambda d, names: ["mlflow.db"] if Path(d) == copy / "mlflow" else [],
                    dirs_exist_ok=True)  # fmt: skip
    with sqlite3.connect(copy / "mlflow" / "mlflow.db") as source, sqlite3.connect(tmp / "mlflow" / "mlflow.db") as db:
        source.backup(db)
    w = World(env, snapshot, tmp)
    append_events(w.lineage, lineage_event(MODEL, "1"))
    return w


# ---- champion ------------------------------------------------------------------------------------------------


def test_champion_is_green_on_a_good_state_and_reproduces_on_the_golden_set(world: World):
    result = world.champion()
    assert result.ok is True, result.message
    assert result.name == "champion" and result.details["version"] == "1"
    metrics = result.details["metrics"]
    assert set(metrics) == {"accuracy", "macro_f1"} and all(m["compared"] for m in metrics.values())
    assert all(m["diff"] == pytest.approx(0.0, abs=1e-12) for m in metrics.values())
    assert result.details["rows"] == 70 and "reproduces on the golden set" in result.message


def test_champion_without_golden_set_rescores_a_bounded_sample_of_the_frozen_set(world: World):
    result = world.champion(golden_path=None, sample_rows=10_000)
    assert result.ok is True, result.message
    assert result.details["rows"] == result.details["frozen_rows"] == 45 + 70  # held-out (seed 42) + golden rows
    assert "frozen evaluation set" in result.message
    bounded = world.champion(golden_path=None, sample_rows=25, tolerances={"accuracy": 1.0})
    assert bounded.ok is True and bounded.details["rows"] == 25


def test_champion_missing_artifact_says_which_file_and_where(world: World):
    world.artifact("model.safetensors").unlink()
    result = world.champion()
    assert result.ok is False
    assert "champion router v1: its model artifacts lack model.safetensors" in result.message
    assert "http://mlflow.test/#/models/router/versions/1" in result.message
    assert result.details["missing"] == ["model.safetensors"]


def test_champion_missing_mlmodel_is_named_unless_not_required(world: World):
    world.artifact("MLmodel").unlink()
    assert "lack MLmodel" in world.champion().message
    assert world.champion(require_mlmodel=False).ok is True


def test_champion_with_a_tampered_evaluation_fails_on_its_hash(world: World):
    uri = world.env.registry.get_version(MODEL, "1").tags[TAG_EVALUATION]
    path = Path(uri.removeprefix("file://"))
    report = json.loads(path.read_bytes())
    report["summary"]["challenger"]["macro_f1"] = 0.99
    path.write_text(json.dumps(report))
    result = world.champion()
    assert result.ok is False
    assert "its stored evaluation fails its check" in result.message
    assert "does not match its hash" in result.message and str(uri) in result.message


def test_champion_that_no_longer_reproduces_names_the_metrics(world: World):
    fake = world.artifact("fake_model.json")  # the model files changed after the evaluation: it now knows the set
    spec = json.loads(fake.read_text())
    golden = [json.loads(line) for line in GOLDEN.read_text().splitlines() if line.strip()]
    spec["answers"].update({r["text"]: r["label"] for r in golden})
    fake.write_text(json.dumps({**spec, "mode": "oracle"}))
    result = world.champion(tolerances={"accuracy": 0.02, "macro_f1": 0.02})
    assert result.ok is False
    assert result.message.startswith("champion router v1 no longer reproduces its stored evaluation on the golden set")
    assert "macro_f1" in result.message and "stored (tolerance 0.02)" in result.message
    assert result.details["metrics"]["macro_f1"]["diff"] > 0.02


def test_champion_absent_says_how_to_get_one(world: World):
    world.env.registry.client.delete_registered_model_alias(MODEL, CHAMPION)
    result = world.champion()
    assert result.ok is False and "has no 'champion' alias" in result.message and "llmops_rollback" in result.message


def test_champion_without_evaluation_tags(world: World):
    world.env.registry.client.delete_model_version_tag(MODEL, "1", TAG_EVALUATION)
    result = world.champion()
    assert result.ok is False and "it has no stored evaluation" in result.message


def test_tolerances_are_checked():
    from airflow_provider_llmops.errors import ConfigurationError

    assert sanity.tolerance_map(None) == {"macro_f1": 0.02, "accuracy": 0.02}
    assert sanity.tolerance_map({"accuracy": 0}) == {"accuracy": 0.0}
    for bad in ({"accuracy": -1}, {"accuracy": "x"}, {}, {"accuracy": float("nan")}):
        with pytest.raises(ConfigurationError, match="tolerance"):
            sanity.tolerance_map(bad)


# ---- endpoint ------------------------------------------------------------------------------------------------


class Service:
    """A real HTTP stand-in of `llmops serve`'s /v1/predict on 127.0.0.1: answers with `version` and the label
    `label_of(text)`; requires the bearer token."""

    def __init__(self, version: str, label_of: Any, token: str = "t0ken", canary_first: int = 0) -> None:
        self.version, self.label_of, self.token = version, label_of, token
        self.canary_left = canary_first
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self._send(401, {"detail": "unauthorized"})
                    return
                role, version = "champion", outer.version
                if outer.canary_left > 0:
                    outer.canary_left -= 1
                    role, version = "canary", "99"
                predictions = [{"label": outer.label_of(t)} for t in body["texts"]]
                self._send(200, {"model_version": version, "role": role, "predictions": predictions})

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def golden_texts() -> list[str]:
    return [json.loads(line)["text"] for line in GOLDEN.read_text().splitlines() if line.strip()]


@pytest.fixture
def in_process(world: World, golden_texts: list[str]) -> tuple[str, list[str]]:
    return sanity.champion_labels(world.env.registry, MODEL, world.cache, golden_texts)


def _service(version: str, texts: list[str], labels: list[str], **kwargs: Any) -> Iterator[Service]:
    answers = dict(zip(texts, labels, strict=True))
    service = Service(version, lambda t: answers[t], **kwargs)
    try:
        yield service
    finally:
        service.stop()


def test_endpoint_agrees_with_the_champion_in_process(golden_texts: list[str], in_process: tuple[str, list[str]]):
    version, labels = in_process
    assert version == "1" and len(labels) == 70
    for service in _service("1", golden_texts, labels, canary_first=1):  # a canary answer is asked again
        result = sanity.check_endpoint(
            serve_url=service.url, champion_version=version, texts=golden_texts, expected=labels, token="t0ken"
        )
        assert result.ok is True, result.message
        assert len(service.requests) == 4  # 70 texts in batches of 32, one asked twice
        assert result.details["versions"] == ["1"]


def test_endpoint_serving_another_version_fails(golden_texts: list[str], in_process: tuple[str, list[str]]):
    version, labels = in_process
    for service in _service("7", golden_texts, labels):
        result = sanity.check_endpoint(
            serve_url=service.url, champion_version=version, texts=golden_texts, expected=labels, token="t0ken"
        )
        assert result.ok is False
        assert "answers with version 7 (role champion), the registry's champion is v1" in result.message
        assert "/v1/admin/reload" in result.message


def test_endpoint_with_other_labels_or_a_refused_token_fails(
    golden_texts: list[str], in_process: tuple[str, list[str]]
):
    version, labels = in_process
    wrong = ["other" if i % 10 == 0 else label for i, label in enumerate(labels)]
    for service in _service("1", golden_texts, wrong):
        result = sanity.check_endpoint(
            serve_url=service.url, champion_version=version, texts=golden_texts, expected=labels, token="t0ken"
        )
        assert result.ok is False and "gives 7 of 70 golden texts another label" in result.message
        refused = sanity.check_endpoint(
            serve_url=service.url, champion_version=version, texts=golden_texts, expected=labels, token="nope"
        )
        assert refused.ok is False and "answered HTTP 401 (the sanity token was refused" in refused.message


def test_endpoint_unreachable_and_unconfigured():
    result = sanity.check_endpoint(
        serve_url="http://127.0.0.1:9", champion_version="1", texts=["a"], expected=["x"], token=None, timeout_s=2
    )
    assert result.ok is False and "cannot be reached" in result.message
    skipped = sanity.check_endpoint(serve_url=None, champion_version=None, texts=[], expected=[], token=None)
    assert (skipped.ok, skipped.skipped) == (True, True) and "serve_url is empty" in skipped.message


# ---- freshness -----------------------------------------------------------------------------------------------


def _drift(world: World, snapshot: str) -> None:
    world.env.store.write_beside(DATASET, snapshot, DRIFT_JSON, json.dumps({"snapshot_id": snapshot}).encode())


def test_freshness_green_when_the_newest_batch_is_young_and_drift_scored(world: World):
    _drift(world, world.snapshot)
    result = sanity.check_freshness(store=world.env.store, datasets=[DATASET])
    assert result.ok is True, result.message
    assert result.details[DATASET]["newest"] == world.snapshot and result.details[DATASET]["last_drift"]


def test_freshness_stale_snapshot(world: World):
    _drift(world, world.snapshot)
    later = datetime.now(UTC) + timedelta(hours=30)
    result = sanity.check_freshness(store=world.env.store, datasets=[DATASET], now=later)
    assert result.ok is False
    assert f"the newest validated snapshot {world.snapshot} is 30.0 h old (bound 26 h)" in result.message
    assert "llmops_ingest_validate" in result.message


def test_freshness_drift_older_than_the_last_batch(world: World, sample_dir: Path):
    _drift(world, world.snapshot)
    newer = add_snapshot(world.env.store, DATASET, sample_rows(sample_dir, "tickets_batch_drift.jsonl", count=50))
    later = datetime.now(UTC) + timedelta(hours=3)  # past the grace a new batch has to wait for its drift run
    result = sanity.check_freshness(store=world.env.store, datasets=[DATASET], now=later)
    assert result.ok is False
    assert f"the last drift report is of snapshot {world.snapshot}, older than the last validated batch {newer}" in (
        result.message
    )
    within_grace = sanity.check_freshness(store=world.env.store, datasets=[DATASET])
    assert within_grace.ok is True, within_grace.message


def test_freshness_without_any_validated_snapshot(world: World):
    result = sanity.check_freshness(store=world.env.store, datasets=["nothing_here"])
    assert result.ok is False and "has no snapshot that passed validation" in result.message


# ---- audit ---------------------------------------------------------------------------------------------------


def test_audit_green_with_record_tags_anchor_and_lineage(world: World):
    result = world.audit()
    assert result.ok is True, result.message
    assert result.details["record"]["event"] == "model.promoted" and result.details["lineage_event"]


def test_audit_broken_chain(world: World):
    lines = world.env.audit_path.read_text().splitlines()
    first = json.loads(lines[0])
    first["actor"] = "someone else"
    world.env.audit_path.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    result = world.audit()
    assert result.ok is False
    assert "is BROKEN at line 1: hash does not match the record's content" in result.message
    assert "llmops audit verify" in result.message


def test_audit_missing_record_of_the_champion_change(world: World):
    world.env.registry.client.set_registered_model_alias(MODEL, CHAMPION, "1")  # untouched champion ...
    lines = world.env.audit_path.read_text().splitlines()
    kept = [json.loads(line) for line in lines if json.loads(line)["event"] != "model.promoted"]
    assert len(kept) == len(lines) - 1
    # ... with a trail that never recorded its promotion (rebuilt, so the chain itself verifies)
    from airflow_provider_llmops.core.governance.audit import AuditTrail

    world.env.audit_path.unlink()
    trail = AuditTrail(world.env.audit_path)
    for record in kept:
        trail.append(record["event"], record["data"], actor=record["actor"])
    world.env.registry.client.delete_registered_model_tag(MODEL, "llmops.audit_head")
    result = world.audit()
    assert result.ok is False
    assert "router v1 is champion but the audit trail" in result.message
    assert "has no model.promoted, model.deployed or model.rolled_back record" in result.message


def test_audit_anchor_ahead_of_the_file(world: World):
    lines = world.env.audit_path.read_text().splitlines()
    world.env.audit_path.write_text("\n".join(lines[:-1]) + "\n")  # the last record cut off
    result = world.audit()
    assert result.ok is False and "records were removed from the end" in result.message


def test_audit_champion_change_without_its_tags(world: World):
    world.env.registry.client.delete_model_version_tag(MODEL, "1", TAG_PROMOTED_BY)
    result = world.audit()
    assert result.ok is False and f"lacks its registry tags {TAG_PROMOTED_BY}=" in result.message


def test_audit_champion_change_without_lineage_event(world: World):
    world.lineage.write_text(json.dumps(lineage_event(MODEL, "2")) + "\n")
    result = world.audit()
    assert result.ok is False
    assert "has no lineage event: no COMPLETE event writing models/router/versions/1" in result.message
    unreadable = world.audit(lineage_file=None, transport="a 'http' transport")
    assert unreadable.ok is True and "not checkable" in unreadable.details["lineage"]


# ---- lineage -------------------------------------------------------------------------------------------------


def test_lineage_recent_events(world: World):
    result = sanity.check_lineage(lineage_file=world.lineage, transport="file")
    assert result.ok is True and result.details["recent"] == 1


def test_lineage_without_recent_events(world: World):
    later = datetime.now(UTC) + timedelta(days=2)
    result = sanity.check_lineage(lineage_file=world.lineage, transport="file", now=later)
    assert result.ok is False
    assert f"the OpenLineage file transport {world.lineage} received 0 event(s) in the last 24 h" in result.message
    missing = sanity.check_lineage(lineage_file=world.tmp / "none.jsonl", transport="file")
    assert missing.ok is False and "it holds none" in missing.message
    elsewhere = sanity.check_lineage(lineage_file=None, transport="a 'http' transport")
    assert elsewhere.ok is True and elsewhere.skipped is True


def test_lineage_reads_only_the_tail_of_a_large_log(tmp_path: Path):
    log = tmp_path / "events.jsonl"
    old = lineage_event(MODEL, "1", datetime(2020, 1, 1, tzinfo=UTC))
    append_events(log, *[old] * 200, lineage_event(MODEL, "1"))
    events = sanity.read_lineage(log, max_bytes=2000)
    assert 1 <= len(events) < 20 and events[-1]["eventTime"] > old["eventTime"]


# ---- report --------------------------------------------------------------------------------------------------


def test_report_files_and_missing_results(tmp_path: Path):
    results = sanity.results_from(
        {"champion": CheckResult("champion", True, "fine").to_dict(), "audit": None}, ["champion", "audit"]
    )
    assert [(r.name, r.ok) for r in results] == [("champion", True), ("audit", False)]
    assert "recorded no result" in results[1].message
    report = sanity.summarise(results, run={"dag_id": "d"})
    json_path, html_path = sanity.write_report(report, tmp_path / "reports")
    assert json.loads(json_path.read_text())["failed"] == ["audit"]
    assert "FAILED: audit" in html_path.read_text() and "&lt;" not in html_path.read_text()


def test_endpoint_texts_fall_back_to_the_frozen_set(world: World):
    texts = sanity.frozen_texts(world.env.registry, world.env.store, MODEL, 1000)
    assert len(texts) == 115 and len(sanity.frozen_texts(world.env.registry, world.env.store, MODEL, 10)) == 10


def test_the_endpoint_task_sends_the_golden_set_with_a_token(
    world: World, golden_texts: list[str], in_process: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
):
    """The operator end to end: golden texts, the champion scored in-process, the connection's token (then one
    minted with the service's local HS key when no connection is named), against the HTTP stand-in."""
    from airflow_provider_llmops.operators.sanity import RESULT_KEY, SanityCheckOperator

    version, labels = in_process
    monkeypatch.setenv("AIRFLOW_CONN_SANITY_SERVE", json.dumps({"conn_type": "http", "password": "t0ken"}))
    for service in _service(version, golden_texts, labels):
        pushed = context(task_id="endpoint")
        op = SanityCheckOperator(
            task_id="endpoint", check="endpoint", model_name=MODEL, golden_path=str(GOLDEN), serve_url=service.url,
            serve_conn_id="sanity_serve",
        )  # fmt: skip
        result = op.execute(pushed)
        assert result["ok"] is True, result["message"]
        assert pushed["pushed"][RESULT_KEY] == result and sum(len(r["texts"]) for r in service.requests) == 70
        minted = SanityCheckOperator(
            task_id="endpoint", check="endpoint", model_name=MODEL, golden_path=str(GOLDEN), serve_url=service.url
        )
        with pytest.raises(sanity.SanityCheckFailed, match="answered HTTP 401"):
            minted.execute(context(task_id="endpoint"))  # a JWT minted with the local key is not the stub's token
        assert minted._token().count(".") == 2
