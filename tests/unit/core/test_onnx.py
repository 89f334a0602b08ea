"""The ONNX export and its runtime on a tiny BERT classifier built from a config and trained two steps: parity with
torch (same labels, scores within the tolerance) at batch 1 and 32 and on padded batches, and the export never
failing training: a causal LM, a failed export, a failed parity or a missing runtime each register without ONNX."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airflow_provider_llmops.core.model import onnx_export
from airflow_provider_llmops.core.model.contract import (
    LABEL_MAP_FILE,
    METRIC_ONNX_EXPORT_SECONDS,
    METRIC_ONNX_LABEL_AGREEMENT,
    METRIC_ONNX_MAX_ABS_DIFF,
    ONNX_EXPORTED,
    ONNX_SKIPPED,
    TAG_ONNX,
    TAG_ONNX_LABEL_AGREEMENT,
    TAG_ONNX_MAX_ABS_DIFF,
    TAG_ONNX_PARITY_ROWS,
    TAG_ONNX_REASON,
    TAG_ONNX_TOLERANCE,
)
from airflow_provider_llmops.core.model.modeling import load_classifier
from airflow_provider_llmops.core.model.onnx_export import OnnxExport, export_classifier
from airflow_provider_llmops.core.model.onnx_runtime import load_onnx_classifier, softmax
from airflow_provider_llmops.core.model.training import TrainConfig, split_rows, train
from airflow_provider_llmops.errors import ConfigurationError
from tests.unit.core.test_training import build_tiny_bert, build_tiny_gpt

# ONNX export and ONNX Runtime sessions: in the full suite (CI), not in the quick tier
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rows(sample_dir: Path) -> list[dict[str, Any]]:
    lines = (sample_dir / "tickets_reference.jsonl").read_text().splitlines()[:160]
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def held_out(rows: list[dict[str, Any]]) -> list[str]:
    return [r["text"] for r in split_rows(rows, 42, 0.2)[1]]


def _trained(rows: list[dict[str, Any]], base: Path, target: Path, **overrides: Any) -> Path:
    values = {"base_model": str(base), "max_length": 48, "batch_size": 16, "epochs": 1, "max_steps": 2}
    train(rows, TrainConfig(**{**values, **overrides}), target, log=lambda _: None)
    return target


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]]) -> Path:
    root = tmp_path_factory.mktemp("onnx-classifier")
    return _trained(rows, build_tiny_bert(root / "base"), root / "model")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, classifier_dir: Path, held_out: list[str]) -> OnnxExport:
    target = tmp_path_factory.mktemp("onnx") / "onnx" / "model.onnx"
    logs: list[str] = []
    outcome = export_classifier(classifier_dir, target, held_out, log=logs.append)
    assert logs and logs[-1].startswith("ONNX export in")
    return outcome


def test_the_export_passes_parity_on_the_held_out_split(exported: OnnxExport, held_out: list[str]):
    assert exported.status == ONNX_EXPORTED and exported.exported and exported.reason == ""
    assert exported.path is not None and exported.path.is_file()
    assert exported.rows == len(held_out) and exported.label_agreement == 1.0
    assert 0.0 <= exported.max_abs_diff <= exported.tolerance == onnx_export.DEFAULT_TOLERANCE == 1e-4
    assert exported.export_seconds > 0 and exported.parity_seconds > 0
    tags = exported.tags()
    assert tags[TAG_ONNX] == ONNX_EXPORTED and TAG_ONNX_REASON not in tags and tags[TAG_ONNX_TOLERANCE] == "0.0001"
    assert float(tags[TAG_ONNX_MAX_ABS_DIFF]) == pytest.approx(exported.max_abs_diff, rel=1e-3, abs=1e-12)
    assert tags[TAG_ONNX_LABEL_AGREEMENT] == "1.000000" and tags[TAG_ONNX_PARITY_ROWS] == str(len(held_out))
    metrics = exported.metrics()
    assert set(metrics) == {METRIC_ONNX_MAX_ABS_DIFF, METRIC_ONNX_LABEL_AGREEMENT, METRIC_ONNX_EXPORT_SECONDS}
    assert json.loads(json.dumps(exported.summary()))["status"] == ONNX_EXPORTED


@pytest.mark.parametrize("batch_size", [1, 32])
def test_onnx_runtime_predicts_what_torch_predicts(
    exported: OnnxExport, classifier_dir: Path, held_out: list[str], rows: list[dict[str, Any]], batch_size: int
):
    texts = [r["text"] for r in rows[:40]] + ["", "x", "a very long ticket about a refund " * 30]  # padded batches
    torch = load_classifier(classifier_dir)
    onnx = load_onnx_classifier(classifier_dir, exported.path, intra_op_threads=1)
    assert onnx.runtime == "onnxruntime" and torch.runtime == "torch"
    assert onnx.labels == torch.labels and onnx.max_length == torch.max_length == 48
    expected = torch.predict_proba(texts, batch_size=batch_size)
    got = onnx.predict_proba(texts, batch_size=batch_size)
    assert got.shape == expected.shape == (len(texts), len(torch.labels))
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-9)
    assert np.abs(got - expected).max() <= 1e-4
    assert onnx.predict(texts, batch_size=batch_size) == torch.predict(texts, batch_size=batch_size)
    assert onnx.predict([]) == [] and onnx.predict_proba([]).shape == (0, len(torch.labels))
    assert len(onnx.latencies(texts[:3], warmup=1)) == 3


def test_a_failed_parity_registers_without_onnx(classifier_dir: Path, held_out: list[str], tmp_path: Path):
    target = tmp_path / "model.onnx"
    outcome = export_classifier(classifier_dir, target, held_out, tolerance=-1.0, log=lambda _: None)
    assert outcome.status == ONNX_SKIPPED and "parity failed" in outcome.reason and not target.exists()
    assert outcome.max_abs_diff is not None and outcome.rows == len(held_out)  # what was measured is still reported
    assert outcome.tags()[TAG_ONNX] == ONNX_SKIPPED and "parity failed" in outcome.tags()[TAG_ONNX_REASON]


def test_export_problems_never_raise(
    classifier_dir: Path,
    held_out: list[str],
    rows: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    quiet = {"log": lambda _: None}
    lm = _trained(rows, build_tiny_gpt(tmp_path / "gpt", layers=1), tmp_path / "lm", task="causal-lm")
    outcome = export_classifier(lm, tmp_path / "lm.onnx", held_out, **quiet)
    assert outcome.status == ONNX_SKIPPED and "causal-lm" in outcome.reason and outcome.metrics() == {}

    outcome = export_classifier(classifier_dir, tmp_path / "none.onnx", [], **quiet)
    assert outcome.status == ONNX_SKIPPED and "no held-out texts" in outcome.reason

    def cannot_trace(classifier: Any, target: Path) -> None:
        target.write_bytes(b"half written")
        raise RuntimeError("unsupported operator aten::something \x1b[96mstep 1/3\x1b[0m\n" + "detail " * 200)

    monkeypatch.setattr(onnx_export, "_export_graph", cannot_trace)
    outcome = export_classifier(classifier_dir, tmp_path / "bad.onnx", held_out, **quiet)
    assert outcome.status == ONNX_SKIPPED and "export failed: RuntimeError: unsupported operator" in outcome.reason
    assert not (tmp_path / "bad.onnx").exists()
    assert "\x1b" not in outcome.reason and "\n" not in outcome.reason and len(outcome.reason) < 400  # a tag value
    monkeypatch.undo()

    import builtins

    real_import = builtins.__import__

    def no_onnxruntime(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    outcome = export_classifier(classifier_dir, tmp_path / "x.onnx", held_out, **quiet)
    assert outcome.status == ONNX_SKIPPED and "onnxruntime is not installed" in outcome.reason
    with pytest.raises(ConfigurationError, match="pip install onnxruntime"):
        load_onnx_classifier(classifier_dir, tmp_path / "x.onnx")


def test_the_runtime_refuses_a_missing_or_mismatched_graph(exported: OnnxExport, classifier_dir: Path, tmp_path: Path):
    with pytest.raises(ConfigurationError, match="no ONNX model"):
        load_onnx_classifier(classifier_dir, tmp_path / "missing.onnx")
    with pytest.raises(ConfigurationError, match="intra_op_threads"):
        load_onnx_classifier(classifier_dir, exported.path, intra_op_threads=-2)
    other = tmp_path / "other"
    other.mkdir()
    for path in classifier_dir.iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    labels = json.loads((other / LABEL_MAP_FILE).read_text())
    (other / LABEL_MAP_FILE).write_text(json.dumps({**labels, "labels": labels["labels"] + ["extra"]}))
    with pytest.raises(ConfigurationError, match="outputs but"):
        load_onnx_classifier(other, exported.path)


def test_softmax_is_stable_and_normalised():
    probs = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    np.testing.assert_allclose(probs, [[0.5, 0.5], [0.25, 0.75]], atol=1e-12)


@pytest.mark.slow
def test_without_the_torchscript_exporter_the_torch_export_based_one_is_used(
    classifier_dir: Path, held_out: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """~10 s: the fallback for a torch whose TorchScript exporter is gone (needs onnxscript)."""
    import torch

    real_export = torch.onnx.export
    calls: list[bool] = []

    def without_torchscript(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("dynamo", True))
        if not kwargs.get("dynamo", True):
            raise RuntimeError("the TorchScript-based exporter was removed")
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", without_torchscript)
    outcome = export_classifier(classifier_dir, tmp_path / "model.onnx", held_out, log=lambda _: None)
    assert calls == [False, True]
    assert outcome.status == ONNX_EXPORTED and outcome.label_agreement == 1.0 and outcome.max_abs_diff <= 1e-4
