"""Asyncio micro-batching: concurrent requests share one forward pass.

`MicroBatcher(run_batch)` queues the texts of every `await submit(texts)` and hands them to `run_batch(texts) ->
results` (a blocking model call) in a worker thread of its own, one batch at a time, so the event loop never blocks.

Grouping. A batch leaves when the queue holds `max_batch_size` texts, or `max_wait_ms` after the oldest queued text
arrived, whichever comes first (so a lone request waits at most `max_wait_ms`; `max_wait_ms=0` sends what is there
at once). While a batch runs the next one fills up, and leaves as soon as the running one returns if its oldest text
has waited long enough. A request carrying more texts than `max_batch_size` is spread over consecutive batches.
Within a batch the texts are ordered by length (stable), which keeps padding low, and each result is mapped back to
its request and position: `submit` returns results in the order of its texts.

Back-pressure. At most `max_queue` texts wait (texts in the running batch are not counted, so memory is bounded by
`max_queue + max_batch_size` texts). A request that would pass the bound is refused at once with `Overloaded`, whose
`retry_after_s` estimates when the queue ahead will have drained:

    retry_after_s = (ceil(queued / max_batch_size) + running) * mean(recent batch durations) + max_wait_ms / 1000

(`running` is 1 while a batch runs; the mean is over the last 32 batches, or `max_wait_ms` and 10 ms, whichever is
more, before the first). A request with more texts than `max_queue` can never fit and raises `RequestTooLarge`.

Failures. An exception from `run_batch` (or a result list of the wrong length) fails every request with a text in
that batch, each with that exception; the batcher goes on serving. A caller that stops waiting (its task cancelled,
e.g. the client went away) takes its not yet batched texts out of the queue; results for texts already running are
dropped. `aclose()` refuses new requests and either drains the queue (bounded by a timeout) or fails what is pending
with `BatcherClosed`.

Metrics. `stats()` reports the queue depth in texts and requests, texts running, and counters (batches, texts,
failed batches, rejections, cancellations); `on_batch(size, seconds, ok)` is called after every batch (for a batch
size and a batch latency histogram). Every structure is bounded: the queue by `max_queue`, recent durations by 32.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from airflow_provider_llmops.errors import LLMOpsError

log = logging.getLogger(__name__)

T = TypeVar("T")

RECENT_BATCHES = 32
"""How many recent batch durations feed the `retry_after_s` estimate."""


class Overloaded(LLMOpsError):
    """The queue is full: retry after `retry_after_s` seconds (HTTP 429/503 with `Retry-After`)."""

    def __init__(self, name: str, queued: int, limit: int, retry_after_s: float) -> None:
        self.name = name
        self.queued = queued
        self.limit = limit
        self.retry_after_s = retry_after_s
        super().__init__(
            f"{name or 'batcher'} is overloaded: {queued} texts queued, the limit is {limit}; "
            f"retry after {retry_after_s:.3f} s"
        )


class RequestTooLarge(LLMOpsError, ValueError):
    """One request carries more texts than the whole queue may hold: it can never be accepted as it is."""

    def __init__(self, name: str, texts: int, limit: int) -> None:
        self.texts = texts
        self.limit = limit
        super().__init__(
            f"{name or 'batcher'}: a request may carry at most {limit} texts, this one has {texts}; split it"
        )


class BatcherClosed(LLMOpsError):
    """The batcher is shutting down (or was never started on this event loop): send the request to another replica."""


@dataclass(frozen=True)
class BatcherStats:
    """A snapshot of a batcher's state, for metrics."""

    name: str
    queue_depth: int
    """Texts waiting for a batch."""
    queued_requests: int
    running: int
    """Texts in the batch that runs now."""
    batches: int
    texts: int
    failed_batches: int
    rejected: int
    cancelled: int
    mean_batch_seconds: float | None


