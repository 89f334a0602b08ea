"""Exporting a fine-tuned classifier to ONNX at registration, with its parity against torch checked.

`export_classifier(model_dir, target, parity_texts)` never raises for a model it cannot export: it returns an
`OnnxExport` whose `status` is `exported` (the file at `target` passed parity) or `skipped` with the reason (not a
classifier, onnxruntime or the exporter missing, the export failed, parity failed, no rows to check on). Training
never fails because of it; train_job records the outcome as tags and metrics (names in contract.py).

The graph: inputs the tokenizer's model inputs (`input_ids`, `attention_mask`, and `token_type_ids` where the
tokenizer makes them), int64 with dynamic batch and sequence axes; output `logits` (batch x labels). It is exported
by the TorchScript exporter of `torch.onnx.export` (~3 s for MiniLM on 2 cores; the torch.export-based exporter,
which needs onnxscript, takes ~15 s and is the fallback where the former is gone), opset 17, on the CPU.

Parity (on the held-out split's texts, at most `max_rows` of them, truncated at the trained `max_length` as both
runtimes do): every row gets the same label from both, and max |p_onnx - p_torch| over all rows and classes, with
p the softmax probabilities, is at most `tolerance` (default 1e-4; float32 kernels of the two runtimes differ by
~1e-6 on MiniLM). Otherwise the file is deleted and the version is registered without ONNX.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from airflow_provider_llmops.core.model.contract import (
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
from airflow_provider_llmops.core.model.modeling import CLASSIFIER_TASK, model_task

DEFAULT_TOLERANCE = 1e-4
DEFAULT_MAX_ROWS = 256
OPSET = 17


@dataclass
class OnnxExport:
    """What the export did: `status` exported|skipped, `reason` when skipped, the parity numbers when measured."""

    status: str
    reason: str = ""
    path: Path | None = None
    rows: int = 0
    label_agreement: float | None = None
    max_abs_diff: float | None = None
    tolerance: float = DEFAULT_TOLERANCE
    export_seconds: float | None = None
    parity_seconds: float | None = None

    @property
    def exported(self) -> bool:
        return self.status == ONNX_EXPORTED

    def tags(self) -> dict[str, str]:
        """The version/run tags of the outcome."""
        out = {TAG_ONNX: self.status, TAG_ONNX_TOLERANCE: f"{self.tolerance:g}"}
        if self.reason:
            out[TAG_ONNX_REASON] = self.reason[:500]
        if self.max_abs_diff is not None:
            out[TAG_ONNX_MAX_ABS_DIFF] = f"{self.max_abs_diff:.3e}"
            out[TAG_ONNX_LABEL_AGREEMENT] = f"{self.label_agreement:.6f}"
            out[TAG_ONNX_PARITY_ROWS] = str(self.rows)
        return out

    def metrics(self) -> dict[str, float]:
        """The run metrics of the outcome (only what was measured)."""
        out: dict[str, float] = {}
        if self.max_abs_diff is not None and self.label_agreement is not None:
            out[METRIC_ONNX_MAX_ABS_DIFF] = float(self.max_abs_diff)
            out[METRIC_ONNX_LABEL_AGREEMENT] = float(self.label_agreement)
        if self.export_seconds is not None:
            out[METRIC_ONNX_EXPORT_SECONDS] = round(float(self.export_seconds), 3)
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-safe, for XCom and logs."""
        return {
            "status": self.status,
            "reason": self.reason or None,
            "rows": self.rows,
            "label_agreement": self.label_agreement,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "export_seconds": None if self.export_seconds is None else round(self.export_seconds, 3),
            "parity_seconds": None if self.parity_seconds is None else round(self.parity_seconds, 3),
        }


def _export_graph(classifier: Any, target: Path) -> None:
    """Write the logits graph of a torch classifier on the CPU to `target` (dynamic batch and sequence axes)."""
    import torch

    tokenizer = classifier.tokenizer
    # rows of different lengths: the trace must take the padded-batch path of the attention mask (a batch without
    # padding would bake "no mask" into the graph)
    sample = tokenizer(["an example", "another, longer example text to pad against"], padding=True, return_tensors="pt")
    if "attention_mask" in sample and bool(sample["attention_mask"].all()):
        raise RuntimeError("the tokenizer did not pad the export sample; cannot trace the padded path")
    names = [n for n in tokenizer.model_input_names if n in sample] or ["input_ids", "attention_mask"]
    model = classifier.model.eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model(**dict(zip(names, tensors, strict=True))).logits

    wrapper = Logits().eval()  # eval: no dropout in the traced graph
    args = tuple(sample[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    target.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapper, args, str(target), input_names=names, output_names=["logits"], dynamic_axes=axes,
                opset_version=OPSET, dynamo=False,
            )  # fmt: skip
        except (ImportError, NotImplementedError, RuntimeError, TypeError) as legacy_error:
            try:  # a torch without the TorchScript exporter: the torch.export-based one (needs onnxscript)
                batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")  # for *tensors: one tuple
                program = torch.onnx.export(
                    wrapper, args, input_names=names, output_names=["logits"], opset_version=max(OPSET, 18),
                    dynamo=True, dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in names),), external_data=False,
                )  # fmt: skip
                program.save(str(target), external_data=False)
            except Exception as dynamo_error:
                raise RuntimeError(f"{legacy_error}; torch.export-based exporter: {dynamo_error}") from dynamo_error


