"""WebhookNotifier: an Airflow notifier that POSTs a small JSON alert to a webhook (Alertmanager-style receivers,
chat incoming webhooks, an on-call tool), for DAG/task callbacks and Airflow 3.1+ deadline alerts.

The URL is `url`, else `[llmops] alert_webhook_url` (read when the alert is sent, so no URL is baked into the
serialized DAG); none configured: the alert is logged and dropped. A bearer token comes only from the password of
`conn_id` (an Airflow connection) and is sent only when the connection's host is the URL's host: credentials never
go to another host. Redirects are not followed (a redirect could carry the token elsewhere). The request has a
bounded timeout; failing to deliver is logged, never raised (an alert must not fail the task or callback it reports).

Body: `{"source": "airflow-provider-llmops", "title": ..., "message": ..., "dag_id", "run_id", "task_id", "state",
"details": {...}}`, at most `MAX_BODY_BYTES` (details are cut first).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from airflow.sdk.bases.notifier import BaseNotifier

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_TIMEOUT_S = 60.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is returned as an error: the alert (and any token) stays with the configured host


def configured_url() -> str:
    """`[llmops] alert_webhook_url` (empty when unset)."""
    from airflow_provider_llmops.settings import load_settings

    return load_settings().alert_webhook_url or ""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def build_body(title: str, message: str, context: Mapping[str, Any] | None, details: Mapping[str, Any] | None) -> bytes:
    """The JSON body; details are dropped when the body would exceed MAX_BODY_BYTES, then the message is cut."""
    context = context or {}
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    run = context.get("dag_run")
    body: dict[str, Any] = {
        "source": "airflow-provider-llmops",
        "title": title,
        "message": message,
        "dag_id": getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None),
        "run_id": getattr(run, "run_id", None) or getattr(ti, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "state": str(getattr(ti, "state", None) or getattr(run, "state", None) or "") or None,
        "details": _jsonable(dict(details or {})),
    }
    raw = json.dumps(body, default=str).encode()
    if len(raw) > MAX_BODY_BYTES:
        body["details"] = {"truncated": True}
        body["message"] = message[: MAX_BODY_BYTES // 2]
        raw = json.dumps(body, default=str).encode()
    return raw


class WebhookNotifier(BaseNotifier):
    """POST a JSON alert to a webhook.

    :param title: the alert's title. (templated)
    :param message: the alert's text; default: says which DAG run (and task) it is about. (templated)
    :param url: the webhook (http or https); default `[llmops] alert_webhook_url`, read when the alert is sent.
        (templated)
    :param conn_id: an Airflow connection whose password is sent as `Authorization: Bearer <password>`, only to
        the connection's own host (`host` of the connection must equal the URL's host). Default: no credentials.
    :param details: extra JSON-safe data for the body (e.g. the failed checks).
    :param timeout_s: seconds to wait for the webhook, at most 60 (default 10).
    :param context: the Airflow context, when awaited as a deadline callback (Airflow passes it).
    """

    template_fields: Sequence[str] = ("title", "message", "url")

    def __init__(
        self,
        *,
        title: str = "LLMOps alert",
        message: str | None = None,
        url: str | None = None,
        conn_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        timeout_s: float = 10.0,
        context: Any = None,
    ) -> None:
        super().__init__(context=context)
        self.title = title
        self.message = message or ""
        self.url = url or ""
        self.conn_id = conn_id
        self.details = dict(details or {})
        self.timeout_s = min(max(float(timeout_s), 0.1), MAX_TIMEOUT_S)

    def _token(self, host: str) -> str | None:
        if not self.conn_id:
            return None
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(self.conn_id)
        if (conn.host or "").lower() != host.lower():
            log.warning(
                "webhook alert: connection %s is for host %r, not %r: sending without its credentials",
                self.conn_id,
                conn.host,
                host,
            )
            return None
        return conn.password or None

    def send(self, context: Mapping[str, Any] | None = None, details: Mapping[str, Any] | None = None) -> bool:
        """Deliver the alert; True when the webhook answered 2xx. Never raises."""
        try:
            url = self.url or configured_url()
            if not url:
                log.warning("webhook alert %r not sent: no url and [llmops] alert_webhook_url is not set", self.title)
                return False
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                log.warning("webhook alert not sent: %r is not an http(s) URL", parsed.scheme + "://...")
                return False
            message = self.message or _default_message(context or {})
            body = build_body(self.title, message, context, {**self.details, **(details or {})})
            headers = {"Content-Type": "application/json", "User-Agent": "airflow-provider-llmops"}
            token = self._token(parsed.hostname)
            if token:
                headers["Authorization"] = f"Bearer {token}"
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            opener = urllib.request.build_opener(_NoRedirect)
            with opener.open(request, timeout=self.timeout_s) as response:
                ok = 200 <= response.status < 300
            if not ok:
                log.warning("webhook alert to %s answered HTTP %s", parsed.hostname, response.status)
            return ok
        except urllib.error.HTTPError as exc:
            log.warning(
                "webhook alert to %s failed: HTTP %s", urlparse(self.url or "").hostname or "(setting)", exc.code
            )
        except Exception as exc:  # unreachable, timeout, a connection that cannot be read: log, never raise
            log.warning("webhook alert could not be sent: %s: %s", type(exc).__name__, exc)
        return False

    def notify(self, context: Any) -> None:
        self.send(context)

    async def async_notify(self, context: Any) -> None:
        import asyncio

        await asyncio.to_thread(self.send, context)


def _default_message(context: Mapping[str, Any]) -> str:
    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    run = context.get("dag_run")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None) or "a DAG"
    run_id = getattr(run, "run_id", None) or getattr(ti, "run_id", None)
    task = f", task {ti.task_id}" if getattr(ti, "task_id", None) else ""
    return f"{dag_id}{f' run {run_id}' if run_id else ''}{task} needs attention"
