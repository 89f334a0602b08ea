"""A Redis job queue for latency spikes: `POST /v1/jobs` queues texts, workers (`llmops serve --worker`) run them,
`GET /v1/jobs/{id}` returns the result. A job survives a worker killed in the middle of it.

Keys (one namespace per deployment; the `{namespace}` hash tag keeps them in one Redis Cluster slot):

    {ns}:jobs:pending        list of job ids waiting (LPUSH in, taken from the right: first in, first out)
    {ns}:jobs:processing     list of job ids a worker has taken
    {ns}:jobs:leases         sorted set: job id -> lease deadline (Redis server clock, seconds)
    {ns}:jobs:job:<id>       hash: status, texts (JSON), client, attempts, created_at, started_at, finished_at,
                             result (JSON) or error, token (of the current claim)

Reliable queue. `claim` moves an id from `pending` to `processing` atomically (BLMOVE), then, in one script,
counts the attempt, marks the job `running` with a fresh claim token and records its lease deadline (now + lease_s).
`complete`/`fail` (one script each) store the outcome only while the caller's token is still the job's token, drop
the texts, set the result's time to live and take the id out of `processing` and `leases`. A worker that dies leaves
its id in `processing` with a deadline that passes: `requeue_expired` (any worker runs it every poll) puts such ids
back at the head of `pending`, or, once a job has been claimed `max_attempts` times, marks it `failed`. An id found
in `processing` without a lease (a worker died between the move and the lease) gets a lease from the first
`requeue_expired` that sees it, so it is recovered one lease later. A live worker extends its lease every lease_s/3
while its handler runs (`run_worker` does it in a heartbeat thread), so only dead or stuck workers lose jobs.
A slow worker whose lease expired anyway cannot overwrite the result of the worker that took the job over: its
token no longer matches and `complete` returns False.

Bounds. `enqueue` checks the number of texts, their total length and the client name, and refuses with `Overloaded`
when `max_pending` jobs wait. A queued job's hash expires after `result_ttl_s` (a job nobody ran for that long is
dropped), a finished one `result_ttl_s` after it finished; texts are deleted once a job is finished. Job ids from
users are checked (32 lowercase hex digits) before they reach Redis, and `get(job_id, client=...)` shows a job only
to the client that queued it. Times are Redis server time, so workers on several machines agree on deadlines.
Redis being unreachable raises `JobQueueUnavailable` (its message names the host, never a password).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from airflow_provider_llmops.errors import ConfigurationError, LLMOpsError
from airflow_provider_llmops.serving.batching import Overloaded

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_CLIENT_CHARS = 256
MAX_ERROR_CHARS = 500
REQUEUE_BATCH = 100
"""At most this many expired leases are handled per `requeue_expired` call (it runs every poll)."""

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 "

# KEYS: pending, job | ARGV: max_pending, ttl, texts, client, id
_ENQUEUE = (
    _NOW
    + """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], 'status', 'queued', 'texts', ARGV[3], 'client', ARGV[4], 'attempts', 0, 'created_at', now)
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[1], ARGV[5])
return 1
"""
)

# KEYS: processing, leases, job | ARGV: id, lease_s, token
_CLAIM = (
    _NOW
    + """
if redis.call('HGET', KEYS[3], 'status') ~= 'queued' then
  redis.call('LREM', KEYS[1], 1, ARGV[1])
  return false
end
local attempts = redis.call('HINCRBY', KEYS[3], 'attempts', 1)
redis.call('HSET', KEYS[3], 'status', 'running', 'token', ARGV[3], 'started_at', now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
return {redis.call('HGET', KEYS[3], 'texts'), redis.call('HGET', KEYS[3], 'client'), attempts}
"""
)

# KEYS: processing, leases, job | ARGV: id, token, status, field, value, ttl
_FINISH = (
    _NOW
    + """
if redis.call('HGET', KEYS[3], 'status') ~= 'running' or redis.call('HGET', KEYS[3], 'token') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[3], 'status', ARGV[3], ARGV[4], ARGV[5], 'finished_at', now)
redis.call('HDEL', KEYS[3], 'texts', 'token')
redis.call('EXPIRE', KEYS[3], ARGV[6])
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""
)

# KEYS: leases, job | ARGV: id, token, lease_s
_EXTEND = (
    _NOW
    + """
if redis.call('HGET', KEYS[2], 'status') ~= 'running' or redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)

# KEYS: pending, processing, leases | ARGV: lease_s, max_attempts, ttl, job key prefix, limit
_REQUEUE = (
    _NOW
    + """
for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, 999)) do
  if not redis.call('ZSCORE', KEYS[3], id) then redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), id) end
