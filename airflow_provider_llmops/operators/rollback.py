"""RollbackModelOperator: restore the previous champion (or a given version), audited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.links import MlflowModelVersionLink
from airflow_provider_llmops.operators.base import LLMOpsBaseOperator

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context


class RollbackModelOperator(LLMOpsBaseOperator):
    """Point `champion` of `model_name` back at `previous-champion`, or at `target_version` when given.

    Refuses (ConfigurationError, nothing changed): a `reason` shorter than 10 characters; a target that was never
    champion (no `llmops.promoted_at` tag, no audit record of it as champion) unless a stored evaluation of it
    against the current champion passes the gate (`gate`, the DAG author's GateSpec fields, default GateSpec()).
    Writes: the alias change as a compare-and-swap (aborts if the aliases move meanwhile); clears
    `previous-champion` so a second rollback cannot bring the bad version back; tags the version rolled back from
    (`llmops.rolled_back`); an audit record with `reason`; the `llmopsGate` lineage facet (action rollback).
    Complete-or-resume: a retry finishes what an earlier try of the same run left undone (tags, audit record)
    and emits the event again (Airflow keeps the events of the successful try only).
    Emits: with `outlets=[champion_alias()]`, the asset `llmops_champion_<model>`.
    Returns (XCom): the champion now, the version rolled back from, the evidence, the aliases.

    :param model_name: the registered MLflow model. Default None: `[llmops] model_name` (`support_ticket_router`).
        (templated)
    :param target_version: the version to make champion again (a version number, e.g. `"3"`). Default None (or
        empty, or "None"): the version the `previous-champion` alias points to; no such alias is a
        ConfigurationError. (templated)
    :param reason: why the model is rolled back: at least 10 characters (`MIN_REASON_LENGTH`) once surrounding
        whitespace is stripped; recorded in the audit record and in the champion event's extra. Default empty,
        which is refused (ConfigurationError): a rollback always says why. (templated)
    :param gate: the DAG author's `GateSpec` fields (see `PromoteModelOperator`) that a stored evaluation of a
        target that was never champion must pass against the current champion. An unknown field or invalid value
        is a ConfigurationError. Default None: GateSpec's defaults. Not templated.
    """

    template_fields: Sequence[str] = (
        *LLMOpsBaseOperator.base_template_fields,
        "model_name",
        "target_version",
        "reason",
    )
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#fdecea"

    def __init__(
        self,
        *,
        model_name: str | None = None,
        target_version: str | None = None,
        reason: str = "",
        gate: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.target_version = target_version
        self.reason = reason
        self.gate = gate or {}

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.core.governance.gate import GateSpec
        from airflow_provider_llmops.core.governance.promote_job import rollback
        from airflow_provider_llmops.errors import ConfigurationError
        from airflow_provider_llmops.links import push_links
        from airflow_provider_llmops.operators.promote import _run

        settings = self.settings
        registry = self.registry
        self._lineage = {"tracking_uri": registry.tracking_uri}
        target = self.as_optional(self.target_version)
        target = str(target).strip() if target is not None else None
        try:
            spec = GateSpec.from_dict(self.gate)
        except ValueError as exc:
            raise ConfigurationError(f"invalid gate: {exc}") from None
        store = self.store
        result = rollback(
            registry=registry,
            audit=self.audit,
            model_name=self.model_name or settings.model_name,
            target_version=target,
            run=_run(context),
            reason=str(self.reason or ""),
            store=store,
            spec=spec,
            log=self.log.info,
        )
        self._lineage["result"] = result
        push_links(context, None, result.get("version_url"))
        result["champion_event"] = None
        if result.get("announce"):
            from airflow_provider_llmops.assets import emit_champion_event

            extra = {
                "model": result["model_name"],
                "version": result["champion"],
                "previous": result.get("rolled_back_from"),
                "action": "rollback",
                "reason": result.get("reason"),
            }
            result["champion_event"] = emit_champion_event(context, result["model_name"], registry.tracking_uri, extra)
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_llmops.lineage import facets as F
        from airflow_provider_llmops.lineage.custom_facets import gate_run_facet

        r = self._lineage.get("result")
        if not r:
            return OperatorLineage()
        outputs = [F.model_version_dataset(self._lineage["tracking_uri"], r["model_name"], r["champion"], output=True)]
        return OperatorLineage(outputs=outputs, run_facets={"llmopsGate": gate_run_facet(r, "rollback")})
