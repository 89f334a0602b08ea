"""Promotion gate on hand-made metric sets: improvement rules, guards, absolute bounds, first models, configuration."""

from __future__ import annotations

import json

import pytest

from airflow_provider_llmops.core.governance.gate import (
    LOWER_IS_BETTER,
    GateDecision,
    GateOverrideRefused,
    GateSpec,
    decide,
    is_stricter_or_equal,
    loosenings,
    merge_gate,
    resolve_gate,
)

CHAMPION = {"accuracy": 0.85, "macro_f1": 0.80, "ece": 0.05, "fairness_gap": 0.10, "latency_p95_ms": 40.0}


def challenger(**overrides):
    metrics = {"accuracy": 0.86, "macro_f1": 0.83, "ece": 0.05, "fairness_gap": 0.10, "latency_p95_ms": 42.0}
    metrics.update(overrides)
    return metrics


def check(decision: GateDecision, name: str) -> dict:
    (found,) = [c for c in decision.checks if c["name"] == name]
    return found


def failed(decision: GateDecision) -> list[str]:
    return [c["name"] for c in decision.checks if not c["passed"]]


def test_passes():
    d = decide(challenger(), CHAMPION, GateSpec())
    assert d.passed and not d.first_model and d.reasons == []
    assert [c["name"] for c in d.checks] == [
        "primary",
        "guard:accuracy",
        "guard:ece",
        "floor:macro_f1",
        "floor:accuracy",
        "fairness",
    ]
    assert d.summary.startswith("promote")
    assert set(check(d, "primary")) == {"name", "metric", "value", "reference", "threshold", "passed", "detail"}
    out = d.to_dict()
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert set(out) == {"passed", "first_model", "checks", "reasons", "summary"}


def test_fails_primary_improvement():
    d = decide(challenger(macro_f1=0.79), CHAMPION, GateSpec())
    assert not d.passed and failed(d) == ["primary"]
    assert d.reasons == [check(d, "primary")["detail"]]
    assert "macro_f1 improved by -0.0100 (0.790 vs 0.800" in d.reasons[0]
    assert d.summary.startswith("reject: 1 of 6 checks failed")


def test_tie_never_promotes():
    d = decide(challenger(macro_f1=0.823), {**CHAMPION, "macro_f1": 0.823}, GateSpec())
    assert not d.passed and failed(d) == ["primary"]
    spec = GateSpec(min_abs_improvement=0.01, min_rel_improvement=0.02)
    d = decide(challenger(macro_f1=0.823), {**CHAMPION, "macro_f1": 0.823}, spec)
    assert not d.passed
    reason = d.reasons[0]
    assert reason.startswith("macro_f1 improved by 0.0000 (0.823 vs 0.823")
    assert reason.endswith("needs > 0 and >= 0.01 absolute or >= 2% relative")
    # A float-noise "improvement" is still a tie.
    assert not decide(challenger(macro_f1=0.1 + 0.2), {**CHAMPION, "macro_f1": 0.3}, GateSpec(floors={})).passed


def test_absolute_threshold():
    spec = GateSpec(min_abs_improvement=0.02)
    assert decide(challenger(macro_f1=0.82), CHAMPION, spec).passed  # exactly 0.02, despite float rounding
    assert failed(decide(challenger(macro_f1=0.815), CHAMPION, spec)) == ["primary"]


def test_relative_threshold():
    spec = GateSpec(min_rel_improvement=0.02)  # 2 % of 0.80 = 0.016
    assert decide(challenger(macro_f1=0.817), CHAMPION, spec).passed
    d = decide(challenger(macro_f1=0.81), CHAMPION, spec)  # +1.25 %
    assert failed(d) == ["primary"] and "needs > 0 and >= 2% relative" in d.reasons[0]
    # Either threshold suffices: +0.017 is below the absolute 0.05 but above 2 % relative.
    assert decide(
        challenger(macro_f1=0.817), CHAMPION, GateSpec(min_abs_improvement=0.05, min_rel_improvement=0.02)
    ).passed
    assert not decide(
        challenger(macro_f1=0.81), CHAMPION, GateSpec(min_abs_improvement=0.05, min_rel_improvement=0.02)
    ).passed


