"""Factory of the `llmops_deploy` DAG: roll the candidate out through a canary, promote it or roll it back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, Param

from airflow_provider_llmops.assets import candidate_asset_name, champion_alias
from airflow_provider_llmops.dags._common import provider_dag
from airflow_provider_llmops.operators.deploy import DeployModelOperator

DOC = """
### Deploy the candidate through a canary

Runs when a version passes the promotion gate while an inference service is configured (`[llmops] serve_url`):
`llmops_retrain` then makes it the `candidate` and announces the asset `llmops_candidate_<model>`. Trigger it by
hand to deploy the current candidate.

**deploy** points `canary` at the candidate and raises its traffic share step by step (the DAG's policy, e.g.
10% -> 50% -> 100%). After each step the task defers (no worker slot held) to an analysis of the service's
`/metrics`: the canary's error rate, p95 latency and disagreement with the champion on mirrored traffic, each with
a bound and a minimum number of requests per window. Within bounds at every step: the canary becomes `champion`
(the old one `previous-champion`) with compare-and-swap, announced as `llmops_champion_<model>`. Outside (too many
failed windows, or no verdict by the progress deadline): the share returns to 0, `canary` is removed, the version
is tagged as rejected in canary with the failing checks, `champion` never moved, and the task fails, which fires
the DAG's rollback notifiers. Both outcomes are in the audit trail and the `llmopsDeployment` lineage facet.

Param `policy` may only make the DAG's policy stricter (smaller steps, more requests, lower bounds, fewer failed
windows) unless the DAG was built with `allow_policy_override=True`; then every loosened field is audited.
"""

NUMBER_OR_NULL = ["number", "null"]
INTEGER_OR_NULL = ["integer", "null"]


def policy_param(allow_override: bool) -> Param:
    """The `policy` Param: CanaryPolicy fields, each bounded (null or absent: the DAG's value)."""
    from airflow_provider_llmops.core.governance.deploy_job import BOUNDS, MAX_STEPS

    def bounded(name: str, kind: list[str]) -> dict[str, Any]:
        low, high = BOUNDS[name]
        return {"type": kind, "minimum": low, "maximum": high}

    return Param(
        {},
        type="object",
        additionalProperties=False,
        properties={
            "step_weights": {
                "type": ["array", "null"],
                "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "minItems": 1,
                "maxItems": MAX_STEPS,
            },
            "analysis_interval_s": bounded("analysis_interval_s", NUMBER_OR_NULL),
            "min_requests": bounded("min_requests", INTEGER_OR_NULL),
            "max_error_rate": bounded("max_error_rate", NUMBER_OR_NULL),
            "max_p95_latency_ms": bounded("max_p95_latency_ms", NUMBER_OR_NULL),
            "max_disagreement": bounded("max_disagreement", NUMBER_OR_NULL),
            "failure_threshold": bounded("failure_threshold", INTEGER_OR_NULL),
            "progress_deadline_s": bounded("progress_deadline_s", NUMBER_OR_NULL),
        },
        description="Make the DAG's canary policy stricter for this run (step_weights, analysis_interval_s, "
        "min_requests, max_error_rate, max_p95_latency_ms, max_disagreement, failure_threshold, progress_deadline_s). "
        + ("Looser values are applied and audited." if allow_override else "Looser values are refused."),
    )


def build_deploy_dag(
    dag_id: str = "llmops_deploy",
    *,
    model_name: str | None = None,
    schedule: Any = None,
    policy: dict[str, Any] | None = None,
    allow_policy_override: bool = False,
    serve_url: str | None = None,
    serve_conn_id: str | None = None,
    on_rollback: Sequence[Any] | Any | None = None,
    mlflow_conn_id: str | None = None,
    start_date: datetime | None = None,
    tags: list[str] | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """Build the DAG. `model_name` (default `[llmops] model_name`, read when the DAG file is parsed) is fixed by
    the author: a run cannot deploy another model. By default it runs on the asset `llmops_candidate_<model>`.
    `policy` is the canary policy (CanaryPolicy fields; default `[llmops] deploy_policy`, else the built-in
    defaults); the `policy` Param may only tighten it unless `allow_policy_override`. `serve_url` /
    `serve_conn_id`: see DeployModelOperator. `on_rollback`: notifiers (e.g. `SmtpNotifier`, `SlackNotifier`) or
    callables run when the deploy task fails, which it does after every rollback; default a `WebhookNotifier` when
    `[llmops] alert_webhook_url` is set."""
    from airflow_provider_llmops.core.governance.deploy_job import CanaryPolicy
    from airflow_provider_llmops.settings import load_settings

    settings = load_settings()
    model_name = model_name or settings.model_name
    policy = policy if policy is not None else (settings.deploy_policy or None)
    CanaryPolicy.from_dict(policy)  # a wrong policy fails at parse time, naming the field
    with provider_dag(
        dag_id,
        schedule=schedule if schedule is not None else Asset.ref(name=candidate_asset_name(model_name)),
        params={"policy": policy_param(allow_policy_override)},
        doc_md=DOC,
        start_date=start_date,
        tags=tags,
        render_template_as_native_obj=True,  # the policy Param stays a dict
        **dag_kwargs,
    ) as dag:
        if on_rollback is None and settings.alert_webhook_url:
            from airflow_provider_llmops.notifications.webhook import WebhookNotifier

            on_rollback = WebhookNotifier(title=f"LLMOps: canary of {model_name} rolled back")
        callbacks = (
            None if on_rollback is None else list(on_rollback) if isinstance(on_rollback, Sequence) else [on_rollback]
        )
        DeployModelOperator(
            task_id="deploy",
            model_name=model_name,
            policy=policy,
            policy_override="{{ params.policy }}",
            allow_policy_override=allow_policy_override,
            serve_url=serve_url,
            serve_conn_id=serve_conn_id,
            mlflow_conn_id=mlflow_conn_id,
            pool=settings.registry_pool,
            outlets=[champion_alias()],
            on_failure_callback=callbacks,
        )
    return dag
