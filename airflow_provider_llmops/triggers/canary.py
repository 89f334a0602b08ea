"""CanaryAnalysisTrigger: the analysis of one canary step, run by the triggerer so that no worker slot is held.

It scrapes `<serve_url>/metrics` with httpx every `analysis_interval_s`, feeds each scrape to
`core.governance.deploy_job.StepWatch` (a window starts once the service applies the step's share and has the
canary loaded; see `deploy_job` for the checks) and fires one TriggerEvent whose payload is the step's outcome:
`status` `passed`, `failed` (the failed-window threshold was reached), `deadline` (no verdict before the step's
progress deadline, a wall-clock time so a triggerer restart keeps it) or `error` (the trigger itself broke; the
operator treats it as a failure and rolls the canary back). A scrape that fails or cannot be parsed is a window
without data, never an exception. Every wait is bounded by the deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

SCRAPE_TIMEOUT_S = 10.0


class CanaryAnalysisTrigger(BaseTrigger):
    """Analyse one canary step (see the module docstring).

    :param metrics_url: the service's Prometheus page, e.g. `http://127.0.0.1:8765/metrics`.
    :param version: the canary's model version.
    :param step: the step's index in `policy["step_weights"]`.
    :param share: the step's traffic share (0..1).
    :param policy: the canary policy as a dict (`CanaryPolicy.to_dict()`).
    :param deadline: wall-clock time (epoch seconds) by which the step needs a verdict.
    :param failures: failed windows earlier in the rollout (they count towards the threshold).
    :param carry: JSON data handed back unchanged in the event (`carry`): the operator's rollout state, so it
        survives however the task is resumed (`dag.test()` passes only the event to the resume method).
    """

    def __init__(
        self,
        *,
        metrics_url: str,
        version: str,
        step: int,
        share: float,
        policy: dict[str, Any],
        deadline: float,
        failures: int = 0,
        carry: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.metrics_url = metrics_url
        self.version = str(version)
        self.step = int(step)
        self.share = float(share)
        self.policy = dict(policy)
        self.deadline = float(deadline)
        self.failures = int(failures)
        self.carry = carry

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "metrics_url": self.metrics_url,
                "version": self.version,
                "step": self.step,
                "share": self.share,
                "policy": self.policy,
                "deadline": self.deadline,
                "failures": self.failures,
                "carry": self.carry,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            outcome = await self._analyse()
        except Exception as exc:  # anything unexpected still ends in an event: the operator must clean up
            outcome = {
                "status": "error",
                "step": self.step,
                "share": self.share,
                "version": self.version,
                "message": f"the canary analysis broke: {type(exc).__name__}: {exc}",
                "checks": [],
                "failing": [],
                "windows": 0,
                "failures": self.failures,
            }
        yield TriggerEvent({**outcome, "carry": self.carry})

    async def _analyse(self) -> dict[str, Any]:
        import httpx

        from airflow_provider_llmops.core.governance.deploy_job import (
            MAX_METRICS_BYTES,
            CanaryPolicy,
            StepWatch,
            parse_metrics,
        )

        policy = CanaryPolicy.from_dict(self.policy)
        watch = StepWatch(policy, self.version, self.step, self.share, self.deadline, self.failures)
        timeout = min(SCRAPE_TIMEOUT_S, max(policy.analysis_interval_s, 1.0))
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            while True:
                sample, error = None, None
                try:
                    sample = parse_metrics(
                        await _read_bounded(client, self.metrics_url, MAX_METRICS_BYTES), self.version
                    )
                except Exception as exc:  # unreachable, an error status, not Prometheus text: no data this time
                    error = f"{type(exc).__name__}: {exc}"[:300]
                outcome = watch.observe(sample, time.time(), error)
                if outcome is not None:
                    if outcome["status"] != "passed":
                        self.log.warning("canary v%s step %d: %s", self.version, self.step + 1, outcome["message"])
                    return outcome
                wait = min(policy.analysis_interval_s, max(self.deadline - time.time(), 0.0))
                await asyncio.sleep(wait)


async def _read_bounded(client: Any, url: str, limit: int) -> str:
    """The text of `url` (a 2xx answer), read in chunks and refused past `limit` bytes."""
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise ValueError(f"the metrics page is larger than {limit} bytes")
    return body.decode("utf-8", errors="replace")