def test_fails_accuracy_guard():
    d = decide(challenger(accuracy=0.83), CHAMPION, GateSpec())
    assert not d.passed and failed(d) == ["guard:accuracy"]
    assert d.reasons == ["accuracy regressed by 0.0200 (0.830 vs 0.850), tolerance 0.01"]
    assert decide(challenger(accuracy=0.845), CHAMPION, GateSpec()).passed  # within tolerance


def test_fails_ece_guard_lower_is_better():
    assert "ece" in LOWER_IS_BETTER
    d = decide(challenger(ece=0.08), CHAMPION, GateSpec())
    assert not d.passed and failed(d) == ["guard:ece"]
    assert d.reasons == ["ece worsened by 0.0300 (0.080 vs 0.050), tolerance 0.02"]
    assert decide(challenger(ece=0.065), CHAMPION, GateSpec()).passed
    assert decide(challenger(ece=0.0), CHAMPION, GateSpec()).passed  # lower ECE is better, never a regression


def test_guard_skipped_when_champion_lacks_metric():
    champion = {k: v for k, v in CHAMPION.items() if k != "ece"}
    d = decide(challenger(ece=0.5), champion, GateSpec(max_fairness_gap=None))
    assert d.passed
    assert check(d, "guard:ece")["passed"] and check(d, "guard:ece")["detail"] == "champion has no ece"
    d = decide(challenger(), {**CHAMPION, "ece": None}, GateSpec())
    assert check(d, "guard:ece")["detail"] == "champion has no ece" and d.passed


def test_fairness_bound():
    d = decide(challenger(fairness_gap=0.30), CHAMPION, GateSpec())
    assert not d.passed and failed(d) == ["fairness"]
    assert d.reasons == ["fairness_gap 0.300 exceeds the maximum 0.25"]
    assert decide(challenger(fairness_gap=0.25), CHAMPION, GateSpec()).passed
    assert decide(challenger(fairness_gap=0.9), CHAMPION, GateSpec(max_fairness_gap=None)).passed


def test_latency_bound():
    spec = GateSpec(max_latency_p95_ms=50.0)
    assert decide(challenger(latency_p95_ms=49.0), CHAMPION, spec).passed
    d = decide(challenger(latency_p95_ms=120.0), CHAMPION, spec)
    assert failed(d) == ["latency"] and d.reasons == ["latency_p95_ms 120.000 exceeds the maximum 50"]
    assert decide(challenger(latency_p95_ms=999.0), CHAMPION, GateSpec()).passed  # no bound by default


def test_latency_as_guard():
    spec = GateSpec(guards={"latency_p95_ms": 5.0})
    assert decide(challenger(latency_p95_ms=44.0), CHAMPION, spec).passed
    assert failed(decide(challenger(latency_p95_ms=46.0), CHAMPION, spec)) == ["guard:latency_p95_ms"]


def test_first_model_passes_floors():
    d = decide(challenger(), None, GateSpec(min_abs_improvement=0.5))
    assert d.passed and d.first_model
    assert [c["name"] for c in d.checks] == ["floor:macro_f1", "floor:accuracy", "fairness"]
    assert "first model" in d.summary


def test_first_model_fails_floors():
    d = decide(challenger(macro_f1=0.42), None, GateSpec())
    assert not d.passed and d.first_model
    assert d.reasons == ["macro_f1 0.420 is below the floor 0.5"]
    assert d.summary.startswith("reject (first model)")
    # Floors also apply with a champion, even when the challenger improves on it.
    d = decide(challenger(macro_f1=0.45, accuracy=0.45), {"macro_f1": 0.40, "accuracy": 0.45}, GateSpec())
    assert failed(d) == ["floor:macro_f1", "floor:accuracy"]


def test_floor_on_lower_is_better_metric_is_a_ceiling():
    spec = GateSpec(floors={"ece": 0.1}, max_fairness_gap=None)
    assert decide({"ece": 0.05}, None, spec).passed
    d = decide({"ece": 0.2}, None, spec)
    assert d.reasons == ["ece 0.200 exceeds the ceiling 0.1"]


