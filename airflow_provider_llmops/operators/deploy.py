"""DeployModelOperator: roll the `candidate` version out through a canary on the inference service, step by step,
with a deferrable analysis between steps; promote it on success, roll it back on failure."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.links import MlflowModelVersionLink
from airflow_provider_llmops.operators.base import LLMOpsBaseOperator, as_json

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

RELOAD_PATH = "/v1/admin/reload"
METRICS_PATH = "/metrics"
TOKEN_TTL_S = 300


class DeployModelOperator(LLMOpsBaseOperator):
    """Deploy the candidate through a canary: `canary` -> candidate, its traffic share raised step by step, each
    step judged by a `CanaryAnalysisTrigger` (deferred: no worker slot is held while it waits).

    Reads: the registry's `candidate` alias (a version that passed the promotion gate while a service was
    configured) and the service's `/metrics` (`serve_url`, default `[llmops] serve_url`).
    Writes: the `canary` alias and the share tag `llmops.canary_share` on the registered model (every replica of the
    service converges on them; after each change the operator also calls the service's admin reload). After the
    last step passes: `champion` -> the version, `previous-champion` -> the old champion, `canary`/`candidate`
    removed, share 0, as a compare-and-swap; audit `model.deployed`. On a failed step (`failure_threshold` failed
    windows), a step with no verdict by `progress_deadline_s`, or a broken analysis: share 0, `canary` (and
    `candidate`) removed, the version tagged `llmops.canary_rejected` with the failing checks, audit
    `model.canary_rejected`; the champion never moves, and only then `CanaryRejected` fails the task (so the run
    is red and failure callbacks, e.g. a notifier, fire). See `core.governance.deploy_job` for the checks.
    A retry resumes: a canary this run started continues at the step of the recorded share; a swap done before a
    failure is completed, not redone.
    Emits: with `outlets=[champion_alias()]`, the asset `llmops_champion_<model>` when this run made the version
    champion; the `llmopsDeployment` lineage facet (steps, checks, decision).
    Returns (XCom): model_name, version, champion_before, deploy_id, decision (`promoted` or `already_done`),
    champion, aliases, steps, policy, policy_override, announce, champion_event.

    :param model_name: the registered model; default `[llmops] model_name`. (templated)
    :param policy: the DAG author's canary policy, fields of `CanaryPolicy` as a dict (or JSON text):
        `step_weights` ([0.1, 0.5, 1.0]: traffic shares), `analysis_interval_s` (60), `min_requests` (50 per
        window), `max_error_rate` (0.01: 5xx share), `max_p95_latency_ms` (500; None: unchecked),
        `max_disagreement` (0.1: label disagreement with the champion on mirrored traffic; None: unchecked),
        `failure_threshold` (2 failed windows abort), `progress_deadline_s` (1800 per step). An unknown field or
        a value out of bounds is a ConfigurationError. Default None: those defaults. Not templated.
    :param policy_override: a run-time request merged into `policy` field by field (None values ignored), as a
        dict or JSON text, typically the deploy DAG's `policy` Param. It may only make the policy stricter unless
        `allow_policy_override`. Default None: no override. (templated)
    :param allow_policy_override: whether `policy_override` may loosen `policy`. Default False: a loosening is
        refused (PolicyOverrideRefused naming each field) before anything changes. True: applied and recorded
        (audit record `model.policy_override`, `policyOverride` in the facet).
    :param serve_url: base URL of the inference service (e.g. `http://127.0.0.1:8765`); default
        `[llmops] serve_url`. Empty in both: ConfigurationError (with no service there is nothing to deploy to).
        It must reach one replica (the analysis reads that replica's counters; the others converge on the same
        registry state). (templated)
    :param serve_conn_id: an Airflow connection whose password is a bearer token with scope `admin` for the
        service's reload call. Default None: a short-lived admin token is minted with the service's configured
        HS key (`[llmops] serve_jwt_secret`, or the embedded default's local key under the home); with RS/ES keys
        and no connection the reload is skipped and the service converges by polling. (templated)
    :param reload_timeout_s: seconds to wait for the reload call (default 30.0); a reload that fails is logged
        and the analysis waits until the service shows the new share.
    """

    template_fields: Sequence[str] = (
        *LLMOpsBaseOperator.base_template_fields,
        "model_name",
        "policy_override",
        "serve_url",
        "serve_conn_id",
    )
    template_fields_renderers = {"policy_override": "json"}
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#fdf0e0"

    def __init__(
        self,
        *,
        model_name: str | None = None,
        policy: dict[str, Any] | str | None = None,
        policy_override: dict[str, Any] | str | None = None,
        allow_policy_override: bool = False,
        serve_url: str | None = None,
        serve_conn_id: str | None = None,
        reload_timeout_s: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.policy = policy
        self.policy_override = policy_override
        self.allow_policy_override = allow_policy_override
        self.serve_url = serve_url
        self.serve_conn_id = serve_conn_id
        self.reload_timeout_s = reload_timeout_s

    # ---- the rollout -----------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.core.governance.deploy_job import (
            CanaryRejected,
            complete_canary,
            record_policy_override,
            start_canary,
        )

        resolved = self._resolve_policy()
        url = self._url()
        model = self.as_optional(self.model_name) or self.settings.model_name
        run = _run(context)
        registry = self.registry
        deployment = start_canary(
            registry=registry, audit=self.audit, model_name=model, policy=resolved.policy, run=run, log=self.log.info
        )
        override = {"applied": bool(resolved.loosened), "loosened": resolved.loosened, "changed": resolved.changed}
        state = {"deployment": deployment, "steps": [], "failures": 0, "url": url, "policy_override": override}
        if deployment["status"] == "already_champion":
            if deployment.get("resume_complete"):
                done = complete_canary(
                    registry=registry, audit=self.audit, deployment=deployment, run=run, log=self.log.info
                )
                return self._finish(context, state, done)
            return self._finish(context, state, {**deployment, "decision": "already_done", "announce": False})
        if deployment["status"] == "rejected":
            rejected = deployment.get("rejected") or {}
            self._set_lineage(state, {**deployment, "decision": "rolled_back", "reason": rejected.get("reason")})
            raise CanaryRejected(
                model, deployment["version"], str(rejected.get("reason")), rejected.get("failing") or []
            )
        record_policy_override(self.audit, deployment, resolved, run)
        self._step(context, state, int(deployment["start_step"]))
        raise AssertionError("unreachable: _step defers")  # pragma: no cover

    def execute_complete(
        self, context: Context, event: dict[str, Any], state: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after a step's analysis: next step, completion, or rollback (then CanaryRejected). The rollout
        state comes back in the event (`carry`); `state` is accepted from the deferral's kwargs as well."""
        from airflow_provider_llmops.core.governance.deploy_job import CanaryRejected, abort_canary, complete_canary
        from airflow_provider_llmops.errors import ConfigurationError

        event = dict(event or {})
        state = state or event.pop("carry", None)
        event.pop("carry", None)
        if not isinstance(state, dict) or "deployment" not in state:
            raise ConfigurationError("the canary analysis event carries no rollout state; clear the task to restart it")
        deployment = state["deployment"]
        policy = deployment["policy"]
        state["steps"] = [*state.get("steps", []), event]
        state["failures"] = int(event.get("failures", state.get("failures", 0)))
        index = int(event.get("step", 0))
        run = _run(context)
        share = float(event.get("share", 0.0))
        self.log.info("canary v%s step %d (%.0f%%): %s - %s", deployment["version"], index + 1, share * 100,
                      event.get("status"), event.get("message"))  # fmt: skip
        for check in event.get("checks") or []:
            self.log.info("  %-16s %s  %s", check.get("name"), "pass" if check.get("passed") else "FAIL",
                          check.get("detail"))  # fmt: skip
        if event.get("status") == "passed":
            if index + 1 < len(policy["step_weights"]):
                self._step(context, state, index + 1)
            done = complete_canary(
                registry=self.registry, audit=self.audit, deployment=deployment, run=run, steps=state["steps"],
                log=self.log.info,
            )  # fmt: skip
            self._reload(state["url"])
            return self._finish(context, state, done)
        reason = f"step {index + 1} ({share:.0%}) {event.get('status', 'error')}: {event.get('message', 'no verdict')}"
        aborted = abort_canary(
            registry=self.registry, audit=self.audit, deployment=deployment, reason=reason,
            failing=event.get("failing") or [], run=run, steps=state["steps"], log=self.log.info,
        )  # fmt: skip
        self._reload(state["url"])
        self._set_lineage(state, aborted)
        self._push_decision(deployment["model_name"], deployment["version"], "rolled_back")
        raise CanaryRejected(deployment["model_name"], deployment["version"], reason, aborted["failing"])

    def _step(self, context: Context, state: dict[str, Any], index: int) -> None:
        """Set step `index`'s share, tell the service, and defer to its analysis (raises TaskDeferred)."""
        from airflow_provider_llmops.core.governance.deploy_job import set_share
        from airflow_provider_llmops.triggers.canary import CanaryAnalysisTrigger

        deployment = state["deployment"]
        policy = deployment["policy"]
        share = float(policy["step_weights"][index])
        set_share(self.registry, deployment["model_name"], deployment["version"], share)
        self._reload(state["url"])
        self.log.info("canary %s v%s: %.0f%% of traffic (step %d of %d)", deployment["model_name"],
                      deployment["version"], share * 100, index + 1, len(policy["step_weights"]))  # fmt: skip
        trigger = CanaryAnalysisTrigger(
            metrics_url=state["url"] + METRICS_PATH,
            version=deployment["version"],
            step=index,
            share=share,
            policy=policy,
            deadline=time.time() + float(policy["progress_deadline_s"]),
            failures=int(state.get("failures", 0)),
            carry=state,
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def _finish(self, context: Context, state: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        from airflow_provider_llmops.links import push_links

        out = {**result, "steps": state.get("steps", []), "policy_override": state.get("policy_override")}
        out["champion_event"] = None
        if out.get("decision") == "promoted" and not out.get("already_done"):
            self._push_decision(out["model_name"], out["version"], "promoted")
        if out.get("decision") == "promoted" and out.get("announce"):
            from airflow_provider_llmops.assets import emit_champion_event

            extra = {
                "model": out["model_name"],
                "version": out["version"],
                "previous": out.get("champion_before"),
                "action": "deploy",
                "decision_id": out.get("deploy_id"),
            }
            out["champion_event"] = emit_champion_event(context, out["model_name"], self.registry.tracking_uri, extra)
        push_links(context, None, self.registry.version_url(out["model_name"], out["version"]))
        self._set_lineage(state, out)
        return out

    def _push_decision(self, model: str, version: Any, decision: str) -> None:
        from airflow_provider_llmops.core.metrics import canary_decision_registry

        self.push_metrics(
            canary_decision_registry(model, str(version), decision), job="llmops_deploy", grouping={"model": model}
        )

    def _set_lineage(self, state: dict[str, Any], result: dict[str, Any]) -> None:
        self._lineage = {
            "tracking_uri": self.registry.tracking_uri,
            "result": {**result, "steps": state.get("steps", []), "policy_override": state.get("policy_override")},
        }

    # ---- configuration and the service -----------------------------------------------------------------------
    def _resolve_policy(self) -> Any:
        from airflow_provider_llmops.core.governance.deploy_job import PolicyOverrideRefused, resolve_policy
        from airflow_provider_llmops.errors import ConfigurationError

        try:
            base = as_json(self.policy, "policy") or {}
            request = as_json(self.policy_override, "policy_override") or {}
            if not isinstance(base, dict) or not isinstance(request, dict):
                raise ConfigurationError("policy and policy_override must be JSON objects (CanaryPolicy fields)")
            return resolve_policy(base, request, allow_override=bool(self.allow_policy_override))
        except (PolicyOverrideRefused, ConfigurationError):
            raise
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"invalid canary policy: {exc}") from None

    def _url(self) -> str:
        from urllib.parse import urlsplit

        from airflow_provider_llmops.errors import ConfigurationError
        from airflow_provider_llmops.settings import serve_options

        url = str(self.as_optional(self.serve_url) or serve_options().get("serve_url") or "").strip().rstrip("/")
        if not url:
            raise ConfigurationError(
                "no inference service is configured: set [llmops] serve_url (or the operator's serve_url) to the "
                "service's base URL, e.g. http://127.0.0.1:8765 (`llmops serve` starts one)"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ConfigurationError(f"serve_url must be an http(s) base URL like http://127.0.0.1:8765, got {url!r}")
        return url

    def _admin_token(self) -> str | None:
        """A bearer token with scope admin: `serve_conn_id`'s password, else one minted with the HS key."""
        from airflow_provider_llmops.errors import ConfigurationError

        conn_id = self.as_optional(self.serve_conn_id)
        if conn_id:
            from airflow.sdk import BaseHook

            try:
                password = BaseHook.get_connection(conn_id).password
            except Exception as exc:
                raise ConfigurationError(
                    f"serve_conn_id: connection {conn_id!r} cannot be read ({type(exc).__name__}); create it with an "
                    "admin-scope token of the service as its password"
                ) from None
            if not password:
                raise ConfigurationError(f"serve_conn_id: connection {conn_id!r} has no password (the admin token)")
            return str(password)
        from airflow_provider_llmops.serving.auth import AuthConfig, mint_token
        from airflow_provider_llmops.settings import serve_options

        config = AuthConfig.from_mapping(serve_options(), self.settings.home)
        if not all(a.upper().startswith("HS") for a in config.algorithms):
            return None
        return mint_token(config, f"airflow:{self.dag_id}.{self.task_id}"[:64], ["admin"], ttl_s=TOKEN_TTL_S)

    def _reload(self, url: str) -> bool:
        """Ask the service to converge on the registry now; False (logged) when that did not work."""
        import httpx

        try:
            token = self._admin_token()
        except Exception as exc:
            self.log.warning("no admin token for the reload call (%s); the service converges by polling", exc)
            return False
        if token is None:
            self.log.info("no admin token for RS/ES keys (set serve_conn_id); the service converges by polling")
            return False
        try:
            response = httpx.post(
                url + RELOAD_PATH, headers={"Authorization": f"Bearer {token}"}, timeout=float(self.reload_timeout_s)
            )
        except httpx.HTTPError as exc:
            self.log.warning("reload call failed (%s); the service converges by polling", type(exc).__name__)
            return False
        if response.status_code >= 300:
            self.log.warning("reload call answered %s; the service converges by polling", response.status_code)
            return False
        return True

    # ---- lineage -----------------------------------------------------------------------------------------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_llmops.lineage import facets as F
        from airflow_provider_llmops.lineage.custom_facets import deployment_run_facet

        r = self._lineage.get("result")
        if not r:
            return OperatorLineage()
        tracking_uri = self._lineage["tracking_uri"]
        inputs = [F.model_version_dataset(tracking_uri, r["model_name"], r["version"])]
        outputs = (
            [F.model_version_dataset(tracking_uri, r["model_name"], r["version"], output=True)]
            if r.get("decision") == "promoted"
            else []
        )
        return OperatorLineage(inputs=inputs, outputs=outputs, run_facets={"llmopsDeployment": deployment_run_facet(r)})


def _run(context: Any) -> dict[str, Any]:
    """run_info plus who triggered the DAG run (for audit records)."""
    from airflow_provider_llmops.operators._common import run_info

    run = run_info(context)
    dag_run = context.get("dag_run") if hasattr(context, "get") else None
    if dag_run is not None and getattr(dag_run, "triggering_user_name", None):
        run["triggered_by"] = dag_run.triggering_user_name
    return run
