"""EvaluateModelOperator: champion and challenger on the same frozen evaluation set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.links import MlflowModelVersionLink, MlflowRunLink
from airflow_provider_llmops.operators.base import LLMOpsBaseOperator

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context


class EvaluateModelOperator(LLMOpsBaseOperator):
    """Score the challenger (`challenger_version`, default the `challenger` alias) and the current champion.

    Reads: both versions' model files from MLflow; the evaluation set = the held-out split of the challenger's
    training snapshots (same seed and fraction as training) plus the model's golden set, if it has one
    (`golden_path`; default: `[llmops] golden_sets[model]`, which the embedded default sets for the demo's
    `support_ticket_router` only; empty string or no configured set: the held-out split alone).
    Writes: `<store>/evaluations/<model>/<key>/` with the frozen set (Parquet), `evaluation.json` and
    `evaluation.html`; an MLflow run with both models' metrics; `llmops.eval.*` tags on the challenger version.
    Metrics: accuracy, macro-F1, per-class F1, expected calibration error, p50/p95 latency per example (one at a
    time), fairness gap (largest macro-F1 difference between groups of region / language / channel with at least
    `min_group_size` rows); per evaluation part (held-out per dataset, golden) as well.
    Fairness that cannot be measured (no group column with two groups of `min_group_size` rows) is reported as
    `fairness_gap` None with `fairness_measured` False and a `fairness_reason`, never as 0.0.
    Returns (XCom): both versions, both flat metric sets, the evaluation set id, the report URIs and the report's
    SHA-256 (`report_sha256`): the promotion gate reads the stored report and checks that hash.

    :param model_name: the registered MLflow model. Default None: `[llmops] model_name` (`support_ticket_router`).
        (templated)
    :param challenger_version: the version to evaluate (a version number, e.g. `"7"`). Default None (or empty, or
        "None"): the version the `challenger` alias points to; no such alias is a ConfigurationError. (templated)
    :param golden_path: a JSONL file of extra labelled rows (`text`, `label`, optional `region` / `language` /
        `channel`) added to the evaluation set as the part `golden` (sequence classification only). Default None
        (or "None"): `[llmops] golden_sets[model]`, if configured; empty string: no golden set. (templated)
    :param latency_sample: how many evaluation examples are timed, one at a time, for the p50/p95 latency
        (spread evenly over the set for a classifier; the first ones for a causal LM); default 50. 0: latency is
        not measured (the metrics are None). A non-negative integer, else ConfigurationError.
    :param min_group_size: the fewest rows a group (one value of region, language or channel) needs for its
        macro-F1 to count in the fairness gap; smaller groups are reported as skipped. Default 30. A positive
        integer, else ConfigurationError.
    """

    template_fields: Sequence[str] = (
        *LLMOpsBaseOperator.base_template_fields,
        "model_name",
        "challenger_version",
        "golden_path",
    )
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#f3e8fc"

    def __init__(
        self,
        *,
        model_name: str | None = None,
        challenger_version: str | None = None,
        golden_path: str | None = None,
        latency_sample: int = 50,
        min_group_size: int = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.challenger_version = challenger_version
        self.golden_path = golden_path
        self.latency_sample = _count(
            "latency_sample", latency_sample, minimum=0, meaning="how many examples are timed for latency; 0: none"
        )
        self.min_group_size = _count(
            "min_group_size", min_group_size, minimum=1, meaning="the fewest rows a group needs to count for fairness"
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.core.model.evaluate_job import evaluate
        from airflow_provider_llmops.links import push_links

        settings = self.settings
        store = self.store
        registry = self.registry
        self._lineage = {"tracking_uri": registry.tracking_uri}
        name = self.model_name or settings.model_name
        golden = settings.golden_for(name) if self.golden_path in (None, "None") else self.golden_path
        challenger = self.as_optional(self.challenger_version)
        challenger = str(challenger) if challenger is not None else None
        summary = evaluate(
            store=store,
            registry=registry,
            model_name=name,
            challenger_version=challenger,
            golden_path=golden or None,
            cache_dir=settings.home / "cache",
            latency_sample=self.latency_sample,
            min_group_size=self.min_group_size,
            log=self.log.info,
        )
        self._lineage["summary"] = summary
        from airflow_provider_llmops.core.metrics import evaluation_registry

        version = str(summary["challenger_version"])
        self.push_metrics(
            evaluation_registry(name, version, summary.get("challenger") or {}),
            job="llmops_evaluation",
            grouping={"model": name, "version": version},
        )
        run_url = (
            registry.run_url(registry.experiment_id(registry.experiment_name), summary["mlflow_run_id"])
            if summary.get("mlflow_run_id")
            else None
        )
        push_links(context, run_url, registry.version_url(name, summary["challenger_version"]))
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_llmops.lineage import facets as F
        from airflow_provider_llmops.lineage.custom_facets import evaluation_run_facet

        s = self._lineage.get("summary")
        if not s:
            return OperatorLineage()
        tracking_uri = self._lineage["tracking_uri"]
        inputs = [F.model_version_dataset(tracking_uri, s["model_name"], s["challenger_version"])]
        if s.get("champion_version"):
            inputs.append(F.model_version_dataset(tracking_uri, s["model_name"], s["champion_version"]))
        outputs = [F.output_dataset(s["report_uri"])]
        return OperatorLineage(inputs=inputs, outputs=outputs, run_facets={"llmopsEvaluation": evaluation_run_facet(s)})


def _count(name: str, value: Any, *, minimum: int, meaning: str) -> int:
    """A count argument of the DAG author, refused (ConfigurationError) when it is not an integer >= `minimum`:
    checked when the DAG is built, not after both models have been downloaded and scored."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        from airflow_provider_llmops.errors import ConfigurationError

        raise ConfigurationError(
            f"EvaluateModelOperator {name} must be an integer >= {minimum} ({meaning}), got {value!r}"
        )
    return value
