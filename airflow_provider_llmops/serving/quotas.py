"""Per-client daily quotas for the inference service: requests and characters per UTC day, client = the token's
subject. No Airflow, no FastAPI.

`QuotaBook.charge(client, requests, chars)` checks and counts in one atomic step: when the charge fits within both
limits it is counted and the usage returned; otherwise nothing is counted and `QuotaExceeded` says which limit
(requests first), the usage, and `retry_after_s`, the whole seconds to the next UTC midnight (at least 1), when
the counts start again from zero. A charge fits when `used + requested <= limit`; a limit of 0 or None is
unlimited. The day is `floor(clock() / 86400)` of the injected clock (POSIX time, UTC, no leap seconds).

Stores:
* `MemoryQuotaStore` (default): a dict under a lock, one process. Only the current day is kept: the first charge
  of a new day drops every older count, so memory is bounded by the clients seen in one day.
* `RedisQuotaStore`: replicas share counts. One hash per client and day (`<prefix>:<day>:<sha256(client)[:32]>`,
  fields `requests` and `chars`), checked and incremented by one Lua script (HINCRBY then EXPIRE, atomic in
  Redis), expiring one hour after its UTC midnight. The expiry is relative (seconds computed from the same clock
  as the day), so a replica's clock offset to the Redis server never expires a live count early. The `redis`
  package is optional: imported only when this store is built.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_llmops.errors import ConfigurationError, LLMOpsError

DAY_S = 86_400
REDIS_GRACE_S = 3_600
LIMITS = ("requests", "chars")


class QuotaExceeded(LLMOpsError):
    """A client has spent a daily limit; nothing of the refused charge was counted."""

    def __init__(self, client: str, limit: str, used: int, allowed: int, requested: int, retry_after_s: int) -> None:
        self.client = client
        self.limit = limit
        self.used = used
        self.allowed = allowed
        self.requested = requested
        self.retry_after_s = retry_after_s
        unit = "requests" if limit == "requests" else "characters"
        hint = (
            "this single request is larger than the whole daily limit; split it"
            if requested > allowed
            else f"try again in {retry_after_s} s (after 00:00 UTC)"
        )
        super().__init__(
            f"daily quota of {allowed} {unit} spent for client {client!r:.100}: {used} used, {requested} more "
            f"requested; {hint}"
        )


class QuotaUnavailable(LLMOpsError):
    """The shared quota store cannot be reached (and the book is not configured to fail open)."""


@dataclass(frozen=True)
class Usage:
    """A client's counts for the current UTC day after a charge, with the limits (None = unlimited)."""

    requests: int
    chars: int
    requests_limit: int | None
    chars_limit: int | None
    resets_in_s: int

    @property
    def requests_left(self) -> int | None:
        return None if self.requests_limit is None else max(0, self.requests_limit - self.requests)

    @property
    def chars_left(self) -> int | None:
        return None if self.chars_limit is None else max(0, self.chars_limit - self.chars)


class QuotaStore(Protocol):
    """Checks and counts one charge atomically: returns (refused limit or None, requests used, chars used), the
    counts after the charge when accepted, before it when refused. A limit of 0 means unlimited."""

    def charge(
        self, day: int, client: str, requests: int, chars: int, limits: tuple[int, int], ttl_s: int
    ) -> tuple[str | None, int, int]: ...

    def usage(self, day: int, client: str) -> tuple[int, int]: ...