class _Request(Generic[T]):
    __slots__ = ("texts", "future", "results", "dispatched", "remaining", "arrived")

    def __init__(self, texts: list[str], future: asyncio.Future[list[T]], arrived: float) -> None:
        self.texts = texts
        self.future = future
        self.results: list[Any] = [None] * len(texts)
        self.dispatched = 0  # texts handed to a batch so far
        self.remaining = len(texts)  # texts whose result is still missing
        self.arrived = arrived

    @property
    def undispatched(self) -> int:
        return len(self.texts) - self.dispatched


class MicroBatcher(Generic[T]):
    """Groups the texts of concurrent `submit` calls into calls of `run_batch` (see the module docstring)."""

    def __init__(
        self,
        run_batch: Callable[[list[str]], Sequence[T]],
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        name: str = "",
        on_batch: Callable[[int, float, bool], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if not max_wait_ms >= 0 or math.isinf(max_wait_ms):
            raise ValueError(f"max_wait_ms must be a finite number >= 0, got {max_wait_ms}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self.run_batch = run_batch
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.max_queue = int(max_queue)
        self.name = name
        self.on_batch = on_batch
        self._pending: collections.deque[_Request[T]] = collections.deque()
        self._queued = 0  # texts waiting (not yet in a batch)
        self._running: list[_Request[T]] = []
        self._running_texts = 0
        self._durations: collections.deque[float] = collections.deque(maxlen=RECENT_BATCHES)
        self._batches = self._texts = self._failed = self._rejected = self._cancelled = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    # lifecycle --------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher on the running event loop (idempotent; `submit` starts it too)."""
        if self._closing:
            raise BatcherClosed(f"{self.name or 'batcher'} is closed; create a new one")
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llmops-batch-{self.name or 'model'}")
        self._task = self._loop.create_task(self._dispatch(), name=f"llmops-batcher-{self.name}")

    async def aclose(self, *, drain: bool = True, timeout_s: float = 30.0) -> None:
        """Refuse new requests; with `drain`, let queued and running requests finish (at most `timeout_s`), then
        fail whatever is left with `BatcherClosed`. Idempotent."""
        already = self._closing
        self._closing = True
        if self._task is None:
            return
        if drain and not already:
            self._wakeup.set()  # type: ignore[union-attr]  # a closing batcher sends partial batches at once
            futures = {r.future for r in (*self._pending, *self._running)}
            if futures:
                await asyncio.wait(futures, timeout=max(0.0, timeout_s))
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        error = BatcherClosed(f"{self.name or 'batcher'} is shutting down; the request was not run, retry elsewhere")
        for request in (*self._pending, *self._running):
            if not request.future.done():
                request.future.set_exception(error)
        self._pending.clear()
        self._running = []
        self._queued = self._running_texts = 0
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> MicroBatcher[T]:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # requests ---------------------------------------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Texts waiting for a batch."""
        return self._queued

    def retry_after_s(self) -> float:
        """Estimated seconds until the texts queued now have been run (the formula in the module docstring)."""
        mean = sum(self._durations) / len(self._durations) if self._durations else max(self.max_wait_s, 0.01)
        batches_ahead = math.ceil(self._queued / self.max_batch_size) + (1 if self._running else 0)
        return max(batches_ahead, 1) * mean + self.max_wait_s

    async def submit(self, texts: Sequence[str]) -> list[T]:
        """Run `texts` in the next batches; their results, in order. Raises `Overloaded` at once when the queue is
        full, `RequestTooLarge` when `texts` could never fit, `BatcherClosed` while shutting down, and whatever
        `run_batch` raised for a batch holding one of these texts."""
        texts = list(texts)
        if not texts:
            return []
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("submit takes a list of str")
        if self._closing:
            raise BatcherClosed(f"{self.name or 'batcher'} is shutting down; retry elsewhere")
        if len(texts) > self.max_queue:
            raise RequestTooLarge(self.name, len(texts), self.max_queue)
        if self._queued + len(texts) > self.max_queue:
            self._rejected += 1
            raise Overloaded(self.name, self._queued, self.max_queue, self.retry_after_s())
        self.start()
        if asyncio.get_running_loop() is not self._loop:
            raise BatcherClosed(f"{self.name or 'batcher'} runs on another event loop; create one per loop")
        loop = self._loop
        assert loop is not None and self._wakeup is not None
        request: _Request[T] = _Request(texts, loop.create_future(), loop.time())
        self._pending.append(request)
        self._queued += len(texts)
        self._wakeup.set()
        try:
            return await request.future
        except asyncio.CancelledError:
            self._forget(request)
            raise

    def _forget(self, request: _Request[T]) -> None:
        """Take a request that nobody waits for any more out of the queue (its running texts finish unseen)."""
        if request.undispatched and request in self._pending:
            self._pending.remove(request)
            self._queued -= request.undispatched
            request.dispatched = len(request.texts)
        if not request.future.done():
            request.future.cancel()
        self._cancelled += 1

    def stats(self) -> BatcherStats:
        return BatcherStats(
            name=self.name,
            queue_depth=self._queued,
            queued_requests=len(self._pending),
            running=self._running_texts,
            batches=self._batches,
            texts=self._texts,
            failed_batches=self._failed,
            rejected=self._rejected,
            cancelled=self._cancelled,
            mean_batch_seconds=sum(self._durations) / len(self._durations) if self._durations else None,
        )

    # the dispatcher ---------------------------------------------------------------------------------------------

    async def _wait_for_batch(self) -> None:
        """Return when a batch should leave: a full batch is queued, the oldest text waited `max_wait`, or closing."""
        assert self._loop is not None and self._wakeup is not None
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._queued >= self.max_batch_size or self._closing:
                return
            left = self._pending[0].arrived + self.max_wait_s - self._loop.time()
            if left <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except TimeoutError:
                pass

    def _take_batch(self) -> list[tuple[_Request[T], int]]:
        """Up to `max_batch_size` (request, position) pairs from the front of the queue, oldest first."""
        batch: list[tuple[_Request[T], int]] = []
        while self._pending and len(batch) < self.max_batch_size:
            request = self._pending[0]
            n = min(request.undispatched, self.max_batch_size - len(batch))
            batch += [(request, request.dispatched + i) for i in range(n)]
            request.dispatched += n
            self._queued -= n
            if not request.undispatched:
                self._pending.popleft()
        return batch

    async def _dispatch(self) -> None:
        assert self._loop is not None and self._executor is not None
        while True:
            await self._wait_for_batch()
            batch = self._take_batch()
            if not batch:
                continue
            batch.sort(key=lambda item: len(item[0].texts[item[1]]))
            texts = [request.texts[i] for request, i in batch]
            self._running = list(dict.fromkeys(request for request, _ in batch))
            self._running_texts = len(texts)
            started = time.perf_counter()
            error: BaseException | None = None
            results: Sequence[T] = []
            try:
                results = await self._loop.run_in_executor(self._executor, self.run_batch, texts)
                if len(results) != len(texts):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(texts)} texts")
            except asyncio.CancelledError:
                raise  # aclose: it fails the running requests
            except Exception as exc:  # the model failed: fail this batch only, keep serving
                error = exc
                log.warning(
                    "%s: a batch of %d texts failed: %s", self.name or "batcher", len(texts), type(exc).__name__
                )
            seconds = time.perf_counter() - started
            self._durations.append(seconds)
            self._batches += 1
            self._texts += len(texts)
            if error is None:
                for (request, i), result in zip(batch, results, strict=True):
                    request.results[i] = result
                    request.remaining -= 1
                    if request.remaining == 0 and not request.future.done():
                        request.future.set_result(request.results)
            else:
                self._failed += 1
                for request in self._running:
                    if request in self._pending:  # its later texts must not run either
                        self._pending.remove(request)
                        self._queued -= request.undispatched
                        request.dispatched = len(request.texts)
                    if not request.future.done():
                        request.future.set_exception(error)
            self._running = []
            self._running_texts = 0
            if self.on_batch is not None:
                try:
                    self.on_batch(len(texts), seconds, error is None)
                except Exception:  # metrics must never stop serving
                    log.exception("%s: on_batch callback failed", self.name or "batcher")
