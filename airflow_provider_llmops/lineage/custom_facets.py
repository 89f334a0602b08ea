"""Custom OpenLineage facets of this provider. Their JSON schemas ship in `lineage/schemas/`; each facet's
`_schemaURL` is the schema's `$id` plus the `$defs` pointer. The OpenLineage client is imported lazily."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent / "schemas"


def schema_url(name: str) -> str:
    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    return f"{schema['$id']}#/$defs/{name}"


@cache
def _facet_class(name: str) -> type:
    """An attrs RunFacet class whose fields are the properties of the shipped schema `name` (all optional)."""
    import attr
    from openlineage.client.generated.base import RunFacet

    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    properties = schema["$defs"][name]["allOf"][1]["properties"]
    url = schema_url(name)
    cls = attr.make_class(name, {field: attr.ib(default=None) for field in properties}, bases=(RunFacet,))
    cls._get_schema = staticmethod(lambda: url)  # type: ignore[attr-defined]
    return cls


def _facet(name: str, **values: Any) -> Any:
    return _facet_class(name)(**{k: v for k, v in values.items() if v is not None})


def drift_run_facet(report: dict[str, Any]) -> Any:
    """The `llmopsDrift` run facet of a drift report (see `core.profile.score`)."""
    statistic = report["rules"]["statistic"]
    features = [
        {
            "name": name,
            "psi": f["scores"]["psi"],
            "js": f["scores"]["js"],
            "kl": f["scores"]["kl"],
            "klSymmetric": f["scores"]["kl_symmetric"],
            "calibratedThreshold": f["calibrated_thresholds"][statistic],
            "fixedThreshold": f["fixed_thresholds"][statistic],
            "drift": f["verdict"]["drift"],
            "rule": f["verdict"]["rule"],
        }
        for name, f in report["features"].items()
    ]
    embedding = report.get("embedding")
    return _facet(
        "LlmopsDriftRunFacet",
        verdict=report["verdict"],
        drift=report["drift"],
        rows=report["rows"],
        profileId=report["reference"]["profile_id"],
        statistic=statistic,
        features=features,
        referenceSnapshotIds=list(report["reference"].get("snapshot_ids", [])),
        embedding=None
        if not embedding
        else {
            "drift": embedding["drift"],
            "centroidCosineDistance": embedding["centroid_cosine_distance"],
            "mmd2": embedding["mmd2"],
            "mmdPvalue": embedding["mmd_pvalue"],
            "domainAuc": embedding["domain_auc"],
            "rows": embedding["rows"],
        },
    )


def _numbers(metrics: dict[str, Any] | None) -> dict[str, float | None] | None:
    if metrics is None:
        return None
    return {
        k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None) for k, v in metrics.items()
    }


def training_run_facet(result: dict[str, Any]) -> Any:
    """`llmopsTraining`: the version a FineTuneOperator registered (or reused) and how training went."""
    training = result.get("training") or {}
    return _facet(
        "LlmopsTrainingRunFacet",
        modelName=result["model_name"],
        version=str(result["version"]),
        mlflowRunId=result.get("run_id"),
        task=training.get("task") or result.get("task") or "sequence-classification",
        reused=bool(result.get("reused")),
        snapshots=list(result.get("snapshots") or []),
        profileId=result.get("profile_id"),
        steps=training.get("steps"),
        plannedSteps=training.get("planned_steps"),
        samples=training.get("samples"),
        samplesPerSecond=training.get("samples_per_second"),
        stoppedBy=training.get("stopped_by"),
        validationMetrics=_numbers({k[4:]: v for k, v in training.items() if k.startswith("val_")}) or None,
    )


def evaluation_run_facet(summary: dict[str, Any]) -> Any:
    """`llmopsEvaluation`: champion and challenger metrics on the frozen evaluation set."""
    return _facet(
        "LlmopsEvaluationRunFacet",
        modelName=summary["model_name"],
        challengerVersion=str(summary["challenger_version"]),
        championVersion=summary.get("champion_version"),
        evalSetId=summary["eval_set"]["id"],
        evalRows=summary["eval_set"]["rows"],
        challenger=_numbers(summary["challenger"]),
        champion=_numbers(summary.get("champion")),
    )


def _scalar(value: Any) -> str | int | float | None:
    return value if value is None or isinstance(value, (str, int, float)) else str(value)


def gate_run_facet(result: dict[str, Any], action: str = "promote") -> Any:
    """`llmopsGate`: a promotion decision with its checks, the gate it used and any run-time override of it
    (`gateOverride`: applied, and the loosened fields from -> to), or a rollback with its reason and evidence;
    the aliases after it."""
    decision = result.get("decision") or {}
    checks = [
        {
            "name": c["name"],
            "metric": c.get("metric"),
            "value": c.get("value") if isinstance(c.get("value"), (int, float)) else None,
            "reference": c.get("reference") if isinstance(c.get("reference"), (int, float)) else None,
            "passed": bool(c["passed"]),
            "detail": str(c.get("detail", "")),
            **({"measured": bool(c["measured"])} if "measured" in c else {}),
        }
        for c in decision.get("checks", [])
    ]
    override = result.get("gate_override") or {}
    return _facet(
        "LlmopsGateRunFacet",
        modelName=result["model_name"],
        action=action,
        version=result.get("challenger_version") if action == "promote" else result.get("champion"),
        championBefore=result.get("champion_before") if action == "promote" else result.get("rolled_back_from"),
        passed=bool(result.get("passed", action == "rollback")),
        changed=bool(result.get("promoted", action == "rollback") or result.get("candidate"))
        and not result.get("already_done", False),
        firstModel=bool(result.get("first_model", False)),
        reasons=list(result.get("reasons") or []),
        checks=checks,
        aliases={k: str(v) for k, v in (result.get("aliases") or {}).items()},
        decisionId=result.get("decision_id") if action == "promote" else result.get("rollback_id"),
        evaluationSha256=result.get("evaluation_sha256"),
        gate=result.get("gate"),
        gateOverride=None
        if action != "promote"
        else {
            "applied": bool(override.get("applied")),
            "fields": [
                {"field": str(c["field"]), "from": _scalar(c.get("from")), "to": _scalar(c.get("to"))}
                for c in override.get("loosened") or []
            ],
        },
        reason=result.get("reason") if action == "rollback" else None,
        evidence=(result.get("evidence") or {}).get("kind") if action == "rollback" else None,
    )


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def deployment_run_facet(result: dict[str, Any]) -> Any:
    """`llmopsDeployment`: a canary rollout (DeployModelOperator): each step with its share, status and checks
    (value, bound, passed, enough data), the decision (promoted, rolled_back, already_done), the policy and any
    loosening of it, the aliases after it."""
    steps = []
    for step in result.get("steps") or []:
        steps.append(
            {
                "step": int(step.get("step", 0)),
                "share": float(step.get("share", 0.0)),
                "status": str(step.get("status", "error")),
                "message": str(step.get("message", "")),
                "windows": int(step.get("windows", 0)),
                "checks": [
                    {
                        "name": str(c.get("name")),
                        "value": _number_or_none(c.get("value")),
                        "bound": _number_or_none(c.get("bound")),
                        "passed": bool(c.get("passed")),
                        "enoughData": bool(c.get("enough_data")),
                        "detail": str(c.get("detail", "")),
                    }
                    for c in step.get("checks") or []
                ],
            }
        )
    override = result.get("policy_override") or {}
    return _facet(
        "LlmopsDeploymentRunFacet",
        modelName=result["model_name"],
        version=str(result["version"]),
        championBefore=result.get("champion_before"),
        deployId=result.get("deploy_id"),
        decision=result.get("decision", "in_progress"),
        reason=result.get("reason"),
        failingChecks=[str(c.get("name")) for c in result.get("failing") or []],
        steps=steps,
        aliases={k: str(v) for k, v in (result.get("aliases") or {}).items()},
        policy=result.get("policy"),
        policyOverride={
            "applied": bool(override.get("applied")),
            "fields": [
                {"field": str(c["field"]), "from": c.get("from"), "to": c.get("to")}
                for c in override.get("loosened") or []
            ],
        },
    )
