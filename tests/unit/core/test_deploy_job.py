"""Canary deployment logic: policy validation and overrides, /metrics parsing (garbage included), each check's
pass / fail / not-enough-data, the step watch, and start / complete / abort on a real SQLite MLflow registry with
dummy versions (complete-or-resume, audited once, champion never moved by an abort); the whole rollout in one
process against a real HTTP stand-in of the service (tests/unit/fake_service.py)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_llmops.core.governance.audit import verify
from airflow_provider_llmops.core.governance.deploy_job import (
    CanaryInProgress,
    CanaryPolicy,
    CanaryRejected,
    CanarySample,
    MetricsParseError,
    PolicyOverrideRefused,
    StepWatch,
    abort_canary,
    analyse,
    complete_canary,
    current_share,
    histogram_quantile,
    parse_metrics,
    resolve_policy,
    run_canary,
    service_endpoints,
    set_share,
    start_canary,
)
from airflow_provider_llmops.core.model.contract import (
    CANARY,
    CANDIDATE,
    CHAMPION,
    PREVIOUS,
    TAG_CANARY_REJECTED,
    TAG_GATE,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
)
from airflow_provider_llmops.core.model.registry import AliasConflict, ModelRegistry
from airflow_provider_llmops.errors import ConfigurationError, LLMOpsError
from tests.unit.core.test_promote_job import World
from tests.unit.fake_service import FakeService, render

RUN = {"dag_id": "llmops_deploy", "run_id": "asset__1", "task_id": "deploy", "try_number": 1}
FAST = CanaryPolicy(
    step_weights=(0.25, 1.0), analysis_interval_s=0.1, min_requests=20, max_error_rate=0.05,
    max_p95_latency_ms=200.0, max_disagreement=0.2, failure_threshold=1, progress_deadline_s=5.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    ModelRegistry(uri, artifact_root=str(root / "artifacts")).ensure_model("warmup")
    return uri


@pytest.fixture
def world(registry_uri: str, tmp_path: Path) -> World:
    """v1 champion, v2 candidate (gate passed), v3 spare."""
    w = World(registry_uri, tmp_path)
    w.registry.compare_and_swap(w.name, {}, {CHAMPION: "1", CANDIDATE: "2"})
    w.registry.tag_version(w.name, "2", {TAG_GATE: "passed"})
    return w


def start(world: World, policy: CanaryPolicy = FAST, run: dict[str, Any] | None = None) -> dict[str, Any]:
    return start_canary(
        registry=world.registry, audit=world.audit, model_name=world.name, policy=policy, run=run or RUN,
        log=lambda *_: None,
    )  # fmt: skip


# ---- policy ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"step_weights": []}, "1 to 20 steps"),
        ({"step_weights": [0.5, 0.1]}, "must increase"),
        ({"step_weights": [0.0, 1.0]}, r"share in \(0, 1\]"),
        ({"step_weights": [0.5, 1.5]}, r"share in \(0, 1\]"),
        ({"step_weights": [float("nan")]}, r"share in \(0, 1\]"),
        ({"step_weights": "0.1,1"}, "list of shares"),
        ({"step_weights": [True]}, r"share in \(0, 1\]"),
        ({"analysis_interval_s": 0}, r"analysis_interval_s must be a number in \[0.1, 3600\]"),
        ({"min_requests": 2.5}, "min_requests must be a whole number"),
        ({"min_requests": 0}, "min_requests must be a whole number"),
        ({"max_error_rate": 1.5}, "max_error_rate"),
        ({"max_error_rate": None}, "max_error_rate"),
        ({"max_p95_latency_ms": -1}, "max_p95_latency_ms"),
        ({"max_disagreement": math.inf}, "max_disagreement"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"progress_deadline_s": 30, "analysis_interval_s": 60}, "at least analysis_interval_s"),
        ({"stepWeights": [1.0]}, r"unknown canary policy field\(s\) \['stepWeights'\]"),
    ],
)
def test_an_invalid_policy_is_a_configuration_error_naming_the_field(fields: dict[str, Any], message: str):
    with pytest.raises(ConfigurationError, match=message):
        CanaryPolicy.from_dict(fields)


def test_the_default_policy_and_its_round_trip():
    policy = CanaryPolicy()
    assert policy.step_weights == (0.1, 0.5, 1.0) and policy.failure_threshold == 2
    assert CanaryPolicy.from_dict(policy.to_dict()) == policy
    assert CanaryPolicy.from_dict({"max_p95_latency_ms": None, "max_disagreement": None}).max_p95_latency_ms is None


def test_a_run_time_policy_may_only_tighten_unless_the_author_allows():
    author = {"step_weights": [0.1, 0.5, 1.0], "max_error_rate": 0.02, "min_requests": 100}
    stricter = resolve_policy(
        author, {"max_error_rate": 0.01, "min_requests": 500, "step_weights": [0.05, 0.3, 0.6, 1]}
    )
    assert stricter.loosened == [] and stricter.policy.max_error_rate == 0.01
    assert stricter.policy.step_weights == (0.05, 0.3, 0.6, 1.0)
    assert resolve_policy(author, {"max_error_rate": None}).policy.max_error_rate == 0.02  # None: the author's
    with pytest.raises(PolicyOverrideRefused, match=r"max_error_rate 0.02 -> 0.5.*allow_policy_override=True"):
        resolve_policy(author, {"max_error_rate": 0.5})
    with pytest.raises(PolicyOverrideRefused, match=r"step_weights \[0.1, 0.5, 1.0\] -> \[1.0\]"):
        resolve_policy(author, {"step_weights": [1.0]})
    for looser in ({"min_requests": 5}, {"failure_threshold": 9}, {"analysis_interval_s": 1}):
        with pytest.raises(PolicyOverrideRefused):
            resolve_policy(author, looser)
    allowed = resolve_policy(author, {"max_error_rate": 0.5, "min_requests": 5}, allow_override=True)
    assert allowed.loosened == [
        {"field": "max_error_rate", "from": 0.02, "to": 0.5},
        {"field": "min_requests", "from": 100, "to": 5},
    ]
    with pytest.raises(ConfigurationError):  # bounds hold even when loosening is allowed
        resolve_policy(author, {"max_error_rate": 2}, allow_override=True)


# ---- metrics -----------------------------------------------------------------------------------------------------


def test_the_canarys_counters_are_read_from_the_services_own_metrics():
    sample = parse_metrics(
        render("2", requests=30, errors=3, mirrored=90, disagreements=9, load_failures=0, share=0.25), "2"
    )
    assert (sample.requests, sample.errors, sample.mirrored, sample.disagreements) == (30, 3, 90, 9)
    assert sample.loaded is True and sample.share == 0.25 and sample.load_failures == 0
    assert dict(sample.latency_buckets)[0.025] == 30 and sample.latency_buckets[-1] == (math.inf, 30)
    other = parse_metrics(render("2", requests=30), "3")  # another version's counters are not the canary's
    assert other.requests == 0 and other.loaded is False


@pytest.mark.parametrize(
    "text",
    ["x{", "a b c", "{}", 'llmops_serve_canary_mirrored_total{version="2"} NaN', "llmops_serve_canary_share Inf"],
)
def test_garbage_metrics_are_a_metrics_parse_error(text: str):
    with pytest.raises(MetricsParseError):
        parse_metrics(text, "2")


@given(st.text(max_size=300))
def test_any_text_parses_or_is_a_metrics_parse_error(text: str):
    try:
        sample = parse_metrics(text, "2")
    except MetricsParseError:
        return
    assert sample.requests >= 0 and sample.errors >= 0 and sample.mirrored >= 0


@given(st.lists(st.sampled_from(render("2", requests=3, mirrored=5).splitlines()), max_size=40))
def test_any_mix_of_real_metric_lines_parses_to_finite_counters(lines: list[str]):
    try:
        sample = parse_metrics("\n".join(lines) + "\n", "2")
    except MetricsParseError:
        return
    assert all(math.isfinite(v) for v in (sample.requests, sample.mirrored, sample.disagreements))


def test_histogram_quantile_interpolates_inside_the_bucket():
    buckets = [(0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.19)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.95, [(0.1, 0.0), (math.inf, 10.0)]) == 0.1  # all above the top bound
    assert histogram_quantile(0.95, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.95, [(0.1, 3.0)]) is None  # no +Inf bucket: not a histogram


# ---- checks --------------------------------------------------------------------------------------------------


def sample(text_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> CanarySample:
    return parse_metrics(render("2", **{**(text_kwargs or {}), **kwargs}), "2")


def checks_of(before: CanarySample, after: CanarySample, share: float = 0.25) -> dict[str, Any]:
    result = analyse(before, after, FAST, share)
    return {"verdict": result.verdict, **{c.name: (c.passed, c.enough_data, c.value) for c in result.checks}}


def test_a_healthy_window_passes_every_check():
    found = checks_of(sample(), sample(requests=40, mirrored=120, disagreements=6))
    assert found["verdict"] == "passed"
    assert found["error_rate"] == (True, True, 0.0) and found["requests"][:2] == (True, True)
    assert found["latency_p95_ms"][:2] == (True, True) and 10 < found["latency_p95_ms"][2] <= 25
    assert found["disagreement"] == (True, True, 0.05)


@pytest.mark.parametrize(
    ("after", "failing"),
    [
        ({"requests": 40, "errors": 4, "mirrored": 120}, "error_rate"),
        ({"requests": 40, "latency_s": 0.4, "mirrored": 120}, "latency_p95_ms"),
        ({"requests": 40, "mirrored": 120, "disagreements": 60}, "disagreement"),
        ({"requests": 0, "loaded": False, "load_failures": 1}, "loaded"),
    ],
)
def test_each_check_fails_on_its_own(after: dict[str, Any], failing: str):
    result = analyse(sample(), sample(after), FAST, 0.25)
    assert result.verdict == "failed" and [c.name for c in result.failing] == [failing]


def test_too_little_data_is_waiting_not_a_verdict():
    few = checks_of(sample(), sample(requests=5, errors=5, mirrored=5))
    assert few["verdict"] == "waiting" and few["error_rate"] == (False, False, 1.0)
    assert few["requests"] == (False, False, 5.0) and few["disagreement"][1] is False
    unmirrored = checks_of(sample(), sample(requests=40, mirrored=3))
    assert unmirrored["verdict"] == "waiting" and unmirrored["disagreement"][:2] == (True, False)
    loading = checks_of(sample(loaded=False), sample(loaded=False))
    assert loading["verdict"] == "waiting" and loading["loaded"] == (False, False, 0.0)


def test_at_full_share_disagreement_is_not_measured_and_counters_reset():
    full = checks_of(sample(), sample(requests=40), share=1.0)
    assert full["verdict"] == "passed" and full["disagreement"] == (True, True, None)
    restarted = checks_of(sample(requests=500, mirrored=900), sample(requests=40, mirrored=120))  # service restart
    assert restarted["requests"][2] == 40 and restarted["verdict"] == "passed"


def test_the_step_watch_waits_for_the_share_then_judges_windows():
    now = time.time()
    watch = StepWatch(FAST, "2", 0, 0.25, deadline=now + 60)
    assert watch.observe(sample(share=0.0), now) is None and watch.baseline is None  # not converged yet
    assert watch.observe(sample(share=0.25), now) is None and watch.baseline is not None
    assert watch.observe(sample(share=0.25, requests=5, mirrored=15), now) is None  # waiting: too few
    outcome = watch.observe(sample(share=0.25, requests=40, mirrored=120), now)
    assert outcome is not None and outcome["status"] == "passed" and outcome["windows"] == 1
    assert outcome["failing"] == [] and {c["name"] for c in outcome["checks"]} >= {"error_rate", "disagreement"}


def test_the_step_watch_counts_failed_windows_and_meets_its_deadline():
    policy = CanaryPolicy.from_dict({**FAST.to_dict(), "failure_threshold": 2})
    now = time.time()
    watch = StepWatch(policy, "2", 1, 0.25, deadline=now + 60, failures=0)
    watch.observe(sample(share=0.25), now)
    assert watch.observe(sample(share=0.25, requests=40, errors=10, mirrored=120), now) is None  # 1 of 2
    assert watch.failures == 1
    outcome = watch.observe(sample(share=0.25, requests=80, errors=20, mirrored=240), now)
    assert outcome is not None and outcome["status"] == "failed" and outcome["failures"] == 2
    assert [c["name"] for c in outcome["failing"]] == ["error_rate"]
    late = StepWatch(policy, "2", 0, 0.25, deadline=now)
    assert late.observe(None, now + 1, "ConnectError: refused")["status"] == "deadline"  # type: ignore[index]
    assert "ConnectError" in late.observe(None, now + 2, "ConnectError: refused")["message"]  # type: ignore[index]


# ---- registry changes ----------------------------------------------------------------------------------------


def test_start_points_the_canary_at_the_candidate_with_no_traffic(world: World):
    deployment = start(world)
    assert deployment["status"] == "started" and deployment["version"] == "2"
    assert deployment["champion_before"] == "1"
    assert world.registry.aliases(world.name) == {CHAMPION: "1", CANDIDATE: "2", CANARY: "2"}
    assert current_share(world.registry, world.name) == 0.0
    set_share(world.registry, world.name, "2", 0.25)
    assert current_share(world.registry, world.name) == 0.25
    again = start(world, run={**RUN, "try_number": 2})  # a retry resumes at the step of the recorded share
    assert again["status"] == "resumed" and again["start_step"] == 0 and again["deploy_id"] == deployment["deploy_id"]
    set_share(world.registry, world.name, "2", 1.0)
    assert start(world, run={**RUN, "try_number": 3})["start_step"] == 1
    assert len(world.events("model.canary_started")) == 1
    with pytest.raises(AliasConflict, match="canary of .* is v2, not v3"):
        set_share(world.registry, world.name, "3", 0.5)


def test_start_refuses_what_must_not_be_deployed(world: World):
    world.registry.tag_version(world.name, "2", {TAG_GATE: "rejected"})
    with pytest.raises(ConfigurationError, match="has not passed the promotion gate"):
        start(world)
    world.registry.tag_version(world.name, "2", {TAG_GATE: "passed"})
    world.registry.compare_and_swap(world.name, {}, {CANARY: "3"})
    with pytest.raises(CanaryInProgress, match="v3 .* is in canary"):
        start(world)
    world.registry.compare_and_swap(world.name, {}, {CANARY: None, CANDIDATE: None})
    with pytest.raises(ConfigurationError, match="no 'candidate' alias"):
        start(world)
    assert world.registry.aliases(world.name) == {CHAMPION: "1"} and world.events("model.canary_started") == []


def test_complete_moves_champion_and_clears_the_canary_exactly_once(world: World, monkeypatch: pytest.MonkeyPatch):
    deployment = start(world)
    set_share(world.registry, world.name, "2", 1.0)
    real_append = world.audit.append

    def append_fails_once(event: str, data: dict[str, Any], actor: str | None = None) -> dict[str, Any]:
        if event == "model.deployed" and not getattr(append_fails_once, "failed", False):
            append_fails_once.failed = True  # type: ignore[attr-defined]
            raise OSError("disk full")
        return real_append(event, data, actor=actor)

    monkeypatch.setattr(world.audit, "append", append_fails_once)
    steps = [{"step": 0, "share": 1.0, "status": "passed", "message": "every check held"}]
    kwargs = {"registry": world.registry, "audit": world.audit, "steps": steps, "log": lambda *_: None}
    with pytest.raises(OSError):
        complete_canary(deployment=deployment, run=RUN, **kwargs)
    assert world.registry.aliases(world.name) == {CHAMPION: "2", PREVIOUS: "1"}  # swapped, then failed
    retry = start(world, run={**RUN, "try_number": 2})  # the retry sees a champion made by this run ...
    assert retry["status"] == "already_champion" and retry["resume_complete"] is True
    assert retry["champion_before"] == "1"
    done = complete_canary(deployment=retry, run={**RUN, "try_number": 2}, **kwargs)  # ... and completes it
    assert done["resumed"] is True and done["announce"] is True and done["already_done"] is False
    tags = world.registry.get_version(world.name, "2").tags
    assert TAG_PROMOTED_AT in tags and tags[TAG_PROMOTED_BY] == deployment["deploy_id"]
    (record,) = world.events("model.deployed")
    assert record["data"]["previous_champion"] == "1" and record["data"]["steps"][0]["status"] == "passed"
    assert current_share(world.registry, world.name) == 0.0
    other = complete_canary(deployment=retry, run={**RUN, "run_id": "other"}, **kwargs)
    assert other["announce"] is False and other["already_done"] is True and len(world.events("model.deployed")) == 1
    assert verify(world.audit.path).ok


def test_abort_rolls_the_canary_back_and_never_moves_the_champion(world: World):
    deployment = start(world)
    set_share(world.registry, world.name, "2", 0.25)
    failing = [{"name": "error_rate", "value": 0.3, "bound": 0.05, "detail": "error rate 30.00%, at most 5.00%"}]
    kwargs = {"registry": world.registry, "audit": world.audit, "deployment": deployment, "log": lambda *_: None}
    result = abort_canary(reason="step 1 (25%) failed", failing=failing, run=RUN, **kwargs)
    assert result["decision"] == "rolled_back" and result["champion"] == "1"
    assert world.registry.aliases(world.name) == {CHAMPION: "1"}
    assert current_share(world.registry, world.name) == 0.0
    tag = json.loads(world.registry.get_version(world.name, "2").tags[TAG_CANARY_REJECTED])
    assert tag["deploy_id"] == deployment["deploy_id"] and tag["failing"][0]["name"] == "error_rate"
    again = abort_canary(reason="step 1 (25%) failed", failing=failing, run={**RUN, "try_number": 2}, **kwargs)
    assert again["already_done"] is True and len(world.events("model.canary_rejected")) == 1
    world.registry.compare_and_swap(world.name, {}, {CANDIDATE: "2"})  # even if it is made candidate again
    assert start(world, run={**RUN, "try_number": 2})["status"] == "rejected"  # the same deployment: its verdict
    assert start(world, run={**RUN, "run_id": "asset__2"})["status"] == "rejected"  # same inputs, same decision
    with pytest.raises(ConfigurationError, match="was rejected in canary"):  # another policy: refused
        start(world, CanaryPolicy.from_dict({**FAST.to_dict(), "min_requests": 99}), run={**RUN, "run_id": "asset__3"})
    assert world.registry.alias(world.name, CHAMPION) == "1"


# ---- the whole rollout in one process, against a real HTTP stand-in of the service ---------------------------


def _rollout(world: World, service: FakeService) -> dict[str, Any]:
    scrape, reload = service_endpoints(service.url, token="not checked by this stand-in", timeout_s=5)
    return run_canary(
        registry=world.registry, audit=world.audit, model_name=world.name, policy=FAST, run=RUN,
        scrape=scrape, reload=reload, log=lambda *_: None,
    )  # fmt: skip


def test_a_healthy_canary_is_rolled_out(world: World):
    service = FakeService(world.registry, world.name, per_scrape=100)
    try:
        started = time.monotonic()
        result = _rollout(world, service)
        elapsed = time.monotonic() - started
    finally:
        service.stop()
    assert result["decision"] == "promoted" and [s["status"] for s in result["steps"]] == ["passed", "passed"]
    assert world.registry.aliases(world.name) == {CHAMPION: "2", PREVIOUS: "1"}
    assert len(service.reloads) == 3 and elapsed < 5  # a reload per step and one after the swap


@pytest.mark.parametrize(
    ("behaviour", "failing"),
    [
        ({"error_rate": 0.5}, "error_rate"),
        ({"latency_s": 0.9}, "latency_p95_ms"),
        ({"disagreement": 0.6}, "disagreement"),
        ({"loads": False}, "loaded"),
    ],
)
def test_a_bad_canary_is_rolled_back_with_no_human(world: World, behaviour: dict[str, Any], failing: str):
    service = FakeService(world.registry, world.name, per_scrape=100, **behaviour)
    try:
        with pytest.raises(CanaryRejected, match=f"canary of {world.name} v2 rolled back") as caught:
            _rollout(world, service)
    finally:
        service.stop()
    assert isinstance(caught.value, LLMOpsError) and [c["name"] for c in caught.value.failing] == [failing]
    assert world.registry.aliases(world.name) == {CHAMPION: "1"}
    (record,) = world.events("model.canary_rejected")
    assert record["data"]["failing"][0]["name"] == failing and record["data"]["champion"] == "1"


def test_a_canary_without_traffic_meets_the_progress_deadline(world: World):
    policy = CanaryPolicy.from_dict({**FAST.to_dict(), "progress_deadline_s": 0.5})
    service = FakeService(world.registry, world.name, per_scrape=1)
    try:
        started = time.monotonic()
        with pytest.raises(CanaryRejected, match="no verdict within the progress deadline: not enough data"):
            run_canary(
                registry=world.registry, audit=world.audit, model_name=world.name, policy=policy, run=RUN,
                scrape=lambda: service.scrape(), log=lambda *_: None,
            )  # fmt: skip
        assert time.monotonic() - started < 3
    finally:
        service.stop()
    assert world.registry.aliases(world.name) == {CHAMPION: "1"}
