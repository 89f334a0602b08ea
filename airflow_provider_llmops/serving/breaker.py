"""A circuit breaker for calls to a dependency that may keep failing (the model registry, a canary version), so a
broken dependency is not hammered and callers fail fast. No Airflow, no FastAPI.

States and transitions:

* `closed`: every call is allowed; a success resets the count of consecutive failures; `failure_threshold`
  consecutive failures open the circuit.
* `open`: calls are refused (`allow()` is False, `call` raises `CircuitOpen` with `retry_after_s`, the seconds
  left until the reset timeout ends). Once `reset_timeout_s` has passed since it opened, the next `allow()` moves
  to half-open and lets that one call through as the probe.
* `half_open`: exactly one probe is in flight; other calls are refused. The probe's success closes the circuit,
  its failure opens it again for a full `reset_timeout_s`. A probe that never reports back (its caller died)
  stops counting after `reset_timeout_s`, and the next `allow()` lets a new probe through.

Results reported while open (from calls allowed before it opened) change nothing. Thread-safe (one lock; the
`on_change(name, old_state, new_state)` callback runs after the lock is released, and an exception it raises is
logged, never propagated). The clock is injectable (default `time.monotonic`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from airflow_provider_llmops.errors import ConfigurationError, LLMOpsError

log = logging.getLogger(__name__)

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)

T = TypeVar("T")


class CircuitOpen(LLMOpsError):
    """A call was refused because the circuit is open (or half-open with its probe in flight)."""

    def __init__(self, name: str, retry_after_s: float, failures: int) -> None:
        self.name = name
        self.retry_after_s = retry_after_s
        self.failures = failures
        super().__init__(
            f"circuit {name!r} is open after {failures} consecutive failure(s) of the dependency; "
            f"not calling it, retry in {retry_after_s:.1f} s"
        )


class CircuitBreaker:
    """closed -> open after `failure_threshold` consecutive failures -> half-open after `reset_timeout_s` (one
    probe) -> closed on its success, open again on its failure.

    Use `allow()` + `record_success()` / `record_failure()`, or `call(fn, ...)`, `await acall(async_fn, ...)`, or
    `with breaker:`. Exceptions listed in `ignore` (e.g. a client error the dependency answered correctly) count
    as successes in `call`/`acall`/`with`; every other `Exception` counts as a failure and is re-raised."""

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, str, str], None] | None = None,
        ignore: tuple[type[BaseException], ...] = (),
    ) -> None:
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or failure_threshold < 1:
            raise ConfigurationError(f"failure_threshold must be a whole number >= 1, got {failure_threshold!r}")
        if not isinstance(reset_timeout_s, int | float) or not 0 < reset_timeout_s <= 86_400:
            raise ConfigurationError(
                f"reset_timeout_s must be a number of seconds in (0, 86400], got {reset_timeout_s!r}"
            )
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = float(reset_timeout_s)
        self.clock = clock
        self.on_change = on_change
        self.ignore = ignore
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started_at: float | None = None

    # -- state -----------------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """`closed`, `open` or `half_open` as last decided (an open circuit whose timeout has passed stays `open`
        until the next `allow()` lets the probe through)."""
        with self._lock:
            return self._state

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def retry_after_s(self) -> float:
        """Seconds until a call may be allowed again (0 when closed, or when a probe may go now)."""
        with self._lock:
            return self._retry_after(self.clock())

    def _retry_after(self, now: float) -> float:
        if self._state == OPEN:
            return max(0.0, self._opened_at + self.reset_timeout_s - now)
        if self._state == HALF_OPEN and self._probe_started_at is not None:
            return max(0.0, self._probe_started_at + self.reset_timeout_s - now)
        return 0.0

    def _move(self, new: str, now: float) -> tuple[str, str] | None:
        old = self._state
        self._state = new
        if new == OPEN:
            self._opened_at = now
            self._probe_started_at = None
        elif new == CLOSED:
            self._failures = 0
            self._probe_started_at = None
        return (old, new) if old != new else None

    def _notify(self, change: tuple[str, str] | None) -> None:
        if change is None or self.on_change is None:
            return
        try:
            self.on_change(self.name, *change)
        except Exception:
            log.exception("circuit %r: the on_change callback failed (ignored)", self.name)

    # -- the protocol ----------------------------------------------------------------------------------------
    def allow(self) -> bool:
        """Whether a call may go now. In half-open (or when the open timeout has passed) this admits the single
        probe: a True from here must be followed by `record_success()` or `record_failure()`."""
        change = None
        with self._lock:
            now = self.clock()
            if self._state == CLOSED:
                return True
            if self._state == OPEN:
                if now - self._opened_at < self.reset_timeout_s:
                    return False
                change = self._move(HALF_OPEN, now)
                self._probe_started_at = now
                allowed = True
            else:  # half-open: one probe at a time; a probe silent for reset_timeout_s is given up on
                allowed = self._probe_started_at is None or now - self._probe_started_at >= self.reset_timeout_s
                if allowed:
                    self._probe_started_at = now
        self._notify(change)
        return allowed

    def record_success(self) -> None:
        change = None
        with self._lock:
            if self._state == CLOSED:
                self._failures = 0
            elif self._state == HALF_OPEN:
                change = self._move(CLOSED, self.clock())
        self._notify(change)

    def record_failure(self) -> None:
        change = None
        with self._lock:
            now = self.clock()
            if self._state == CLOSED:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    change = self._move(OPEN, now)
            elif self._state == HALF_OPEN:
                self._failures += 1
                change = self._move(OPEN, now)
        self._notify(change)

    def _refusal(self) -> CircuitOpen:
        with self._lock:
            return CircuitOpen(self.name, self._retry_after(self.clock()), self._failures)

    def _record(self, exc: BaseException | None) -> None:
        if exc is None or isinstance(exc, self.ignore):
            self.record_success()
        elif isinstance(exc, Exception):
            self.record_failure()
        # BaseExceptions (KeyboardInterrupt, CancelledError, SystemExit) say nothing about the dependency; a probe
        # cut short this way is retried once reset_timeout_s has passed

    # -- conveniences ----------------------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` through the breaker: raises `CircuitOpen` without calling it when refused."""
        if not self.allow():
            raise self._refusal()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._record(exc)
            raise
        self.record_success()
        return result

    async def acall(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """`await fn(*args, **kwargs)` through the breaker (the same rules as `call`)."""
        if not self.allow():
            raise self._refusal()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._record(exc)
            raise
        self.record_success()
        return result

    def __enter__(self) -> CircuitBreaker:
        if not self.allow():
            raise self._refusal()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._record(exc)
