"""Apply the promotion gate and move aliases as a compare-and-swap; roll back the same way. Every decision is
written to the version's tags and to the audit trail.

Promotion and rollback are complete-or-resume. Each step is idempotent and a retry re-does whatever an earlier
try left undone, so every champion change has its tags, its audit record and (through the operator) its asset
event exactly once:

1. intent: the decision id (a hash of model, challenger, champion before, evaluation hash and gate) is tagged on
   the version (`llmops.promotion_id`; for a rollback `llmops.rollback_intent` with the version rolled back from);
2. swap: the aliases, as a compare-and-swap; a retry that finds the swap done under its own decision id skips it;
3. tags: `llmops.gate`, `llmops.promoted_at` (`llmops.rolled_back` on the version rolled back from), written
   once per decision id;
4. audit: one record per decision id (`model.promoted` / `model.rolled_back`), looked up before appending;
5. asset event: the result's `announce` says the operator must emit it. It is true on every try of the run that
   made (or completed) the change, because Airflow keeps the outlet events of the successful try only, and false
   when another run made the change.

With a service configured (`deploy=True`, the operator's default when `[llmops] serve_url` is set) and a champion in
place, a passed gate does not move `champion`: the challenger becomes `candidate` (the same steps: intent
`llmops.candidate_id`, swap challenger -> candidate with champion unchanged, tags `llmops.gate`,
`llmops.candidate_at`/`llmops.candidate_by`, audit `model.candidate`, announce), and `deploy_job` moves `champion`
once its canary passes. The first model has nothing to compare a canary with and becomes champion directly.

The gate judges the evaluation stored by evaluate (`evaluate_job.load_evaluation`, hash-checked), never metrics
passed along in XCom. A rollback targets only a version that was champion before (tag `llmops.promoted_at`, or
an audit record) or one that passes the gate against the current champion in a stored evaluation, and needs a
reason of at least `MIN_REASON_LENGTH` characters.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.core.governance.audit import AuditTrail, records
from airflow_provider_llmops.core.governance.gate import GateSpec, ResolvedGate, decide
from airflow_provider_llmops.core.model.contract import (
    CANDIDATE,
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    TAG_CANDIDATE_AT,
    TAG_CANDIDATE_BY,
    TAG_CANDIDATE_ID,
    TAG_EVALUATION,
    TAG_EVALUATION_SHA256,
    TAG_GATE,
    TAG_GATE_DAG_RUN,
    TAG_GATE_REASONS,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
    TAG_PROMOTION_ID,
    TAG_ROLLBACK_INTENT,
    TAG_ROLLED_BACK,
    TAG_ROLLED_BACK_BY,
)
from airflow_provider_llmops.core.model.registry import AliasConflict, ModelRegistry
from airflow_provider_llmops.core.runs import actor_of
from airflow_provider_llmops.errors import ConfigurationError

MIN_REASON_LENGTH = 10


class RollbackRefusedError(ConfigurationError):
    """The rollback target is not a version that may serve: it was never champion and passes no gate."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def promotion_id(
    model: str,
    challenger: str,
    champion_before: str | None,
    evaluation_sha256: str,
    spec: GateSpec,
    target: str = CHAMPION,
) -> str:
    """The id of one promotion decision: the same inputs always give the same id (a retry resumes it). `target`
    is the alias the challenger moves to (`candidate` with a service configured)."""
    parts: tuple[Any, ...] = ("promote", model, challenger, champion_before, evaluation_sha256, spec.to_dict())
    return _digest(*parts, target)[:32] if target != CHAMPION else _digest(*parts)[:32]


def run_key(run: Mapping[str, Any]) -> str | None:
    """`<dag>/<run>/<task>` of an Airflow run (the same for every try), None outside Airflow."""
    if not run.get("run_id"):
        return None
    return f"{run.get('dag_id')}/{run.get('run_id')}/{run.get('task_id')}"


