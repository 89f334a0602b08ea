"""Promotion and rollback on a real SQLite MLflow registry with dummy versions and hand-written stored evaluations
(no training): the gate judges the stored, hash-checked report; run-time gates only tighten unless allowed (and
then are audited); complete-or-resume after a failure at any step; rollback only to a version that may serve."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.core.governance.audit import AuditTrail, records, verify
from airflow_provider_llmops.core.governance.gate import GateOverrideRefused, GateSpec, resolve_gate
from airflow_provider_llmops.core.governance.promote_job import RollbackRefusedError, promote, rollback
from airflow_provider_llmops.core.model.contract import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    TAG_EVALUATION_SHA256,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
    TAG_PROMOTION_ID,
    TAG_ROLLED_BACK,
)
from airflow_provider_llmops.core.model.evaluate_job import EvaluationIntegrityError, report_sha256
from airflow_provider_llmops.core.model.registry import AliasConflict, ModelRegistry
from airflow_provider_llmops.errors import ConfigurationError

REST = {"fairness_gap": 0.05, "fairness_measured": True, "latency_p95_ms": 10.0}
GOOD = {"accuracy": 0.90, "macro_f1": 0.88, "ece": 0.03, **REST}
OK = {"accuracy": 0.85, "macro_f1": 0.80, "ece": 0.04, **REST}
BAD = {"accuracy": 0.40, "macro_f1": 0.30, "ece": 0.20, **REST}
REASON = "canary error rate above 2%"


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    ModelRegistry(uri, artifact_root=str(root / "artifacts")).ensure_model("warmup")  # create the schema once
    return uri


class World:
    """A fresh model with `versions` dummy versions, a store, an audit trail."""

    def __init__(self, uri: str, tmp: Path, versions: int = 3) -> None:
        self.registry = ModelRegistry(uri)
        self.registry.settle_s = 0.0
        self.name = f"m_{uuid.uuid4().hex[:10]}"
        self.store = DatasetStore(str(tmp / "store"))
        self.audit = AuditTrail(tmp / "audit" / "audit.jsonl")
        self.registry.ensure_model(self.name)
        source = tmp / "model"
        source.mkdir(exist_ok=True)
        (source / "weights.txt").write_text("dummy")
        for _ in range(versions):
            self.registry.client.create_model_version(self.name, source=str(source), run_id=None)

    def evaluation(
        self,
        challenger: str,
        champion: str | None,
        metrics: dict[str, Any],
        champion_metrics: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Commit an evaluation report the way evaluate does and return evaluate's XCom for it."""
        key = f"v{challenger}-vs-{'v' + champion if champion else 'none'}-{uuid.uuid4().hex[:12]}"
        summary = {
            "model_name": self.name,
            "key": key,
            "challenger_version": challenger,
            "champion_version": champion,
            "challenger": metrics,
            "champion": champion_metrics if champion else None,
            "report_uri": self.store.evaluation_uri(self.name, key),
        }
        raw = json.dumps({"summary": summary, "results": {}}).encode()
        self.store.commit_evaluation(self.name, key, {"evaluation.json": raw})
        sha = report_sha256(raw)
        tags = {"llmops.evaluation": summary["report_uri"], TAG_EVALUATION_SHA256: sha}
        self.registry.tag_version(self.name, challenger, tags)
        return {**summary, "report_sha256": sha}

    def promote(self, reference: dict[str, Any], spec: Any = None, run: dict[str, Any] | None = None) -> dict[str, Any]:
        return promote(
            registry=self.registry,
            audit=self.audit,
            store=self.store,
            evaluation=reference,
            spec=spec or GateSpec(),
            run=run or RUN,
            log=lambda *_: None,
        )

    def rollback(self, target: str | None, reason: str = REASON, run: dict[str, Any] | None = None) -> dict[str, Any]:
        return rollback(
            registry=self.registry,
            audit=self.audit,
            store=self.store,
            model_name=self.name,
            target_version=target,
            run=run or RUN_RB,
            reason=reason,
            spec=GateSpec(),
            log=lambda *_: None,
        )

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r for r in records(self.audit.path) if r["event"] == event] if self.audit.path.is_file() else []

    def challenger(self, version: str) -> None:
        self.registry.client.set_registered_model_alias(self.name, CHALLENGER, version)


