"""Daily quotas: requests and characters per client and UTC day, atomic check-and-count, the reset at midnight
(a fake clock crossing it), bounded memory, and the Redis store shared by two books (the Redis on 127.0.0.1:6379)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from airflow_provider_llmops.errors import ConfigurationError, LLMOpsError
from airflow_provider_llmops.serving.quotas import (
    MemoryQuotaStore,
    QuotaBook,
    QuotaExceeded,
    QuotaUnavailable,
    RedisQuotaStore,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
# 2026-11-27 23:59:00 UTC: one minute before midnight
BEFORE_MIDNIGHT = datetime(2026, 11, 27, 23, 59, tzinfo=UTC).timestamp()


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(BEFORE_MIDNIGHT)


@pytest.fixture
def redis_store() -> Iterator[RedisQuotaStore]:
    """A store under a prefix unique to this test; its keys are deleted afterwards."""
    store = RedisQuotaStore.from_url(REDIS_URL, prefix=f"llmops-test:quota:{uuid.uuid4().hex}")
    yield store
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{store.prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> object:
    return MemoryQuotaStore() if request.param == "memory" else request.getfixturevalue("redis_store")


def test_requests_are_counted_up_to_the_limit_then_refused(store: object, clock: FakeClock):
    book = QuotaBook(requests_per_day=3, chars_per_day=None, clock=clock, store=store)  # type: ignore[arg-type]
    usages = [book.charge("alice", 1, 10) for _ in range(3)]
    assert [(u.requests, u.chars, u.requests_left, u.chars_left) for u in usages] == [
        (1, 10, 2, None),
        (2, 20, 1, None),
        (3, 30, 0, None),
    ]
    with pytest.raises(QuotaExceeded) as info:
        book.charge("alice", 1, 10)
    error = info.value
    assert isinstance(error, LLMOpsError)
    assert (error.client, error.limit, error.used, error.allowed, error.requested) == ("alice", "requests", 3, 3, 1)
    assert error.retry_after_s == 60
    assert "try again in 60 s" in str(error)
    # the refused charge counted nothing, and other clients are separate
    assert (book.usage("alice").requests, book.usage("alice").chars) == (3, 30)
    assert book.charge("bob").requests == 1


def test_characters_are_a_separate_limit_and_a_refusal_counts_nothing(store: object, clock: FakeClock):
    book = QuotaBook(requests_per_day=100, chars_per_day=1000, clock=clock, store=store)  # type: ignore[arg-type]
    assert book.charge("alice", 1, 990).chars_left == 10
    with pytest.raises(QuotaExceeded) as info:
        book.charge("alice", 1, 11)
    assert (info.value.limit, info.value.used, info.value.allowed, info.value.requested) == ("chars", 990, 1000, 11)
    assert (book.usage("alice").requests, book.usage("alice").chars) == (1, 990)
    assert book.charge("alice", 1, 10).chars == 1000  # exactly the limit fits
    with pytest.raises(QuotaExceeded, match="larger than the whole daily limit"):
        book.charge("bob", 1, 1001)


def test_requests_are_checked_before_characters(store: object, clock: FakeClock):
    book = QuotaBook(requests_per_day=1, chars_per_day=5, clock=clock, store=store)  # type: ignore[arg-type]
    book.charge("alice", 1, 5)
    with pytest.raises(QuotaExceeded) as info:
        book.charge("alice", 1, 5)
    assert info.value.limit == "requests"


def test_counts_start_again_after_utc_midnight(store: object, clock: FakeClock):
    book = QuotaBook(requests_per_day=2, chars_per_day=0, clock=clock, store=store)  # type: ignore[arg-type]
    book.charge("alice")
    book.charge("alice")
    with pytest.raises(QuotaExceeded) as info:
        book.charge("alice")
    assert info.value.retry_after_s == 60
    clock.now += 59.5
    with pytest.raises(QuotaExceeded) as info:
        book.charge("alice")
    assert info.value.retry_after_s == 1  # rounded up, never 0
    clock.now += 0.5  # 00:00:00 UTC
    usage = book.charge("alice")
    assert (usage.requests, usage.resets_in_s) == (1, 86_400)
    clock.now += 86_399.25  # 23:59:59.25 the next day
    assert book.usage("alice").requests == 1
    assert book.usage("alice").resets_in_s == 1


def test_zero_or_none_is_unlimited(store: object, clock: FakeClock):
    book = QuotaBook(requests_per_day=0, chars_per_day=None, clock=clock, store=store)  # type: ignore[arg-type]
    assert book.enabled is False
    for _ in range(50):
        usage = book.charge("alice", 1, 10_000)
    assert (usage.requests_limit, usage.chars_limit, usage.requests_left) == (None, None, None)
    only_chars = QuotaBook(None, 100, clock=clock, store=store)  # type: ignore[arg-type]
    for _ in range(100):
        only_chars.charge("carol", 1, 1)
    with pytest.raises(QuotaExceeded):
        only_chars.charge("carol", 1, 1)


def test_concurrent_charges_never_exceed_the_limit(store: object, clock: FakeClock):
    """8 threads × 25 charges against a limit of 120: exactly 120 are accepted, whatever the interleaving."""
    book = QuotaBook(requests_per_day=120, chars_per_day=None, clock=clock, store=store)  # type: ignore[arg-type]
    accepted: list[int] = []
    refused: list[int] = []

    def worker() -> None:
        for _ in range(25):
            try:
                book.charge("shared", 1, 3)
                accepted.append(1)
            except QuotaExceeded:
                refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert (len(accepted), len(refused)) == (120, 80)
    assert (book.usage("shared").requests, book.usage("shared").chars) == (120, 360)


def test_memory_keeps_only_the_current_day(clock: FakeClock):
    memory = MemoryQuotaStore()
    book = QuotaBook(10, None, clock=clock, store=memory)
    for i in range(500):
        book.charge(f"client-{i}")
    assert len(memory) == 500
    clock.now += 120  # the next UTC day
    book.charge("client-0")
    assert len(memory) == 1
    assert book.usage("client-1").requests == 0


def test_a_clock_stepping_back_across_midnight_does_not_revive_yesterday(clock: FakeClock):
    book = QuotaBook(2, None, clock=clock)
    clock.now += 120
    book.charge("alice")
    clock.now -= 240  # NTP steps the clock back to yesterday
    book.charge("alice")
    with pytest.raises(QuotaExceeded):
        book.charge("alice")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests_per_day": -1, "chars_per_day": None}, "requests_per_day must be a whole number"),
        ({"requests_per_day": None, "chars_per_day": 1.5}, "chars_per_day must be a whole number"),
        ({"requests_per_day": True, "chars_per_day": None}, "requests_per_day must be a whole number"),
    ],
)
def test_limits_are_validated(kwargs: dict[str, object], message: str):
    with pytest.raises(ConfigurationError, match=message):
        QuotaBook(**kwargs)  # type: ignore[arg-type]


def test_charges_are_validated(clock: FakeClock):
    book = QuotaBook(10, 10, clock=clock)
    with pytest.raises(ConfigurationError, match="client's name"):
        book.charge("", 1, 1)
    with pytest.raises(ConfigurationError, match="chars must be a whole number"):
        book.charge("alice", 1, -5)


# -- Redis specifics ---------------------------------------------------------------------------------------------
def test_two_replicas_share_counts_through_redis(redis_store: RedisQuotaStore, clock: FakeClock):
    other = RedisQuotaStore.from_url(REDIS_URL, prefix=redis_store.prefix)
    first = QuotaBook(3, None, clock=clock, store=redis_store)
    second = QuotaBook(3, None, clock=clock, store=other)
    first.charge("alice")
    second.charge("alice")
    assert first.charge("alice").requests == 3
    with pytest.raises(QuotaExceeded):
        second.charge("alice")


def test_redis_keys_hash_the_client_and_expire_after_midnight(redis_store: RedisQuotaStore, clock: FakeClock):
    book = QuotaBook(5, 100, clock=clock, store=redis_store)
    client_name = "alice {tag} with spaces"
    book.charge(client_name, 1, 7)
    raw = redis.Redis.from_url(REDIS_URL)
    keys = [k.decode() for k in raw.scan_iter(match=f"{redis_store.prefix}:*")]
    assert keys == [redis_store.key(int(BEFORE_MIDNIGHT // 86_400), client_name)]
    assert "alice" not in keys[0]
    assert raw.hgetall(keys[0]) == {b"requests": b"1", b"chars": b"7"}
    ttl = raw.ttl(keys[0])
    assert 60 + 3_600 - 5 <= ttl <= 60 + 3_600  # to midnight plus an hour of grace, from the book's clock


def test_an_unreachable_redis_refuses_or_fails_open(clock: FakeClock):
    dead = RedisQuotaStore.from_url("redis://127.0.0.1:1/0", timeout_s=0.5)
    with pytest.raises(QuotaUnavailable, match="cannot be reached"):
        QuotaBook(5, None, clock=clock, store=dead).charge("alice")
    usage = QuotaBook(5, None, clock=clock, store=dead, fail_open=True).charge("alice")
    assert (usage.requests, usage.requests_left) == (0, 5)
