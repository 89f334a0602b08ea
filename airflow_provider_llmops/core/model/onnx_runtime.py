"""A classifier that runs a version's ONNX export with ONNX Runtime on the CPU: the fast CPU path of serving.

`load_onnx_classifier(model_dir, onnx_path)` -> `OnnxClassifier`, with the interface of `modeling.TextClassifier`
(`labels`, `max_length`, `predict`, `predict_proba`, `latencies`) and the same outputs: the same tokenizer (the
model folder's, truncating at the trained `max_length`), the graph's logits, softmax computed in float64. Parity with
torch is checked when the export is made (`onnx_export.export_classifier`); only exports that passed are stored.

ONNX Runtime runs with the CPU execution provider only; `intra_op_threads` sets the threads one inference uses (None:
ONNX Runtime's default, one per physical core), `inter_op_threads` those across independent graph nodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from airflow_provider_llmops.core.model.contract import ONNX_FILE
from airflow_provider_llmops.core.model.modeling import BatchedClassifier, classifier_labels, trained_max_length
from airflow_provider_llmops.errors import ConfigurationError

PROVIDERS = ["CPUExecutionProvider"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row maximum for stability."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class OnnxClassifier(BatchedClassifier):
    """A sequence classifier's ONNX graph in an ONNX Runtime session, with the model folder's tokenizer and labels."""

    runtime = "onnxruntime"

    def __init__(
        self,
        model_dir: str | Path,
        onnx_path: str | Path | None = None,
        intra_op_threads: int | None = None,
        inter_op_threads: int = 1,
        max_length: int | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ConfigurationError(
                "the ONNX runtime path needs onnxruntime: pip install onnxruntime (or use the torch runtime)"
            ) from exc
        from transformers import AutoTokenizer

        self.model_dir = Path(model_dir)
        self.onnx_path = Path(onnx_path) if onnx_path is not None else self.model_dir / ONNX_FILE
        if not self.onnx_path.is_file():
            raise ConfigurationError(f"no ONNX model at {self.onnx_path}; this version has no ONNX export")
        if intra_op_threads is not None and intra_op_threads < 0:
            raise ConfigurationError(
                f"intra_op_threads must be >= 0 (0: ONNX Runtime's default), got {intra_op_threads}"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(intra_op_threads or 0)
        options.inter_op_num_threads = int(inter_op_threads)
        self.session = ort.InferenceSession(str(self.onnx_path), sess_options=options, providers=PROVIDERS)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, trust_remote_code=False)
        self.labels = classifier_labels(self.model_dir)
        self.max_length = max_length if max_length is not None else trained_max_length(self.model_dir)
        width = self.session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != len(self.labels):
            raise ConfigurationError(
                f"{self.onnx_path} has {width} outputs but {self.model_dir} names {len(self.labels)} labels"
            )

    def _feed(self, texts: list[str]) -> dict[str, np.ndarray]:
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="np")
        # the graph takes the inputs it was exported with (an input the model ignores may be pruned)
        return {name: np.asarray(enc[name], dtype=np.int64) for name in self.input_names}

    def logits(self, texts: list[str]) -> np.ndarray:
        return self.session.run(None, self._feed(texts))[0]

    def _probabilities(self, texts: list[str]) -> np.ndarray:
        return softmax(self.logits(texts))


def load_onnx_classifier(model_dir: str | Path, onnx_path: str | Path | None = None, **kwargs: Any) -> OnnxClassifier:
    """An `OnnxClassifier` over `onnx_path` (default `<model_dir>/model.onnx`) and the tokenizer and labels of
    `model_dir`; `intra_op_threads`, `inter_op_threads` and `max_length` are passed on."""
    return OnnxClassifier(model_dir, onnx_path, **kwargs)