RUN = {"dag_id": "llmops_retrain", "run_id": "manual__1", "task_id": "promote", "try_number": 1}
RUN_RB = {"dag_id": "llmops_rollback", "run_id": "manual__9", "task_id": "rollback", "try_number": 1}


@pytest.fixture
def world(registry_uri: str, tmp_path: Path) -> World:
    return World(registry_uri, tmp_path)


def _first_champion(world: World) -> None:
    world.challenger("1")
    assert world.promote(world.evaluation("1", None, OK), run={**RUN, "run_id": "first"})["promoted"] is True


# ---- the gate judges the stored report ----------------------------------------------------------------------


def test_the_gate_judges_the_stored_report_not_the_metrics_in_xcom(world: World):
    world.challenger("1")
    reference = world.evaluation("1", None, BAD)
    forged = {**reference, "challenger": GOOD}  # metrics handed along in XCom are ignored
    result = world.promote(forged)
    assert result["promoted"] is False and result["first_model"] is True
    assert {c["name"]: c["value"] for c in result["decision"]["checks"]}["floor:macro_f1"] == 0.30
    assert world.registry.alias(world.name, CHAMPION) is None


def test_a_tampered_report_is_refused_and_nothing_is_promoted(world: World):
    world.challenger("1")
    reference = world.evaluation("1", None, BAD)
    path = Path(reference["report_uri"].removeprefix("file://"))
    report = json.loads(path.read_text())
    report["summary"]["challenger"] = GOOD
    path.write_text(json.dumps(report))
    with pytest.raises(EvaluationIntegrityError, match="does not match its hash"):
        world.promote(reference)
    assert world.registry.aliases(world.name) == {CHALLENGER: "1"} and world.events("model.promoted") == []


def test_a_mismatched_hash_or_a_foreign_report_uri_is_refused(world: World, tmp_path: Path):
    world.challenger("1")
    reference = world.evaluation("1", None, GOOD)
    with pytest.raises(EvaluationIntegrityError, match="does not match its hash"):
        world.promote({**reference, "report_sha256": "0" * 64})
    with pytest.raises(EvaluationIntegrityError, match="is not where the configured store keeps"):
        world.promote({**reference, "report_uri": (tmp_path / "elsewhere" / "evaluation.json").as_uri()})
    with pytest.raises(EvaluationIntegrityError, match="lacks report_sha256"):
        world.promote({k: v for k, v in reference.items() if k != "report_sha256"})
    assert world.registry.alias(world.name, CHAMPION) is None


# ---- run-time gate overrides -----------------------------------------------------------------------------------


def test_a_looser_run_time_gate_is_refused_without_the_authors_opt_in():
    with pytest.raises(GateOverrideRefused, match=r"floors.macro_f1 0.5 -> 0.0.*allow_gate_override=True"):
        resolve_gate({}, {"floors": {"macro_f1": 0.0}})
    with pytest.raises(ConfigurationError):  # a user error: an LLMOpsError subclass
        resolve_gate({}, {"max_fairness_gap": None})
    stricter = resolve_gate({}, {"floors": {"macro_f1": 0.9}, "guards": {"loss": 0.1}})
    assert stricter.loosened == [] and stricter.spec.floors == {"macro_f1": 0.9, "accuracy": 0.5}
    assert stricter.spec.guards == {"accuracy": 0.01, "ece": 0.02, "loss": 0.1}


