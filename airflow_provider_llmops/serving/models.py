"""What the service serves, decided by the registry: the versions behind the `champion`, `canary` and `fallback`
aliases of one registered model, and the canary's traffic share (a registered-model tag).

`ModelManager` converges on that state: it polls the registry every `poll_interval_s` (and on demand: the
authenticated reload call), loads a changed version in a worker thread while the old one keeps serving, checks it
with a smoke prediction, and only then swaps it in; the replaced version's batcher drains before it closes, so a
reload under traffic loses no request. A version that fails to load or to pass the smoke prediction leaves the old one
serving, is counted in `llmops_serve_model_load_failures_total{version}`, logged, and retried no sooner than
`retry_failed_after_s`. Any number of replicas, restarted or not, converge on the same versions without being told
one by one: each reads the same registry.

Routing: a request goes to the canary when `hash(request key) mod 10000 < share * 10000` (so a given key is routed
the same way while the share holds), else to the champion; with a `fallback` version loaded, champion traffic moves
to it while the champion's queue is deeper than `fallback_queue_depth` texts (0: never). A champion request is
mirrored to the canary (its answer dropped, its label compared) with probability `mirror_fraction`, which feeds
`llmops_serve_canary_disagreements_total / llmops_serve_canary_mirrored_total`, the deploy analysis's disagreement.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_llmops.errors import LLMOpsError
from airflow_provider_llmops.serving.batching import MicroBatcher
from airflow_provider_llmops.serving.metrics import ServeMetrics

log = logging.getLogger(__name__)

ROLES = ("champion", "canary", "fallback")
CLASSIFIER = "classifier"
GENERATOR = "generator"
SMOKE_TEXT = "smoke test: is this model able to answer?"


class NoModelLoaded(LLMOpsError):
    """No version is loaded yet (the registry has no champion, or it is still loading): HTTP 503."""


@dataclass(frozen=True)
class Desired:
    """The registry's state for one model: version per role, and the canary's traffic share in [0, 1]."""

    versions: dict[str, str] = field(default_factory=dict)
    canary_share: float = 0.0


@dataclass
class Served:
    """One loaded version: its runtime and, for a classifier, the micro-batcher in front of it."""

    role: str
    version: str
    runtime: Any
    kind: str
    backend: str
    batcher: MicroBatcher[Any] | None
    labels: list[str]
    loaded_at: float

    async def classify(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """[{label, scores: {label: p}}] for each text, through the batcher (grouped with concurrent requests)."""
        assert self.batcher is not None
        return await self.batcher.submit(list(texts))


def classify_batch(runtime: Any, labels: list[str]) -> Callable[[list[str]], list[dict[str, Any]]]:
    """The batcher's `run_batch` for a classifier runtime: one forward pass over `texts`."""

    def run(texts: list[str]) -> list[dict[str, Any]]:
        probs = runtime.predict_proba(texts, batch_size=max(1, len(texts)))
        out = []
        for row in probs:
            best = int(row.argmax())
            scores = {lab: round(float(p), 6) for lab, p in zip(labels, row, strict=True)}
            out.append({"label": labels[best], "scores": scores})
        return out

    return run