def find_record(audit: AuditTrail, event: str, *, verified: bool = False, **match: Any) -> dict[str, Any] | None:
    """The last audit record of `event` whose data has every key/value of `match`, or None. With `verified`, only
    after the whole trail verifies (and, keyed, every HMAC): for evidence a decision relies on, so a record planted
    in the file cannot authorise anything (raises AuditError when the trail does not verify)."""
    if not audit.path.is_file():
        return None
    found = None
    for record in audit.verified_records() if verified else records(audit.path):
        data = record.get("data") or {}
        if record.get("event") == event and all(data.get(k) == v for k, v in match.items()):
            found = record
    return found


def _append_once(
    audit: AuditTrail, event: str, data: dict[str, Any], run: Mapping[str, Any], **match: Any
) -> tuple[dict[str, Any], bool]:
    """(record, appended now): append `event` unless a record of it matching `match` exists."""
    existing = find_record(audit, event, **match)
    if existing is not None:
        return existing, False
    return audit.append(event, data, actor=actor_of(run)), True


def _who(run: Mapping[str, Any]) -> dict[str, Any]:
    return {"actor": actor_of(run), "triggered_by": run.get("triggered_by")}


def promote(
    *,
    registry: ModelRegistry,
    audit: AuditTrail,
    store: DatasetStore,
    evaluation: Mapping[str, Any],
    spec: GateSpec | ResolvedGate,
    run: Mapping[str, Any],
    log: Any = print,
    deploy: bool = False,
) -> dict[str, Any]:
    """Gate the evaluated challenger on its stored evaluation (`evaluation` is evaluate's XCom reference: model,
    key, report URI and hash); on pass, champion <- challenger and previous-champion <- old champion, as a
    compare-and-swap against the aliases seen at evaluation time, then tags, audit record and (via `announce`)
    the asset event, resuming whatever an earlier try left undone. `spec` may be a `ResolvedGate` whose
    loosened fields are recorded as a `model.gate_override` audit record. With `deploy` (a service is configured)
    and a champion in place, a pass makes the challenger `candidate` instead (see the module docstring): the
    result then has `promoted: False`, `candidate: <version>`, `target: "candidate"`."""
    from airflow_provider_llmops.core.model.evaluate_job import load_evaluation  # numpy: not at DAG-parse time

    resolved = spec if isinstance(spec, ResolvedGate) else None
    gate = resolved.spec if resolved else spec
    assert isinstance(gate, GateSpec)
    summary, evaluation_sha = load_evaluation(store, evaluation)
    name = str(summary["model_name"])
    challenger = str(summary["challenger_version"])
    champion = str(summary["champion_version"]) if summary.get("champion_version") else None
    decision = decide(summary["challenger"], summary.get("champion"), gate)
    target = CANDIDATE if deploy and champion and champion != challenger else CHAMPION
    decision_id = promotion_id(name, challenger, champion, evaluation_sha, gate, target)
    key = run_key(run)
    result: dict[str, Any] = {
        "model_name": name,
        "challenger_version": challenger,
        "champion_before": champion,
        "decision_id": decision_id,
        "passed": decision.passed,
        "first_model": decision.first_model,
        "reasons": decision.reasons,
        "summary": decision.summary,
        "decision": decision.to_dict(),
        "gate": gate.to_dict(),
        "gate_override": {
            "applied": bool(resolved and resolved.loosened),
            "loosened": resolved.loosened if resolved else [],
            "changed": resolved.changed if resolved else [],
        },
        "evaluation_uri": summary.get("report_uri"),
        "evaluation_sha256": evaluation_sha,
        "version_url": registry.version_url(name, challenger),
        "announce": False,
        "resumed": False,
        "target": target,
        "candidate": None,
    }
    if resolved and resolved.loosened:
        _append_once(
            audit,
            "model.gate_override",
            {
                "model": name,
                "version": challenger,
                "decision_id": decision_id,
                "run_key": key,
                **_who(run),
                "fields": resolved.loosened,
                "gate_before": resolved.base.to_dict(),
                "gate_after": gate.to_dict(),
                "run": dict(run),
            },
            run,
            decision_id=decision_id,
            run_key=key,
        )
        fields_text = "; ".join(f"{c['field']} {c['from']!r} -> {c['to']!r}" for c in resolved.loosened)
        log(f"gate override applied (allowed by the DAG): {fields_text}")
    current = registry.aliases(name)
    if champion == challenger:
        # the whole dag run re-ran after its promotion: evaluate compared the champion with itself
        log(f"{name} v{challenger} is already champion; nothing to change")
        result.update(passed=True, promoted=True, champion=challenger, aliases=current, already_done=True, reasons=[])
        result["summary"] = f"v{challenger} is already champion"
        return result
    tags = {
        TAG_GATE: "passed" if decision.passed else "rejected",
        TAG_GATE_REASONS: json.dumps(decision.reasons)[:4900],
        TAG_GATE_DAG_RUN: str(run.get("run_id") or ""),
    }
    if not decision.passed:
        registry.tag_version(name, challenger, tags)
        _, appended = _append_once(
            audit,
            "model.rejected",
            {
                "model": name,
                "version": challenger,
                "champion": champion,
                "decision_id": decision_id,
                "run_key": key,
                "reasons": decision.reasons,
                "checks": decision.checks,
                "evaluation": summary.get("report_uri"),
                "evaluation_sha256": evaluation_sha,
                "run": dict(run),
            },
            run,
            decision_id=decision_id,
            run_key=key,
        )
        log(f"gate rejected {name} v{challenger}: " + "; ".join(decision.reasons))
        result.update(promoted=False, champion=current.get(CHAMPION), aliases=current, already_done=not appended)
        return result

    if target == CANDIDATE:
        return _make_candidate(registry, audit, run, result, tags, decision, summary, gate, log)
    version = registry.get_version(name, challenger)
    swapped_before = (
        current.get(CHAMPION) == challenger
        and (champion is None or current.get(PREVIOUS) == champion)
        and version.tags.get(TAG_PROMOTION_ID) == decision_id
    )
    previous_ok = champion is None or current.get(PREVIOUS) == champion
    promoted_elsewhere = bool(version.tags.get(TAG_PROMOTED_BY)) and previous_ok
    if current.get(CHAMPION) == challenger and not swapped_before and promoted_elsewhere:
        log(f"{name} v{challenger} is already champion (promoted by another decision); nothing to change")
        result.update(promoted=True, champion=challenger, aliases=current, already_done=True)
        return result
    wrote = False
    if not swapped_before:
        registry.tag_version(name, challenger, {TAG_PROMOTION_ID: decision_id})  # 1. intent
        _drop_tag(registry, name, challenger, TAG_ROLLBACK_INTENT)  # an old rollback intent must not be resumed
        expected = {CHAMPION: champion, CHALLENGER: challenger}
        updates: dict[str, str | None] = {CHAMPION: challenger, CHALLENGER: None}
        if champion:
            updates[PREVIOUS] = champion
        try:
            current = registry.compare_and_swap(name, expected, updates)  # 2. swap
        except AliasConflict as exc:
            _drop_tag(registry, name, challenger, TAG_PROMOTION_ID)  # nothing changed: no intent to resume
            aborted: dict[str, Any] = {"model": name, "version": challenger, "decision_id": decision_id}
            aborted.update(expected=expected, error=str(exc), run=dict(run))
            audit.append("model.promotion_aborted", aborted, actor=actor_of(run))
            raise
        wrote = True
    else:
        log(f"resuming promotion {decision_id[:12]} of {name} v{challenger}: the aliases were already swapped")
    if version.tags.get(TAG_PROMOTED_BY) != decision_id:  # 3. tags
        registry.tag_version(name, challenger, {**tags, TAG_PROMOTED_AT: _now(), TAG_PROMOTED_BY: decision_id})
        wrote = True
    record, appended = _append_once(  # 4. audit
        audit,
        "model.promoted",
        {
            "model": name,
            "version": challenger,
            "previous_champion": champion,
            "decision_id": decision_id,
            "run_key": key,
            "aliases": current,
            "checks": decision.checks,
            "challenger_metrics": summary["challenger"],
            "champion_metrics": summary.get("champion"),
            "evaluation": summary.get("report_uri"),
            "evaluation_sha256": evaluation_sha,
            "gate": gate.to_dict(),
            "run": dict(run),
        },
        run,
        decision_id=decision_id,
    )
    wrote = wrote or appended
    owner = (record.get("data") or {}).get("run_key")
    announce = appended or (key is not None and owner == key)  # 5. the asset event, by the run that made the change
    if swapped_before or not appended:
        done = "completed what an earlier try left undone" if wrote else "every step was already done"
        log(f"promotion {decision_id[:12]}: {done}")
    after_text = f"; v{champion} is {PREVIOUS}" if champion else " (first model)"
    log(f"promoted {name} v{challenger} to {CHAMPION}{after_text}")
    result.update(
        promoted=True,
        champion=challenger,
        aliases=registry.aliases(name),
        already_done=not wrote,
        resumed=swapped_before,
        announce=announce,
        audit_seq=record.get("seq"),
    )
    return result