def test_an_allowed_override_is_applied_and_audited_once(world: World):
    world.challenger("1")
    reference = world.evaluation("1", None, BAD)
    resolved = resolve_gate({}, {"floors": {"macro_f1": 0.0, "accuracy": 0.0}}, allow_override=True)
    run = {**RUN, "triggered_by": "alice"}
    result = world.promote(reference, resolved, run)
    assert result["promoted"] is True and result["gate_override"]["applied"] is True
    (record,) = world.events("model.gate_override")
    assert record["data"]["triggered_by"] == "alice" and record["actor"] == "airflow:llmops_retrain/manual__1/promote"
    assert record["data"]["fields"] == [
        {"field": "floors.macro_f1", "from": 0.5, "to": 0.0},
        {"field": "floors.accuracy", "from": 0.5, "to": 0.0},
    ]
    world.promote(reference, resolved, run)  # a retry does not record the override twice
    assert len(world.events("model.gate_override")) == 1


LOOSENED = [
    {"field": "floors.macro_f1", "from": 0.5, "to": 0.0},
    {"field": "primary", "from": "macro_f1", "to": "accuracy"},
]


def test_the_gate_facet_records_the_override():
    from openlineage.client.serde import Serde

    from airflow_provider_llmops.lineage.custom_facets import gate_run_facet
    from tests.openlineage_spec import SCHEMAS, _validator

    result = {
        "model_name": "m",
        "challenger_version": "2",
        "passed": True,
        "promoted": True,
        "decision": {"checks": [{"name": "fairness", "value": None, "passed": True, "detail": "x", "measured": False}]},
        "gate": GateSpec().to_dict(),
        "gate_override": {"applied": True, "loosened": LOOSENED},
        "decision_id": "abc",
    }
    data = json.loads(Serde.to_json(gate_run_facet(result, "promote")))
    _validator(SCHEMAS["LlmopsGateRunFacet.json"]["$id"], "/$defs/LlmopsGateRunFacet").validate(data)
    assert data["gateOverride"] == {"applied": True, "fields": LOOSENED}
    assert data["checks"][0]["measured"] is False and data["gate"]["fairness_unmeasured"] == "pass"


# ---- complete-or-resume ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["tags", "audit"])
def test_a_failure_after_the_swap_is_completed_by_the_retry_exactly_once(
    world: World, monkeypatch: pytest.MonkeyPatch, step: str
):
    _first_champion(world)
    world.challenger("2")
    reference = world.evaluation("2", "1", GOOD, OK)
    if step == "tags":
        real = world.registry.tag_version

        def tag_fails_once(name: str, version: str, tags: dict[str, Any]) -> None:
            if TAG_PROMOTED_AT in tags and not getattr(tag_fails_once, "failed", False):
                tag_fails_once.failed = True  # type: ignore[attr-defined]
                raise RuntimeError("registry hiccup")
            real(name, version, tags)

        monkeypatch.setattr(world.registry, "tag_version", tag_fails_once)
    else:
        real_append = world.audit.append

        def append_fails_once(event: str, data: dict[str, Any], actor: str | None = None) -> dict[str, Any]:
            if event == "model.promoted" and not getattr(append_fails_once, "failed", False):
                append_fails_once.failed = True  # type: ignore[attr-defined]
                raise OSError("disk full")
            return real_append(event, data, actor=actor)

        monkeypatch.setattr(world.audit, "append", append_fails_once)
    with pytest.raises((RuntimeError, OSError)):
        world.promote(reference, run={**RUN, "try_number": 1})
    assert world.registry.aliases(world.name) == {CHAMPION: "2", PREVIOUS: "1"}  # swapped, then failed
    retry = world.promote(reference, run={**RUN, "try_number": 2})
    assert retry["promoted"] is True and retry["resumed"] is True
    assert retry["announce"] is True and retry["already_done"] is False
    tags = world.registry.get_version(world.name, "2").tags
    assert tags["llmops.gate"] == "passed" and TAG_PROMOTED_AT in tags
    assert tags[TAG_PROMOTION_ID] == tags[TAG_PROMOTED_BY] == retry["decision_id"]
    (record,) = [r for r in world.events("model.promoted") if r["data"]["version"] == "2"]
    assert record["data"]["decision_id"] == retry["decision_id"]
    again = world.promote(reference, run={**RUN, "try_number": 3})  # a further retry of the same run: nothing to write
    assert again["already_done"] is True and again["announce"] is True
    assert len([r for r in world.events("model.promoted") if r["data"]["version"] == "2"]) == 1
    other_run = world.promote(reference, run={**RUN, "run_id": "another"})  # another run did not make the change
    assert other_run["announce"] is False and other_run["already_done"] is True
    assert verify(world.audit.path).ok


