"""Promotion gate: decide whether a challenger model may replace the champion, from flat metric dicts such as
{"accuracy": .., "macro_f1": .., "ece": .., "fairness_gap": .., "latency_p95_ms": ..}.

Checks, in order (each one a JSON-serialisable dict {name, metric, value, reference, threshold, passed, detail}):

* `primary` (only with a champion): the primary metric must improve strictly (a tie never promotes; differences
  within 1e-12 count as ties). When `min_abs_improvement` and/or `min_rel_improvement` are > 0, the improvement
  must also reach at least one of the thresholds that are set; a threshold of 0 means "not required". The relative
  improvement is improvement / |champion value|; against a champion value of 0 any positive improvement satisfies
  it. If the champion has no primary metric, the check fails: an improvement cannot be shown. Its `threshold` is
  {"min_abs_improvement": .., "min_rel_improvement": ..}.
* `guard:<metric>` (only with a champion): the challenger may be worse than the champion by at most the tolerance.
  For metrics in LOWER_IS_BETTER "worse" means higher. Skipped (passed, reference None, detail "champion has no
  <metric>") when the champion lacks the metric.
* `floor:<metric>`: absolute minimums on the challenger (maximums for LOWER_IS_BETTER metrics), always applied.
* `fairness` / `latency`: absolute bounds on `fairness_gap` / `latency_p95_ms` when configured, always applied.
  When the evaluation could not measure fairness (`fairness_measured` is False: no group column reached the
  minimum group size, or the data has no group columns), `fairness_gap` is None and the check follows the
  declared rule `fairness_unmeasured`: "pass" (the default: the check passes and its detail says fairness was
  not measured and why) or "fail". An unmeasured gap is never read as 0.0.

With no champion (`champion is None`, a first model) only the absolute checks run: floors and bounds. A metric a
check needs that is missing, None or not a finite number on the challenger fails that check; it never raises.

Run-time overrides (`resolve_gate`): the DAG author's spec is the baseline; a run-time request (the `gate` Param)
is merged into it field by field (`guards` / `floors` key by key, a key set to None removes that entry), and
`loosenings(base, merged)` lists every field the request made looser. Tighter means: higher improvement margins
and floors (lower ceilings for LOWER_IS_BETTER metrics), more guards and smaller tolerances, a lower (or a new)
maximum fairness gap or latency, `fairness_unmeasured` "fail" instead of "pass"; a different primary metric is
always a loosening. A request that loosens anything is refused unless the author allowed overrides.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from airflow_provider_llmops.errors import ConfigurationError

LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"ece", "fairness_gap", "latency_p95_ms", "latency_p50_ms", "perplexity", "loss"}
)
TIE_EPSILON = 1e-12
FAIRNESS_UNMEASURED_RULES = ("pass", "fail")


def _default_guards() -> dict[str, float]:
    return {"accuracy": 0.01, "ece": 0.02}


def _default_floors() -> dict[str, float]:
    return {"macro_f1": 0.5, "accuracy": 0.5}


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _spec_number(name: str, value: Any, *, optional: bool = False, non_negative: bool = True) -> float | None:
    if value is None and optional:
        return None
    if not _is_number(value) or not math.isfinite(float(value)):
        or_none = " or None" if optional else ""
        raise ConfigurationError(f"GateSpec.{name} must be a finite number{or_none}, got {value!r}")
    if non_negative and float(value) < 0:
        raise ConfigurationError(f"GateSpec.{name} must be >= 0, got {value!r}")
    return float(value)


def _spec_mapping(name: str, value: Any, *, non_negative: bool) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"GateSpec.{name} must be a mapping of metric name to number, got {value!r}")
    out: dict[str, float] = {}
    for metric, number in value.items():
        if not isinstance(metric, str) or not metric:
            raise ConfigurationError(f"GateSpec.{name} keys must be metric names, got {metric!r}")
        out[metric] = _spec_number(f"{name}[{metric!r}]", number, non_negative=non_negative)  # type: ignore[assignment]
    return out


@dataclass(frozen=True)
class GateSpec:
    """Promotion rules. `guards` are tolerances against the champion; `floors` are absolute bounds on the challenger
    (minimums, or maximums for LOWER_IS_BETTER metrics). Passing `guards`/`floors` replaces the defaults entirely."""

    primary: str = "macro_f1"
    min_abs_improvement: float = 0.0
    min_rel_improvement: float = 0.0
    guards: Mapping[str, float] = field(default_factory=_default_guards)
    max_fairness_gap: float | None = 0.25
    max_latency_p95_ms: float | None = None
    floors: Mapping[str, float] = field(default_factory=_default_floors)
    fairness_unmeasured: str = "pass"

    def __post_init__(self) -> None:
        if not isinstance(self.primary, str) or not self.primary:
            raise ConfigurationError(f"GateSpec.primary must be a metric name, got {self.primary!r}")
        if self.fairness_unmeasured not in FAIRNESS_UNMEASURED_RULES:
            rules = ", ".join(FAIRNESS_UNMEASURED_RULES)
            raise ConfigurationError(
                f"GateSpec.fairness_unmeasured must be one of {rules}, got {self.fairness_unmeasured!r}"
            )
        set_ = object.__setattr__
        set_(self, "min_abs_improvement", _spec_number("min_abs_improvement", self.min_abs_improvement))
        set_(self, "min_rel_improvement", _spec_number("min_rel_improvement", self.min_rel_improvement))
        set_(self, "max_fairness_gap", _spec_number("max_fairness_gap", self.max_fairness_gap, optional=True))
        set_(self, "max_latency_p95_ms", _spec_number("max_latency_p95_ms", self.max_latency_p95_ms, optional=True))
        set_(self, "guards", _spec_mapping("guards", self.guards, non_negative=True))
        set_(self, "floors", _spec_mapping("floors", self.floors, non_negative=False))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> GateSpec:
        """Build from a (possibly partial) dict, e.g. an Airflow Param; unknown keys raise ConfigurationError."""
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ConfigurationError(f"GateSpec.from_dict expects a mapping, got {type(d).__name__}")
        _check_keys(d)
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "min_abs_improvement": self.min_abs_improvement,
            "min_rel_improvement": self.min_rel_improvement,
            "guards": dict(self.guards),
            "max_fairness_gap": self.max_fairness_gap,
            "max_latency_p95_ms": self.max_latency_p95_ms,
            "floors": dict(self.floors),
            "fairness_unmeasured": self.fairness_unmeasured,
        }


@dataclass(frozen=True)
class GateDecision:
    """Outcome of `decide`: passed only when every check passed; `reasons` holds one line per failed check."""

    passed: bool
    first_model: bool
    checks: list[dict[str, Any]]
    reasons: list[str]
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "first_model": self.first_model,
            "checks": copy.deepcopy(self.checks),
            "reasons": list(self.reasons),
            "summary": self.summary,
        }


def _read(metrics: Mapping[str, Any], metric: str) -> tuple[float | None, str | None]:
    """(value, None) for a finite number, else (None, why it is unusable)."""
    if metric not in metrics:
        return None, "missing"
    value = metrics[metric]
    if value is None:
        return None, "None"
    if not _is_number(value):
        return None, f"not a number ({value!r})"
    if not math.isfinite(float(value)):
        return None, f"not finite ({value!r})"
    return float(value), None


def _unusable(side: str, metric: str, why: str) -> str:
    return f"{side} has no {metric}" if why in ("missing", "None") else f"{side} {metric} is {why}"


def _f(value: float) -> str:
    return f"{value:.3f}"


def _check(
    name: str, metric: str, value: float | None, reference: float | None, threshold: Any, passed: bool, detail: str
) -> dict[str, Any]:
    return {
        "name": name,
        "metric": metric,
        "value": value,
        "reference": reference,
        "threshold": threshold,
        "passed": passed,
        "detail": detail,
    }


def _primary_check(challenger: Mapping[str, Any], champion: Mapping[str, Any], spec: GateSpec) -> dict[str, Any]:
    metric = spec.primary
    threshold = {"min_abs_improvement": spec.min_abs_improvement, "min_rel_improvement": spec.min_rel_improvement}
    needs = ["> 0"]
    wanted = []
    if spec.min_abs_improvement > 0:
        wanted.append(f">= {spec.min_abs_improvement:g} absolute")
    if spec.min_rel_improvement > 0:
        wanted.append(f">= {spec.min_rel_improvement * 100:g}% relative")
    if wanted:
        needs.append(" or ".join(wanted))
    needs_text = "needs " + " and ".join(needs)
    value, why = _read(challenger, metric)
    reference, ref_why = _read(champion, metric)
    if why is not None:
        return _check(
            "primary",
            metric,
            value,
            reference,
            threshold,
            False,
            f"{_unusable('challenger', metric, why)}; cannot compare with the champion",
        )
    if ref_why is not None:
        return _check(
            "primary",
            metric,
            value,
            None,
            threshold,
            False,
            f"{_unusable('champion', metric, ref_why)}; cannot show an improvement",
        )
    assert value is not None and reference is not None
    improvement = (reference - value) if metric in LOWER_IS_BETTER else (value - reference)
    strictly_better = improvement > TIE_EPSILON
    satisfied = []
    if spec.min_abs_improvement > 0:
        satisfied.append(improvement >= spec.min_abs_improvement - TIE_EPSILON)
    if spec.min_rel_improvement > 0:
        if reference == 0:
            satisfied.append(strictly_better)
        else:
            satisfied.append(improvement / abs(reference) >= spec.min_rel_improvement - TIE_EPSILON)
    passed = strictly_better and (not satisfied or any(satisfied))
    relative = f", {improvement / abs(reference) * 100:+.2f}% relative" if reference != 0 else ""
    detail = f"{metric} improved by {improvement:.4f} ({_f(value)} vs {_f(reference)}{relative}), {needs_text}"
    return _check("primary", metric, value, reference, threshold, passed, detail)


def _guard_check(
    metric: str, tolerance: float, challenger: Mapping[str, Any], champion: Mapping[str, Any]
) -> dict[str, Any]:
    name = f"guard:{metric}"
    reference, ref_why = _read(champion, metric)
    if ref_why is not None:
        value, _ = _read(challenger, metric)
        return _check(name, metric, value, None, tolerance, True, _unusable("champion", metric, ref_why))
    value, why = _read(challenger, metric)
    if why is not None:
        return _check(name, metric, None, reference, tolerance, False, _unusable("challenger", metric, why))
    assert value is not None and reference is not None
    lower = metric in LOWER_IS_BETTER
    worse_by = (value - reference) if lower else (reference - value)
    passed = worse_by <= tolerance + TIE_EPSILON
    if worse_by > TIE_EPSILON:
        verb = "worsened" if lower else "regressed"
        detail = f"{metric} {verb} by {worse_by:.4f} ({_f(value)} vs {_f(reference)}), tolerance {tolerance:g}"
    else:
        detail = f"{metric} did not get worse ({_f(value)} vs {_f(reference)}), tolerance {tolerance:g}"
    return _check(name, metric, value, reference, tolerance, passed, detail)


def _bound_check(
    name: str, metric: str, bound: float, upper: bool, kind: str, challenger: Mapping[str, Any]
) -> dict[str, Any]:
    value, why = _read(challenger, metric)
    if why is not None:
        return _check(
            name,
            metric,
            None,
            None,
            bound,
            False,
            f"{_unusable('challenger', metric, why)}; required by the {kind} {bound:g}",
        )
    assert value is not None
    if upper:
        passed = value <= bound + TIE_EPSILON
        detail = f"{metric} {_f(value)} {'is within' if passed else 'exceeds'} the {kind} {bound:g}"
    else:
        passed = value >= bound - TIE_EPSILON
        detail = f"{metric} {_f(value)} {'meets' if passed else 'is below'} the {kind} {bound:g}"
    return _check(name, metric, value, None, bound, passed, detail)


def _fairness_check(spec: GateSpec, challenger: Mapping[str, Any]) -> dict[str, Any]:
    """The `fairness` bound, or the declared rule when the evaluation says fairness was not measured."""
    assert spec.max_fairness_gap is not None
    if challenger.get("fairness_measured") is False:
        why = str(challenger.get("fairness_reason") or "no group was large enough")
        passed = spec.fairness_unmeasured == "pass"
        verdict = "passes" if passed else "fails"
        detail = f"fairness not measured ({why}); rule fairness_unmeasured={spec.fairness_unmeasured!r} {verdict} it"
        check = _check("fairness", "fairness_gap", None, None, spec.max_fairness_gap, passed, detail)
        check["measured"] = False
        return check
    return _bound_check("fairness", "fairness_gap", spec.max_fairness_gap, True, "maximum", challenger)


def decide(
    challenger: Mapping[str, float | None], champion: Mapping[str, float | None] | None, spec: GateSpec
) -> GateDecision:
    """Run every applicable check (see the module docstring) and promote only if all pass."""
    first_model = champion is None
    checks: list[dict[str, Any]] = []
    if champion is not None:
        checks.append(_primary_check(challenger, champion, spec))
        checks.extend(
            _guard_check(metric, tolerance, challenger, champion) for metric, tolerance in spec.guards.items()
        )
    for metric, floor in spec.floors.items():
        upper = metric in LOWER_IS_BETTER
        checks.append(
            _bound_check(f"floor:{metric}", metric, floor, upper, "ceiling" if upper else "floor", challenger)
        )
    if spec.max_fairness_gap is not None:
        checks.append(_fairness_check(spec, challenger))
    if spec.max_latency_p95_ms is not None:
        checks.append(_bound_check("latency", "latency_p95_ms", spec.max_latency_p95_ms, True, "maximum", challenger))
    reasons = [check["detail"] for check in checks if not check["passed"]]
    passed = not reasons
    if passed:
        scope = "first model, no champion: floors and bounds only" if first_model else "challenger beats the champion"
        summary = f"promote ({scope}): all {len(checks)} checks passed"
        if not first_model:
            summary += f"; {checks[0]['detail']}"
    else:
        summary = (
            f"reject{' (first model)' if first_model else ''}: {len(reasons)} of {len(checks)} checks failed: "
            + "; ".join(reasons)
        )
    return GateDecision(passed=passed, first_model=first_model, checks=checks, reasons=reasons, summary=summary)


# ---- run-time overrides --------------------------------------------------------------------------------------


def _check_keys(d: Mapping[str, Any]) -> None:
    """Refuse keys that are not GateSpec fields, naming the allowed ones."""
    allowed = [f.name for f in fields(GateSpec)]
    unknown = sorted(str(key) for key in d if key not in allowed)
    if unknown:
        raise ConfigurationError(f"unknown GateSpec key(s): {', '.join(unknown)} (allowed: {', '.join(allowed)})")


def merge_gate(base: GateSpec, request: Mapping[str, Any] | None) -> GateSpec:
    """`base` with the fields of a (partial) run-time `request` applied: scalar fields replace, `guards` and
    `floors` merge key by key (a key set to None removes it). Unknown keys or invalid values raise
    ConfigurationError."""
    if not request:
        return base
    if not isinstance(request, Mapping):
        raise ConfigurationError(f"a gate override must be a mapping of GateSpec fields, got {type(request).__name__}")
    _check_keys(request)
    merged = base.to_dict()
    for key, value in request.items():
        if key in ("guards", "floors"):
            if not isinstance(value, Mapping):
                raise ConfigurationError(f"GateSpec.{key} must be a mapping of metric name to number, got {value!r}")
            entries = dict(merged[key])
            for metric, number in value.items():
                if number is None:
                    entries.pop(metric, None)
                else:
                    entries[metric] = number
            merged[key] = entries
        else:
            merged[key] = value
    return GateSpec(**merged)


def _change(field_name: str, before: Any, after: Any) -> dict[str, Any]:
    return {"field": field_name, "from": before, "to": after}


def loosenings(base: GateSpec, candidate: GateSpec) -> list[dict[str, Any]]:
    """Every field where `candidate` is looser than `base`, as {field, from, to} (empty: `candidate` is as strict
    or stricter everywhere). Pure; see the module docstring for what "looser" means per field."""
    out: list[dict[str, Any]] = []
    if candidate.primary != base.primary:
        out.append(_change("primary", base.primary, candidate.primary))
    for name in ("min_abs_improvement", "min_rel_improvement"):
        before, after = getattr(base, name), getattr(candidate, name)
        if after < before:
            out.append(_change(name, before, after))
    for metric, tolerance in base.guards.items():
        after = candidate.guards.get(metric)
        if after is None or after > tolerance:
            out.append(_change(f"guards.{metric}", tolerance, after))
    for metric, bound in base.floors.items():
        after = candidate.floors.get(metric)
        looser = after is None or (after > bound if metric in LOWER_IS_BETTER else after < bound)
        if looser:
            out.append(_change(f"floors.{metric}", bound, after))
    for name in ("max_fairness_gap", "max_latency_p95_ms"):
        before, after = getattr(base, name), getattr(candidate, name)
        if before is not None and (after is None or after > before):
            out.append(_change(name, before, after))
    if base.fairness_unmeasured == "fail" and candidate.fairness_unmeasured != "fail":
        out.append(_change("fairness_unmeasured", base.fairness_unmeasured, candidate.fairness_unmeasured))
    return out


def is_stricter_or_equal(base: GateSpec, candidate: GateSpec) -> bool:
    """True when `candidate` loosens no field of `base`."""
    return not loosenings(base, candidate)


def changed_fields(base: GateSpec, candidate: GateSpec) -> list[dict[str, Any]]:
    """Every field (guards / floors per metric) whose value differs, as {field, from, to}."""
    before, after = base.to_dict(), candidate.to_dict()
    out: list[dict[str, Any]] = []
    for name in before:
        if name in ("guards", "floors"):
            for metric in sorted(set(before[name]) | set(after[name])):
                if before[name].get(metric) != after[name].get(metric):
                    out.append(_change(f"{name}.{metric}", before[name].get(metric), after[name].get(metric)))
        elif before[name] != after[name]:
            out.append(_change(name, before[name], after[name]))
    return out


class GateOverrideRefused(ConfigurationError, ValueError):
    """A run-time gate loosens the DAG author's gate and overrides are not allowed."""

    def __init__(self, loosened: list[dict[str, Any]]) -> None:
        self.loosened = loosened
        shown = "; ".join(f"{c['field']} {c['from']!r} -> {c['to']!r}" for c in loosened)
        super().__init__(
            f"the run-time gate would loosen the DAG's gate ({shown}); a run may only make the gate stricter. "
            "Change the DAG's gate, or build the DAG with allow_gate_override=True to allow (and audit) overrides"
        )


@dataclass(frozen=True)
class ResolvedGate:
    """The gate a run uses: `spec`; `changed`: every field the request changed; `loosened`: those made looser
    (non-empty only when overrides were allowed)."""

    spec: GateSpec
    base: GateSpec
    changed: list[dict[str, Any]]
    loosened: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "base": self.base.to_dict(),
            "changed": copy.deepcopy(self.changed),
            "loosened": copy.deepcopy(self.loosened),
        }


def resolve_gate(
    base: GateSpec | Mapping[str, Any] | None, request: Mapping[str, Any] | None, *, allow_override: bool = False
) -> ResolvedGate:
    """The author's `base` gate with a run-time `request` merged in. Raises GateOverrideRefused when the request
    loosens any field and `allow_override` is False, ValueError on an invalid request."""
    base_spec = base if isinstance(base, GateSpec) else GateSpec.from_dict(base or {})
    merged = merge_gate(base_spec, request)
    loosened = loosenings(base_spec, merged)
    if loosened and not allow_override:
        raise GateOverrideRefused(loosened)
    return ResolvedGate(spec=merged, base=base_spec, changed=changed_fields(base_spec, merged), loosened=loosened)