def _plain(exc: BaseException, limit: int = 300) -> str:
    """An exception's message for a tag: terminal colour codes removed, one line, bounded."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parity(reference: Any, candidate: Any, texts: Sequence[str]) -> tuple[float, float]:
    """(label agreement, max abs probability difference) of two classifiers over `texts`."""
    expected = reference.predict_proba(list(texts))
    got = candidate.predict_proba(list(texts))
    if expected.shape != got.shape or not len(texts):
        return 0.0, float("inf")
    agreement = float((expected.argmax(axis=1) == got.argmax(axis=1)).mean())
    return agreement, float(np.abs(expected - got).max())


def export_classifier(
    model_dir: str | Path,
    target: str | Path,
    parity_texts: Sequence[str],
    tolerance: float = DEFAULT_TOLERANCE,
    max_rows: int = DEFAULT_MAX_ROWS,
    classifier: Any = None,
    log: Callable[[str], None] = print,
) -> OnnxExport:
    """Export the classifier in `model_dir` to `target` and check it against torch on `parity_texts` (the held-out
    split); `classifier`: an already loaded torch `TextClassifier` of `model_dir` to reuse. Never raises for a
    model it cannot export (see the module docstring)."""
    target = Path(target)
    texts = [t for t in parity_texts if isinstance(t, str) and t][:max_rows]

    def skipped(reason: str, **measured: Any) -> OnnxExport:
        target.unlink(missing_ok=True)
        log(f"ONNX export skipped: {reason}")
        return OnnxExport(ONNX_SKIPPED, reason=reason, tolerance=tolerance, **measured)

    task = model_task(model_dir)
    if task != CLASSIFIER_TASK:
        return skipped(f"task {task}: the ONNX export covers sequence classifiers only")
    if not texts:
        return skipped("no held-out texts to check parity on")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return skipped("onnxruntime is not installed (pip install onnxruntime)")
    from airflow_provider_llmops.core.model.modeling import load_classifier
    from airflow_provider_llmops.core.model.onnx_runtime import load_onnx_classifier

    started = time.perf_counter()
    try:
        reuse = classifier is not None and getattr(classifier, "device", None) == "cpu"
        torch_model = classifier if reuse else load_classifier(model_dir, device="cpu")  # ONNX Runtime runs on CPU
        _export_graph(torch_model, target)
    except Exception as exc:  # an architecture the exporter cannot trace: register without ONNX
        return skipped(f"export failed: {type(exc).__name__}: {_plain(exc)}")
    export_seconds = time.perf_counter() - started
    started = time.perf_counter()
    try:
        runtime = load_onnx_classifier(model_dir, target, max_length=torch_model.max_length)
        agreement, max_diff = parity(torch_model, runtime, texts)
    except Exception as exc:
        return skipped(
            f"ONNX Runtime failed on the export: {type(exc).__name__}: {_plain(exc)}", export_seconds=export_seconds
        )
    parity_seconds = time.perf_counter() - started
    measured = {
        "rows": len(texts),
        "label_agreement": agreement,
        "max_abs_diff": max_diff,
        "export_seconds": export_seconds,
        "parity_seconds": parity_seconds,
    }
    if agreement < 1.0 or not max_diff <= tolerance:
        return skipped(
            f"parity failed on {len(texts)} held-out rows: label agreement {agreement:.4f} (need 1), "
            f"max abs score difference {max_diff:.2e} (bound {tolerance:g})",
            **measured,
        )
    log(
        f"ONNX export in {export_seconds:.1f}s, parity on {len(texts)} held-out rows: same labels, "
        f"max abs score difference {max_diff:.2e} <= {tolerance:g}"
    )
    return OnnxExport(ONNX_EXPORTED, path=target, tolerance=tolerance, **measured)