end
local requeued, failed = 0, 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))) do
  redis.call('ZREM', KEYS[3], id)
  local removed = redis.call('LREM', KEYS[2], 1, id)
  local key = ARGV[4] .. id
  local status = redis.call('HGET', key, 'status')
  if removed > 0 and (status == 'running' or status == 'queued') then
    local attempts = tonumber(redis.call('HGET', key, 'attempts') or '0')
    if status == 'running' and attempts >= tonumber(ARGV[2]) then
      redis.call('HSET', key, 'status', 'failed', 'finished_at', now, 'error',
        'no worker finished this job in ' .. attempts .. ' attempts (each worker died or overran its lease); ' ..
        'submit it again, and check the workers if this repeats')
      redis.call('HDEL', key, 'texts', 'token')
      redis.call('EXPIRE', key, ARGV[3])
      failed = failed + 1
    else
      redis.call('HSET', key, 'status', 'queued')
      redis.call('HDEL', key, 'token')
      redis.call('RPUSH', KEYS[1], id)
      requeued = requeued + 1
    end
  end
end
return {requeued, failed}
"""
)


class InvalidJobRequest(LLMOpsError, ValueError):
    """A job id or a job's texts are not acceptable (HTTP 404/413/422): the message says which limit."""


class JobQueueUnavailable(LLMOpsError):
    """Redis cannot be reached or answered with an error (HTTP 503): nothing was queued or read."""


@dataclass(frozen=True)
class Job:
    """A claimed job: what a worker's handler gets. `token` identifies this claim (for complete/fail/extend)."""

    id: str
    texts: list[str]
    client: str
    attempts: int
    token: str


class _Event(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = ...) -> bool: ...


def validate_job_id(job_id: object) -> str:
    """The id itself when it is 32 lowercase hex digits (what `enqueue` makes), else `InvalidJobRequest`."""
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        raise InvalidJobRequest("a job id is the 32 lowercase hex digits that POST /v1/jobs returned")
    return job_id