def test_promotion_aborts_when_the_champion_moved(world: World):
    _first_champion(world)
    world.challenger("3")
    reference = world.evaluation("3", "1", GOOD, OK)
    world.registry.client.set_registered_model_alias(world.name, CHAMPION, "2")  # someone else changed it
    with pytest.raises(AliasConflict, match="champion expected 1 but is 2"):
        world.promote(reference)
    assert world.registry.alias(world.name, CHAMPION) == "2" and len(world.events("model.promotion_aborted")) == 1
    world.registry.client.set_registered_model_alias(world.name, CHAMPION, "3")  # set by hand, not by a decision
    with pytest.raises(AliasConflict, match="champion expected 1 but is 3"):
        world.promote(reference)
    assert world.events("model.promoted")[-1]["data"]["version"] == "1"  # only the first model's promotion


def test_fairness_not_measured_is_decided_by_the_declared_rule(world: World):
    world.challenger("1")
    unmeasured = {**OK, "fairness_gap": None, "fairness_measured": False, "fairness_reason": "no group of 30 rows"}
    reference = world.evaluation("1", None, unmeasured)
    rejected = world.promote(reference, GateSpec(fairness_unmeasured="fail"))
    assert rejected["promoted"] is False
    (reason,) = rejected["reasons"]
    assert reason == "fairness not measured (no group of 30 rows); rule fairness_unmeasured='fail' fails it"
    passed = world.promote(reference, GateSpec())
    (check,) = [c for c in passed["decision"]["checks"] if c["name"] == "fairness"]
    assert passed["promoted"] is True and check["passed"] is True
    assert check["value"] is None and check["measured"] is False


# ---- rollback --------------------------------------------------------------------------------------------------


def _two_champions(world: World) -> None:
    _first_champion(world)
    world.challenger("2")
    assert world.promote(world.evaluation("2", "1", GOOD, OK))["promoted"] is True
    assert world.registry.aliases(world.name) == {CHAMPION: "2", PREVIOUS: "1"}


def test_rollback_to_the_previous_champion_with_a_reason(world: World):
    _two_champions(world)
    result = world.rollback(None)
    assert result["champion"] == "1" and result["rolled_back_from"] == "2"
    assert result["evidence"]["kind"] == "was_champion"
    assert world.registry.aliases(world.name) == {CHAMPION: "1"}
    assert TAG_ROLLED_BACK in world.registry.get_version(world.name, "2").tags
    (record,) = world.events("model.rolled_back")
    assert record["data"]["reason"] == REASON and record["data"]["from"] == "2" and record["data"]["to"] == "1"


@pytest.mark.parametrize("reason", ["", "   ", "oops"])
def test_rollback_needs_a_reason(world: World, reason: str):
    _two_champions(world)
    with pytest.raises(ConfigurationError, match="reason of at least 10 characters"):
        world.rollback(None, reason=reason)
    assert world.registry.aliases(world.name) == {CHAMPION: "2", PREVIOUS: "1"}


def test_rollback_refuses_a_version_that_never_served(world: World):
    _two_champions(world)
    with pytest.raises(RollbackRefusedError, match="v3 .*never champion.*no stored evaluation of v3 against v2"):
        world.rollback("3")
    world.evaluation("3", "2", BAD, GOOD)  # evaluated, but worse than the champion
    with pytest.raises(RollbackRefusedError, match="reject"):
        world.rollback("3")
    assert world.registry.aliases(world.name) == {CHAMPION: "2", PREVIOUS: "1"}
    assert world.events("model.rolled_back") == []