def _make_candidate(
    registry: ModelRegistry,
    audit: AuditTrail,
    run: Mapping[str, Any],
    result: dict[str, Any],
    tags: dict[str, str],
    decision: Any,
    summary: Mapping[str, Any],
    gate: GateSpec,
    log: Any,
) -> dict[str, Any]:
    """The passed challenger becomes `candidate` (champion unchanged), complete-or-resume like a promotion."""
    name, challenger, champion = result["model_name"], result["challenger_version"], result["champion_before"]
    decision_id, key = result["decision_id"], run_key(run)
    current = registry.aliases(name)
    version = registry.get_version(name, challenger)
    swapped_before = current.get(CANDIDATE) == challenger and version.tags.get(TAG_CANDIDATE_ID) == decision_id
    moved_on = version.tags.get(TAG_CANDIDATE_BY) == decision_id and not swapped_before  # deployed or rejected since
    wrote = False
    if moved_on:
        log(f"{name} v{challenger} was made candidate by this decision and has moved on since; nothing to change")
    elif not swapped_before:
        registry.tag_version(name, challenger, {TAG_CANDIDATE_ID: decision_id})  # 1. intent
        expected = {CHAMPION: champion, CHALLENGER: challenger}
        try:
            current = registry.compare_and_swap(name, expected, {CANDIDATE: challenger, CHALLENGER: None})  # 2. swap
        except AliasConflict as exc:
            _drop_tag(registry, name, challenger, TAG_CANDIDATE_ID)
            aborted: dict[str, Any] = {"model": name, "version": challenger, "decision_id": decision_id}
            aborted.update(expected=expected, error=str(exc), run=dict(run))
            audit.append("model.promotion_aborted", aborted, actor=actor_of(run))
            raise
        wrote = True
    else:
        log(f"resuming decision {decision_id[:12]} of {name} v{challenger}: it is already {CANDIDATE}")
    if version.tags.get(TAG_CANDIDATE_BY) != decision_id:  # 3. tags
        registry.tag_version(name, challenger, {**tags, TAG_CANDIDATE_AT: _now(), TAG_CANDIDATE_BY: decision_id})
        wrote = True
    record, appended = _append_once(  # 4. audit
        audit,
        "model.candidate",
        {
            "model": name,
            "version": challenger,
            "champion": champion,
            "decision_id": decision_id,
            "run_key": key,
            "aliases": current,
            "checks": decision.checks,
            "challenger_metrics": summary["challenger"],
            "champion_metrics": summary.get("champion"),
            "evaluation": summary.get("report_uri"),
            "evaluation_sha256": result["evaluation_sha256"],
            "gate": gate.to_dict(),
            "run": dict(run),
        },
        run,
        decision_id=decision_id,
    )
    wrote = wrote or appended
    owner = (record.get("data") or {}).get("run_key")
    log(
        f"{name} v{challenger} passed the gate and is {CANDIDATE}; v{champion} stays {CHAMPION} until its canary passes"
    )
    result.update(
        promoted=False,
        candidate=challenger,
        champion=champion,
        aliases=registry.aliases(name),
        already_done=not wrote,
        resumed=swapped_before,
        announce=appended or (key is not None and owner == key),  # 5. the candidate asset event
        audit_seq=record.get("seq"),
    )
    return result


