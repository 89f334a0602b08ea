"""Canary deployment of the `candidate` version: the rollout policy, the service's metrics read as the canary's
counters, the analysis of each step, and the registry changes of a rollout (start, share, complete, abort).

Plain Python, no Airflow: `operators/deploy.py` and `triggers/canary.py` drive it inside Airflow, `run_canary` drives
it in one process (the CLI, integration tests). The service (`serving/`) reads what this module writes: the `canary`
alias and the registered-model tag `llmops.canary_share`; it converges by polling and on its reload call.

Policy (`CanaryPolicy`, the knobs Flagger and Argo Rollouts users know): the canary's traffic share goes through
`step_weights` (e.g. 10% -> 50% -> 100%); at each step the analysis reads `/metrics` every `analysis_interval_s`.
A window starts once the service shows the step's share and has the canary loaded; over a window (the difference of
two scrapes of the canary's counters, `role="canary"`, `model_version=<version>`, routes `/v1/predict` and
`/v1/generate`):

* requests = sum of `llmops_serve_requests_total`; a window needs at least `min_requests` before it is judged;
* error rate = requests with status >= 500 / requests, at most `max_error_rate`;
* p95 latency = the 0.95 quantile of `llmops_serve_request_latency_seconds_bucket`, linear inside the bucket (as
  Prometheus' `histogram_quantile`), at most `max_p95_latency_ms` (None: not checked);
* disagreement = `llmops_serve_canary_disagreements_total / llmops_serve_canary_mirrored_total` (champion traffic
  mirrored to the canary), at most `max_disagreement` (None: not checked), with at least `min_requests` mirrored
  requests; at a share of 100% there is no champion traffic to mirror and it is not measured;
* loaded: a canary that failed to load (`llmops_serve_model_load_failures_total{version}` > 0, not in
  `llmops_serve_loaded_version{role="canary"}`) fails at once.

A window with enough data where every check holds passes the step; one where a check fails counts one failed
window and the next window starts; `failure_threshold` failed windows (over the whole rollout) abort it, and so
does a step that reaches no verdict within `progress_deadline_s` (too little traffic, the service unreachable, the
canary never loaded). A counter that went down (the service restarted) counts from zero.

Registry changes are complete-or-resume, like promotion (`promote_job`), under one deployment id (a hash of model,
version, champion before and policy; the same on every retry):

* `start_canary`: intent tag `llmops.deploy_id` (JSON: id, champion before, run) on the version, share 0, then
  `canary` -> version as a compare-and-swap (champion must not have moved); audit `model.canary_started` once.
* `set_share`: the share tag, only while `canary` still points at the version.
* `complete_canary`: `champion` -> version, `previous-champion` -> old champion, `canary` (and `candidate` when it
  is this version) removed, as one compare-and-swap; share 0; tags `llmops.promoted_at` / `llmops.promoted_by`
  (= deployment id, so rollback knows it as a former champion); audit `model.deployed` once.
* `abort_canary`: share 0, `canary` (and `candidate` when it is this version) removed; the version tagged
  `llmops.canary_rejected` (JSON: when, deployment id, reason, failing checks); audit `model.canary_rejected` once.
  `champion` never moves.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_provider_llmops.core.governance.audit import AuditTrail
from airflow_provider_llmops.core.governance.promote_job import _append_once, _digest, find_record, run_key
from airflow_provider_llmops.core.model.contract import (
    CANARY,
    CANDIDATE,
    CHAMPION,
    PREVIOUS,
    TAG_CANARY_REJECTED,
    TAG_CANARY_SHARE,
    TAG_DEPLOY_ID,
    TAG_GATE,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
)
from airflow_provider_llmops.core.model.registry import AliasConflict, ModelRegistry
from airflow_provider_llmops.core.runs import actor_of
from airflow_provider_llmops.errors import ConfigurationError, LLMOpsError

MODEL_ROUTES = ("/v1/predict", "/v1/generate")
MAX_METRICS_BYTES = 8 << 20  # a /metrics page larger than this is not read
REQUESTS = "llmops_serve_requests_total"
LATENCY_BUCKET = "llmops_serve_request_latency_seconds_bucket"
MIRRORED = "llmops_serve_canary_mirrored_total"
DISAGREEMENTS = "llmops_serve_canary_disagreements_total"
LOADED = "llmops_serve_loaded_version"
LOAD_FAILURES = "llmops_serve_model_load_failures_total"
SHARE = "llmops_serve_canary_share"
SHARE_TOLERANCE = 1e-6


class CanaryRejected(LLMOpsError):
    """The canary failed its analysis (or reached no verdict before its deadline) and was rolled back: the share is 0,
    the `canary` alias is gone, the champion never moved."""

    def __init__(self, model: str, version: str, reason: str, failing: Sequence[Mapping[str, Any]] = ()) -> None:
        self.model, self.version, self.reason, self.failing = model, str(version), reason, list(failing)
        details = "; ".join(str(c.get("detail") or c.get("name")) for c in self.failing)
        super().__init__(
            f"canary of {model} v{version} rolled back: {reason}" + (f" ({details})" if details else "") + ". The "
            f"champion kept serving; the version is tagged {TAG_CANARY_REJECTED} and the audit trail has the record "
            "model.canary_rejected. Fix the model (or the service) and promote a new version"
        )


class CanaryInProgress(ConfigurationError):
    """Another version's canary holds the `canary` alias: one rollout at a time."""


