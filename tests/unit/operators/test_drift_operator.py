"""DriftScoreOperator with an empty context: reference resolution, profile reuse, reports, metrics, lineage facet."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest
from openlineage.client.serde import Serde
from prometheus_client.parser import text_string_to_metric_families

from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.errors import ConfigurationError
from airflow_provider_llmops.operators.drift import DriftScoreOperator
from airflow_provider_llmops.operators.ingest import IngestBatchOperator
from airflow_provider_llmops.operators.validate import ValidateBatchOperator
from tests.openlineage_spec import SCHEMAS, _validator


def _ingest_validate(source: Path, dataset: str = "tickets") -> str:
    snapshot_id = IngestBatchOperator(task_id="i", source_uri=str(source), dataset=dataset).execute(context={})[
        "snapshot_id"
    ]
    ValidateBatchOperator(task_id="v", dataset=dataset, snapshot_id=snapshot_id).execute(context={})
    return snapshot_id


class _Pushgateway(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, str]] = []

    def do_PUT(self):  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        _Pushgateway.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args):
        pass


@pytest.fixture
def pushgateway(monkeypatch: pytest.MonkeyPatch):
    """A local HTTP endpoint speaking the Pushgateway's push protocol (PUT /metrics/job/...), which records pushes."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pushgateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Pushgateway.received = []
    monkeypatch.setenv("AIRFLOW__LLMOPS__PUSHGATEWAY_URL", f"127.0.0.1:{server.server_address[1]}")
    yield _Pushgateway.received
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_drift_end_to_end_without_airflow_db(
    allow_tmp: Path, sample_dir: Path, pushgateway, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AIRFLOW__LLMOPS__HOME", str(allow_tmp / "home"))
    reference = _ingest_validate(sample_dir / "tickets_reference.jsonl")
    drifted = _ingest_validate(sample_dir / "tickets_batch_drift.jsonl")
    op = DriftScoreOperator(task_id="drift", dataset="tickets", snapshot_id=drifted, embedding_sample=200)
    result = op.execute(context={})
    assert result["verdict"] == "drift" and result["reference_snapshot_ids"] == [reference]
    assert {"char_length", "label", "meta:channel"} <= set(result["drifting_features"])
    assert len(json.dumps(result)) < 4000  # a summary, not the report
    store = DatasetStore(str(allow_tmp / "store"))
    assert store.has_profile("tickets", reference)
    report_path = Path(result["report_uri"].removeprefix("file://"))
    assert json.loads(report_path.read_text())["features"]["char_length"]["verdict"]["drift"]
    assert "<svg" in Path(result["html_uri"].removeprefix("file://")).read_text()

    # metrics: pushed to the gateway and written as a textfile
    assert result["metrics_pushed"] is True
    (path, body) = pushgateway[-1]
    assert path == "/metrics/job/llmops_drift/dataset/tickets"
    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert next(s.value for s in families["llmops_drift_detected"].samples) == 1.0
    assert (allow_tmp / "home" / "metrics" / "llmops_drift_tickets.prom").exists()

    # the custom lineage facet validates against the schema shipped in lineage/schemas/
    lineage = op.get_openlineage_facets_on_complete(None)
    facet = Serde.to_dict(lineage.run_facets["llmopsDrift"])
    schema_id = SCHEMAS["LlmopsDriftRunFacet.json"]["$id"]
    assert facet["_schemaURL"] == f"{schema_id}#/$defs/LlmopsDriftRunFacet"
    _validator(schema_id, "/$defs/LlmopsDriftRunFacet").validate(facet)
    assert [d.name.rsplit("/", 2)[-2] for d in lineage.inputs] == ["tickets", "tickets"]  # snapshot + profile

    # second run: the profile is reused, not rebuilt; an empty snapshot id means the latest validated one
    again = DriftScoreOperator(task_id="drift", dataset="tickets", snapshot_id="", embeddings=False).execute(context={})
    assert again["snapshot_id"] == drifted and again["profile_id"] != ""


def test_unreachable_pushgateway_does_not_fail_the_task(
    allow_tmp: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AIRFLOW__LLMOPS__PUSHGATEWAY_URL", f"127.0.0.1:{port}")
    monkeypatch.setenv("AIRFLOW__LLMOPS__HOME", str(allow_tmp / "home"))
    snapshot = _ingest_validate(sample_dir / "tickets_batch_same.jsonl")
    result = DriftScoreOperator(task_id="drift", dataset="tickets", snapshot_id=snapshot, embeddings=False).execute(
        context={}
    )
    assert result["metrics_pushed"] is False and result["verdict"] == "no_drift"  # scored against itself


def test_no_validated_reference_is_a_clear_error(allow_tmp: Path, sample_dir: Path):
    snapshot = IngestBatchOperator(task_id="i", source_uri=str(sample_dir / "golden.jsonl"), dataset="gold").execute(
        context={}
    )["snapshot_id"]
    with pytest.raises(ConfigurationError, match="no snapshot that passed validation"):
        DriftScoreOperator(task_id="drift", dataset="gold", snapshot_id=snapshot, embeddings=False).execute(context={})


def test_the_champion_predicts_at_the_max_length_of_its_profile(
    tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """The champion's profile records the max_length its reference predictions were made at (training's); the
    operator's predictor uses it instead of the classifier's default (128), so both sides are predicted alike."""
    import types

    import airflow_provider_llmops.core.model.contract as contract
    import airflow_provider_llmops.core.model.modeling as modeling
    from airflow_provider_llmops.core.data.batches import iter_chunks
    from airflow_provider_llmops.core.drift.profile import build_profile
    from airflow_provider_llmops.operators.drift import _champion_profile

    profile = build_profile(
        lambda: iter_chunks(str(sample_dir / "golden.jsonl")),
        embedding_sample=0,
        predictor=lambda texts: ["x"] * len(texts),
        predictor_max_length=48,
    )
    profile.save(tmp_path / "profile")
    registry = types.SimpleNamespace(
        tracking_uri="sqlite:///unused",
        alias=lambda name, alias: "3",
        get_version=lambda name, version: types.SimpleNamespace(run_id="run-1"),
    )
    loaded: list[dict] = []

    def load_classifier(model_dir, **kwargs):
        loaded.append(kwargs)
        return types.SimpleNamespace(predict=lambda texts: ["x"] * len(texts))

    monkeypatch.setattr(contract, "fetch_artifact_dir", lambda *args: tmp_path / "profile")
    monkeypatch.setattr(contract, "fetch_model", lambda *args: tmp_path / "model")
    monkeypatch.setattr(modeling, "load_classifier", load_classifier)
    champion, predictor, version = _champion_profile("m", registry, tmp_path / "cache")
    assert loaded == [{"max_length": 48}] and predictor(["a", "b"]) == ["x", "x"]
    assert version == ("sqlite:///unused", "m", "3")
    assert champion.predictor_max_length == 48 and champion.tokenizer.path == str(tmp_path / "model" / "tokenizer.json")