class ModelManager:
    """Loads and swaps the versions `source.desired()` names; see the module docstring."""

    def __init__(
        self,
        source: Any,
        metrics: ServeMetrics,
        *,
        poll_interval_s: float = 10.0,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        retry_failed_after_s: float = 300.0,
        fallback_queue_depth: int = 0,
        mirror_fraction: float = 1.0,
        breaker: Any = None,
    ) -> None:
        self.source = source
        self.metrics = metrics
        self.poll_interval_s = float(poll_interval_s)
        self.batch_options = {"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms, "max_queue": max_queue}
        self.retry_failed_after_s = float(retry_failed_after_s)
        self.fallback_queue_depth = int(fallback_queue_depth)
        self.mirror_fraction = float(mirror_fraction)
        self.breaker = breaker
        self.canary_breaker = self._new_canary_breaker()
        self.served: dict[str, Served] = {}
        self.canary_share = 0.0
        self.desired: Desired | None = None
        self.failed: dict[str, tuple[float, str]] = {}  # version -> (when, why)
        self.last_sync: float | None = None
        self.last_error: str | None = None
        self._loads: dict[str, asyncio.Task[Served | None]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()
        self._generate_lock = asyncio.Lock()

    def _new_canary_breaker(self) -> Any:
        """A canary that keeps failing stops getting traffic: 5 failures in a row open the circuit, one probe after
        30 s (state in `llmops_serve_circuit_state{name="canary"}`); a new canary version gets a new breaker."""
        from airflow_provider_llmops.serving.breaker import CircuitBreaker

        breaker = CircuitBreaker(
            "canary", failure_threshold=5, reset_timeout_s=30.0,
            on_change=lambda name, old, new: self.metrics.circuit_changed(name, new),
        )  # fmt: skip
        self.metrics.circuit_changed("canary", breaker.state)
        return breaker

    # lifecycle ----------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start polling (the first sync runs at once, in the background: serving never waits for a load)."""
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_loop(), name="llmops-registry-poll")

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for task in list(self._loads.values()) + list(self._background):
            task.cancel()
        await asyncio.gather(*self._loads.values(), *self._background, return_exceptions=True)
        for served in self.served.values():
            if served.batcher is not None:
                await served.batcher.aclose(drain=True, timeout_s=10)
        self.served.clear()

    async def _poll_loop(self) -> None:
        while True:
            try:
                await self.sync(wait=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the registry may be down: keep serving what is loaded
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("registry sync failed, serving what is loaded: %s", self.last_error)
            await asyncio.sleep(self.poll_interval_s)

    # state --------------------------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return "champion" in self.served or "canary" in self.served

    def state(self) -> dict[str, Any]:
        """What serves now and what the registry asks for (JSON-safe, for /readyz and the reload call)."""
        return {
            "serving": {
                role: {"version": s.version, "backend": s.backend, "kind": s.kind} for role, s in self.served.items()
            },
            "desired": None if self.desired is None else dict(self.desired.versions),
            "canary_share": self.canary_share,
            "loading": sorted(self._loads),
            "failed": {version: why for version, (_, why) in self.failed.items()},
            "last_sync_age_s": None if self.last_sync is None else round(time.monotonic() - self.last_sync, 3),
            "last_error": self.last_error,
        }

    # converge -----------------------------------------------------------------------------------------------------

    async def sync(self, *, wait: bool = True) -> dict[str, Any]:
        """Read the registry once and converge on it; with `wait`, return after the needed loads finished."""
        if self.breaker is not None and not self.breaker.allow():
            raise LLMOpsError("the registry circuit is open: serving what is loaded")
        try:
            desired = await asyncio.to_thread(self.source.desired)
        except Exception:
            if self.breaker is not None:
                self.breaker.record_failure()
            raise
        if self.breaker is not None:
            self.breaker.record_success()
        self.desired, self.last_sync, self.last_error = desired, time.monotonic(), None
        self.canary_share = desired.canary_share if "canary" in desired.versions else 0.0
        self.metrics.canary_share.set(self.canary_share)
        loads = []
        async with self._lock:
            for role in ROLES:
                want = desired.versions.get(role)
                have = self.served.get(role)
                if want is None:
                    if have is not None:
                        self._retire(role)
                    continue
                if have is not None and have.version == want:
                    continue
                reuse = next((s for s in self.served.values() if s.version == want), None)
                if reuse is not None:  # e.g. the canary became champion: same weights, no reload
                    self._install(role, Served(**{**reuse.__dict__, "role": role}), share_batcher=True)
                    continue
                when_failed = self.failed.get(want, (None, ""))[0]
                if when_failed is not None and time.monotonic() - when_failed < self.retry_failed_after_s:
                    continue
                loads.append(self._load(role, want))
        if wait and loads:
            await asyncio.gather(*loads, return_exceptions=True)
        return self.state()

    def _load(self, role: str, version: str) -> asyncio.Task[Served | None]:
        task = self._loads.get(version)
        if task is None:
            task = asyncio.create_task(self._load_version(role, version), name=f"llmops-load-{version}")
            self._loads[version] = task
        return task

    async def _load_version(self, role: str, version: str) -> Served | None:
        try:
            runtime, kind, backend = await asyncio.to_thread(self.source.load, version)
            labels = list(getattr(runtime, "labels", []) or [])
            if kind == CLASSIFIER:
                await asyncio.to_thread(_smoke_classifier, runtime, labels)
            else:
                await asyncio.to_thread(_smoke_generator, runtime)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            why = f"{type(exc).__name__}: {str(exc)[:300]}"
            self.failed[version] = (time.monotonic(), why)
            self.metrics.load_failures.labels(version=version).inc()
            log.error("version %s failed to load, the old one keeps serving: %s", version, why)
            return None
        finally:
            self._loads.pop(version, None)
        self.failed.pop(version, None)
        served = Served(role, version, runtime, kind, backend, None, labels, time.time())
        async with self._lock:
            current = self.desired.versions.get(role) if self.desired else None
            if current != version:  # the registry moved on while this loaded
                return None
            self._install(role, served)
        log.info("serving version %s as %s (%s, %s)", version, role, kind, backend)
        return served

    def _install(self, role: str, served: Served, *, share_batcher: bool = False) -> None:
        if served.kind == CLASSIFIER and not share_batcher:
            version = served.version

            def on_batch(size: int, seconds: float, ok: bool) -> None:
                self.metrics.batch_size.labels(model_version=version).observe(size)
                self.metrics.batch_seconds.labels(model_version=version).observe(seconds)

            served.batcher = MicroBatcher(
                classify_batch(served.runtime, served.labels), name=f"v{version}", on_batch=on_batch,
                **self.batch_options,
            )  # fmt: skip
        old = self.served.get(role)
        self.served[role] = served
        self.metrics.set_loaded(role, served.version)
        if role == "canary" and (old is None or old.version != served.version):
            self.canary_breaker = self._new_canary_breaker()
        if old is not None:
            self._close_later(old)

    def _retire(self, role: str) -> None:
        old = self.served.pop(role)
        self.metrics.set_loaded(role, None)
        self._close_later(old)

    def _close_later(self, old: Served) -> None:
        """Drain and close a replaced version's batcher, unless another role still serves through it."""
        if old.batcher is None or any(s.batcher is old.batcher for s in self.served.values()):
            return
        task = asyncio.create_task(old.batcher.aclose(drain=True, timeout_s=60))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # routing ------------------------------------------------------------------------------------------------------

    def route(self, key: str) -> tuple[Served, str | None]:
        """(the version that answers a request with this key, why the fallback answered or None)."""
        canary = self.served.get("canary")
        champion = self.served.get("champion")
        if canary is not None and self.canary_share > 0 and _bucket(key) < self.canary_share * 10000:
            if champion is None or self.canary_breaker.allow():
                return canary, None
            self.metrics.fallback.labels(reason="canary_circuit_open").inc()
            return champion, "canary_circuit_open"
        if champion is None:
            if canary is not None:
                return canary, None
            raise NoModelLoaded("no model version is loaded yet; the registry has no champion or it is loading")
        fallback = self.served.get("fallback")
        if (
            fallback is not None
            and self.fallback_queue_depth > 0
            and champion.batcher is not None
            and champion.batcher.queue_depth > self.fallback_queue_depth
        ):
            self.metrics.fallback.labels(reason="queue_depth").inc()
            return fallback, "queue_depth"
        return champion, None

    async def classify(self, served: Served, texts: Sequence[str]) -> list[dict[str, Any]]:
        """`served.classify(texts)`, counting a canary's outcome in its circuit breaker (a full queue is not the
        canary's failure and is not counted)."""
        from airflow_provider_llmops.serving.batching import Overloaded, RequestTooLarge

        if served.role != "canary":
            return await served.classify(texts)
        try:
            answers = await served.classify(texts)
        except (Overloaded, RequestTooLarge, asyncio.CancelledError):
            raise
        except Exception:
            self.canary_breaker.record_failure()
            raise
        self.canary_breaker.record_success()
        return answers

    def mirror_target(self, answered: Served) -> Served | None:
        """The canary, when a champion answer should be mirrored to it."""
        canary = self.served.get("canary")
        if canary is None or answered.role != "champion" or canary.kind != CLASSIFIER or canary is answered:
            return None
        return canary if random.random() < self.mirror_fraction else None

    def mirror(self, canary: Served, texts: list[str], labels: list[str]) -> None:
        """Compare the canary's labels with the champion's in the background; overload or errors skip it."""

        async def run() -> None:
            try:
                answers = await self.classify(canary, texts)
            except Exception:
                return
            for answer, label in zip(answers, labels, strict=False):
                self.metrics.mirrored.labels(version=canary.version).inc()
                if answer["label"] != label:
                    self.metrics.disagreements.labels(version=canary.version).inc()

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def generate(self, served: Served, prompt: str, max_new_tokens: int) -> str:
        """One generation at a time per service (a causal LM forward is not batched here), in a worker thread."""
        async with self._generate_lock:
            texts = await asyncio.to_thread(served.runtime.generate, [prompt], max_new_tokens=max_new_tokens)
            return str(texts[0])


def _bucket(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:4], "big") % 10000


def _smoke_classifier(runtime: Any, labels: list[str]) -> None:
    if not labels:
        raise LLMOpsError("the classifier has no labels")
    probs = runtime.predict_proba([SMOKE_TEXT], batch_size=1)
    row = [float(x) for x in probs[0]]
    if len(row) != len(labels) or not all(math.isfinite(x) for x in row) or abs(sum(row) - 1.0) > 1e-3:
        raise LLMOpsError(f"smoke prediction is not a probability vector over {len(labels)} labels: {row[:8]}")


def _smoke_generator(runtime: Any) -> None:
    texts = runtime.generate([SMOKE_TEXT], max_new_tokens=2)
    if len(texts) != 1 or not isinstance(texts[0], str):
        raise LLMOpsError("smoke generation did not return text")


class RegistrySource:
    """Desired state and version loading from an MLflow registry (the service's source of truth)."""

    def __init__(
        self, registry: Any, model_name: str, cache_dir: Path, backend: str = "torch", threads: int | None = None
    ) -> None:
        if backend not in ("torch", "onnx"):
            raise LLMOpsError(f"unknown serving backend {backend!r}; use torch or onnx")
        self.registry = registry
        self.model_name = model_name
        self.cache_dir = Path(cache_dir)
        self.backend = backend
        self.threads = threads  # ONNX Runtime intra-op threads (None: its default); torch's are set per process

    def desired(self) -> Desired:
        from airflow_provider_llmops.core.model.contract import CANARY, CHAMPION, FALLBACK, TAG_CANARY_SHARE

        try:
            model = self.registry.client.get_registered_model(self.model_name)
        except Exception as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
                return Desired()
            raise
        aliases = dict(getattr(model, "aliases", {}) or {})
        roles = (("champion", CHAMPION), ("canary", CANARY), ("fallback", FALLBACK))
        versions = {role: str(aliases[alias]) for role, alias in roles if alias in aliases}
        return Desired(versions, parse_share((model.tags or {}).get(TAG_CANARY_SHARE)))

    def load(self, version: str) -> tuple[Any, str, str]:
        """(runtime, kind, backend) of a version: fetched once into the cache, loaded with the configured backend
        (ONNX Runtime when asked for and the version has an ONNX export, else torch)."""
        from airflow_provider_llmops.core.model import contract, modeling

        info = self.registry.get_version(self.model_name, version)
        model_dir = contract.fetch_model(self.registry, info, self.cache_dir)
        if modeling.model_task(model_dir) == modeling.GENERATOR_TASK:
            return modeling.load_generator(model_dir), GENERATOR, "torch"
        if self.backend == "onnx":
            onnx_file = contract.fetch_onnx(self.registry, info, self.cache_dir)
            if onnx_file is not None:
                from airflow_provider_llmops.core.model.onnx_runtime import load_onnx_classifier

                return load_onnx_classifier(model_dir, onnx_file, intra_op_threads=self.threads), CLASSIFIER, "onnx"
            log.warning("version %s has no ONNX export; serving it with torch", version)
        return modeling.load_classifier(model_dir), CLASSIFIER, "torch"


def parse_share(value: Any) -> float:
    """A canary share from a tag value: a number in [0, 1] (percent values like "10%" accepted); 0 otherwise."""
    if value is None:
        return 0.0
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        return 0.0
    return share if math.isfinite(share) and 0.0 <= share <= 1.0 else 0.0