class PolicyOverrideRefused(ConfigurationError):
    """A run-time policy loosens the DAG author's policy, which the author did not allow."""


class MetricsParseError(LLMOpsError):
    """The service's `/metrics` page is not Prometheus text this analysis can read."""


# ---- policy ----------------------------------------------------------------------------------------------------

# (low, high) of the numeric knobs: beyond them a value is a typo, or a way to keep a canary running for ever
BOUNDS: dict[str, tuple[float, float]] = {
    "analysis_interval_s": (0.1, 3600.0),
    "min_requests": (1, 10_000_000),
    "max_error_rate": (0.0, 1.0),
    "max_p95_latency_ms": (0.001, 600_000.0),
    "max_disagreement": (0.0, 1.0),
    "failure_threshold": (1, 100),
    "progress_deadline_s": (0.1, 7 * 86400.0),
}
MAX_STEPS = 20


@dataclass(frozen=True)
class CanaryPolicy:
    """How a canary is rolled out and judged (see the module docstring). Invalid values raise ConfigurationError."""

    step_weights: tuple[float, ...] = (0.1, 0.5, 1.0)
    analysis_interval_s: float = 60.0
    min_requests: int = 50
    max_error_rate: float = 0.01
    max_p95_latency_ms: float | None = 500.0
    max_disagreement: float | None = 0.1
    failure_threshold: int = 2
    progress_deadline_s: float = 1800.0

    def __post_init__(self) -> None:
        weights = self.step_weights
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Iterable):
            raise ConfigurationError(f"step_weights must be a list of shares in (0, 1], got {weights!r}")
        weights = tuple(weights)
        if not 1 <= len(weights) <= MAX_STEPS:
            raise ConfigurationError(f"step_weights needs 1 to {MAX_STEPS} steps, got {len(weights)}")
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or not 0 < w <= 1:
                raise ConfigurationError(f"each of step_weights must be a share in (0, 1] (0.1 = 10%), got {w!r}")
        if any(b <= a for a, b in zip(weights, weights[1:], strict=False)):
            raise ConfigurationError(f"step_weights must increase step by step, got {list(weights)}")
        object.__setattr__(self, "step_weights", tuple(float(w) for w in weights))
        for name, (low, high) in BOUNDS.items():
            value = getattr(self, name)
            if value is None and name in ("max_p95_latency_ms", "max_disagreement"):
                continue
            integral = name in ("min_requests", "failure_threshold")
            ok_type = isinstance(value, int) if integral else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok_type or not math.isfinite(value) or not low <= value <= high:
                kind = "a whole number" if integral else "a number"
                raise ConfigurationError(f"{name} must be {kind} in [{low:g}, {high:g}], got {value!r}")
            object.__setattr__(self, name, int(value) if integral else float(value))
        if self.progress_deadline_s < self.analysis_interval_s:
            raise ConfigurationError(
                f"progress_deadline_s ({self.progress_deadline_s:g}) must be at least analysis_interval_s "
                f"({self.analysis_interval_s:g}): a step needs at least one window"
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["step_weights"] = list(self.step_weights)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CanaryPolicy:
        """A policy from its fields (unknown fields are a ConfigurationError naming them)."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigurationError(
                f"unknown canary policy field(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**data)


def _max_jump(weights: Sequence[float]) -> float:
    return max(b - a for a, b in zip((0.0, *weights), weights, strict=False))


def _looser(field_name: str, base: Any, new: Any) -> bool:
    """Whether `new` judges a canary less strictly than `base` for one policy field."""
    if field_name in ("max_error_rate", "max_p95_latency_ms", "max_disagreement"):
        return base is not None and (new is None or new > base)
    if field_name == "min_requests":
        return new < base
    if field_name == "failure_threshold":
        return new > base
    if field_name == "analysis_interval_s":
        return new < base
    if field_name == "step_weights":  # starts higher, or takes a bigger jump
        return new[0] > base[0] + 1e-12 or _max_jump(new) > _max_jump(base) + 1e-12
    return False  # progress_deadline_s: a longer or shorter wait judges the same data


@dataclass(frozen=True)
class ResolvedPolicy:
    """The policy in force: the author's (`base`) with a run-time request merged in; `loosened` lists each field
    the request made looser (from -> to), applied only because the author allowed it."""

    policy: CanaryPolicy
    base: CanaryPolicy
    loosened: list[dict[str, Any]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def resolve_policy(
    base: Mapping[str, Any] | CanaryPolicy | None, request: Mapping[str, Any] | None, *, allow_override: bool = False
) -> ResolvedPolicy:
    """The author's policy with `request` (a Param, None values ignored) merged in field by field. A field made
    looser is a PolicyOverrideRefused naming it, unless `allow_override`."""
    author = base if isinstance(base, CanaryPolicy) else CanaryPolicy.from_dict(base)
    wanted = {k: v for k, v in dict(request or {}).items() if v is not None}
    merged = CanaryPolicy.from_dict({**author.to_dict(), **wanted})
    changed = [k for k in wanted if getattr(merged, k) != getattr(author, k)]
    loosened = [
        {"field": k, "from": author.to_dict()[k], "to": merged.to_dict()[k]}
        for k in changed
        if _looser(k, getattr(author, k), getattr(merged, k))
    ]
    if loosened and not allow_override:
        text = "; ".join(f"{c['field']} {c['from']!r} -> {c['to']!r}" for c in loosened)
        raise PolicyOverrideRefused(
            f"the run-time canary policy loosens the DAG's policy ({text}); only stricter values are accepted. "
            "Ask the DAG author to build the DAG with allow_policy_override=True, or change the DAG's policy"
        )
    return ResolvedPolicy(merged, author, loosened, changed)


# ---- metrics ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanarySample:
    """The canary's counters in one scrape of `/metrics` (cumulative, as the service exports them)."""

    requests: float = 0.0
    errors: float = 0.0  # requests answered with status >= 500
    latency_buckets: tuple[tuple[float, float], ...] = ()  # (upper bound in seconds, cumulative count), +inf last
    mirrored: float = 0.0
    disagreements: float = 0.0
    loaded: bool = False  # the version serves as the canary
    load_failures: float = 0.0
    share: float | None = None  # the share the service applies


def _number(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise MetricsParseError(f"a counter of the canary is {value!r}, not a finite count")
    return number


def parse_metrics(text: str, version: str) -> CanarySample:
    """The counters of the canary `version` in Prometheus text (`/metrics` of the service). Text that is not
    Prometheus exposition format raises MetricsParseError (never another exception)."""
    from prometheus_client.parser import text_string_to_metric_families

    if not isinstance(text, str):
        raise MetricsParseError("the metrics page is not text")
    if len(text) > MAX_METRICS_BYTES:
        raise MetricsParseError(f"the metrics page is larger than {MAX_METRICS_BYTES} bytes")
    version = str(version)
    requests = errors = mirrored = disagreements = failures = 0.0
    buckets: dict[float, float] = {}
    loaded, share = False, None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, sample.value
                canary = labels.get("role") == "canary" and labels.get("model_version") == version
                if name == REQUESTS and canary and labels.get("route") in MODEL_ROUTES:
                    count = _number(value)
                    requests += count
                    if str(labels.get("status", "")).startswith("5"):
                        errors += count
                elif name == LATENCY_BUCKET and canary and labels.get("route") in MODEL_ROUTES:
                    le = float(labels["le"])
                    if math.isnan(le):
                        raise MetricsParseError("a latency bucket has no upper bound")
                    buckets[le] = buckets.get(le, 0.0) + _number(value)
                elif name == MIRRORED and labels.get("version") == version:
                    mirrored += _number(value)
                elif name == DISAGREEMENTS and labels.get("version") == version:
                    disagreements += _number(value)
                elif name == LOAD_FAILURES and labels.get("version") == version:
                    failures += _number(value)
                elif name == LOADED and labels.get("role") == "canary" and labels.get("version") == version:
                    loaded = float(value) >= 1
                elif name == SHARE and not labels:
                    share = float(value)
                    if not math.isfinite(share):
                        raise MetricsParseError(f"the canary share is {value!r}")
    except MetricsParseError:
        raise
    except Exception as exc:  # the parser raises ValueError, KeyError, IndexError... on text it cannot read
        raise MetricsParseError(f"the metrics page is not Prometheus text: {type(exc).__name__}: {exc}") from None
    return CanarySample(
        requests=requests,
        errors=errors,
        latency_buckets=tuple(sorted(buckets.items())),
        mirrored=mirrored,
        disagreements=disagreements,
        loaded=loaded,
        load_failures=failures,
        share=share,
    )


def _increase(before: float, after: float) -> float:
    """A counter's increase over a window; a counter that went down was reset (service restart): count from 0."""
    return after - before if after >= before else after


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of a cumulative histogram [(upper bound, count)], linear inside its bucket (lower bound 0
    for the first); in the +inf bucket, the highest finite bound. None without observations."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][0] != math.inf:
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if upper == math.inf:
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, max(below, count)
    return lower


def _bucket_increase(before: CanarySample, after: CanarySample) -> list[tuple[float, float]]:
    old = dict(before.latency_buckets)
    reset = any(count < old.get(le, 0.0) for le, count in after.latency_buckets)
    return [(le, count if reset else count - old.get(le, 0.0)) for le, count in after.latency_buckets]


@dataclass(frozen=True)
class Check:
    """One check of a window: its value, its bound, whether it holds, and whether the window had enough data."""

    name: str
    value: float | None
    bound: float | None
    passed: bool
    enough_data: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Analysis:
    """The checks of one window and the verdict: `passed` (enough data, every check holds), `failed` (a check with
    enough data fails) or `waiting` (not enough data yet)."""

    checks: tuple[Check, ...]
    verdict: str

    @property
    def failing(self) -> list[Check]:
        return [c for c in self.checks if c.enough_data and not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "checks": [c.to_dict() for c in self.checks]}


def analyse(before: CanarySample, after: CanarySample, policy: CanaryPolicy, share: float = 0.0) -> Analysis:
    """Judge the window between two scrapes against `policy` (see the module docstring); `share` is the step's
    traffic share (at 1.0 disagreement cannot be measured: no champion traffic is mirrored)."""
    requests = _increase(before.requests, after.requests)
    errors = min(_increase(before.errors, after.errors), requests)
    enough = requests >= policy.min_requests
    checks = []
    if after.loaded:
        checks.append(Check("loaded", 1.0, None, True, True, "the canary is loaded"))
    elif after.load_failures > 0:
        checks.append(Check("loaded", 0.0, None, False, True, "the canary failed to load or to pass its smoke test"))
    else:
        checks.append(Check("loaded", 0.0, None, False, False, "the canary is not loaded (yet)"))
    checks.append(
        Check("requests", requests, float(policy.min_requests), enough, enough,
              f"{requests:g} canary requests in the window (at least {policy.min_requests} needed)")
    )  # fmt: skip
    rate = errors / requests if requests else None
    rate_text = "no requests" if rate is None else f"{rate:.2%} ({errors:g}/{requests:g})"
    checks.append(
        Check("error_rate", rate, policy.max_error_rate, rate is not None and rate <= policy.max_error_rate, enough,
              f"error rate {rate_text}, at most {policy.max_error_rate:.2%}")
    )  # fmt: skip
    if policy.max_p95_latency_ms is not None:
        p95 = histogram_quantile(0.95, _bucket_increase(before, after))
        p95_ms = None if p95 is None else p95 * 1000.0
        ok = p95_ms is not None and p95_ms <= policy.max_p95_latency_ms
        shown = "no observations" if p95_ms is None else f"{p95_ms:.1f} ms"
        checks.append(
            Check("latency_p95_ms", p95_ms, policy.max_p95_latency_ms, ok, enough and p95_ms is not None,
                  f"p95 latency {shown}, at most {policy.max_p95_latency_ms:g} ms")
        )  # fmt: skip
    if policy.max_disagreement is not None:
        if share >= 1.0:
            checks.append(
                Check("disagreement", None, policy.max_disagreement, True, True,
                      "not measured at 100%: no champion traffic to mirror")
            )  # fmt: skip
        else:
            mirrored = _increase(before.mirrored, after.mirrored)
            differ = min(_increase(before.disagreements, after.disagreements), mirrored)
            value = differ / mirrored if mirrored else None
            shown = "no mirrored requests" if value is None else f"{value:.2%} ({differ:g}/{mirrored:g})"
            checks.append(
                Check("disagreement", value, policy.max_disagreement,
                      value is not None and value <= policy.max_disagreement, mirrored >= policy.min_requests,
                      f"disagreement with the champion {shown}, at most {policy.max_disagreement:.2%}")
            )  # fmt: skip
    found = tuple(checks)
    failing = [c for c in found if c.enough_data and not c.passed]
    verdict = "failed" if failing else "passed" if all(c.enough_data for c in found) else "waiting"
    return Analysis(found, verdict)


# ---- one step of the analysis ------------------------------------------------------------------------------------


@dataclass
class StepWatch:
    """The analysis of one step, fed one scrape per interval (`observe`); returns the step's outcome once it has
    one (`passed`, `failed` after the threshold of failed windows, `deadline`), else None. State is plain data, so
    the trigger and `run_canary` share it. `deadline` is a wall-clock time (epoch seconds)."""

    policy: CanaryPolicy
    version: str
    step: int
    share: float
    deadline: float
    failures: int = 0  # failed windows so far in the rollout (carried from step to step)
    windows: int = 0
    baseline: CanarySample | None = None
    last: Analysis | None = None
    last_error: str | None = None
    scrapes: int = 0

    def observe(self, sample: CanarySample | None, now: float, error: str | None = None) -> dict[str, Any] | None:
        self.scrapes += 1
        if sample is None:
            self.last_error = error or "the metrics could not be read"
        elif sample.load_failures > 0 and not sample.loaded:
            self.last = analyse(sample, sample, self.policy, self.share)
            return self._outcome("failed", "the canary failed to load")
        elif sample.share is None or abs(sample.share - self.share) > SHARE_TOLERANCE or not sample.loaded:
            self.baseline, self.last_error = None, None  # converging: the window starts once the service applies it
        elif self.baseline is None:
            self.baseline, self.last_error = sample, None
        else:
            self.last_error = None
            analysis = analyse(self.baseline, sample, self.policy, self.share)
            self.last = analysis
            if analysis.verdict == "passed":
                self.windows += 1
                return self._outcome("passed", "every check held")
            if analysis.verdict == "failed":
                self.windows += 1
                self.failures += 1
                if self.failures >= self.policy.failure_threshold:
                    names = ", ".join(c.name for c in analysis.failing)
                    return self._outcome("failed", f"{self.failures} failed window(s) ({names})")
                self.baseline = sample  # the next window starts here
        if now >= self.deadline:
            why = self.last_error or (
                "not enough data" if self.last is not None else "the service never applied the step's share"
            )
            return self._outcome("deadline", f"no verdict within the progress deadline: {why}")
        return None

    def _outcome(self, status: str, message: str) -> dict[str, Any]:
        checks = [c.to_dict() for c in self.last.checks] if self.last else []
        failing = [c.to_dict() for c in self.last.failing] if self.last and status != "passed" else []
        return {
            "status": status,
            "step": self.step,
            "share": self.share,
            "version": self.version,
            "message": message,
            "checks": checks,
            "failing": failing,
            "windows": self.windows,
            "failures": self.failures,
            "scrapes": self.scrapes,
            "error": self.last_error,
        }


# ---- registry changes --------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def deploy_id(model: str, version: str, champion_before: str | None, policy: CanaryPolicy) -> str:
    """The id of one deployment decision: the same inputs always give the same id (a retry resumes it)."""
    return _digest("deploy", model, str(version), champion_before, policy.to_dict())[:32]


def _json_tag(tags: Mapping[str, str], key: str) -> dict[str, Any]:
    try:
        value = json.loads(tags.get(key, ""))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def current_share(registry: ModelRegistry, model_name: str) -> float:
    """The canary share recorded on the registered model (0 when unset or unreadable)."""
    try:
        value = float((registry.client.get_registered_model(model_name).tags or {}).get(TAG_CANARY_SHARE, "0"))
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) and 0 <= value <= 1 else 0.0


def _write_share(registry: ModelRegistry, model_name: str, share: float) -> None:
    registry.client.set_registered_model_tag(model_name, TAG_CANARY_SHARE, f"{share:g}")


def start_canary(
    *,
    registry: ModelRegistry,
    audit: AuditTrail,
    model_name: str,
    policy: CanaryPolicy,
    run: Mapping[str, Any],
    log: Any = print,
) -> dict[str, Any]:
    """Point `canary` at the candidate (share 0 until `set_share`). Resumes a canary this run started. Returns the
    deployment: model_name, version, champion_before, deploy_id, status (`started`, `resumed`, `already_champion`,
    `rejected`: a retry of the run that rejected it), start_step (the first step still to analyse)."""
    key = run_key(run)
    aliases = registry.aliases(model_name)
    champion, canary = aliases.get(CHAMPION), aliases.get(CANARY)
    version = None
    for held in (canary, champion):  # this run's canary (or the champion it made): resume it
        intent = _json_tag(registry.get_version(model_name, held).tags, TAG_DEPLOY_ID) if held else {}
        if key is not None and intent.get("run_key") == key:
            version = held
            break
    verdict = find_record(audit, "model.canary_rejected", model=model_name, run_key=key) if key else None
    if version is None and verdict is not None:  # a retry of the run that rejected its canary: the verdict stands
        data = verdict.get("data") or {}
        return {
            "model_name": model_name,
            "version": str(data.get("version")),
            "champion_before": data.get("champion"),
            "deploy_id": data.get("deploy_id"),
            "policy": data.get("policy") or policy.to_dict(),
            "start_step": 0,
            "aliases": aliases,
            "status": "rejected",
            "rejected": {"reason": data.get("reason"), "failing": data.get("failing") or []},
        }
    version = version or aliases.get(CANDIDATE)
    if not version:
        raise ConfigurationError(
            f"model {model_name!r} has no '{CANDIDATE}' alias: nothing to deploy. A version becomes the candidate "
            "when it passes the promotion gate with a service configured ([llmops] serve_url)"
        )
    info = registry.get_version(model_name, version)
    result: dict[str, Any] = {
        "model_name": model_name,
        "version": str(version),
        "champion_before": champion,
        "policy": policy.to_dict(),
        "start_step": 0,
        "aliases": aliases,
    }
    if champion == version:
        log(f"{model_name} v{version} is already champion; nothing to deploy")
        intent = _json_tag(info.tags, TAG_DEPLOY_ID)
        ours = key is not None and intent.get("run_key") == key and bool(intent.get("id"))
        # `resume_complete`: this run made it champion (a retry after the swap): complete_canary finishes the rest
        if ours:
            result["champion_before"] = intent.get("champion")
        return {**result, "deploy_id": intent.get("id"), "status": "already_champion", "resume_complete": ours}
    intent = _json_tag(info.tags, TAG_DEPLOY_ID)
    if canary == version and intent.get("id"):  # resume with the decision as it was taken (champion before, policy)
        did, before = str(intent["id"]), intent.get("champion")
        if before != champion:
            raise AliasConflict(
                f"{CHAMPION} of {model_name!r} moved from v{before} to v{champion} while the canary of v{version} "
                "ran; abort this canary and deploy again"
            )
    else:
        did = deploy_id(model_name, version, champion, policy)
    result.update(deploy_id=did)
    rejected = _json_tag(info.tags, TAG_CANARY_REJECTED)
    if rejected:
        if rejected.get("deploy_id") == did:
            log(f"the canary of {model_name} v{version} was already rejected by this deployment")
            return {**result, "status": "rejected", "rejected": rejected}
        raise ConfigurationError(
            f"{model_name} v{version} was rejected in canary ({rejected.get('reason')}); it is not deployed again. "
            "Promote a new version"
        )
    if info.tags.get(TAG_GATE) != "passed":
        raise ConfigurationError(
            f"{model_name} v{version} has not passed the promotion gate ({TAG_GATE}={info.tags.get(TAG_GATE)!r}); "
            "only a version that passed it is deployed"
        )
    if not champion:
        raise ConfigurationError(
            f"model {model_name!r} has no champion to compare a canary with; the first model is promoted directly"
        )
    if canary == version and intent.get("id") == did:
        share = current_share(registry, model_name)
        start = next((i for i, w in enumerate(policy.step_weights) if w >= share - SHARE_TOLERANCE), 0)
        log(f"resuming the canary of {model_name} v{version} at step {start + 1} (share {share:g})")
        return {**result, "status": "resumed", "start_step": start}
    if canary and canary != version:
        raise CanaryInProgress(
            f"v{canary} of {model_name!r} is in canary (another deployment); one rollout at a time. Wait for it, or "
            "abort it (core.governance.deploy_job.abort_canary) if its deployment died"
        )
    intent = {"id": did, "champion": champion, "run_key": key}
    registry.tag_version(model_name, version, {TAG_DEPLOY_ID: json.dumps(intent, sort_keys=True)})  # 1. intent
    _write_share(registry, model_name, 0.0)  # no traffic until the first step
    expected = {CHAMPION: champion, CANARY: canary}
    aliases = registry.compare_and_swap(model_name, expected, {CANARY: version})  # 2. swap
    record, _ = _append_once(  # 3. audit
        audit,
        "model.canary_started",
        {
            "model": model_name,
            "version": version,
            "champion": champion,
            "deploy_id": did,
            "run_key": key,
            "policy": policy.to_dict(),
            "run": dict(run),
        },
        run,
        deploy_id=did,
    )
    log(f"{CANARY} of {model_name} -> v{version} (champion v{champion}); deployment {did[:12]}")
    return {**result, "status": "started", "aliases": aliases, "audit_seq": record.get("seq")}


def set_share(registry: ModelRegistry, model_name: str, version: str, share: float) -> None:
    """Record the canary's traffic share (every replica of the service reads it), while `canary` is `version`."""
    if not (isinstance(share, (int, float)) and math.isfinite(share) and 0 <= share <= 1):
        raise ConfigurationError(f"a canary share is in [0, 1], got {share!r}")
    canary = registry.alias(model_name, CANARY)
    if canary != str(version):
        raise AliasConflict(
            f"{CANARY} of {model_name!r} is {'v' + canary if canary else 'unset'}, not v{version}: the share is not "
            "changed (another writer moved the canary)"
        )
    _write_share(registry, model_name, float(share))


def complete_canary(
    *,
    registry: ModelRegistry,
    audit: AuditTrail,
    deployment: Mapping[str, Any],
    run: Mapping[str, Any],
    steps: Sequence[Mapping[str, Any]] = (),
    log: Any = print,
) -> dict[str, Any]:
    """champion <- canary, previous-champion <- old champion, canary and candidate removed, share 0, as one
    compare-and-swap; then tags and audit record, resuming whatever an earlier try left undone. `deployment` is
    `start_canary`'s result."""
    name, version, did = deployment["model_name"], str(deployment["version"]), str(deployment["deploy_id"])
    before = deployment.get("champion_before")
    key = run_key(run)
    aliases = registry.aliases(name)
    info = registry.get_version(name, version)
    swapped_before = aliases.get(CHAMPION) == version and _json_tag(info.tags, TAG_DEPLOY_ID).get("id") == did
    wrote = False
    if not swapped_before:
        expected: dict[str, str | None] = {CHAMPION: before, CANARY: version}
        updates: dict[str, str | None] = {CHAMPION: version, CANARY: None}
        if before:
            updates[PREVIOUS] = before
        if aliases.get(CANDIDATE) == version:
            expected[CANDIDATE] = version
            updates[CANDIDATE] = None
        aliases = registry.compare_and_swap(name, expected, updates)
        wrote = True
    else:
        log(f"resuming deployment {did[:12]} of {name} v{version}: the aliases were already swapped")
    if registry.alias(name, CANARY) is None and current_share(registry, name) != 0.0:
        _write_share(registry, name, 0.0)
    if info.tags.get(TAG_PROMOTED_BY) != did:
        registry.tag_version(name, version, {TAG_PROMOTED_AT: _now(), TAG_PROMOTED_BY: did})
        wrote = True
    record, appended = _append_once(
        audit,
        "model.deployed",
        {
            "model": name,
            "version": version,
            "previous_champion": before,
            "deploy_id": did,
            "run_key": key,
            "aliases": aliases,
            "steps": [_step_summary(s) for s in steps],
            "policy": deployment.get("policy"),
            "run": dict(run),
        },
        run,
        deploy_id=did,
    )
    owner = (record.get("data") or {}).get("run_key")
    log(f"deployed {name} v{version} as {CHAMPION}" + (f"; v{before} is {PREVIOUS}" if before else ""))
    return {
        **deployment,
        "decision": "promoted",
        "champion": version,
        "aliases": registry.aliases(name),
        "already_done": not (wrote or appended),
        "resumed": swapped_before,
        "announce": appended or (key is not None and owner == key),
        "audit_seq": record.get("seq"),
    }


def _step_summary(step: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("step", "share", "status", "message", "windows", "failures", "failing")
    return {k: step.get(k) for k in keys if k in step}


def abort_canary(
    *,
    registry: ModelRegistry,
    audit: AuditTrail,
    deployment: Mapping[str, Any],
    reason: str,
    failing: Sequence[Mapping[str, Any]] = (),
    run: Mapping[str, Any],
    steps: Sequence[Mapping[str, Any]] = (),
    log: Any = print,
) -> dict[str, Any]:
    """Roll the canary back: share 0, `canary` (and `candidate`, when it is this version) removed, the version
    tagged rejected with the failing checks, one audit record. The champion never moves. Resumable."""
    name, version, did = deployment["model_name"], str(deployment["version"]), str(deployment["deploy_id"])
    key = run_key(run)
    aliases = registry.aliases(name)
    if aliases.get(CANARY) in (None, version):
        _write_share(registry, name, 0.0)  # stop the canary's traffic first
    if aliases.get(CANARY) == version:
        expected: dict[str, str | None] = {CANARY: version}
        updates: dict[str, str | None] = {CANARY: None}
        if aliases.get(CANDIDATE) == version:
            expected[CANDIDATE] = version
            updates[CANDIDATE] = None
        aliases = registry.compare_and_swap(name, expected, updates)
    info = registry.get_version(name, version)
    failing_list = [
        {k: c.get(k) for k in ("name", "value", "bound", "detail")} for c in failing if isinstance(c, Mapping)
    ]
    if _json_tag(info.tags, TAG_CANARY_REJECTED).get("deploy_id") != did:
        tag = {"at": _now(), "deploy_id": did, "reason": reason[:500], "failing": failing_list}
        text = json.dumps(tag, sort_keys=True, default=str)
        if len(text) > 4900:  # MLflow's tag limit: keep the names
            tag["failing"] = [{"name": c["name"]} for c in failing_list]
            text = json.dumps(tag, sort_keys=True, default=str)[:4900]
        registry.tag_version(name, version, {TAG_CANARY_REJECTED: text})
    record, appended = _append_once(
        audit,
        "model.canary_rejected",
        {
            "model": name,
            "version": version,
            "champion": aliases.get(CHAMPION),
            "deploy_id": did,
            "run_key": key,
            "reason": reason,
            "failing": failing_list,
            "steps": [_step_summary(s) for s in steps],
            "policy": deployment.get("policy"),
            "run": dict(run),
        },
        run,
        deploy_id=did,
    )
    log(f"rolled the canary of {name} v{version} back ({reason}); champion v{aliases.get(CHAMPION)} kept serving")
    return {
        **deployment,
        "decision": "rolled_back",
        "reason": reason,
        "failing": failing_list,
        "champion": aliases.get(CHAMPION),
        "aliases": registry.aliases(name),
        "already_done": not appended,
        "audit_seq": record.get("seq"),
    }


def record_policy_override(
    audit: AuditTrail, deployment: Mapping[str, Any], resolved: ResolvedPolicy, run: Mapping[str, Any]
) -> bool:
    """Write the loosened fields of an allowed run-time policy as `model.policy_override`, once per deployment.
    Returns whether a record was appended (False: nothing loosened, or recorded by an earlier try)."""
    if not resolved.loosened or not deployment.get("deploy_id"):
        return False
    _, appended = _append_once(
        audit,
        "model.policy_override",
        {
            "model": deployment["model_name"],
            "version": deployment["version"],
            "deploy_id": deployment["deploy_id"],
            "run_key": run_key(run),
            "actor": actor_of(run),
            "triggered_by": run.get("triggered_by"),
            "fields": resolved.loosened,
            "policy_before": resolved.base.to_dict(),
            "policy_after": resolved.policy.to_dict(),
            "run": dict(run),
        },
        run,
        deploy_id=deployment["deploy_id"],
    )
    return appended


def find_deployment(audit: AuditTrail, deployment_id: str) -> dict[str, Any] | None:
    """The audit record that ended a deployment (`model.deployed` or `model.canary_rejected`), or None."""
    return find_record(audit, "model.deployed", deploy_id=deployment_id) or find_record(
        audit, "model.canary_rejected", deploy_id=deployment_id
    )


# ---- one process: the whole rollout ------------------------------------------------------------------------------


def service_endpoints(
    url: str, token: str | None = None, timeout_s: float = 10.0
) -> tuple[Callable[[], str], Callable[[], Any]]:
    """(scrape, reload) for `run_canary` against a running service at base `url`: scrape reads `/metrics` (no
    auth, at most MAX_METRICS_BYTES), reload posts `/v1/admin/reload` with `token` (scope admin; None: no reload
    call, the service converges by polling)."""
    import httpx

    base = url.rstrip("/")

    def scrape() -> str:
        with httpx.stream("GET", f"{base}/metrics", timeout=timeout_s) as response:
            response.raise_for_status()
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_METRICS_BYTES:
                    raise MetricsParseError(f"the metrics page is larger than {MAX_METRICS_BYTES} bytes")
        return body.decode("utf-8", errors="replace")

    def reload() -> Any:
        if token is None:
            return None
        response = httpx.post(
            f"{base}/v1/admin/reload", headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s
        )
        response.raise_for_status()
        return response.json()

    return scrape, reload


def run_canary(
    *,
    registry: ModelRegistry,
    audit: AuditTrail,
    model_name: str,
    policy: CanaryPolicy,
    run: Mapping[str, Any],
    scrape: Callable[[], str],
    reload: Callable[[], Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    log: Any = print,
) -> dict[str, Any]:
    """The whole rollout of the candidate in this process (what the deploy operator and its trigger do across
    deferrals): start, then per step set the share, `reload` the service and analyse `scrape()` (the `/metrics`
    text) every interval; complete, or abort and raise CanaryRejected. Every wait is bounded by the policy's
    progress deadline per step. Returns `complete_canary`'s result (or `start_canary`'s when nothing was to do)."""
    deployment = start_canary(registry=registry, audit=audit, model_name=model_name, policy=policy, run=run, log=log)
    if deployment["status"] == "already_champion":
        if deployment["resume_complete"]:
            done = complete_canary(registry=registry, audit=audit, deployment=deployment, run=run, log=log)
            return {**done, "steps": []}
        return {**deployment, "decision": "already_done", "steps": []}
    if deployment["status"] == "rejected":
        raise CanaryRejected(model_name, deployment["version"], deployment["rejected"].get("reason", "rejected"))
    steps: list[dict[str, Any]] = []
    failures = 0
    for index in range(deployment["start_step"], len(policy.step_weights)):
        share = policy.step_weights[index]
        set_share(registry, model_name, deployment["version"], share)
        if reload is not None:
            try:
                reload()
            except Exception as exc:  # the service also converges by polling; the analysis waits for it
                log(f"reload failed ({type(exc).__name__}); waiting for the service to poll the registry")
        log(f"canary v{deployment['version']} at {share:.0%}")
        watch = StepWatch(policy, deployment["version"], index, share, clock() + policy.progress_deadline_s, failures)
        outcome = None
        while outcome is None:
            try:
                outcome = watch.observe(parse_metrics(scrape(), deployment["version"]), clock())
            except Exception as exc:  # unreachable service or unreadable page: no data this interval
                outcome = watch.observe(None, clock(), f"{type(exc).__name__}: {exc}")
            if outcome is None:
                sleep(policy.analysis_interval_s)
        steps.append(outcome)
        failures = outcome["failures"]
        log(f"step {index + 1} ({share:.0%}): {outcome['status']} - {outcome['message']}")
        if outcome["status"] != "passed":
            reason = f"step {index + 1} ({share:.0%}) {outcome['status']}: {outcome['message']}"
            aborted = abort_canary(
                registry=registry, audit=audit, deployment=deployment, reason=reason,
                failing=outcome["failing"], run=run, steps=steps, log=log,
            )  # fmt: skip
            raise CanaryRejected(model_name, deployment["version"], aborted["reason"], outcome["failing"])
    done = complete_canary(registry=registry, audit=audit, deployment=deployment, run=run, steps=steps, log=log)
    if reload is not None:
        try:
            reload()
        except Exception as exc:
            log(f"reload failed ({type(exc).__name__}); the service converges at its next poll")
    return {**done, "steps": steps}
