"""The Redis job queue against the real Redis on 127.0.0.1:6379: the job life cycle, leases, a worker process killed
mid-job, the attempts limit, input checks. Each test uses its own namespace and deletes its keys afterwards; every
wait is bounded."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from airflow_provider_llmops.errors import LLMOpsError
from airflow_provider_llmops.serving.batching import Overloaded
from airflow_provider_llmops.serving.jobs import (
    InvalidJobRequest,
    Job,
    JobQueueUnavailable,
    RedisJobQueue,
    run_worker,
    validate_job_id,
)

URL = "redis://127.0.0.1:6379/0"
BOUND_S = 15.0
MP = multiprocessing.get_context("fork")


def _wipe(namespace: str) -> None:
    client = redis.Redis.from_url(URL)
    keys = list(client.scan_iter(match=f"{{{namespace}}}:*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    _wipe(name)


def make(namespace: str, **kwargs) -> RedisJobQueue:
    return RedisJobQueue(URL, namespace=namespace, **kwargs)


def wait_for(predicate, timeout_s: float = BOUND_S, step_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(step_s)


def test_a_job_goes_from_queued_to_running_to_done(namespace: str):
    queue = make(namespace, result_ttl_s=600)
    queue.ping()
    job_id = queue.enqueue(["my card was charged twice", "reset password"], client="alice")
    assert validate_job_id(job_id) == job_id
    queued = queue.get(job_id)
    assert (queued["status"], queued["attempts"]) == ("queued", 0) and "result" not in queued
    assert queue.depth() == {"pending": 1, "processing": 0}

    job = queue.claim(timeout_s=1)
    assert isinstance(job, Job)
    assert (job.id, job.texts, job.client, job.attempts) == (
        job_id, ["my card was charged twice", "reset password"], "alice", 1
    )  # fmt: skip
    assert queue.get(job_id)["status"] == "running"
    assert queue.depth() == {"pending": 0, "processing": 1}

    assert queue.complete(job, [{"label": "billing"}, {"label": "account"}]) is True
    done = queue.get(job_id)
    assert (done["status"], done["attempts"], done["result"]) == (
        "done",
        1,
        [{"label": "billing"}, {"label": "account"}],
    )
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]
    assert queue.depth() == {"pending": 0, "processing": 0}
    raw = redis.Redis.from_url(URL, decode_responses=True)
    assert "texts" not in raw.hgetall(queue.job_prefix + job_id)  # no raw text kept once finished
    assert 0 < raw.ttl(queue.job_prefix + job_id) <= 600
    assert raw.zcard(queue.leases_key) == 0
    assert queue.complete(job, ["again"]) is False  # finished once only


def test_jobs_are_claimed_first_in_first_out_and_claim_times_out(namespace: str):
    queue = make(namespace)
    ids = [queue.enqueue([f"t{i}"], client="c") for i in range(3)]
    assert [queue.claim(timeout_s=1).id for _ in range(3)] == ids
    start = time.monotonic()
    assert queue.claim(timeout_s=0.3) is None
    assert 0.25 <= time.monotonic() - start < 2.0
    assert queue.claim(timeout_s=0) is None  # no wait at all


def test_a_failed_job_says_why(namespace: str):
    queue = make(namespace)
    job_id = queue.enqueue(["x"], client="c")
    job = queue.claim(timeout_s=1)
    assert queue.fail(job, "bad input " + "!" * 2000) is True
    failed = queue.get(job_id)
    assert failed["status"] == "failed" and failed["error"].startswith("bad input") and len(failed["error"]) == 500


def test_a_job_is_shown_only_to_its_client(namespace: str):
    queue = make(namespace)
    job_id = queue.enqueue(["x"], client="alice")
    assert queue.get(job_id, client="alice")["status"] == "queued"
    assert queue.get(job_id, client="mallory") is None
    assert queue.get(uuid.uuid4().hex) is None


@pytest.mark.parametrize(
    "job_id",
    [
        "",
        "abc",
        "A" * 32,
        "g" * 32,
        "0" * 31,
        "0" * 33,
        "*",
        "0" * 30 + "*?",
        "../" + "0" * 29,
        None,
        12345,
        ["0" * 32],
    ],
)
def test_invalid_job_ids_are_refused_before_redis_is_asked(job_id):
    unreachable = RedisJobQueue("redis://127.0.0.1:1/0", namespace="never-used")
    with pytest.raises(InvalidJobRequest, match="32 lowercase hex digits"):
        unreachable.get(job_id)
    with pytest.raises(JobQueueUnavailable):  # a valid id would have reached (the missing) Redis
        unreachable.get("0" * 32)


def test_enqueue_checks_its_limits(namespace: str):
    queue = make(namespace, max_texts=3, max_chars=10, max_pending=2)
    for texts, match in [
        ([], "1 to 3 texts"),
        (["a"] * 4, "1 to 3 texts"),
        (["12345", "678901"], "at most 10 characters, this one has 11"),
        (["ok", ""], "non-empty string"),
        (["ok", 3], "non-empty string"),
        ("a string", "list of texts"),
    ]:
        with pytest.raises(InvalidJobRequest, match=match):
            queue.enqueue(texts, client="c")
    with pytest.raises(InvalidJobRequest, match="client name"):
        queue.enqueue(["ok"], client="")
    with pytest.raises(InvalidJobRequest, match="client name"):
        queue.enqueue(["ok"], client="c" * 257)
    assert queue.depth()["pending"] == 0
    queue.enqueue(["a"], client="c")
    queue.enqueue(["b"], client="c")
    with pytest.raises(Overloaded) as full:
        queue.enqueue(["c"], client="c")
    assert isinstance(full.value, LLMOpsError) and full.value.retry_after_s == queue.lease_s
    assert queue.depth()["pending"] == 2


def test_settings_are_checked():
    for kwargs, match in [
        ({"namespace": "a b"}, "namespace"),
        ({"namespace": "x" * 65}, "namespace"),
        ({"lease_s": 0}, "lease_s"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"socket_timeout_s": 1}, "socket_timeout_s"),
    ]:
        with pytest.raises(LLMOpsError, match=match):
            RedisJobQueue(URL, **kwargs)


def test_an_expired_lease_is_requeued_then_failed_at_the_attempts_limit(namespace: str):
    queue = make(namespace, lease_s=0.3, max_attempts=2)
    job_id = queue.enqueue(["x"], client="c")
    first = queue.claim(timeout_s=1)
    assert queue.requeue_expired() == (0, 0)  # lease still valid
    time.sleep(0.4)
    assert queue.requeue_expired() == (1, 0)
    assert (queue.get(job_id)["status"], queue.get(job_id)["attempts"]) == ("queued", 1)
    assert queue.complete(first, ["late"]) is False  # the first claim lost its lease: its result is dropped

    second = queue.claim(timeout_s=1)
    assert (second.id, second.attempts) == (job_id, 2)
    time.sleep(0.4)
    assert queue.requeue_expired() == (0, 1)
    failed = queue.get(job_id)
    assert (failed["status"], failed["attempts"]) == ("failed", 2)
    assert "2 attempts" in failed["error"]
    assert queue.complete(second, ["too late"]) is False
    assert queue.depth() == {"pending": 0, "processing": 0}
    assert queue.claim(timeout_s=0) is None


def test_a_slow_worker_cannot_overwrite_the_result_of_the_worker_that_took_over(namespace: str):
    queue = make(namespace, lease_s=0.2)
    job_id = queue.enqueue(["x"], client="c")
    slow = queue.claim(timeout_s=1)
    time.sleep(0.3)
    assert queue.requeue_expired() == (1, 0)
    fast = queue.claim(timeout_s=1)
    assert fast.token != slow.token
    assert queue.extend_lease(slow) is False
    assert queue.complete(slow, "slow") is False  # while the new owner still runs it
    assert queue.fail(slow, "slow") is False
    assert queue.complete(fast, "fast") is True
    assert queue.get(job_id)["result"] == "fast"


def test_a_job_left_in_processing_without_a_lease_is_recovered(namespace: str):
    """A worker that died between taking the id and recording its lease."""
    queue = make(namespace, lease_s=0.2)
    job_id = queue.enqueue(["x"], client="c")
    raw = redis.Redis.from_url(URL, decode_responses=True)
    assert raw.lmove(queue.pending_key, queue.processing_key, "RIGHT", "LEFT") == job_id
    assert queue.requeue_expired() == (0, 0)  # first sight: it gets a lease
    assert raw.zscore(queue.leases_key, job_id) is not None
    time.sleep(0.3)
    assert queue.requeue_expired() == (1, 0)
    job = queue.claim(timeout_s=1)
    assert (job.id, job.attempts) == (job_id, 1)  # the lost move was not an attempt


def _sleepy_worker(namespace: str, started, lease_s: float) -> None:
    queue = RedisJobQueue(URL, namespace=namespace, lease_s=lease_s)

    def handler(job: Job):
        started.set()
        time.sleep(60)  # killed long before
        return "never"

    run_worker(queue, handler, threading.Event(), poll_s=0.1)


def _quick_worker(namespace: str, stop, lease_s: float) -> None:
    queue = RedisJobQueue(URL, namespace=namespace, lease_s=lease_s)
    run_worker(queue, lambda job: {"pid": os.getpid(), "texts": [t.upper() for t in job.texts]}, stop, poll_s=0.1)


def test_a_job_survives_a_worker_killed_mid_job(namespace: str):
    queue = make(namespace, lease_s=1.0)
    job_id = queue.enqueue(["refund please"], client="c")
    started, stop = MP.Event(), MP.Event()
    doomed = MP.Process(target=_sleepy_worker, args=(namespace, started, 1.0), daemon=True)
    doomed.start()
    rescuer = None
    try:
        assert started.wait(BOUND_S), "the first worker never started the job"
        time.sleep(1.5)  # longer than the lease: only the heartbeat keeps it
        assert queue.get(job_id)["status"] == "running" and queue.requeue_expired() == (0, 0)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.join(BOUND_S)
        assert doomed.exitcode == -signal.SIGKILL
        killed_at = time.monotonic()

        rescuer = MP.Process(target=_quick_worker, args=(namespace, stop, 1.0), daemon=True)
        rescuer.start()
        done = wait_for(lambda: (j := queue.get(job_id)) and j["status"] == "done" and j)
        recovered_in = time.monotonic() - killed_at
    finally:
        stop.set()
        for process in (doomed, rescuer):
            if process is not None:
                process.join(5)
                if process.is_alive():
                    process.kill()
    assert done["result"] == {"pid": rescuer.pid, "texts": ["REFUND PLEASE"]}
    assert done["attempts"] == 2
    assert 0.3 < recovered_in < 5.0  # about one lease, not the killed handler's 60 s
    assert rescuer.exitcode == 0  # stopped by its event
    assert queue.depth() == {"pending": 0, "processing": 0}


def test_run_worker_records_failures_without_internals_and_stops_on_its_event(namespace: str):
    queue = make(namespace)
    ids = [queue.enqueue([text], client="c") for text in ("crash", "refuse", "unstorable", "fine")]

    def handler(job: Job):
        text = job.texts[0]
        if text == "crash":
            raise KeyError("/secret/path/model.bin")
        if text == "refuse":
            raise InvalidJobRequest("texts in Klingon are not supported; translate them first")
        if text == "unstorable":
            return {1, 2}
        return "ok"

    assert run_worker(queue, handler, threading.Event(), poll_s=0.1, max_jobs=4) == 4
    crash, refuse, unstorable, fine = (queue.get(i) for i in ids)
    assert crash["status"] == "failed" and "KeyError" in crash["error"] and "secret" not in crash["error"]
    assert refuse["error"] == "texts in Klingon are not supported; translate them first"
    assert unstorable["status"] == "failed" and "could not be stored" in unstorable["error"]
    assert (fine["status"], fine["result"]) == ("done", "ok")

    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(queue, lambda job: "x", stop, 0.1))
    thread.start()
    time.sleep(0.2)
    stop.set()
    thread.join(2.0)
    assert not thread.is_alive()


def test_an_unreachable_redis_raises_a_clear_error_without_the_password():
    queue = RedisJobQueue("redis://user:s3cret-pw@127.0.0.1:1/0", namespace="unreachable")
    with pytest.raises(JobQueueUnavailable) as unreachable:
        queue.enqueue(["x"], client="c")
    with pytest.raises(JobQueueUnavailable, match="failed to answer a ping"):
        queue.ping()
    message = str(unreachable.value)
    assert "redis://127.0.0.1:1/0" in message and "s3cret" not in message
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    assert run_worker(queue, lambda job: "x", stop, poll_s=0.05) == 0  # outages are retried, not raised
    timer.join()