def test_rollback_accepts_a_version_that_passes_the_gate_against_the_champion(world: World):
    _two_champions(world)
    reference = world.evaluation("3", "2", {**GOOD, "macro_f1": 0.95}, GOOD)
    result = world.rollback("3")
    assert result["champion"] == "3" and result["evidence"]["kind"] == "gate"
    assert result["evidence"]["evaluation"] == reference["report_uri"]
    assert result["evidence"]["evaluation_sha256"] == reference["report_sha256"]
    assert world.registry.alias(world.name, CHAMPION) == "3"


def test_rollback_accepts_a_former_champion_shown_by_the_audit_trail_only(world: World):
    _two_champions(world)
    world.registry.client.delete_model_version_tag(world.name, "1", TAG_PROMOTED_AT)
    result = world.rollback("1")
    assert result["evidence"]["kind"] == "was_champion" and result["evidence"]["audit_event"] == "model.promoted"


def test_a_rollback_that_failed_after_the_swap_is_completed_by_the_retry(world: World, monkeypatch: pytest.MonkeyPatch):
    _two_champions(world)
    real_append = world.audit.append

    def append_fails_once(event: str, data: dict[str, Any], actor: str | None = None) -> dict[str, Any]:
        if event == "model.rolled_back" and not getattr(append_fails_once, "failed", False):
            append_fails_once.failed = True  # type: ignore[attr-defined]
            raise OSError("disk full")
        return real_append(event, data, actor=actor)

    monkeypatch.setattr(world.audit, "append", append_fails_once)
    with pytest.raises(OSError):
        world.rollback(None)
    assert world.registry.aliases(world.name) == {CHAMPION: "1"}  # swapped; previous-champion is gone now
    retry = world.rollback(None, run={**RUN_RB, "try_number": 2})
    assert retry["resumed"] is True and retry["announce"] is True
    assert retry["rolled_back_from"] == "2" and retry["champion"] == "1"
    assert len(world.events("model.rolled_back")) == 1
    assert TAG_ROLLED_BACK in world.registry.get_version(world.name, "2").tags
    with pytest.raises(ConfigurationError, match="no 'previous-champion'"):  # a new run: nothing left to roll back to
        world.rollback(None, run={**RUN_RB, "run_id": "manual__10"})


def test_a_record_planted_in_a_keyed_trail_cannot_authorise_a_rollback(world: World):
    """Rollback evidence is read from a verified trail only: a `model.promoted` line forged by someone who can
    write the file (a valid plain hash chain, no valid HMAC) is not evidence, and nothing changes."""
    from airflow_provider_llmops.core.governance.audit import record_hash
    from airflow_provider_llmops.errors import AuditError

    world.audit = AuditTrail(world.audit.path, key="k" * 32)
    _two_champions(world)
    last = list(records(world.audit.path))[-1]
    forged = {
        "seq": last["seq"] + 1, "ts": last["ts"], "event": "model.promoted", "actor": "attacker",
        "data": {"model": world.name, "version": "3"}, "prev_hash": last["hash"],
    }  # fmt: skip
    forged["hash"] = record_hash(forged)  # the plain chain holds up ...
    forged.update(key_id=last["key_id"], hmac="0" * 64)  # ... and it looks keyed, but the forger lacks the key
    with world.audit.path.open("a") as f:
        f.write(json.dumps(forged) + "\n")
    assert verify(world.audit.path, keys=["k" * 32]).bad_line == forged["seq"] + 1
    with pytest.raises(AuditError, match="not relying on an audit trail that does not verify"):
        world.rollback("3")
    assert world.registry.aliases(world.name) == {CHAMPION: "2", PREVIOUS: "1"}


# ---- with a service configured: the challenger becomes the candidate -------------------------------------------