def _evaluation_evidence(
    registry: ModelRegistry, store: DatasetStore, name: str, target: str, champion: str | None, spec: GateSpec
) -> tuple[dict[str, Any] | None, list[str]]:
    """A stored, hash-checked evaluation of `target` (challenger) against `champion` that passes `spec`."""
    from airflow_provider_llmops.core.model.evaluate_job import load_evaluation

    notes: list[str] = []
    version = registry.get_version(name, target)
    prefix = f"v{target}-vs-{'v' + champion if champion else 'none'}-"
    keys = [k for k in store.list_evaluations(name) if k.startswith(prefix)]
    if not keys:
        notes.append(f"no stored evaluation of v{target} against {'v' + champion if champion else 'no champion'}")
    for key in keys:
        uri = store.evaluation_uri(name, key)
        sha = version.tags.get(TAG_EVALUATION_SHA256)
        if version.tags.get(TAG_EVALUATION) != uri or not sha:
            recorded = f"{TAG_EVALUATION}, {TAG_EVALUATION_SHA256}"
            notes.append(f"evaluation {key} is not the one recorded on v{target} ({recorded})")
            continue
        try:
            reference = {"model_name": name, "key": key, "report_uri": uri, "report_sha256": sha}
            summary, digest = load_evaluation(store, reference)
        except ConfigurationError as exc:
            notes.append(str(exc))
            continue
        decision = decide(summary["challenger"], summary.get("champion"), spec)
        if decision.passed:
            return {"kind": "gate", "evaluation": uri, "evaluation_sha256": digest, "summary": decision.summary}, notes
        notes.append(f"evaluation {key}: {decision.summary}")
    return None, notes


