"""The inference audit log: one hash-chained record (the pipeline trail's format, `core.governance.audit`, so
`llmops audit verify --path` checks it; keyed with the pipeline trail's HMAC key when `[llmops] audit_conn_id` is
set) per answered request: request id, client, route, model version and role,
backend, latency, HTTP status, guardrail decisions, and the SHA-256 of the input (the raw text only when
`serve_audit_raw_text` is on).

Records are written by one background thread from a bounded queue, so a request never waits for the disk; when the
queue is full (the disk cannot keep up) the record is counted in `llmops_serve_audit_dropped_total` and logged, and
the request is still answered.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EVENT = "inference"
QUEUE_SIZE = 10_000


def text_digest(texts: list[str]) -> str:
    """SHA-256 over the texts (length-prefixed, so ["ab", "c"] and ["a", "bc"] differ)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


class InferenceAuditLog:
    def __init__(self, path: Path, *, raw_text: bool = False, key: Any = None, dropped: Any = None) -> None:
        from airflow_provider_llmops.core.governance.audit import AuditTrail

        self.trail = AuditTrail(path, key=key)
        self.path = Path(path)
        self.raw_text = raw_text
        self._dropped = dropped
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self.written = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="llmops-inference-audit", daemon=True)
            self._thread.start()

    def record(self, data: dict[str, Any], texts: list[str]) -> None:
        """Queue one record; `texts` are hashed (and kept raw only when configured)."""
        entry = {**data, "input_sha256": text_digest(texts), "texts": len(texts)}
        if self.raw_text:
            entry["input"] = texts
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            if self._dropped is not None:
                self._dropped.inc()
            log.error("inference audit queue full: a record of request %s was not written", data.get("request_id"))

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._thread = None

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            try:
                self.trail.append(EVENT, entry, actor=str(entry.get("client") or "anonymous"))
                self.written += 1
            except Exception as exc:  # a full disk must not stop serving; it shows in the log
                log.error("inference audit record not written: %s", type(exc).__name__)