def _safe_location(url: str) -> str:
    """scheme://host:port/db of a Redis URL, without user or password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


class RedisJobQueue:
    """Queue, claim and finish jobs on Redis (see the module docstring for the keys and the guarantees)."""

    def __init__(
        self,
        url: str,
        namespace: str = "llmops",
        lease_s: float = 30.0,
        result_ttl_s: int = 86400,
        max_texts: int = 256,
        max_chars: int = 200_000,
        *,
        max_attempts: int = 3,
        max_pending: int = 10_000,
        socket_timeout_s: float = 10.0,
    ) -> None:
        if not NAMESPACE.match(namespace):
            raise ConfigurationError(f"job queue namespace {namespace!r}: use 1-64 letters, digits, '_', '.', '-'")
        if not lease_s > 0:
            raise ConfigurationError(f"job lease_s must be > 0, got {lease_s}")
        for name, value in (
            ("result_ttl_s", result_ttl_s),
            ("max_texts", max_texts),
            ("max_chars", max_chars),
            ("max_attempts", max_attempts),
            ("max_pending", max_pending),
        ):
            if int(value) < 1:
                raise ConfigurationError(f"job queue {name} must be at least 1, got {value}")
        if not socket_timeout_s > 1:
            raise ConfigurationError(f"job queue socket_timeout_s must be > 1, got {socket_timeout_s}")
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - the dev environment has it
            raise ConfigurationError(
                "a Redis URL is configured for the job queue but the redis package is missing: "
                "pip install 'airflow-provider-llmops[redis]'"
            ) from exc
        self.location = _safe_location(url)
        self.namespace = namespace
        self.lease_s = float(lease_s)
        self.result_ttl_s = int(result_ttl_s)
        self.max_texts = int(max_texts)
        self.max_chars = int(max_chars)
        self.max_attempts = int(max_attempts)
        self.max_pending = int(max_pending)
        self.socket_timeout_s = float(socket_timeout_s)
        self._redis_error = redis.exceptions.RedisError
        self._r = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=self.socket_timeout_s,
            socket_connect_timeout=min(5.0, self.socket_timeout_s),
            health_check_interval=30,
        )
        prefix = f"{{{namespace}}}:jobs:"
        self.job_prefix = prefix + "job:"
        self.pending_key = prefix + "pending"
        self.processing_key = prefix + "processing"
        self.leases_key = prefix + "leases"
        self._enqueue = self._r.register_script(_ENQUEUE)
        self._claim = self._r.register_script(_CLAIM)
        self._finish = self._r.register_script(_FINISH)
        self._extend = self._r.register_script(_EXTEND)
        self._requeue = self._r.register_script(_REQUEUE)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._redis_error as exc:
            raise JobQueueUnavailable(
                f"the Redis job queue at {self.location} failed to {what} ({type(exc).__name__}); "
                "check that Redis is up and reachable"
            ) from None

    # the service's side -----------------------------------------------------------------------------------------

    def enqueue(self, texts: Sequence[str], client: str) -> str:
        """Queue `texts` for `client`; the new job's id (uuid4 hex). `InvalidJobRequest` for texts or a client
        outside the limits, `Overloaded` when `max_pending` jobs already wait."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidJobRequest("a job holds a list of texts")
        texts = list(texts)
        if not 1 <= len(texts) <= self.max_texts:
            raise InvalidJobRequest(f"a job holds 1 to {self.max_texts} texts, this one has {len(texts)}")
        if not all(isinstance(t, str) and t for t in texts):
            raise InvalidJobRequest("every text of a job must be a non-empty string")
        chars = sum(len(t) for t in texts)
        if chars > self.max_chars:
            raise InvalidJobRequest(f"a job holds at most {self.max_chars} characters, this one has {chars}")
        if not isinstance(client, str) or not 1 <= len(client) <= MAX_CLIENT_CHARS:
            raise InvalidJobRequest(f"the client name must be 1 to {MAX_CLIENT_CHARS} characters")
        job_id = uuid.uuid4().hex
        payload = json.dumps(texts, ensure_ascii=False)
        args = [self.max_pending, self.result_ttl_s, payload, client, job_id]
        if not self._call("queue a job", self._enqueue, keys=[self.pending_key, self.job_prefix + job_id], args=args):
            raise Overloaded(f"job queue {self.namespace}", self.max_pending, self.max_pending, self.lease_s)
        return job_id

    def get(self, job_id: str, client: str | None = None) -> dict[str, Any] | None:
        """{id, status (queued|running|done|failed), attempts, created_at, [started_at], [finished_at], [result],
        [error]} or None for an unknown or expired job, or one that `client` (when given) did not queue."""
        job_id = validate_job_id(job_id)
        fields = self._call("read a job", self._r.hgetall, self.job_prefix + job_id)
        if not fields or (client is not None and fields.get("client") != client):
            return None
        out: dict[str, Any] = {"id": job_id, "status": fields["status"], "attempts": int(fields.get("attempts", 0))}
        for name in ("created_at", "started_at", "finished_at"):
            if name in fields:
                out[name] = float(fields[name])
        if "result" in fields:
            out["result"] = json.loads(fields["result"])
        if "error" in fields:
            out["error"] = fields["error"]
        return out

    def depth(self) -> dict[str, int]:
        """Jobs waiting and jobs taken by a worker (for metrics)."""
        pipe = self._r.pipeline(transaction=False)
        pipe.llen(self.pending_key)
        pipe.llen(self.processing_key)
        pending, processing = self._call("read the queue depth", pipe.execute)
        return {"pending": int(pending), "processing": int(processing)}

    # the worker's side ------------------------------------------------------------------------------------------

    def claim(self, timeout_s: float = 1.0) -> Job | None:
        """The oldest waiting job, now `running` under a lease of `lease_s`, or None after `timeout_s` (at most
        `socket_timeout_s - 1`) without one."""
        deadline = time.monotonic() + min(max(timeout_s, 0.0), self.socket_timeout_s - 1)
        for _ in range(REQUEUE_BATCH):  # ids whose job expired or finished are skipped; bounded
            left = deadline - time.monotonic()
            if left > 0:
                job_id = self._call(
                    "take a job",
                    self._r.blmove,
                    self.pending_key,
                    self.processing_key,
                    max(left, 0.01),
                    "RIGHT",
                    "LEFT",
                )
            else:
                job_id = self._call("take a job", self._r.lmove, self.pending_key, self.processing_key, "RIGHT", "LEFT")
            if job_id is None:
                return None
            token = uuid.uuid4().hex
            claimed = self._call(
                "claim a job",
                self._claim,
                keys=[self.processing_key, self.leases_key, self.job_prefix + job_id],
                args=[job_id, self.lease_s, token],
            )
            if claimed:
                texts, client, attempts = claimed
                return Job(id=job_id, texts=json.loads(texts), client=client, attempts=int(attempts), token=token)
        return None

    def _finish_job(self, job: Job, status: str, field: str, value: str) -> bool:
        keys = [self.processing_key, self.leases_key, self.job_prefix + job.id]
        args = [job.id, job.token, status, field, value, self.result_ttl_s]
        return bool(self._call(f"record a job as {status}", self._finish, keys=keys, args=args))

    def complete(self, job: Job, result: Any) -> bool:
        """Store `result` (JSON-serializable; TypeError otherwise) as the job's outcome. False when this claim is
        no longer the job's (its lease expired and the job was requeued or failed): the result is dropped."""
        return self._finish_job(job, "done", "result", json.dumps(result, ensure_ascii=False))

    def fail(self, job: Job, error: str) -> bool:
        """Mark the job failed with `error` (shown to its client: say what went wrong, no internals). False as in
        `complete`."""
        return self._finish_job(job, "failed", "error", str(error)[:MAX_ERROR_CHARS])

    def extend_lease(self, job: Job) -> bool:
        """Push the lease deadline to now + lease_s; False when this claim is no longer the job's."""
        keys = [self.leases_key, self.job_prefix + job.id]
        return bool(self._call("extend a lease", self._extend, keys=keys, args=[job.id, job.token, self.lease_s]))

    def requeue_expired(self) -> tuple[int, int]:
        """Put jobs whose lease expired back at the head of the queue, or fail those claimed `max_attempts` times;
        (requeued, failed)."""
        keys = [self.pending_key, self.processing_key, self.leases_key]
        args = [self.lease_s, self.max_attempts, self.result_ttl_s, self.job_prefix, REQUEUE_BATCH]
        requeued, failed = self._call("requeue expired jobs", self._requeue, keys=keys, args=args)
        if requeued or failed:
            log.warning(
                "job queue %s: %d job(s) requeued, %d failed after lease expiry", self.namespace, requeued, failed
            )
        return int(requeued), int(failed)

    def ping(self) -> None:
        """Raise `JobQueueUnavailable` unless Redis answers (for readiness checks; the constructor connects lazily)."""
        self._call("answer a ping", self._r.ping)

    def close(self) -> None:
        self._r.close()


