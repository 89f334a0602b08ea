"""Evaluation metrics for the support-ticket classifier: accuracy, macro-F1, per-class scores, calibration (ECE),
per-group gaps (fairness across metadata columns such as region or language) and latency percentiles.

Pure numpy, no scikit-learn at runtime (the tests cross-check against it). Every result is a plain JSON-serialisable
dict of Python ints/floats/strings; a value that is undefined (no rows, a class never predicted, ...) is None,
never NaN.

Conventions:

* `labels` fixes the class order (confusion-matrix rows/columns, `probs` columns). A label in `y_true`/`y_pred`
  that is not in `labels` is a ValueError.
* Errors: the argument checks are preconditions of the caller and raise plain ValueError (the evaluate job builds
  `labels` as the union of the data's and the models' labels, and every array itself); the two a user can reach
  are LLMOpsErrors that are also ValueErrors: `min_group_size` (an operator argument) raises ConfigurationError,
  and class probabilities that are not finite (a broken model, e.g. diverged training) raise ModelOutputError.
* Per class: precision = tp / predicted (None when the class is never predicted), recall = tp / support (None when
  the class has no true rows), f1 = 2 tp / (support + predicted) (None when the class appears in neither).
* `macro_f1` averages F1 over the labels that appear in `y_true` or `y_pred`: exactly the labels whose F1 is
  defined. A label absent from both says nothing about this model on this data, so it neither drags the score
  to 0 nor inflates it. This equals scikit-learn's `f1_score(..., average="macro")` with its default labels.
  A class that is predicted but never true counts with F1 = 0 (all its predictions are false positives), and so
  does a true class that is never predicted.
* `macro_recall` averages recall over the labels present in `y_true` (balanced accuracy).
* ECE: confidence = max probability of a row, correct = (argmax of that row == true label); 15 equal-width bins
  over [0, 1], right-closed ((lo, hi], a confidence of 0 goes to the first bin); ECE = sum over non-empty bins of
  (bin count / n) * |accuracy in bin - mean confidence in bin|.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from airflow_provider_llmops.errors import ConfigurationError, ModelOutputError

ECE_BINS = 15
GROUP_METRICS = ("macro_f1", "recall")
MISSING_GROUP = "<missing>"
_PROB_TOLERANCE = 1e-6


def _label_index(labels: Sequence[str]) -> dict[str, int]:
    labels = list(labels)
    if not labels:
        raise ValueError("labels must not be empty")
    index = {label: i for i, label in enumerate(labels)}
    if len(index) != len(labels):
        duplicated = sorted({label for label in labels if labels.count(label) > 1})
        raise ValueError(f"labels must be unique, duplicated: {duplicated}")
    return index


def _encode(values: Sequence[str], index: Mapping[str, int], what: str) -> np.ndarray:
    codes = np.empty(len(values), dtype=np.intp)
    unknown: set[str] = set()
    for i, value in enumerate(values):
        code = index.get(value)
        if code is None:
            unknown.add(repr(value))
            code = 0
        codes[i] = code
    if unknown:
        shown = sorted(unknown)
        more = f" (and {len(shown) - 10} more)" if len(shown) > 10 else ""
        raise ValueError(f"{what} has values not in labels: {', '.join(shown[:10])}{more}")
    return codes


def _encode_pair(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, int]:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} vs {len(y_pred)}")
    index = _label_index(labels)
    return _encode(y_true, index, "y_true"), _encode(y_pred, index, "y_pred"), len(index)


def _confusion(true_codes: np.ndarray, pred_codes: np.ndarray, k: int) -> np.ndarray:
    """k x k counts, rows = true label, columns = predicted label."""
    return np.bincount(true_codes * k + pred_codes, minlength=k * k).reshape(k, k)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise num / den with NaN where den == 0 (internal only; NaN never leaves this module)."""
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    return {
        "precision": _ratio(tp, predicted),
        "recall": _ratio(tp, support),
        "f1": _ratio(2.0 * tp, support + predicted),
        "support": support,
    }


def _nanmean(values: np.ndarray) -> float | None:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else None


