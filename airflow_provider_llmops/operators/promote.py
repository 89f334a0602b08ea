"""PromoteModelOperator: the promotion gate and the champion/challenger alias swap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_llmops.links import MlflowModelVersionLink

if TYPE_CHECKING:
    from airflow.sdk import Context


class PromoteModelOperator(BaseOperator):
    """Apply the gate to an evaluation (the XCom of `EvaluateModelOperator`) and promote on pass.

    Gate (`gate`, any field of `core.gate.GateSpec`): the primary metric must improve by at least the absolute or
    relative margin, guard metrics may not regress beyond their tolerance, fairness gap and p95 latency under
    their bounds; the first model ever needs only the absolute floors.
    Writes: on pass, `champion` -> challenger and `previous-champion` -> old champion as a compare-and-swap
    against the aliases seen at evaluation (if the champion moved since, it aborts and says so); the decision as
    version tags (`llmops.gate`, `llmops.gate_reasons`), an audit record (`<home>/audit/audit.jsonl`) and the
    `llmopsGate` lineage facet. A rejection is a decision, not an error: the task succeeds with `promoted:
    false` unless `fail_on_reject`.
    Emits: with `outlets=[champion_alias()]`, the asset `llmops_champion_<model>` when the champion changed.
    Returns (XCom): promoted, champion, reasons, checks, aliases.
    """

    template_fields: Sequence[str] = ("evaluation", "gate")
    template_fields_renderers = {"gate": "json"}
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#e5f6f3"

    def __init__(
        self,
        *,
        evaluation: Any,
        gate: dict[str, Any] | None = None,
        fail_on_reject: bool = False,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.evaluation = evaluation
        self.gate = gate or {}
        self.fail_on_reject = fail_on_reject
        self.mlflow_conn_id = mlflow_conn_id
        self._result: dict[str, Any] = {}
        self._tracking_uri = ""

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.core.audit import AuditTrail, default_audit_path
        from airflow_provider_llmops.core.gate import GateSpec
        from airflow_provider_llmops.core.promote_job import promote
        from airflow_provider_llmops.errors import ConfigurationError, GateRejectedError
        from airflow_provider_llmops.links import push_links
        from airflow_provider_llmops.operators._common import open_registry, run_info
        from airflow_provider_llmops.settings import load_settings

        evaluation = self.evaluation
        if isinstance(evaluation, str):
            import json

            evaluation = json.loads(evaluation)
        if not isinstance(evaluation, dict) or "challenger_version" not in evaluation:
            raise ConfigurationError("evaluation must be the result of EvaluateModelOperator (pass its .output)")
        try:
            import json

            spec = GateSpec.from_dict(json.loads(self.gate) if isinstance(self.gate, str) else self.gate or {})
        except ValueError as exc:
            raise ConfigurationError(f"invalid gate: {exc}") from None
        registry = open_registry(self.mlflow_conn_id)
        self._tracking_uri = registry.tracking_uri
        audit = AuditTrail(default_audit_path(load_settings().home))
        result = promote(registry=registry, audit=audit, evaluation=evaluation, spec=spec, run=run_info(context), log=self.log.info)
        self._result = result
        for check in result["decision"]["checks"]:
            self.log.info("%-22s %s  %s", check["name"], "pass" if check["passed"] else "FAIL", check["detail"])
        push_links(context, None, result.get("version_url"))
        if result["promoted"] and not result.get("already_done"):
            from airflow_provider_llmops.assets import emit_champion_event

            extra = {"model": result["model_name"], "version": result["champion"], "previous": result.get("champion_before"), "action": "promote"}
            result["champion_event"] = emit_champion_event(context, result["model_name"], registry.tracking_uri, extra)
        if not result["promoted"] and self.fail_on_reject:
            raise GateRejectedError(result["model_name"], result["challenger_version"], result["reasons"])
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_llmops.lineage import facets as F
        from airflow_provider_llmops.lineage.custom_facets import gate_run_facet

        r = self._result
        if not r:
            return OperatorLineage()
        inputs = [F.model_version_dataset(self._tracking_uri, r["model_name"], r["challenger_version"])]
        outputs = [F.model_version_dataset(self._tracking_uri, r["model_name"], r["champion"], output=True)] if r.get("promoted") and r.get("champion") else []
        return OperatorLineage(inputs=inputs, outputs=outputs, run_facets={"llmopsGate": gate_run_facet(r, "promote")})

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)
