"""Apply the promotion gate and move aliases as a compare-and-swap; roll back the same way. Every decision is
written to the version's tags and to the audit trail."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from airflow_provider_llmops.core.audit import AuditTrail, actor_of
from airflow_provider_llmops.core.gate import GateSpec, decide
from airflow_provider_llmops.core.registry import CHALLENGER, CHAMPION, PREVIOUS, AliasConflict, ModelRegistry
from airflow_provider_llmops.errors import ConfigurationError

TAG_GATE = "llmops.gate"
TAG_GATE_REASONS = "llmops.gate_reasons"
TAG_PROMOTED_AT = "llmops.promoted_at"
TAG_ROLLED_BACK = "llmops.rolled_back"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def promote(
    *,
    registry: ModelRegistry,
    audit: AuditTrail,
    evaluation: Mapping[str, Any],
    spec: GateSpec,
    run: Mapping[str, Any],
    log: Any = print,
) -> dict[str, Any]:
    """Gate the evaluated challenger; on pass, champion <- challenger and previous-champion <- old champion, as
    a compare-and-swap against the aliases seen at evaluation time. Idempotent: a retry after a successful swap
    reports the promotion again without changing anything."""
    name = evaluation["model_name"]
    challenger = str(evaluation["challenger_version"])
    champion = evaluation.get("champion_version")
    champion = str(champion) if champion else None
    decision = decide(evaluation["challenger"], evaluation.get("champion"), spec)
    result: dict[str, Any] = {
        "model_name": name,
        "challenger_version": challenger,
        "champion_before": champion,
        "passed": decision.passed,
        "first_model": decision.first_model,
        "reasons": decision.reasons,
        "summary": decision.summary,
        "decision": decision.to_dict(),
        "gate": spec.to_dict(),
        "evaluation_uri": evaluation.get("report_uri"),
        "version_url": registry.version_url(name, challenger),
    }
    current = registry.aliases(name)
    if current.get(CHAMPION) == challenger and (champion in (None, challenger) or current.get(PREVIOUS) == champion):
        # an earlier try (or an earlier run of the same dag run) promoted it: report, change and tag nothing
        log(f"{name} v{challenger} is already champion; nothing to change")
        result.update(passed=True, promoted=True, champion=challenger, aliases=current, already_done=True, reasons=[], summary=f"v{challenger} is already champion")
        return result
    tags = {TAG_GATE: "passed" if decision.passed else "rejected", TAG_GATE_REASONS: json.dumps(decision.reasons)[:4900], "llmops.gate_dag_run": str(run.get("run_id") or "")}
    if not decision.passed:
        registry.tag_version(name, challenger, tags)
        audit.append("model.rejected", {"model": name, "version": challenger, "champion": champion, "reasons": decision.reasons, "checks": decision.checks, "run": dict(run)}, actor=actor_of(run))
        log(f"gate rejected {name} v{challenger}: " + "; ".join(decision.reasons))
        result.update(promoted=False, champion=champion, aliases=current)
        return result
    expected = {CHAMPION: champion, CHALLENGER: challenger}
    updates: dict[str, str | None] = {CHAMPION: challenger, CHALLENGER: None}
    if champion:
        updates[PREVIOUS] = champion
    try:
        after = registry.compare_and_swap(name, expected, updates)
    except AliasConflict as exc:
        audit.append("model.promotion_aborted", {"model": name, "version": challenger, "expected": expected, "error": str(exc), "run": dict(run)}, actor=actor_of(run))
        raise
    registry.tag_version(name, challenger, {**tags, TAG_PROMOTED_AT: _now()})
    audit.append(
        "model.promoted",
        {"model": name, "version": challenger, "previous_champion": champion, "aliases": after, "checks": decision.checks, "challenger_metrics": evaluation["challenger"], "champion_metrics": evaluation.get("champion"), "evaluation": evaluation.get("report_uri"), "run": dict(run)},
        actor=actor_of(run),
    )
    log(f"promoted {name} v{challenger} to {CHAMPION}" + (f"; v{champion} is now {PREVIOUS}" if champion else " (first model)"))
    result.update(promoted=True, champion=challenger, aliases=after)
    return result


def rollback(*, registry: ModelRegistry, audit: AuditTrail, model_name: str, target_version: str | None, run: Mapping[str, Any], reason: str = "", log: Any = print) -> dict[str, Any]:
    """champion <- target (default: previous-champion), as a compare-and-swap. previous-champion is cleared so a
    second rollback does not bring the bad version back; the version rolled back from is tagged."""
    current = registry.aliases(model_name)
    champion = current.get(CHAMPION)
    target = str(target_version) if target_version else current.get(PREVIOUS)
    if not target:
        raise ConfigurationError(f"model {model_name!r} has no '{PREVIOUS}' alias to roll back to; give a target version")
    registry.get_version(model_name, target)  # raises when the version does not exist
    if champion == target:
        log(f"{model_name} v{target} is already champion; nothing to roll back")
        return {"model_name": model_name, "champion": target, "rolled_back_from": None, "aliases": current, "already_done": True}
    after = registry.compare_and_swap(model_name, {CHAMPION: champion, PREVIOUS: current.get(PREVIOUS)}, {CHAMPION: target, PREVIOUS: None})
    if champion:
        registry.tag_version(model_name, champion, {TAG_ROLLED_BACK: _now()})
    audit.append("model.rolled_back", {"model": model_name, "from": champion, "to": target, "reason": reason, "aliases": after, "run": dict(run)}, actor=actor_of(run))
    log(f"rolled back {model_name}: champion v{champion} -> v{target}")
    return {"model_name": model_name, "champion": target, "rolled_back_from": champion, "aliases": after, "already_done": False, "version_url": registry.version_url(model_name, target)}