def test_missing_metrics_fail_checks_without_raising():
    d = decide({"macro_f1": 0.83}, CHAMPION, GateSpec(max_latency_p95_ms=100.0))
    assert not d.passed
    assert failed(d) == ["guard:accuracy", "guard:ece", "floor:accuracy", "fairness", "latency"]
    assert "challenger has no accuracy" in d.reasons
    assert any(r.startswith("challenger has no fairness_gap") for r in d.reasons)
    d = decide({"macro_f1": None, "accuracy": float("nan"), "ece": "high"}, CHAMPION, GateSpec())
    assert failed(d) == ["primary", "guard:accuracy", "guard:ece", "floor:macro_f1", "floor:accuracy", "fairness"]
    assert check(d, "primary")["detail"].startswith("challenger has no macro_f1")
    assert check(d, "guard:accuracy")["detail"] == "challenger accuracy is not finite (nan)"
    assert check(d, "guard:accuracy")["value"] is None  # NaN never reaches the output
    json.dumps(d.to_dict(), allow_nan=False)
    d = decide(challenger(), {"accuracy": 0.85}, GateSpec())
    assert failed(d) == ["primary"] and d.reasons[0].startswith("champion has no macro_f1")


def test_lower_is_better_primary():
    spec = GateSpec(primary="ece", guards={}, floors={}, max_fairness_gap=None, min_rel_improvement=0.1)
    assert decide({"ece": 0.04}, {"ece": 0.05}, spec).passed
    assert not decide({"ece": 0.048}, {"ece": 0.05}, spec).passed
    assert not decide({"ece": 0.06}, {"ece": 0.05}, spec).passed


def test_from_dict_round_trip_and_unknown_keys():
    spec = GateSpec.from_dict(
        {"primary": "accuracy", "min_rel_improvement": 0.02, "guards": {"macro_f1": 0.01}, "max_latency_p95_ms": 80}
    )
    assert spec.primary == "accuracy" and spec.guards == {"macro_f1": 0.01} and spec.max_latency_p95_ms == 80.0
    assert spec.floors == GateSpec().floors
    assert GateSpec.from_dict(spec.to_dict()) == spec
    assert GateSpec.from_dict({}) == GateSpec() == GateSpec.from_dict(None)
    assert json.loads(json.dumps(GateSpec().to_dict())) == GateSpec().to_dict()
    with pytest.raises(ValueError, match="max_gap.*min_abs"):
        GateSpec.from_dict({"min_abs": 0.1, "max_gap": 0.2, "primary": "macro_f1"})
    with pytest.raises(ValueError, match="min_abs_improvement"):
        GateSpec.from_dict({"min_abs_improvement": -1})
    with pytest.raises(ValueError, match="guards"):
        GateSpec.from_dict({"guards": {"accuracy": "0.01"}})
    with pytest.raises(ValueError):
        GateSpec(max_fairness_gap=float("nan"))


def test_spec_is_frozen_and_copies_mappings():
    guards = {"accuracy": 0.01}
    spec = GateSpec(guards=guards)
    guards["accuracy"] = 0.5
    assert spec.guards == {"accuracy": 0.01}
    with pytest.raises(AttributeError):
        spec.primary = "accuracy"  # type: ignore[misc]


# ---- fairness that cannot be measured ---------------------------------------------------------------------------

UNMEASURED = {
    "fairness_gap": None,
    "fairness_measured": False,
    "fairness_reason": "no group column has two groups of at least 30 rows",
}


def test_unmeasured_fairness_passes_by_default_with_a_note():
    d = decide(challenger(**UNMEASURED), CHAMPION, GateSpec())
    c = check(d, "fairness")
    assert d.passed and c["passed"] is True and c["value"] is None and c["measured"] is False
    assert c["detail"] == (
        "fairness not measured (no group column has two groups of at least 30 rows); "
        "rule fairness_unmeasured='pass' passes it"
    )


def test_unmeasured_fairness_fails_when_the_rule_says_so():
    d = decide(challenger(**UNMEASURED), None, GateSpec(fairness_unmeasured="fail"))
    assert not d.passed and failed(d) == ["fairness"] and d.reasons[0].startswith("fairness not measured (")


def test_unmeasured_fairness_is_never_read_as_zero():
    # a report that says "not measured" but carries a 0.0 gap is still not measured
    d = decide(challenger(fairness_gap=0.0, fairness_measured=False), None, GateSpec(fairness_unmeasured="fail"))
    assert not d.passed and check(d, "fairness")["value"] is None
    with pytest.raises(ValueError, match="fairness_unmeasured"):
        GateSpec(fairness_unmeasured="maybe")


