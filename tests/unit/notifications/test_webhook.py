"""WebhookNotifier against a real HTTP receiver on 127.0.0.1: the JSON body, the bearer token only for the
connection's own host, no redirects followed, a bounded timeout, and failures logged, never raised."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_llmops.notifications.webhook import MAX_BODY_BYTES, WebhookNotifier, build_body


class Receiver:
    """Records every POST; answers `status` (and `Location` for 3xx) after `delay_s`."""

    def __init__(self, status: int = 200, delay_s: float = 0.0, location: str = "") -> None:
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                time.sleep(delay_s)
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def _context() -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="llmops_nightly_sanity", run_id="scheduled__1", task_id="report", state="failed")
    return {"ti": ti, "dag": SimpleNamespace(dag_id="llmops_nightly_sanity")}


def test_posts_the_alert_as_json(receiver: Receiver):
    notifier = WebhookNotifier(title="sanity failed", url=receiver.url, details={"failed": ["audit"]})
    assert notifier.send(_context()) is True
    (got,) = receiver.received
    assert got["path"] == "/hook" and got["headers"]["Content-Type"] == "application/json"
    assert "Authorization" not in got["headers"]
    body = got["body"]
    assert (body["title"], body["dag_id"], body["run_id"], body["task_id"]) == (
        "sanity failed",
        "llmops_nightly_sanity",
        "scheduled__1",
        "report",
    )
    assert body["details"] == {"failed": ["audit"]} and "needs attention" in body["message"]


def test_the_url_setting_is_read_when_sending(receiver: Receiver, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALERT_WEBHOOK_URL", receiver.url)
    WebhookNotifier(message="from the setting").notify(_context())  # as a callback: notify(context)
    assert [r["body"]["message"] for r in receiver.received] == ["from the setting"]
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALERT_WEBHOOK_URL", "")
    assert WebhookNotifier().send(_context()) is False  # nothing configured: logged, dropped


def test_token_only_for_the_connections_own_host(receiver: Receiver, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_HOOK_LOCAL", json.dumps({"conn_type": "http", "host": "127.0.0.1", "password": "s3cret"})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_HOOK_OTHER", json.dumps({"conn_type": "http", "host": "alerts.example", "password": "s3cret"})
    )
    assert WebhookNotifier(url=receiver.url, conn_id="hook_local").send(_context()) is True
    assert WebhookNotifier(url=receiver.url, conn_id="hook_other").send(_context()) is True
    first, second = receiver.received
    assert first["headers"]["Authorization"] == "Bearer s3cret"
    assert "Authorization" not in second["headers"]  # the token is for alerts.example, not for 127.0.0.1


def test_redirects_are_not_followed(monkeypatch: pytest.MonkeyPatch):
    target = Receiver()
    redirecting = Receiver(status=307, location=target.url)
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_HOOK_R", json.dumps({"conn_type": "http", "host": "127.0.0.1", "password": "s3cret"})
        )
        assert WebhookNotifier(url=redirecting.url, conn_id="hook_r").send(_context()) is False
        assert len(redirecting.received) == 1 and target.received == []
    finally:
        target.stop()
        redirecting.stop()


def test_failures_are_logged_not_raised(caplog: pytest.LogCaptureFixture):
    slow = Receiver(delay_s=3.0)
    failing = Receiver(status=500)
    try:
        started = time.monotonic()
        assert WebhookNotifier(url=slow.url, timeout_s=0.5).send(_context()) is False
        assert time.monotonic() - started < 2.5  # bounded by the timeout
        assert WebhookNotifier(url=failing.url).send(_context()) is False
        assert WebhookNotifier(url="http://127.0.0.1:9/hook", timeout_s=1).send(_context()) is False
        assert WebhookNotifier(url="file:///etc/passwd").send(_context()) is False
    finally:
        slow.stop()
        failing.stop()
    assert "HTTP 500" in caplog.text and "could not be sent" in caplog.text


def test_deadline_callback_form_is_awaitable(receiver: Receiver):
    """The triggerer awaits `WebhookNotifier(**kwargs, context=...)` for a missed DeadlineAlert."""
    import asyncio

    async def run() -> None:
        await WebhookNotifier(title="deadline missed", url=receiver.url, context={"dag_run": None})

    asyncio.run(run())
    assert [r["body"]["title"] for r in receiver.received] == ["deadline missed"]


def test_oversized_details_are_dropped():
    body = json.loads(build_body("t", "m", {}, {"blob": "x" * (MAX_BODY_BYTES * 2)}))
    assert body["details"] == {"truncated": True} and body["message"] == "m"
