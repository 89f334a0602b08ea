"""SanityReportOperator: the nightly sanity run's last task: report, metrics and the alert."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_llmops.operators.base import LLMOpsBaseOperator


class SanityReportOperator(LLMOpsBaseOperator):
    """Gather the results the check tasks recorded (XCom `sanity_result`), write `sanity.json` and `sanity.html`,
    push `llmops_sanity_check_ok{check}` and `llmops_sanity_last_run_timestamp_seconds` (job `llmops_sanity`), and
    when any check failed (or recorded nothing) send one alert through `WebhookNotifier` and fail, so the run is
    red. Run it with `trigger_rule="all_done"`.

    :param checks: the task ids of the check tasks (each named after its check).
    :param report_dir: where the report goes; default `<home>/reports/sanity/` (run-by-run copies are not kept:
        the last report is the one to read, the metrics keep the history). (templated)
    :param webhook_url: the alert webhook; default `[llmops] alert_webhook_url` (none: the alert is logged only).
        (templated)
    :param webhook_conn_id: a connection whose password is a bearer token for the webhook's host (see
        `WebhookNotifier`). (templated)
    :param webhook_timeout_s: seconds to wait for the webhook (default 10).
    """

    template_fields: Sequence[str] = (
        *LLMOpsBaseOperator.base_template_fields,
        "report_dir",
        "webhook_url",
        "webhook_conn_id",
    )

    def __init__(
        self,
        *,
        checks: Sequence[str],
        report_dir: str | None = None,
        webhook_url: str | None = None,
        webhook_conn_id: str | None = None,
        webhook_timeout_s: float = 10.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.checks = list(checks)
        self.report_dir = report_dir
        self.webhook_url = webhook_url
        self.webhook_conn_id = webhook_conn_id
        self.webhook_timeout_s = webhook_timeout_s

    def execute(self, context: Any) -> dict[str, Any]:
        from pathlib import Path

        from airflow_provider_llmops.core.governance.sanity import (
            SanityCheckFailed,
            results_from,
            summarise,
            write_report,
        )
        from airflow_provider_llmops.core.metrics import sanity_registry
        from airflow_provider_llmops.notifications.webhook import WebhookNotifier
        from airflow_provider_llmops.operators._common import run_info
        from airflow_provider_llmops.operators.sanity import RESULT_KEY

        ti = context.get("ti") if hasattr(context, "get") else None
        raw: dict[str, Any] = {}
        for check in self.checks:
            raw[check] = ti.xcom_pull(task_ids=check, key=RESULT_KEY) if ti is not None else None
        results = results_from(raw, self.checks)
        report = summarise(results, run=run_info(context))
        directory = Path(self.as_optional(self.report_dir) or self.settings.home / "reports" / "sanity")
        json_path, html_path = write_report(report, directory)
        pushed = self.push_metrics(sanity_registry({r.name: r.ok for r in results}), "llmops_sanity", {})
        summary = {
            "ok": report["ok"],
            "failed": report["failed"],
            "report": str(json_path),
            "html": str(html_path),
            "metrics_pushed": pushed,
            "alerted": False,
        }
        if report["ok"]:
            self.log.info("nightly sanity: all %d checks passed; report %s", len(results), json_path)
            return summary
        failed = [r for r in results if not r.ok]
        message = "; ".join(f"{r.name}: {r.message}" for r in failed)
        notifier = WebhookNotifier(
            title=f"LLMOps nightly sanity: {len(failed)} check(s) failed ({', '.join(r.name for r in failed)})",
            message=message,
            url=self.as_optional(self.webhook_url),
            conn_id=self.as_optional(self.webhook_conn_id),
            details={"failed": [r.to_dict() for r in failed], "report": str(json_path), "html": str(html_path)},
            timeout_s=self.webhook_timeout_s,
        )
        summary["alerted"] = notifier.send(context)
        if ti is not None:
            ti.xcom_push(key="sanity_report", value=summary)
        raise SanityCheckFailed(
            f"nightly sanity: {len(failed)} of {len(results)} checks failed ({message}); report {json_path}"
        )