def rollback_evidence(
    *,
    registry: ModelRegistry,
    audit: AuditTrail,
    store: DatasetStore | None,
    model_name: str,
    target: str,
    champion: str | None,
    spec: GateSpec,
) -> dict[str, Any]:
    """Why `target` may become champion again: it was champion before (tag `llmops.promoted_at`, or an audit
    record of a promotion or rollback to it), or a stored evaluation against the current champion passes the
    gate. Raises RollbackRefusedError listing what was checked otherwise."""
    version = registry.get_version(model_name, target)
    if version.tags.get(TAG_PROMOTED_AT):
        return {"kind": "was_champion", "tag": TAG_PROMOTED_AT, "promoted_at": version.tags[TAG_PROMOTED_AT]}
    for event, field in (("model.promoted", "version"), ("model.deployed", "version"), ("model.rolled_back", "to")):
        found = find_record(audit, event, verified=True, model=model_name, **{field: target})
        if found is not None:
            return {"kind": "was_champion", "audit_event": event, "seq": found["seq"], "hash": found["hash"]}
    notes = [f"v{target} has no {TAG_PROMOTED_AT} tag and no audit record shows it as champion"]
    if store is not None:
        evidence, more = _evaluation_evidence(registry, store, model_name, target, champion, spec)
        if evidence is not None:
            return evidence
        notes += more
    raise RollbackRefusedError(
        f"refusing to make {model_name} v{target} champion: it was never champion and passes no gate against the "
        f"current champion ({'; '.join(notes)}). Roll back to a former champion, or evaluate v{target} against the "
        "champion and promote it through the gate"
    )


def _drop_tag(registry: ModelRegistry, name: str, version: str, key: str) -> None:
    try:
        registry.client.delete_model_version_tag(name, str(version), key)
    except Exception:  # absent already
        pass