class MemoryQuotaStore:
    """Counts of the current UTC day in a dict (one process); older days are dropped when a new day starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._day: int | None = None
        self._counts: dict[str, list[int]] = {}

    def charge(
        self, day: int, client: str, requests: int, chars: int, limits: tuple[int, int], ttl_s: int
    ) -> tuple[str | None, int, int]:
        with self._lock:
            if day != self._day:
                if self._day is not None and day < self._day:
                    # a clock stepped back across midnight: count into the newer day rather than resurrect one
                    day = self._day
                else:
                    self._day, self._counts = day, {}
            counts = self._counts.setdefault(client, [0, 0])
            for index, (name, requested) in enumerate(zip(LIMITS, (requests, chars), strict=True)):
                if limits[index] and counts[index] + requested > limits[index]:
                    return name, counts[0], counts[1]
            counts[0] += requests
            counts[1] += chars
            return None, counts[0], counts[1]

    def usage(self, day: int, client: str) -> tuple[int, int]:
        with self._lock:
            if day != self._day:
                return 0, 0
            counts = self._counts.get(client, [0, 0])
            return counts[0], counts[1]

    def __len__(self) -> int:
        """Clients counted today (what bounds this store's memory)."""
        with self._lock:
            return len(self._counts)


# KEYS[1] the client's hash for the day; ARGV: requests, chars, requests limit, chars limit (0 = none), ttl seconds
_CHARGE_LUA = """
local used_r = tonumber(redis.call('HGET', KEYS[1], 'requests') or '0')
local used_c = tonumber(redis.call('HGET', KEYS[1], 'chars') or '0')
local req, chars = tonumber(ARGV[1]), tonumber(ARGV[2])
local lim_r, lim_c = tonumber(ARGV[3]), tonumber(ARGV[4])
if lim_r > 0 and used_r + req > lim_r then return {1, used_r, used_c} end
if lim_c > 0 and used_c + chars > lim_c then return {2, used_r, used_c} end
used_r = redis.call('HINCRBY', KEYS[1], 'requests', req)
used_c = redis.call('HINCRBY', KEYS[1], 'chars', chars)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return {0, used_r, used_c}
"""


class RedisQuotaStore:
    """Counts in Redis, shared by every replica pointed at the same server and prefix."""

    def __init__(self, client: Any, prefix: str = "llmops:quota") -> None:
        if not prefix or any(c.isspace() for c in prefix):
            raise ConfigurationError(f"quota key prefix must be non-empty without spaces, got {prefix!r}")
        self._redis = client
        self.prefix = prefix
        self._script = client.register_script(_CHARGE_LUA)

    @classmethod
    def from_url(cls, url: str, prefix: str = "llmops:quota", timeout_s: float = 2.0) -> RedisQuotaStore:
        """A store on `redis://[user:password@]host:port/db` (or `rediss://` for TLS). Needs the `redis` package."""
        try:
            import redis
        except ImportError:
            raise ConfigurationError(
                "a Redis quota store needs the redis package: pip install 'airflow-provider-llmops[redis]'"
            ) from None
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return cls(client, prefix)

    def key(self, day: int, client: str) -> str:
        digest = hashlib.sha256(client.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{self.prefix}:{day}:{digest}"

    def charge(
        self, day: int, client: str, requests: int, chars: int, limits: tuple[int, int], ttl_s: int
    ) -> tuple[str | None, int, int]:
        refused, used_r, used_c = self._script(
            keys=[self.key(day, client)], args=[requests, chars, limits[0], limits[1], ttl_s]
        )
        return (None, "requests", "chars")[int(refused)], int(used_r), int(used_c)

    def usage(self, day: int, client: str) -> tuple[int, int]:
        requests, chars = self._redis.hmget(self.key(day, client), ["requests", "chars"])
        return int(requests or 0), int(chars or 0)


def _limit(name: str, value: int | None) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{name} must be a whole number >= 0 (0 or None: unlimited), got {value!r}")
    return value


class QuotaBook:
    """Daily quotas per client. `store` defaults to a `MemoryQuotaStore`; pass `RedisQuotaStore.from_url(...)` to
    share counts between replicas. With `fail_open`, a store error lets the charge through (returning usage
    counted as 0) instead of raising `QuotaUnavailable`."""

    def __init__(
        self,
        requests_per_day: int | None,
        chars_per_day: int | None,
        clock: Callable[[], float] = time.time,
        store: QuotaStore | None = None,
        fail_open: bool = False,
    ) -> None:
        self.requests_per_day = _limit("requests_per_day", requests_per_day)
        self.chars_per_day = _limit("chars_per_day", chars_per_day)
        self.clock = clock
        self.store: QuotaStore = store if store is not None else MemoryQuotaStore()
        self.fail_open = fail_open

    @property
    def enabled(self) -> bool:
        return bool(self.requests_per_day or self.chars_per_day)

    def _now(self) -> tuple[int, int]:
        """(UTC day number, whole seconds to the next UTC midnight, at least 1)."""
        now = float(self.clock())
        day = math.floor(now / DAY_S)
        return day, max(1, math.ceil((day + 1) * DAY_S - now))

    def _usage(self, requests: int, chars: int, resets_in_s: int) -> Usage:
        return Usage(requests, chars, self.requests_per_day or None, self.chars_per_day or None, resets_in_s)

    def charge(self, client: str, requests: int = 1, chars: int = 0) -> Usage:
        """Count `requests` and `chars` against the client's day, or raise `QuotaExceeded` counting nothing."""
        if not isinstance(client, str) or not client:
            raise ConfigurationError("a quota charge needs the client's name (the token subject)")
        for name, value in (("requests", requests), ("chars", chars)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"a quota charge's {name} must be a whole number >= 0, got {value!r}")
        day, resets_in_s = self._now()
        if not self.enabled:
            return self._usage(0, 0, resets_in_s)
        limits = (self.requests_per_day, self.chars_per_day)
        try:
            refused, used_r, used_c = self.store.charge(
                day, client, requests, chars, limits, resets_in_s + REDIS_GRACE_S
            )
        except LLMOpsError:
            raise
        except Exception as exc:  # the store's client library raises its own errors (connection, timeout)
            if self.fail_open:
                return self._usage(0, 0, resets_in_s)
            raise QuotaUnavailable(
                f"the quota store cannot be reached ({type(exc).__name__}); requests are refused until it is back"
            ) from None
        if refused is not None:
            index = LIMITS.index(refused)
            raise QuotaExceeded(
                client, refused, (used_r, used_c)[index], limits[index], (requests, chars)[index], resets_in_s
            )
        return self._usage(used_r, used_c, resets_in_s)

    def usage(self, client: str) -> Usage:
        """The client's counts today, without charging."""
        day, resets_in_s = self._now()
        try:
            requests, chars = self.store.usage(day, client)
        except Exception as exc:  # as in charge: the store's own connection and timeout errors
            raise QuotaUnavailable(f"the quota store cannot be reached ({type(exc).__name__})") from None
        return self._usage(requests, chars, resets_in_s)
