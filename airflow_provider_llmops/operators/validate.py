"""ValidateBatchOperator: a Great Expectations suite against a committed snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.operators.base import LLMOpsBaseOperator

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

ON_FAILURE = ("fail", "skip")


class ValidateBatchOperator(LLMOpsBaseOperator):
    """Validate snapshot `snapshot_id` of `dataset` with a Great Expectations 1.x suite.

    Reads: the snapshot's `data.parquet` from the store and the suite, found BY NAME in `[llmops] suites_dirs`
    (the shipped `include/expectations/` and `<home>/expectations/` by default; never a path). `suite` empty or
    None: the suite configured for the dataset (`[llmops] dataset_suites`, else `[llmops] default_suite`,
    `generic`). A non-empty `suite` (e.g. rendered from a Param) must exist in those folders and, when
    `allowed_suites` is given, be one of them.
    Writes: the full GX result and a per-expectation digest to `validation.json` beside the snapshot, naming the
    suite and why it was chosen (`argument`, `dataset_suites` or `default_suite`).
    Decides: on success, emits an asset event for every `AssetAlias` in `outlets` (the validated-dataset asset,
    with the snapshot id in its extra). On failure, `on_failure="fail"` fails the task with each failed
    expectation and the report's location; `on_failure="skip"` marks the snapshot rejected in the report and
    skips downstream tasks.
    Returns (XCom): status, suite and why, counts, failed and skipped expectations and the report URI.

    :param dataset: the dataset of the snapshot (1-128 letters, digits, `_`, `-` or `.`). Required. (templated)
    :param snapshot_id: the committed snapshot to validate (its lowercase hex id, e.g. the `snapshot_id` in
        `IngestBatchOperator`'s XCom). Required. (templated)
    :param suite: the name of the suite (a file `<name>.json` in `[llmops] suites_dirs`, never a path). Default
        None (or empty): `[llmops] dataset_suites[dataset]`, else `[llmops] default_suite` (`generic`). (templated)
    :param allowed_suites: the suite names a non-empty `suite` must be one of (so a run's Param cannot pick any
        suite in the folders); the configured suite is not restricted. Default None: every suite found in
        `[llmops] suites_dirs`.
    :param on_failure: what a failed suite does: `fail` (the default) fails the task with every failed
        expectation and the report's location; `skip` records the snapshot as `rejected` and skips the
        downstream tasks. Anything else is a ConfigurationError. (templated)
    """

    template_fields: Sequence[str] = (
        *LLMOpsBaseOperator.base_template_fields,
        "dataset",
        "snapshot_id",
        "suite",
        "on_failure",
    )
    ui_color = "#eaf7ea"

    def __init__(
        self,
        *,
        dataset: str,
        snapshot_id: str,
        suite: str | None = None,
        allowed_suites: Sequence[str] | None = None,
        on_failure: str = "fail",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.snapshot_id = snapshot_id
        self.suite = suite
        self.allowed_suites = list(allowed_suites) if allowed_suites is not None else None
        self.on_failure = on_failure

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_provider_llmops.assets import validated_asset
        from airflow_provider_llmops.core.data.validation import choose_configured_suite, validate_snapshot
        from airflow_provider_llmops.errors import ConfigurationError, ValidationFailedError

        if self.on_failure not in ON_FAILURE:
            raise ConfigurationError(f"on_failure must be one of {ON_FAILURE}, got {self.on_failure!r}")
        choice = choose_configured_suite(self.suite, self.dataset, self.settings, allowed=self.allowed_suites)
        store = self.store
        ref = store.ref(self.dataset, self.snapshot_id)
        self._lineage = {"snapshot_uri": ref.uri}
        failed_status = "rejected" if self.on_failure == "skip" else "failed"
        done = validate_snapshot(store, self.dataset, self.snapshot_id, choice, failed_status=failed_status)
        outcome, status, report_uri = done.outcome, done.status, done.report_uri
        self._lineage.update(outcome=outcome, frame_metrics=_column_metrics(done.frame))
        summary = done.summary(self.dataset, self.snapshot_id)
        self.log.info(
            "suite %s (chosen by %s) on snapshot %s: %s (%d/%d expectations met, %d skipped); report %s",
            choice.name,
            choice.source,
            self.snapshot_id,
            status,
            outcome.successful,
            outcome.evaluated,
            len(outcome.skipped),
            report_uri,
        )
        for line in summary["skipped"]:
            self.log.info("skipped expectation: %s", line)
        from airflow_provider_llmops.core.metrics import validation_registry

        failed = len(outcome.failed)
        self.push_metrics(
            validation_registry(self.dataset, choice.name, outcome.success, failed),
            job="llmops_validation",
            grouping={"dataset": self.dataset},
        )
        if outcome.success:
            from airflow.sdk import AssetAlias

            events = context.get("outlet_events")
            for outlet in self.outlets or []:
                if isinstance(outlet, AssetAlias) and events is not None:
                    events[outlet].add(
                        validated_asset(self.dataset, store.dataset_uri(self.dataset)),
                        extra={"snapshot_id": self.snapshot_id, "snapshot_uri": ref.uri, "rows": outcome.row_count},
                    )
            return summary
        for line in outcome.failed:
            self.log.error("failed expectation: %s", line)
        if self.on_failure == "skip":
            ti = context.get("ti")
            if ti is not None:  # a skipped task returns nothing, so the summary is pushed explicitly
                ti.xcom_push(key="return_value", value=summary)
            raise AirflowSkipException(
                f"snapshot {self.snapshot_id} rejected: {len(outcome.failed)} expectation(s) failed;"
                f" report {report_uri}"
            )
        raise ValidationFailedError(self.dataset, self.snapshot_id, outcome.failed, report_uri)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_llmops.lineage import facets as F

        uri = self._lineage.get("snapshot_uri")
        if uri is None:
            return OperatorLineage()
        outcome = self._lineage.get("outcome")
        if outcome is None:
            return OperatorLineage(inputs=[F.input_dataset(uri)])
        input_facets = {
            "dataQualityAssertions": F.data_quality_assertions(outcome.results),
            "dataQualityMetrics": F.data_quality_metrics(outcome.row_count, self._lineage["frame_metrics"]),
        }
        return OperatorLineage(inputs=[F.input_dataset(uri, input_facets=input_facets)])


def _column_metrics(frame: Any) -> dict[str, dict[str, Any]]:
    metrics: dict[str, dict[str, Any]] = {}
    for column in frame.columns:
        series = frame[column]
        metrics[str(column)] = {
            "nullCount": int(series.isna().sum()),
            "distinctCount": int(series.nunique(dropna=True)),
            "count": float(series.notna().sum()),
        }
    return metrics