def test_with_a_service_a_passed_challenger_becomes_candidate_and_champion_stays(world: World):
    from airflow_provider_llmops.core.model.contract import CANDIDATE, TAG_CANDIDATE_BY, TAG_CANDIDATE_ID

    _first_champion(world)
    world.challenger("2")
    reference = world.evaluation("2", "1", GOOD, OK)
    kwargs = {"registry": world.registry, "audit": world.audit, "store": world.store, "evaluation": reference,
              "spec": GateSpec(), "log": lambda *_: None, "deploy": True}  # fmt: skip
    result = promote(run=RUN, **kwargs)
    assert result["promoted"] is False and result["passed"] is True and result["candidate"] == "2"
    assert result["target"] == CANDIDATE and result["champion"] == "1" and result["announce"] is True
    assert world.registry.aliases(world.name) == {CHAMPION: "1", CANDIDATE: "2"}
    tags = world.registry.get_version(world.name, "2").tags
    assert tags["llmops.gate"] == "passed" and TAG_PROMOTED_AT not in tags  # not a former champion
    assert tags[TAG_CANDIDATE_ID] == tags[TAG_CANDIDATE_BY] == result["decision_id"]
    (record,) = world.events("model.candidate")
    assert record["data"]["champion"] == "1" and record["data"]["decision_id"] == result["decision_id"]
    retry = promote(run={**RUN, "try_number": 2}, **kwargs)  # a retry: nothing more to write, still announced
    assert retry["already_done"] is True and retry["resumed"] is True and retry["announce"] is True
    world.registry.compare_and_swap(world.name, {}, {CANDIDATE: None})  # its canary ended (deployed or rejected)
    later = promote(run={**RUN, "try_number": 3}, **kwargs)
    assert later["already_done"] is True and world.registry.aliases(world.name) == {CHAMPION: "1"}
    assert len(world.events("model.candidate")) == 1 and world.events("model.promoted")[-1]["data"]["version"] == "1"


def test_with_a_service_the_first_model_and_a_rejection_are_unchanged(world: World):
    world.challenger("1")
    first = promote(
        registry=world.registry, audit=world.audit, store=world.store, evaluation=world.evaluation("1", None, OK),
        spec=GateSpec(), run=RUN, log=lambda *_: None, deploy=True,
    )  # fmt: skip
    assert first["promoted"] is True and first["target"] == CHAMPION  # nothing to compare a canary with
    world.challenger("2")
    rejected = promote(
        registry=world.registry, audit=world.audit, store=world.store, evaluation=world.evaluation("2", "1", BAD, OK),
        spec=GateSpec(), run=RUN, log=lambda *_: None, deploy=True,
    )  # fmt: skip
    assert rejected["passed"] is False and rejected["candidate"] is None
    assert world.registry.aliases(world.name) == {CHAMPION: "1", CHALLENGER: "2"}


def test_a_version_deployed_through_its_canary_may_be_rolled_back_to(world: World):
    """complete_canary tags the new champion like a promotion, so rollback accepts it as a former champion."""
    from airflow_provider_llmops.core.governance.deploy_job import CanaryPolicy, complete_canary, start_canary
    from airflow_provider_llmops.core.model.contract import CANDIDATE

    _first_champion(world)
    world.challenger("2")
    promote(
        registry=world.registry, audit=world.audit, store=world.store, evaluation=world.evaluation("2", "1", GOOD, OK),
        spec=GateSpec(), run=RUN, log=lambda *_: None, deploy=True,
    )  # fmt: skip
    assert world.registry.alias(world.name, CANDIDATE) == "2"
    run = {"dag_id": "llmops_deploy", "run_id": "d1", "task_id": "deploy"}
    deployment = start_canary(
        registry=world.registry, audit=world.audit, model_name=world.name, policy=CanaryPolicy(), run=run,
        log=lambda *_: None,
    )  # fmt: skip
    complete_canary(registry=world.registry, audit=world.audit, deployment=deployment, run=run, log=lambda *_: None)
    assert world.registry.aliases(world.name) == {CHAMPION: "2", PREVIOUS: "1"}
    back = world.rollback(None)
    assert back["champion"] == "1" and world.rollback("2", run={**RUN_RB, "run_id": "again"})["champion"] == "2"