def _intent(tags: Mapping[str, str]) -> dict[str, Any] | None:
    try:
        value = json.loads(tags.get(TAG_ROLLBACK_INTENT, ""))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def rollback(
    *,
    registry: ModelRegistry,
    audit: AuditTrail,
    model_name: str,
    target_version: str | None,
    run: Mapping[str, Any],
    reason: str = "",
    store: DatasetStore | None = None,
    spec: GateSpec | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """champion <- target (default: previous-champion), as a compare-and-swap, for a target that may serve (see
    `rollback_evidence`) and with a reason. previous-champion is cleared so a second rollback does not bring the
    bad version back; the version rolled back from is tagged. Complete-or-resume like `promote`."""
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_LENGTH:
        raise ConfigurationError(
            f"a rollback needs a reason of at least {MIN_REASON_LENGTH} characters (Param reason), got {reason!r}: "
            "it is written to the audit trail"
        )
    key = run_key(run)
    current = registry.aliases(model_name)
    champion = current.get(CHAMPION)
    resumed_intent = None
    if champion and target_version in (None, "", champion):
        # resume when the champion was set by a rollback of this run, or by one whose audit record is missing
        intent = _intent(registry.get_version(model_name, champion).tags)
        if intent and intent.get("id"):
            ours = key is not None and intent.get("run_key") == key
            if ours or find_record(audit, "model.rolled_back", rollback_id=intent["id"]) is None:
                resumed_intent = intent
    if resumed_intent is not None:
        target, before, rollback_id = str(champion), resumed_intent.get("from"), str(resumed_intent["id"])
        evidence = resumed_intent.get("evidence") or {}
        log(f"resuming rollback {rollback_id[:12]} of {model_name}: the aliases were swapped (v{before} -> v{target})")
        swapped_before = True
    else:
        target = str(target_version) if target_version else current.get(PREVIOUS)
        if not target:
            raise ConfigurationError(
                f"model {model_name!r} has no '{PREVIOUS}' alias to roll back to; give a target version"
            )
        registry.get_version(model_name, target)  # raises when the version does not exist
        if champion == target:
            log(f"{model_name} v{target} is already champion; nothing to roll back")
            return {
                "model_name": model_name,
                "champion": target,
                "rolled_back_from": None,
                "aliases": current,
                "already_done": True,
                "announce": False,
            }
        evidence = rollback_evidence(
            registry=registry,
            audit=audit,
            store=store,
            model_name=model_name,
            target=target,
            champion=champion,
            spec=spec or GateSpec(),
        )
        before = champion
        rollback_id = _digest("rollback", model_name, champion, target, key or uuid.uuid4().hex)[:32]
        intent = {"id": rollback_id, "from": champion, "run_key": key, "evidence": evidence}
        registry.tag_version(model_name, target, {TAG_ROLLBACK_INTENT: json.dumps(intent, sort_keys=True)[:4900]})  # 1.
        try:
            expected = {CHAMPION: champion, PREVIOUS: current.get(PREVIOUS)}
            current = registry.compare_and_swap(model_name, expected, {CHAMPION: target, PREVIOUS: None})  # 2.
        except AliasConflict:
            _drop_tag(registry, model_name, target, TAG_ROLLBACK_INTENT)  # nothing changed: no intent to resume
            raise
        swapped_before = False
    wrote = not swapped_before
    if before and registry.get_version(model_name, before).tags.get(TAG_ROLLED_BACK_BY) != rollback_id:  # 3. tags
        registry.tag_version(model_name, before, {TAG_ROLLED_BACK: _now(), TAG_ROLLED_BACK_BY: rollback_id})
        wrote = True
    record, appended = _append_once(  # 4. audit
        audit,
        "model.rolled_back",
        {
            "model": model_name,
            "from": before,
            "to": target,
            "rollback_id": rollback_id,
            "run_key": key,
            "reason": reason,
            "evidence": evidence,
            "aliases": current,
            **_who(run),
            "run": dict(run),
        },
        run,
        rollback_id=rollback_id,
    )
    wrote = wrote or appended
    log(f"rolled back {model_name}: champion v{before} -> v{target} ({evidence.get('kind')})")
    return {
        "model_name": model_name,
        "champion": target,
        "rolled_back_from": before,
        "rollback_id": rollback_id,
        "reason": reason,
        "evidence": evidence,
        "aliases": registry.aliases(model_name),
        "already_done": not wrote,
        "resumed": swapped_before,
        "announce": True,  # this run made (or completed) the change
        "audit_seq": record.get("seq"),
        "version_url": registry.version_url(model_name, target),
    }
