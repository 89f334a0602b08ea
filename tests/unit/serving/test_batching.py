"""The micro-batcher: grouping, length sorting, back-pressure, failures and cancellations confined to their requests,
shutdown. Each test runs its own event loop with `asyncio.run` and bounds every wait."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from airflow_provider_llmops.errors import LLMOpsError
from airflow_provider_llmops.serving.batching import (
    BatcherClosed,
    MicroBatcher,
    Overloaded,
    RequestTooLarge,
)

BOUND_S = 10.0  # no test waits longer than this on anything


class Model:
    """A fake forward pass that records every batch it sees; optionally blocks until released."""

    def __init__(self, seconds: float = 0.0, gate: threading.Event | None = None) -> None:
        self.calls: list[list[str]] = []
        self.seconds = seconds
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, texts: list[str]) -> list[str]:
        self.calls.append(list(texts))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(BOUND_S), "the test never released the model"
        if self.seconds:
            time.sleep(self.seconds)
        if any("boom" in t for t in texts):
            raise ValueError("model exploded")
        return [t.upper() for t in texts]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, BOUND_S))


async def until(predicate, timeout_s: float = BOUND_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)


def test_concurrent_requests_are_grouped_and_each_caller_gets_its_own_results():
    model = Model(seconds=0.005)

    async def main():
        async with MicroBatcher(model, max_batch_size=32, max_wait_ms=20) as batcher:
            texts = [f"ticket {i}" for i in range(16)]
            results = await asyncio.gather(*(batcher.submit([t]) for t in texts))
            return texts, results, batcher.stats()

    texts, results, stats = run(main())
    assert results == [[t.upper()] for t in texts]
    assert len(model.calls) < 16
    assert len(model.calls) == 1  # all 16 arrive within one loop tick, well inside 20 ms
    assert sorted(model.calls[0]) == sorted(texts)
    assert (stats.batches, stats.texts, stats.queue_depth, stats.running) == (1, 16, 0, 0)


def test_texts_are_sorted_by_length_within_a_batch_and_mapped_back():
    model = Model()
    requests = [["a" * 9, "b"], ["ccccc"], ["dd", "e" * 12, "fff"], ["g" * 4]]

    async def main():
        async with MicroBatcher(model, max_batch_size=64, max_wait_ms=20) as batcher:
            return await asyncio.gather(*(batcher.submit(r) for r in requests))

    results = run(main())
    assert results == [[t.upper() for t in r] for r in requests]
    assert len(model.calls) == 1
    assert [len(t) for t in model.calls[0]] == [1, 2, 3, 4, 5, 9, 12]


def test_a_request_larger_than_a_batch_is_spread_over_batches_in_order():
    model = Model()
    texts = [f"t{i:02d}" for i in range(20)]

    async def main():
        async with MicroBatcher(model, max_batch_size=8, max_wait_ms=0, max_queue=64) as batcher:
            return await batcher.submit(texts)

    assert run(main()) == [t.upper() for t in texts]
    assert [len(c) for c in model.calls] == [8, 8, 4]


def test_a_full_batch_leaves_at_once_and_a_lone_request_waits_at_most_max_wait():
    async def main():
        model = Model()
        async with MicroBatcher(model, max_batch_size=4, max_wait_ms=5000) as batcher:
            start = time.perf_counter()
            await batcher.submit(["a", "b", "c", "d"])
            full = time.perf_counter() - start
        async with MicroBatcher(Model(), max_batch_size=32, max_wait_ms=30) as batcher:
            start = time.perf_counter()
            await batcher.submit(["alone"])
            lone = time.perf_counter() - start
        async with MicroBatcher(Model(), max_batch_size=32, max_wait_ms=0) as batcher:
            start = time.perf_counter()
            await batcher.submit(["now"])
            immediate = time.perf_counter() - start
        return full, lone, immediate

    full, lone, immediate = run(main())
    assert full < 1.0  # not the 5 s max wait
    assert 0.025 <= lone < 0.5
    assert immediate < 0.2  # no wait configured: only the thread hand-off


def test_the_event_loop_keeps_running_while_a_batch_runs():
    model = Model(seconds=0.3)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async with MicroBatcher(model, max_wait_ms=0) as batcher:
            task = asyncio.create_task(ticker())
            await batcher.submit(["slow"])
            task.cancel()
        return ticks

    assert run(main()) >= 10


def test_past_the_queue_bound_submit_is_refused_at_once_with_retry_after():
    gate = threading.Event()
    model = Model(gate=gate)

    async def main():
        async with MicroBatcher(model, max_batch_size=4, max_wait_ms=0, max_queue=8, name="clf") as batcher:
            running = asyncio.create_task(batcher.submit(["r1", "r2", "r3", "r4"]))
            await until(lambda: model.entered.is_set())
            queued = [asyncio.create_task(batcher.submit([f"q{i}a", f"q{i}b"])) for i in range(4)]
            await until(lambda: batcher.queue_depth == 8)
            start = time.perf_counter()
            with pytest.raises(Overloaded) as refused:
                await batcher.submit(["one too many"])
            refused_in = time.perf_counter() - start
            with pytest.raises(RequestTooLarge, match="at most 8 texts"):
                await batcher.submit([str(i) for i in range(9)])
            gate.set()
            done = await asyncio.gather(running, *queued)
            return refused.value, refused_in, done, batcher.stats()

    error, refused_in, done, stats = run(main())
    assert isinstance(error, LLMOpsError)
    assert (error.name, error.queued, error.limit) == ("clf", 8, 8)
    # two queued batches + the running one, no batch timed yet: 3 * max(0 ms, 10 ms) + 0
    assert error.retry_after_s == pytest.approx(0.03)
    assert "retry after" in str(error)
    assert refused_in < 0.5  # at once: the running batch is still held
    assert done[0] == ["R1", "R2", "R3", "R4"] and done[1:] == [[f"Q{i}A", f"Q{i}B"] for i in range(4)]
    assert (stats.rejected, stats.batches, stats.queue_depth) == (1, 3, 0)


def test_retry_after_follows_recent_batch_durations():
    model = Model(seconds=0.05)

    async def main():
        async with MicroBatcher(model, max_batch_size=2, max_wait_ms=0, max_queue=4) as batcher:
            await batcher.submit(["warm", "up"])
            return batcher.retry_after_s(), batcher.stats().mean_batch_seconds

    retry_after, mean = run(main())
    assert 0.05 <= mean < 0.5
    assert retry_after == pytest.approx(mean)  # one batch ahead at the least, no max wait


def test_a_flood_never_grows_the_queue_past_its_bound():
    model = Model(seconds=0.002)
    depths: list[int] = []

    async def main():
        batcher = MicroBatcher(model, max_batch_size=8, max_wait_ms=1, max_queue=16)

        async def one(i: int):
            try:
                result = await batcher.submit([f"x{i}"])
            except Overloaded:
                return "refused"
            finally:
                depths.append(batcher.queue_depth)
            assert result == [f"X{i}"]
            return "ok"

        outcomes = []
        for _ in range(5):  # 5 waves of 100 simultaneous requests
            outcomes += await asyncio.gather(*(one(i) for i in range(100)))
        await batcher.aclose()
        return outcomes, batcher.stats()

    outcomes, stats = run(main())
    assert outcomes.count("ok") + outcomes.count("refused") == 500
    assert outcomes.count("refused") > 0 and outcomes.count("ok") >= 16 * 5
    assert max(depths) <= 16
    assert max(len(c) for c in model.calls) <= 8
    assert stats.rejected == outcomes.count("refused") and stats.texts == outcomes.count("ok")


def test_an_exception_fails_only_the_requests_of_its_batch():
    gate = threading.Event()
    model = Model(gate=gate)

    async def main():
        async with MicroBatcher(model, max_batch_size=4, max_wait_ms=0) as batcher:
            first = asyncio.create_task(batcher.submit(["fine"]))
            await until(lambda: model.entered.is_set())
            # these two queue behind the running batch and leave together, with the bomb
            doomed = asyncio.gather(batcher.submit(["boom"]), batcher.submit(["bystander"]), return_exceptions=True)
            await until(lambda: batcher.queue_depth == 2)
            gate.set()
            fine, failed = await first, await doomed
            after = await batcher.submit(["later"])
            return fine, failed, after, batcher.stats()

    fine, failed, after, stats = run(main())
    assert fine == ["FINE"] and after == ["LATER"]
    assert [type(e) for e in failed] == [ValueError, ValueError]
    assert all(str(e) == "model exploded" for e in failed)
    assert model.calls == [["fine"], ["boom", "bystander"], ["later"]]
    assert (stats.batches, stats.failed_batches) == (3, 1)


def test_requests_queued_behind_a_failing_batch_are_served():
    gate = threading.Event()
    model = Model(gate=gate)

    async def main():
        async with MicroBatcher(model, max_batch_size=1, max_wait_ms=0) as batcher:
            bomb = asyncio.create_task(batcher.submit(["boom"]))
            await until(lambda: model.entered.is_set())
            queued = asyncio.create_task(batcher.submit(["queued"]))
            await until(lambda: batcher.queue_depth == 1)
            gate.set()
            return await asyncio.gather(bomb, return_exceptions=True), await queued

    (bomb,), queued = run(main())
    assert isinstance(bomb, ValueError) and queued == ["QUEUED"]


def test_a_failed_batch_also_drops_the_rest_of_a_request_spread_over_batches():
    model = Model()

    async def main():
        async with MicroBatcher(model, max_batch_size=2, max_wait_ms=0) as batcher:
            with pytest.raises(ValueError):
                await batcher.submit(["a", "boom", "c", "d"])
            return batcher.stats()

    stats = run(main())
    assert model.calls == [["a", "boom"]] and stats.queue_depth == 0


def test_a_wrong_number_of_results_fails_the_batch_with_a_clear_error():
    async def main():
        async with MicroBatcher(lambda texts: ["only one"], max_wait_ms=0) as batcher:
            with pytest.raises(RuntimeError, match="returned 1 results for 2 texts"):
                await batcher.submit(["x", "y"])
            return batcher.stats().failed_batches

    assert run(main()) == 1


def test_a_cancelled_waiter_leaves_the_queue_and_breaks_no_other_request():
    gate = threading.Event()
    model = Model(gate=gate)

    async def main():
        async with MicroBatcher(model, max_batch_size=8, max_wait_ms=0) as batcher:
            running = asyncio.create_task(batcher.submit(["running"]))
            await until(lambda: model.entered.is_set())
            gone = asyncio.create_task(batcher.submit(["gone1", "gone2"]))
            stays = asyncio.create_task(batcher.submit(["stays"]))
            await until(lambda: batcher.queue_depth == 3)
            gone.cancel()
            await asyncio.sleep(0)
            depth_after_cancel = batcher.queue_depth
            gate.set()
            results = await running, await stays
            with pytest.raises(asyncio.CancelledError):
                await gone
            return results, depth_after_cancel, batcher.stats()

    (running, stays), depth_after_cancel, stats = run(main())
    assert running == ["RUNNING"] and stays == ["STAYS"]
    assert depth_after_cancel == 1
    assert model.calls == [["running"], ["stays"]]
    assert (stats.cancelled, stats.queue_depth) == (1, 0)


def test_a_waiter_cancelled_while_its_batch_runs_does_not_disturb_the_batch():
    gate = threading.Event()
    model = Model(gate=gate)

    async def main():
        async with MicroBatcher(model, max_batch_size=8, max_wait_ms=20) as batcher:
            gone = asyncio.create_task(batcher.submit(["gone"]))
            kept = asyncio.create_task(batcher.submit(["kept"]))
            await until(lambda: model.entered.is_set())
            gone.cancel()
            gate.set()
            return await kept, await asyncio.gather(gone, return_exceptions=True)

    kept, (gone,) = run(main())
    assert kept == ["KEPT"] and isinstance(gone, asyncio.CancelledError)
    assert model.calls == [["gone", "kept"]]


def test_close_drains_by_default_and_can_fail_what_is_pending():
    async def drained():
        batcher = MicroBatcher(Model(seconds=0.01), max_batch_size=2, max_wait_ms=1000)
        tasks = [asyncio.create_task(batcher.submit([f"d{i}"])) for i in range(5)]
        await asyncio.sleep(0)
        await batcher.aclose()  # partial batches leave at once instead of waiting the second
        with pytest.raises(BatcherClosed, match="shutting down"):
            await batcher.submit(["late"])
        return [t.result() for t in tasks]

    assert run(drained()) == [[f"D{i}"] for i in range(5)]

    async def failed():
        gate = threading.Event()
        model = Model(gate=gate)
        batcher = MicroBatcher(model, max_batch_size=1, max_wait_ms=0)
        tasks = [asyncio.create_task(batcher.submit([f"f{i}"])) for i in range(3)]
        await until(lambda: model.entered.is_set())
        await batcher.aclose(drain=False)
        gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True), batcher.stats()

    outcomes, stats = run(failed())
    assert [type(o) for o in outcomes] == [BatcherClosed] * 3
    assert "retry elsewhere" in str(outcomes[0])
    assert (stats.queue_depth, stats.running) == (0, 0)


def test_on_batch_reports_sizes_and_latencies_and_a_failing_callback_stops_nothing():
    seen: list[tuple[int, float, bool]] = []

    def on_batch(size: int, seconds: float, ok: bool) -> None:
        seen.append((size, seconds, ok))
        raise RuntimeError("metrics backend down")

    async def main():
        async with MicroBatcher(Model(seconds=0.01), max_batch_size=3, max_wait_ms=0, on_batch=on_batch) as b:
            first = await b.submit(["a", "b", "c", "d"])
            with pytest.raises(ValueError):
                await b.submit(["boom"])
            return first

    assert run(main()) == ["A", "B", "C", "D"]
    assert [(size, ok) for size, _, ok in seen] == [(3, True), (1, True), (1, False)]
    assert all(0.01 <= seconds < 1.0 for _, seconds, _ in seen)


def test_arguments_and_inputs_are_checked():
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatcher(Model(), max_batch_size=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        MicroBatcher(Model(), max_wait_ms=-1)
    with pytest.raises(ValueError, match="max_queue"):
        MicroBatcher(Model(), max_queue=0)

    async def main():
        async with MicroBatcher(Model()) as batcher:
            assert await batcher.submit([]) == []
            with pytest.raises(TypeError):
                await batcher.submit([b"bytes"])  # type: ignore[list-item]
            return batcher.stats().batches

    assert run(main()) == 0
