"""Evaluation metrics: agreement with scikit-learn, hand-computed ECE, group gaps, and no NaN on degenerate inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, recall_score

from airflow_provider_llmops.core.model import evaluation as E

LABELS = ["billing", "bug", "account", "shipping", "other"]


def _no_nan(obj) -> None:
    """Strict JSON (allow_nan=False) rejects NaN and inf anywhere in the structure."""
    json.dumps(obj, allow_nan=False)


def _random_case(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    k = len(LABELS)
    used = LABELS[: int(rng.integers(2, k + 1))]  # some labels never appear at all
    y_true = [str(v) for v in rng.choice(used, n)]
    noisy = rng.random(n) < 0.35
    y_pred = [str(rng.choice(LABELS)) if flip else t for t, flip in zip(y_true, noisy, strict=True)]
    logits = rng.normal(size=(n, k))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, y_pred, probs


@pytest.mark.parametrize("seed", range(15))
def test_matches_sklearn(seed):
    y_true, y_pred, probs = _random_case(seed)
    m = E.classification_metrics(y_true, y_pred, probs, LABELS)
    _no_nan(m)
    assert m["n"] == len(y_true)
    assert abs(m["accuracy"] - accuracy_score(y_true, y_pred)) < 1e-12
    # sklearn's default labels are those present in y_true or y_pred: the documented macro-F1 choice.
    assert abs(m["macro_f1"] - f1_score(y_true, y_pred, average="macro", zero_division=0)) < 1e-12
    present_true = sorted(set(y_true))
    assert abs(m["macro_recall"] - recall_score(y_true, y_pred, labels=present_true, average="macro")) < 1e-12
    assert m["confusion"] == confusion_matrix(y_true, y_pred, labels=LABELS).tolist()
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=LABELS, zero_division=0)
    for i, label in enumerate(LABELS):
        row = m["per_class"][label]
        assert row["support"] == int(support[i])
        assert abs((row["precision"] or 0.0) - precision[i]) < 1e-12
        assert abs((row["recall"] or 0.0) - recall[i]) < 1e-12
        assert abs((row["f1"] or 0.0) - f1[i]) < 1e-12
        predicted = sum(p == label for p in y_pred)
        assert (row["precision"] is None) == (predicted == 0)
        assert (row["recall"] is None) == (support[i] == 0)
        assert (row["f1"] is None) == (predicted == 0 and support[i] == 0)
    assert isinstance(m["ece"], float) and 0.0 <= m["ece"] <= 1.0


def test_types_are_plain_python():
    y_true, y_pred, probs = _random_case(0, n=50)
    m = E.classification_metrics(y_true, y_pred, probs, LABELS)
    assert type(m["accuracy"]) is float and type(m["macro_f1"]) is float and type(m["ece"]) is float
    assert all(type(v) is int for row in m["confusion"] for v in row)
    assert all(type(row["support"]) is int for row in m["per_class"].values())


def test_ece_hand_computed():
    # 15 bins of width 1/15: 0.95 -> (14/15, 1], 0.55 -> (8/15, 9/15], 0.30 -> (4/15, 5/15]
    # ECE = 2/5 * |0.5 - 0.95| + 2/5 * |1.0 - 0.55| + 1/5 * |0.0 - 0.30| = 0.18 + 0.18 + 0.06
    ece = E.expected_calibration_error([0.95, 0.95, 0.55, 0.55, 0.30], [True, False, True, True, False])
    assert ece == pytest.approx(0.42, abs=1e-12)


def test_ece_bins_are_right_closed():
    # With 2 bins, 0.5 belongs to (0, 0.5]: 1/2 * |1 - 0.5| + 1/2 * |0 - 0.9| = 0.7 (shared bin would give 0.2).
    assert E.expected_calibration_error([0.5, 0.9], [1, 0], bins=2) == pytest.approx(0.7, abs=1e-12)
    assert E.expected_calibration_error([0.0, 1.0], [0, 1], bins=15) == 0.0


def test_ece_via_classification_metrics_uses_argmax_and_max_prob():
    labels = ["a", "b"]
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.45, 0.55], [0.45, 0.55], [0.7, 0.3]])
    y_true = ["a", "b", "b", "b", "b"]
    y_pred = ["a", "a", "b", "b", "a"]
    m = E.classification_metrics(y_true, y_pred, probs, labels)
    assert m["ece"] == pytest.approx(
        E.expected_calibration_error([0.95, 0.95, 0.55, 0.55, 0.7], [1, 0, 1, 1, 0]), abs=1e-15
    )


def test_perfectly_calibrated_is_zero():
    # Within each bin, the fraction correct equals the (constant) confidence.
    confidences = [0.6] * 10 + [0.8] * 5 + [1.0] * 3 + [0.25] * 4
    correct = [1] * 6 + [0] * 4 + [1] * 4 + [0] + [1] * 3 + [1] + [0] * 3
    assert E.expected_calibration_error(confidences, correct) == pytest.approx(0.0, abs=1e-12)


def test_sampled_calibrated_is_near_zero_and_overconfident_is_not():
    rng = np.random.default_rng(7)
    conf = rng.uniform(0.2, 1.0, 200_000)
    correct = rng.random(conf.size) < conf
    assert E.expected_calibration_error(conf, correct) < 0.01
    assert E.expected_calibration_error(np.minimum(conf + 0.1, 1.0), correct) > 0.08


def test_ece_rejects_bad_inputs():
    with pytest.raises(ValueError):
        E.expected_calibration_error([], [])
    with pytest.raises(ValueError):
        E.expected_calibration_error([0.5, float("nan")], [1, 0])
    with pytest.raises(ValueError):
        E.expected_calibration_error([0.5], [1, 0])
    with pytest.raises(ValueError):
        E.expected_calibration_error([1.5], [1])


def test_empty_inputs_have_no_nan():
    m = E.classification_metrics([], [], np.empty((0, len(LABELS))), LABELS)
    _no_nan(m)
    assert m["n"] == 0 and m["accuracy"] is None and m["macro_f1"] is None and m["ece"] is None
    assert m["confusion"] == [[0] * len(LABELS) for _ in LABELS]
    assert all(row == {"precision": None, "recall": None, "f1": None, "support": 0} for row in m["per_class"].values())
    assert E.latency_summary([]) == {"p50_ms": None, "p95_ms": None, "mean_ms": None, "n": 0}
    g = E.group_gap([], [], {"region": []}, LABELS)
    _no_nan(g)
    assert g["gap"] is None and g["measured"] is False and g["worst_column"] is None


def test_single_class():
    y = ["billing"] * 20
    m = E.classification_metrics(y, y, None, LABELS)
    _no_nan(m)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["ece"] is None
    assert m["macro_f1"] == f1_score(y, y, average="macro")
    assert m["per_class"]["bug"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    # One true class, all predicted wrong: defined and 0, never NaN.
    wrong = E.classification_metrics(y, ["bug"] * 20, None, LABELS)
    _no_nan(wrong)
    assert wrong["accuracy"] == 0.0 and wrong["macro_f1"] == 0.0
    assert wrong["per_class"]["billing"]["precision"] is None and wrong["per_class"]["billing"]["recall"] == 0.0


def test_unknown_labels_and_bad_shapes_raise():
    with pytest.raises(ValueError, match="not in labels"):
        E.classification_metrics(["billing"], ["nope"], None, LABELS)
    with pytest.raises(ValueError, match="length"):
        E.classification_metrics(["billing"], [], None, LABELS)
    with pytest.raises(ValueError, match="shape"):
        E.classification_metrics(["billing"], ["billing"], np.ones((1, 2)), LABELS)
    with pytest.raises(ValueError, match="unique"):
        E.classification_metrics([], [], None, ["a", "a"])


def test_group_gap_skips_small_groups():
    labels = ["a", "b"]
    # EU: 40 rows, all correct (macro-F1 1.0). US: 40 rows, half of the "b" rows predicted "a". APAC: 5 rows (skipped).
    y_true = ["a"] * 20 + ["b"] * 20 + ["a"] * 20 + ["b"] * 20 + ["b"] * 5
    y_pred = ["a"] * 20 + ["b"] * 20 + ["a"] * 20 + ["a"] * 10 + ["b"] * 10 + ["a"] * 5
    region = ["EU"] * 40 + ["US"] * 40 + ["APAC"] * 5
    language = ["en"] * 85
    g = E.group_gap(y_true, y_pred, {"region": region, "language": language}, labels, min_group_size=30)
    _no_nan(g)
    us_f1 = f1_score(y_true[40:80], y_pred[40:80], average="macro")
    col = g["columns"]["region"]
    assert col["skipped"] == {"APAC": 5}
    assert col["groups"]["EU"] == {"n": 40, "value": 1.0}
    assert col["groups"]["US"]["n"] == 40 and abs(col["groups"]["US"]["value"] - us_f1) < 1e-12
    assert abs(col["gap"] - (1.0 - us_f1)) < 1e-12
    assert g["columns"]["language"]["gap"] is None  # a single eligible group has no gap
    assert g["gap"] == col["gap"] and g["worst_column"] == "region"
    assert g["metric"] == "macro_f1" and g["min_group_size"] == 30

    r = E.group_gap(y_true, y_pred, {"region": region}, labels, min_group_size=5, metric="recall")
    assert r["columns"]["region"]["skipped"] == {}
    assert r["columns"]["region"]["groups"]["APAC"]["value"] == 0.0  # macro recall over the labels present (only "b")
    assert (
        abs(
            r["columns"]["region"]["groups"]["US"]["value"]
            - recall_score(y_true[40:80], y_pred[40:80], average="macro")
        )
        < 1e-12
    )
    assert r["gap"] == 1.0


def test_group_gap_no_eligible_pairs_and_validation():
    g = E.group_gap(["a"] * 10, ["a"] * 10, {"region": ["EU"] * 5 + ["US"] * 5}, ["a", "b"], min_group_size=30)
    # not measurable is not "perfectly fair": no 0.0, a flag and the reason instead
    assert g["gap"] is None and g["measured"] is False and g["worst_column"] is None
    assert g["reason"] == (
        "no group column has two groups of at least min_group_size=30 rows "
        "(region: 0 group(s) of >= 30 rows (largest 5))"
    )
    assert g["columns"]["region"] == {"groups": {}, "skipped": {"EU": 5, "US": 5}, "gap": None}
    missing = E.group_gap(["a"] * 4, ["a"] * 4, {"region": [None, float("nan"), "EU", "EU"]}, ["a"], min_group_size=1)
    assert set(missing["columns"]["region"]["groups"]) == {E.MISSING_GROUP, "EU"}
    with pytest.raises(ValueError, match="metric"):
        E.group_gap(["a"], ["a"], {}, ["a"], metric="accuracy")
    with pytest.raises(ValueError, match="expected 1"):
        E.group_gap(["a"], ["a"], {"region": ["EU", "US"]}, ["a"])


def test_latency_summary():
    s = E.latency_summary([0.010, 0.020, 0.030, 0.040, 0.100])
    assert s["n"] == 5
    assert s["p50_ms"] == pytest.approx(30.0)
    assert s["p95_ms"] == pytest.approx(float(np.percentile([10.0, 20.0, 30.0, 40.0, 100.0], 95)))
    assert s["mean_ms"] == pytest.approx(40.0)
    assert all(type(v) is float for k, v in s.items() if k != "n")
    with pytest.raises(ValueError):
        E.latency_summary([0.1, math.nan])


def test_group_gap_measured_flag_when_two_groups_are_large_enough():
    g = E.group_gap(
        ["a"] * 4 + ["b"] * 4, ["a"] * 4 + ["a"] * 4, {"region": ["EU"] * 4 + ["US"] * 4}, ["a", "b"], min_group_size=4
    )
    assert g["measured"] is True and g["reason"] is None and g["gap"] == 1.0 and g["worst_column"] == "region"
    assert E.unmeasured_reason({}, 30) == "the evaluation set has no group column (region, language, channel)"
