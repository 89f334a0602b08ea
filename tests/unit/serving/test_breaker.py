"""Circuit breaker: closed -> open after N consecutive failures -> half-open after the reset timeout with a single
probe -> closed on success / open on failure; `call`, `acall` and `with`, the on_change callback, thread safety."""

from __future__ import annotations

import asyncio
import threading

import pytest

from airflow_provider_llmops.errors import ConfigurationError, LLMOpsError
from airflow_provider_llmops.serving.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, CircuitOpen


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Boom(RuntimeError):
    pass


def fail() -> None:
    raise Boom("dependency down")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def changes() -> list[tuple[str, str, str]]:
    return []


@pytest.fixture
def breaker(clock: FakeClock, changes: list[tuple[str, str, str]]) -> CircuitBreaker:
    return CircuitBreaker(
        "registry", failure_threshold=3, reset_timeout_s=10, clock=clock, on_change=lambda *c: changes.append(c)
    )


def test_opens_after_n_consecutive_failures(breaker: CircuitBreaker, changes: list[tuple[str, str, str]]):
    for _ in range(2):
        assert breaker.allow() is True
        breaker.record_failure()
    assert (breaker.state, breaker.consecutive_failures) == (CLOSED, 2)
    breaker.record_failure()
    assert breaker.state == OPEN
    assert breaker.allow() is False
    assert changes == [("registry", CLOSED, OPEN)]


def test_a_success_resets_the_consecutive_count(breaker: CircuitBreaker):
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert (breaker.state, breaker.consecutive_failures) == (CLOSED, 2)


def test_half_open_lets_exactly_one_probe_through_then_closes_on_success(
    breaker: CircuitBreaker, clock: FakeClock, changes: list[tuple[str, str, str]]
):
    for _ in range(3):
        breaker.record_failure()
    clock.now += 9.9
    assert breaker.allow() is False
    assert breaker.retry_after_s() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state == OPEN  # the state moves when a call asks
    assert breaker.allow() is True  # the probe
    assert breaker.state == HALF_OPEN
    assert [breaker.allow() for _ in range(5)] == [False] * 5  # only one probe in flight
    breaker.record_success()
    assert (breaker.state, breaker.consecutive_failures) == (CLOSED, 0)
    assert breaker.allow() is True
    assert changes == [("registry", CLOSED, OPEN), ("registry", OPEN, HALF_OPEN), ("registry", HALF_OPEN, CLOSED)]


def test_a_failed_probe_opens_again_for_a_full_timeout(breaker: CircuitBreaker, clock: FakeClock):
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.allow() is True
    clock.now += 3
    breaker.record_failure()
    assert breaker.state == OPEN
    assert breaker.retry_after_s() == pytest.approx(10.0)
    clock.now += 9.99
    assert breaker.allow() is False
    clock.now += 0.01
    assert breaker.allow() is True
    assert breaker.state == HALF_OPEN


def test_a_probe_that_never_reports_is_replaced_after_the_timeout(breaker: CircuitBreaker, clock: FakeClock):
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.allow() is True  # this probe's caller dies without reporting
    clock.now += 9
    assert breaker.allow() is False
    clock.now += 1
    assert breaker.allow() is True
    assert breaker.allow() is False


def test_results_reported_while_open_change_nothing(breaker: CircuitBreaker, clock: FakeClock):
    for _ in range(3):
        breaker.record_failure()
    clock.now += 5
    breaker.record_success()  # a slow call admitted before the circuit opened
    breaker.record_failure()
    assert breaker.state == OPEN
    assert breaker.retry_after_s() == pytest.approx(5.0)


def test_call_raises_circuit_open_with_retry_after_without_calling(breaker: CircuitBreaker, clock: FakeClock):
    calls: list[int] = []
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(fail)
    clock.now += 4
    with pytest.raises(CircuitOpen) as info:
        breaker.call(calls.append, 1)
    assert calls == []
    error = info.value
    assert isinstance(error, LLMOpsError)
    assert (error.name, error.retry_after_s, error.failures) == ("registry", pytest.approx(6.0), 3)
    assert "retry in 6.0 s" in str(error)
    clock.now += 6
    assert breaker.call(lambda x: x * 2, 21) == 42
    assert breaker.state == CLOSED


def test_the_context_manager_records_the_outcome(breaker: CircuitBreaker, clock: FakeClock):
    for _ in range(3):
        with pytest.raises(Boom), breaker:
            fail()
    with pytest.raises(CircuitOpen), breaker:
        pytest.fail("the body must not run while open")
    clock.now += 10
    with breaker:
        pass
    assert breaker.state == CLOSED


def test_ignored_exceptions_count_as_answers(clock: FakeClock):
    breaker = CircuitBreaker("canary", failure_threshold=1, reset_timeout_s=5, clock=clock, ignore=(KeyError,))
    with pytest.raises(KeyError):
        breaker.call({}.__getitem__, "missing")
    assert breaker.state == CLOSED
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.state == OPEN


def test_a_cancelled_probe_is_neither_success_nor_failure(breaker: CircuitBreaker, clock: FakeClock):
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupted)
    assert breaker.state == HALF_OPEN
    assert breaker.allow() is False


def test_acall_wraps_coroutines(breaker: CircuitBreaker, clock: FakeClock):
    async def answer(value: int) -> int:
        await asyncio.sleep(0)
        return value

    async def broken() -> None:
        raise Boom("canary down")

    async def scenario() -> list[object]:
        seen: list[object] = [await breaker.acall(answer, 7)]
        for _ in range(3):
            with pytest.raises(Boom):
                await breaker.acall(broken)
        with pytest.raises(CircuitOpen):
            await breaker.acall(answer, 8)
        clock.now += 10
        seen.append(await breaker.acall(answer, 9))
        return seen

    assert asyncio.run(scenario()) == [7, 9]
    assert breaker.state == CLOSED


def test_a_failing_on_change_callback_does_not_break_calls(clock: FakeClock):
    def broken_metrics(*_: str) -> None:
        raise ValueError("metrics down")

    breaker = CircuitBreaker("registry", 1, 5, clock=clock, on_change=broken_metrics)
    breaker.record_failure()
    assert breaker.state == OPEN


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"reset_timeout_s": 0}, "reset_timeout_s"),
        ({"reset_timeout_s": 10**6}, "reset_timeout_s"),
    ],
)
def test_settings_are_validated(kwargs: dict[str, object], message: str):
    with pytest.raises(ConfigurationError, match=message):
        CircuitBreaker("x", **kwargs)  # type: ignore[arg-type]


def test_concurrent_callers_in_half_open_get_exactly_one_probe(breaker: CircuitBreaker, clock: FakeClock):
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    barrier = threading.Barrier(16)
    admitted: list[bool] = []
    lock = threading.Lock()

    def caller() -> None:
        barrier.wait(timeout=30)
        allowed = breaker.allow()
        with lock:
            admitted.append(allowed)

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(admitted) == [False] * 15 + [True]


def test_concurrent_failures_open_once(clock: FakeClock):
    changes: list[tuple[str, str, str]] = []
    breaker = CircuitBreaker(
        "r", failure_threshold=50, reset_timeout_s=5, clock=clock, on_change=lambda *c: changes.append(c)
    )

    def caller() -> None:
        for _ in range(25):
            breaker.record_failure()

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert breaker.state == OPEN
    assert changes == [("r", CLOSED, OPEN)]
    assert breaker.consecutive_failures == 50