def _public_error(exc: Exception) -> str:
    """What a job's client may see: our own errors say what to do; anything else only names its kind."""
    if isinstance(exc, LLMOpsError):
        return str(exc)
    return f"the model failed on this job ({type(exc).__name__}); submit it again or contact the operator"


def _run_one(queue: RedisJobQueue, job: Job, handler: Callable[[Job], Any]) -> None:
    finished = threading.Event()

    def heartbeat() -> None:
        while not finished.wait(queue.lease_s / 3):
            try:
                if not queue.extend_lease(job):
                    return
            except JobQueueUnavailable as exc:
                log.warning("%s", exc)

    beat = threading.Thread(target=heartbeat, name=f"llmops-job-lease-{job.id}", daemon=True)
    beat.start()
    try:
        try:
            result = handler(job)
        except Exception as exc:
            log.exception("job %s (attempt %d) failed", job.id, job.attempts)
            recorded = queue.fail(job, _public_error(exc))
        else:
            try:
                recorded = queue.complete(job, result)
            except (TypeError, ValueError):
                log.exception("job %s: the handler's result is not JSON-serializable", job.id)
                recorded = queue.fail(job, "the result of this job could not be stored; contact the operator")
        if not recorded:
            log.warning("job %s: lease lost before the outcome was stored (another worker has it)", job.id)
    except JobQueueUnavailable as exc:  # the lease will expire and another worker retries the job
        log.warning("job %s: outcome not stored: %s", job.id, exc)
    finally:
        finished.set()
        beat.join(timeout=5)


def run_worker(
    queue: RedisJobQueue,
    handler: Callable[[Job], Any],
    stop_event: _Event,
    poll_s: float = 1.0,
    *,
    max_jobs: int | None = None,
) -> int:
    """Claim and run jobs until `stop_event` is set (checked at least every `poll_s`) or `max_jobs` ran; the number
    run. `handler(job)` returns the job's JSON-serializable result; an exception fails the job (an LLMOpsError's
    message is shown to the client, anything else only by its type). Expired leases are requeued every `poll_s`.
    Redis outages are logged and retried every `poll_s`; the loop never ends on its own."""
    ran = 0
    next_requeue = 0.0
    while not stop_event.is_set() and (max_jobs is None or ran < max_jobs):
        try:
            if time.monotonic() >= next_requeue:
                queue.requeue_expired()
                next_requeue = time.monotonic() + poll_s
            job = queue.claim(timeout_s=poll_s)
        except JobQueueUnavailable as exc:
            log.warning("%s", exc)
            stop_event.wait(poll_s)
            continue
        if job is not None:
            _run_one(queue, job, handler)
            ran += 1
    return ran