def _opt(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _group_value(cm: np.ndarray, metric: str) -> float | None:
    scores = _scores(cm)
    return _nanmean(scores["f1"] if metric == "macro_f1" else scores["recall"])


def expected_calibration_error(
    confidences: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, bins: int = ECE_BINS
) -> float:
    """Expected calibration error over `bins` equal-width, right-closed confidence bins, weighted by bin count.

    `confidences` are in [0, 1] (float32 overshoot up to 1e-6 is clipped); `correct` are booleans or 0/1.
    Raises ValueError on empty or mismatched inputs (there is no calibration to measure)."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    conf = np.asarray(confidences, dtype=float).ravel()
    corr = np.asarray(correct).ravel()
    if conf.size != corr.size:
        raise ValueError(f"confidences and correct differ in length: {conf.size} vs {corr.size}")
    if conf.size == 0:
        raise ValueError("expected_calibration_error needs at least one prediction")
    if not np.all(np.isfinite(conf)) or conf.min() < -_PROB_TOLERANCE or conf.max() > 1.0 + _PROB_TOLERANCE:
        raise ValueError("confidences must be finite and within [0, 1]")
    if not np.all((corr == 0) | (corr == 1)):
        raise ValueError("correct must hold booleans or 0/1")
    conf = np.clip(conf, 0.0, 1.0)
    corr = corr.astype(float)
    inner_edges = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    bin_index = np.searchsorted(inner_edges, conf, side="left")  # (lo, hi]; 0 -> first bin, 1 -> last bin
    sum_conf = np.bincount(bin_index, weights=conf, minlength=bins)
    sum_correct = np.bincount(bin_index, weights=corr, minlength=bins)
    # (n_b / n) * |acc_b - conf_b| == |sum_correct_b - sum_conf_b| / n; empty bins contribute 0.
    return float(np.abs(sum_correct - sum_conf).sum() / conf.size)


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], probs: np.ndarray | None, labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, macro recall, per-class precision/recall/F1/support, ECE and the confusion matrix.

    `probs` (optional) is an (n, len(labels)) array of class probabilities in `labels` order. Returns
    {labels, n, accuracy, macro_f1, macro_recall, per_class: {label: {precision, recall, f1, support}}, ece,
    confusion}; undefined values are None (see the module docstring)."""
    true_codes, pred_codes, k = _encode_pair(y_true, y_pred, labels)
    n = int(true_codes.size)
    cm = _confusion(true_codes, pred_codes, k)
    scores = _scores(cm)
    label_list = list(labels)
    per_class = {
        label: {
            "precision": _opt(scores["precision"][i]),
            "recall": _opt(scores["recall"][i]),
            "f1": _opt(scores["f1"][i]),
            "support": int(scores["support"][i]),
        }
        for i, label in enumerate(label_list)
    }
    ece: float | None = None
    if probs is not None:
        p = np.asarray(probs, dtype=float)
        if n and p.shape != (n, k):
            raise ValueError(f"probs must have shape (n, len(labels)) = ({n}, {k}), got {p.shape}")
        if n:
            if not np.all(np.isfinite(p)):
                bad = int((~np.isfinite(p)).any(axis=1).sum())
                raise ModelOutputError(
                    f"the model's class probabilities are not finite (NaN or infinite) for {bad} of {n} rows: the "
                    "model is unusable, e.g. its training diverged; check its loss curve and retrain it (a lower "
                    "learning_rate), or evaluate another version"
                )
            ece = expected_calibration_error(p.max(axis=1), p.argmax(axis=1) == true_codes)
    return {
        "labels": label_list,
        "n": n,
        "accuracy": float(np.trace(cm) / n) if n else None,
        "macro_f1": _nanmean(scores["f1"]),
        "macro_recall": _nanmean(scores["recall"]),
        "per_class": per_class,
        "ece": ece,
        "confusion": cm.astype(int).tolist(),
    }


def _group_key(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_GROUP
    return value if isinstance(value, str) else str(value)


def group_gap(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    groups: Mapping[str, Sequence[str]],
    labels: Sequence[str],
    min_group_size: int = 30,
    metric: str = "macro_f1",
) -> dict[str, Any]:
    """Largest per-group difference of `metric` ("macro_f1" or "recall" = macro recall) across metadata columns.

    For each column in `groups` (values aligned with y_true; None/NaN form the group "<missing>"), the metric is
    computed for every group value with at least `min_group_size` rows; smaller groups are reported under
    `skipped` with their size. A column's gap is max - min over its eligible groups (None with fewer than two).
    Returns {metric, min_group_size, columns: {col: {groups: {value: {n, value}}, skipped: {value: n}, gap}},
    gap, worst_column, measured, reason}; the overall gap is the largest column gap. When no column has two
    eligible groups the gap cannot be measured: gap None, measured False and `reason` says why (never 0.0, which
    would read as "perfectly fair")."""
    if metric not in GROUP_METRICS:
        raise ValueError(f"metric must be one of {', '.join(GROUP_METRICS)}, got {metric!r}")
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, int) or min_group_size < 1:
        raise ConfigurationError(
            f"min_group_size must be a positive integer (the fewest rows a group needs for its score to count in the "
            f"gap), got {min_group_size!r}; the evaluation's default is 30"
        )
    true_codes, pred_codes, k = _encode_pair(y_true, y_pred, labels)
    n = int(true_codes.size)
    columns: dict[str, Any] = {}
    worst_column: str | None = None
    worst_gap = 0.0
    for column, values in groups.items():
        if len(values) != n:
            raise ValueError(f"group column {column!r} has {len(values)} values, expected {n}")
        members: dict[str, list[int]] = {}
        for i, value in enumerate(values):
            members.setdefault(_group_key(value), []).append(i)
        eligible: dict[str, dict[str, Any]] = {}
        skipped: dict[str, int] = {}
        for key in sorted(members):
            rows = np.asarray(members[key], dtype=np.intp)
            if rows.size < min_group_size:
                skipped[key] = int(rows.size)
                continue
            value = _group_value(_confusion(true_codes[rows], pred_codes[rows], k), metric)
            eligible[key] = {"n": int(rows.size), "value": value}
        defined = [g["value"] for g in eligible.values() if g["value"] is not None]
        gap = float(max(defined) - min(defined)) if len(defined) >= 2 else None
        columns[str(column)] = {"groups": eligible, "skipped": skipped, "gap": gap}
        if gap is not None and (worst_column is None or gap > worst_gap):
            worst_column, worst_gap = str(column), gap
    measured = worst_column is not None
    return {
        "metric": metric,
        "min_group_size": min_group_size,
        "columns": columns,
        "gap": worst_gap if measured else None,
        "worst_column": worst_column,
        "measured": measured,
        "reason": None if measured else unmeasured_reason(columns, min_group_size),
    }


def unmeasured_reason(columns: Mapping[str, Any], min_group_size: int) -> str:
    """Why no group gap could be measured, for reports and the gate's check detail."""
    if not columns:
        return "the evaluation set has no group column (region, language, channel)"
    parts = []
    for column, info in columns.items():
        sizes = {**{k: g["n"] for k, g in info.get("groups", {}).items()}, **info.get("skipped", {})}
        largest = max(sizes.values()) if sizes else 0
        eligible = len(info.get("groups", {}))
        parts.append(f"{column}: {eligible} group(s) of >= {min_group_size} rows (largest {largest})")
    return f"no group column has two groups of at least min_group_size={min_group_size} rows ({'; '.join(parts)})"


def latency_summary(seconds_per_example: Sequence[float]) -> dict[str, Any]:
    """p50/p95/mean latency in milliseconds (numpy's linear-interpolation percentiles) and the count.

    Values must be finite and non-negative; with no values the latencies are None."""
    seconds = np.asarray(seconds_per_example, dtype=float).ravel()
    if seconds.size and (not np.all(np.isfinite(seconds)) or seconds.min() < 0):
        raise ValueError("latencies must be finite and non-negative")
    if not seconds.size:
        return {"p50_ms": None, "p95_ms": None, "mean_ms": None, "n": 0}
    ms = seconds * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "n": int(ms.size),
    }