# ---- "is stricter", per field ----------------------------------------------------------------------------------

BASE = GateSpec(
    min_abs_improvement=0.01, min_rel_improvement=0.02, max_latency_p95_ms=100.0, floors={"macro_f1": 0.5, "ece": 0.1}
)


def fields_loosened(**changes) -> list[str]:
    return [c["field"] for c in loosenings(BASE, merge_gate(BASE, changes))]


@pytest.mark.parametrize(
    ("changes", "looser"),
    [
        ({"primary": "accuracy"}, ["primary"]),
        ({"min_abs_improvement": 0.0}, ["min_abs_improvement"]),
        ({"min_abs_improvement": 0.05}, []),
        ({"min_rel_improvement": 0.01}, ["min_rel_improvement"]),
        ({"min_rel_improvement": 0.5}, []),
        ({"guards": {"accuracy": 0.05}}, ["guards.accuracy"]),
        ({"guards": {"accuracy": 0.001}}, []),
        ({"guards": {"ece": None}}, ["guards.ece"]),
        ({"guards": {"loss": 0.1}}, []),
        ({"floors": {"macro_f1": 0.4}}, ["floors.macro_f1"]),
        ({"floors": {"macro_f1": 0.6}}, []),
        ({"floors": {"ece": 0.2}}, ["floors.ece"]),  # a ceiling: higher is looser
        ({"floors": {"ece": 0.05}}, []),
        ({"floors": {"macro_f1": None}}, ["floors.macro_f1"]),
        ({"floors": {"accuracy": 0.7}}, []),
        ({"max_fairness_gap": 0.3}, ["max_fairness_gap"]),
        ({"max_fairness_gap": None}, ["max_fairness_gap"]),
        ({"max_fairness_gap": 0.1}, []),
        ({"max_latency_p95_ms": 150.0}, ["max_latency_p95_ms"]),
        ({"max_latency_p95_ms": None}, ["max_latency_p95_ms"]),
        ({"max_latency_p95_ms": 50.0}, []),
        ({"fairness_unmeasured": "fail"}, []),
        ({}, []),
    ],
)
def test_loosenings_per_field(changes, looser):
    assert fields_loosened(**changes) == looser
    assert is_stricter_or_equal(BASE, merge_gate(BASE, changes)) is (looser == [])


def test_new_bounds_are_stricter_and_unmeasured_pass_after_fail_is_looser():
    unbounded = GateSpec(max_fairness_gap=None, max_latency_p95_ms=None, fairness_unmeasured="fail")
    assert loosenings(unbounded, merge_gate(unbounded, {"max_fairness_gap": 0.2, "max_latency_p95_ms": 10})) == []
    assert loosenings(unbounded, merge_gate(unbounded, {"fairness_unmeasured": "pass"})) == [
        {"field": "fairness_unmeasured", "from": "fail", "to": "pass"}
    ]


def test_several_loosened_fields_are_all_listed_and_refused():
    with pytest.raises(GateOverrideRefused) as refused:
        resolve_gate(BASE, {"floors": {"macro_f1": 0.0}, "max_fairness_gap": None, "guards": {"accuracy": 0.02}})
    assert [c["field"] for c in refused.value.loosened] == ["guards.accuracy", "floors.macro_f1", "max_fairness_gap"]
    assert "floors.macro_f1 0.5 -> 0.0" in str(refused.value) and "max_fairness_gap 0.25 -> None" in str(refused.value)


def test_allowed_override_is_applied_and_reported():
    resolved = resolve_gate(BASE, {"floors": {"macro_f1": 0.0}, "min_abs_improvement": 0.1}, allow_override=True)
    assert resolved.spec.floors == {"macro_f1": 0.0, "ece": 0.1} and resolved.spec.min_abs_improvement == 0.1
    assert resolved.loosened == [{"field": "floors.macro_f1", "from": 0.5, "to": 0.0}]
    assert {c["field"] for c in resolved.changed} == {"floors.macro_f1", "min_abs_improvement"}


def test_merge_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="unknown GateSpec key"):
        merge_gate(BASE, {"floor": {}})
    with pytest.raises(ValueError, match="must be a mapping"):
        merge_gate(BASE, {"guards": 0.1})
    with pytest.raises(ValueError, match="must be >= 0"):
        merge_gate(BASE, {"min_abs_improvement": -1})
