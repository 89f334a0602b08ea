"""PromoteModelOperator: the promotion gate and the champion/challenger alias swap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.links import MlflowModelVersionLink
from airflow_provider_llmops.operators.base import LLMOpsBaseOperator, as_json

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context


class PromoteModelOperator(LLMOpsBaseOperator):
    """Apply the gate to an evaluation and promote on pass.

    Reads: the evaluation report where `EvaluateModelOperator` stored it (`evaluation` is its XCom: model, key,
    report URI and SHA-256); the report is read from the store (`store_uri`, default `[llmops] store_uri`) and
    its hash checked, and the gate judges the metrics in the report, never metrics passed in XCom. A report that
    is missing, elsewhere, or changed since evaluation is an error and nothing is promoted.
    Gate (`gate`, any field of `core.governance.gate.GateSpec`, set by the DAG author; not templated): the primary
    metric must improve by at least the absolute or relative margin, guard metrics may not regress beyond their
    tolerance, fairness gap and p95 latency under their bounds; the first model ever needs only the absolute
    floors. `gate_override` (templated, e.g. a `gate` Param) is merged into it and may only make it stricter;
    a looser field is refused (ConfigurationError naming the fields) unless `allow_gate_override=True`, in which
    case it is applied and recorded (audit record `model.gate_override`, the `gateOverride` of the facet).
    Writes: on pass, `champion` -> challenger and `previous-champion` -> old champion as a compare-and-swap
    against the aliases seen at evaluation (if the champion moved since, it aborts and says so); the decision as
    version tags (`llmops.gate`, `llmops.gate_reasons`), an audit record (`<home>/audit/audit.jsonl`) and the
    `llmopsGate` lineage facet. A rejection is a decision, not an error: the task succeeds with `promoted:
    false` unless `fail_on_reject`.
    With an inference service (`deploy_via_canary`, by default whether `[llmops] serve_url` is set) and a champion
    in place, a pass does not move `champion`: the challenger becomes `candidate` (compare-and-swap, champion
    untouched; tags `llmops.candidate_at`/`llmops.candidate_by`, audit record `model.candidate`) and the deploy DAG
    rolls it out through a canary. The first model has nothing to compare a canary with and becomes champion.
    Emits: with `outlets=[champion_alias()]`, the asset `llmops_champion_<model>` when this run changed the
    champion (on a retry too: a retry completes a promotion an earlier try left half done, see `promote_job`);
    with `outlets=[candidate_alias()]`, the asset `llmops_candidate_<model>` when it made a new candidate.
    Returns (XCom): promoted, candidate, target, champion, reasons, checks, aliases, decision_id, announce,
    champion_event, candidate_event.

    :param evaluation: the XCom of `EvaluateModelOperator` (pass `evaluate.output`): a dict, or its JSON text,
        with `model_name`, `key`, `report_uri` and `report_sha256`. Only this reference is used; the metrics
        judged are read from the stored report. Required. (templated)
    :param gate: the DAG author's gate, fields of `GateSpec` as a dict (or JSON text): `primary` (`macro_f1`),
        `min_abs_improvement` and `min_rel_improvement` (0.0: any strict improvement), `guards` (tolerances
        against the champion, `{"accuracy": 0.01, "ece": 0.02}`), `floors` (absolute bounds,
        `{"macro_f1": 0.5, "accuracy": 0.5}`), `max_fairness_gap` (0.25), `max_latency_p95_ms` (None: no bound),
        `fairness_unmeasured` (`pass` or `fail`); passing `guards` or `floors` replaces those defaults. An
        unknown field or invalid value is a ConfigurationError. Default None: GateSpec's defaults (the values
        above). Not templated, so a run cannot change it except through `gate_override`.
    :param gate_override: a run-time request merged into `gate` field by field (`guards` / `floors` key by key;
        a key set to None removes that entry), as a dict or JSON text, typically the retrain DAG's `gate` Param.
        It may only make the gate stricter unless `allow_gate_override`. Default None (or empty): no override.
        (templated)
    :param allow_gate_override: whether `gate_override` may loosen `gate`. Default False: a loosening is refused
        (ConfigurationError naming each loosened field) before anything is read. True: it is applied and
        recorded (audit record `model.gate_override`, `gateOverride` in the `llmopsGate` facet).
    :param fail_on_reject: whether a rejection fails the task (GateRejectedError with the reasons, after the
        decision is recorded). Default False: the task succeeds with `promoted: false`.
    :param deploy_via_canary: whether a passed challenger becomes `candidate` for a canary deployment (True) or
        `champion` at once (False). Default None: True when `[llmops] serve_url` names an inference service.
    """

    template_fields: Sequence[str] = (*LLMOpsBaseOperator.base_template_fields, "evaluation", "gate_override")
    template_fields_renderers = {"gate_override": "json"}
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#e5f6f3"

    def __init__(
        self,
        *,
        evaluation: Any,
        gate: dict[str, Any] | None = None,
        gate_override: dict[str, Any] | str | None = None,
        allow_gate_override: bool = False,
        fail_on_reject: bool = False,
        deploy_via_canary: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.evaluation = evaluation
        self.gate = gate or {}
        self.gate_override = gate_override
        self.allow_gate_override = allow_gate_override
        self.fail_on_reject = fail_on_reject
        self.deploy_via_canary = deploy_via_canary

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.core.governance.promote_job import promote
        from airflow_provider_llmops.errors import ConfigurationError, GateRejectedError
        from airflow_provider_llmops.links import push_links

        evaluation = self.as_json(self.evaluation, "evaluation")
        if not isinstance(evaluation, dict) or "report_sha256" not in evaluation:
            raise ConfigurationError("evaluation must be the result of EvaluateModelOperator (pass its .output)")
        resolved = _resolve(self.gate, self.gate_override, self.allow_gate_override)
        deploy = self.deploy_via_canary
        if deploy is None:
            from airflow_provider_llmops.settings import serve_options

            deploy = bool(serve_options().get("serve_url", "").strip())
        store = self.store
        registry = self.registry
        self._lineage = {"tracking_uri": registry.tracking_uri}
        result = promote(
            registry=registry,
            audit=self.audit,
            store=store,
            evaluation=evaluation,
            spec=resolved,
            run=_run(context),
            log=self.log.info,
            deploy=bool(deploy),
        )
        self._lineage["result"] = result
        for check in result["decision"]["checks"]:
            self.log.info("%-22s %s  %s", check["name"], "pass" if check["passed"] else "FAIL", check["detail"])
        push_links(context, None, result.get("version_url"))
        result["champion_event"] = None
        if result["promoted"] and result.get("announce"):
            from airflow_provider_llmops.assets import emit_champion_event

            extra = {
                "model": result["model_name"],
                "version": result["champion"],
                "previous": result.get("champion_before"),
                "action": "promote",
                "decision_id": result["decision_id"],
            }
            result["champion_event"] = emit_champion_event(context, result["model_name"], registry.tracking_uri, extra)
        result["candidate_event"] = None
        if result.get("candidate") and result.get("announce"):
            from airflow_provider_llmops.assets import emit_candidate_event

            extra = {
                "model": result["model_name"],
                "version": result["candidate"],
                "champion": result.get("champion_before"),
                "decision_id": result["decision_id"],
            }
            result["candidate_event"] = emit_candidate_event(
                context, result["model_name"], registry.tracking_uri, extra
            )
        if not result["passed"] and self.fail_on_reject:
            raise GateRejectedError(result["model_name"], result["challenger_version"], result["reasons"])
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_llmops.lineage import facets as F
        from airflow_provider_llmops.lineage.custom_facets import gate_run_facet

        r = self._lineage.get("result")
        if not r:
            return OperatorLineage()
        tracking_uri = self._lineage["tracking_uri"]
        inputs = [F.model_version_dataset(tracking_uri, r["model_name"], r["challenger_version"])]
        outputs = (
            [F.model_version_dataset(tracking_uri, r["model_name"], r["champion"], output=True)]
            if r.get("promoted") and r.get("champion")
            else []
        )
        return OperatorLineage(inputs=inputs, outputs=outputs, run_facets={"llmopsGate": gate_run_facet(r, "promote")})


def _resolve(gate: Any, override: Any, allow: bool) -> Any:
    """The author's gate with the run-time override merged in (see `core.governance.gate.resolve_gate`)."""
    from airflow_provider_llmops.core.governance.gate import GateOverrideRefused, resolve_gate
    from airflow_provider_llmops.errors import ConfigurationError

    try:
        base = as_json(gate, "gate") or {}
        request = as_json(override, "gate_override") or {}
        return resolve_gate(base, request, allow_override=allow)
    except GateOverrideRefused:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"invalid gate: {exc}") from None


def _run(context: Any) -> dict[str, Any]:
    """run_info plus who triggered the DAG run (for audit records)."""
    from airflow_provider_llmops.operators._common import run_info

    run = run_info(context)
    dag_run = context.get("dag_run") if hasattr(context, "get") else None
    if dag_run is not None and getattr(dag_run, "triggering_user_name", None):
        run["triggered_by"] = dag_run.triggering_user_name
    return run
