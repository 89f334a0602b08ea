"""`llmops serve`: build the service from `[llmops]` settings and run it on uvicorn (HTTPS when a certificate and
key are configured), or run a job worker (`--worker`) that drains `/v1/jobs` from Redis with the same models.

On the embedded default it needs no configuration: the registry is the embedded SQLite MLflow under the home,
tokens are checked against a local key kept at `<home>/serving/jwt.key` (mode 600; `llmops token` mints one), and
`/healthz` answers before any model exists.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from airflow_provider_llmops.serving.config import ServeConfig

log = logging.getLogger("airflow_provider_llmops.serving")


def serve_config(**overrides: Any) -> ServeConfig:
    """The service's configuration from `[llmops]` settings; `overrides` (e.g. a --port flag) win."""
    from airflow_provider_llmops.settings import load_settings, serve_options

    settings = load_settings()
    options = serve_options()
    options.update({f"serve_{k}": str(v) for k, v in overrides.items() if v is not None})
    return ServeConfig.from_options(options, model_name=settings.model_name, home=settings.home)


def open_registry() -> Any:
    """The registry the operators use (connection, tracking URI, else the embedded SQLite store)."""
    from airflow_provider_llmops.operators._common import open_registry as open_operator_registry

    return open_operator_registry()


def canary_share_writer(registry: Any, model_name: str) -> Any:
    """A function that records the canary's traffic share on the registered model (every replica reads it)."""
    from airflow_provider_llmops.core.model.contract import TAG_CANARY_SHARE

    def write(share: float) -> None:
        registry.client.set_registered_model_tag(model_name, TAG_CANARY_SHARE, f"{share:g}")

    return write


def build_services(config: ServeConfig, registry: Any = None, source: Any = None) -> Any:
    """Every part of the service, configured: model manager over the registry, token verifier, guardrails,
    quotas (shared through Redis when configured), inference audit log, job queue."""
    from airflow_provider_llmops.serving.app import Services
    from airflow_provider_llmops.serving.audit_log import InferenceAuditLog
    from airflow_provider_llmops.serving.auth import AuthConfig, TokenVerifier
    from airflow_provider_llmops.serving.breaker import CircuitBreaker
    from airflow_provider_llmops.serving.guardrails import GuardrailConfig, Guardrails
    from airflow_provider_llmops.serving.metrics import ServeMetrics
    from airflow_provider_llmops.serving.models import ModelManager, RegistrySource
    from airflow_provider_llmops.serving.quotas import QuotaBook, RedisQuotaStore
    from airflow_provider_llmops.settings import serve_options

    metrics = ServeMetrics()
    if source is None:
        registry = registry if registry is not None else open_registry()
        source = RegistrySource(
            registry, config.model_name, config.cache_dir, backend=config.backend, threads=config.threads or None
        )
    breaker = CircuitBreaker(
        "registry", failure_threshold=5, reset_timeout_s=max(30.0, config.poll_interval_s * 3),
        on_change=lambda name, old, new: metrics.circuit_changed(name, new),
    )  # fmt: skip
    metrics.circuit_changed("registry", breaker.state)
    manager = ModelManager(
        source, metrics, poll_interval_s=config.poll_interval_s, max_batch_size=config.max_batch_size,
        max_wait_ms=config.max_wait_ms, max_queue=config.max_queue, fallback_queue_depth=config.fallback_queue_depth,
        mirror_fraction=config.mirror_fraction, breaker=breaker,
    )  # fmt: skip
    verifier = TokenVerifier(AuthConfig.from_mapping(serve_options(), config.home))
    guardrail_config = GuardrailConfig.from_yaml(config.guardrails_file) if config.guardrails_file else None
    guardrails = Guardrails(guardrail_config or GuardrailConfig.default())
    quotas = None
    if config.quota_requests_per_day or config.quota_chars_per_day:
        store = RedisQuotaStore.from_url(config.redis_url) if config.redis_url else None
        quotas = QuotaBook(config.quota_requests_per_day, config.quota_chars_per_day, store=store)
    audit = InferenceAuditLog(
        config.audit_path, raw_text=config.audit_raw_text, dropped=metrics.audit_dropped, key=_audit_key_source()
    )
    jobs = None
    if config.redis_url:
        from airflow_provider_llmops.serving.jobs import RedisJobQueue

        jobs = RedisJobQueue(config.redis_url, namespace=f"llmops.{config.model_name}", max_texts=config.max_texts)
    writer = canary_share_writer(source.registry, config.model_name) if hasattr(source, "registry") else None
    return Services(config, manager, verifier, metrics, guardrails, quotas, audit, jobs, writer)


def _audit_key_source() -> Any:
    """The pipeline trail's HMAC key source (`[llmops] audit_conn_id`), read at the first record; None: unkeyed."""
    from airflow_provider_llmops.settings import load_settings

    conn_id = load_settings().audit_conn_id
    if not conn_id:
        return None
    from airflow_provider_llmops.operators._common import audit_key

    return lambda: audit_key(conn_id)


def run(config: ServeConfig, services: Any = None, *, log_level: str = "info") -> int:
    """Serve until SIGINT/SIGTERM."""
    import uvicorn

    from airflow_provider_llmops.serving.app import create_app

    set_forward_threads(config.threads)
    services = services or build_services(config)
    app = create_app(services)
    scheme = "https" if config.tls_cert else "http"
    where = f"{scheme}://{config.host}:{config.port}"
    print(f"llmops serve: {where} model {config.model_name} ({config.backend} backend)", flush=True)
    uvicorn.run(
        app, host=config.host, port=config.port, log_level=log_level, access_log=False,
        ssl_certfile=config.tls_cert, ssl_keyfile=config.tls_key, server_header=False, date_header=True,
    )  # fmt: skip
    return 0


def run_worker(config: ServeConfig, *, poll_s: float = 1.0, max_jobs: int | None = None) -> int:
    """Drain `/v1/jobs` from Redis: classify each job's texts with the champion, until SIGINT/SIGTERM."""
    from airflow_provider_llmops.errors import ConfigurationError
    from airflow_provider_llmops.serving.jobs import RedisJobQueue
    from airflow_provider_llmops.serving.jobs import run_worker as drain

    if not config.redis_url:
        raise ConfigurationError("llmops serve --worker needs [llmops] serve_redis_url")
    set_forward_threads(config.threads)
    services = build_services(config)
    queue = RedisJobQueue(config.redis_url, namespace=f"llmops.{config.model_name}", max_texts=config.max_texts)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    loop = asyncio.new_event_loop()
    manager = services.manager
    loop.run_until_complete(manager.sync(wait=True))
    done = {"n": 0}

    def handle(job: Any) -> list[dict[str, Any]]:
        if done["n"] and done["n"] % 20 == 0:
            loop.run_until_complete(manager.sync(wait=True))
        served, _ = manager.route(job.id)
        answers = loop.run_until_complete(served.classify(list(job.texts)))
        done["n"] += 1
        return [{**a, "model_version": served.version, "role": served.role} for a in answers]

    print(f"llmops serve --worker: draining jobs of {config.model_name} from Redis", flush=True)
    drain(queue, handle, stop, poll_s, max_jobs=max_jobs)
    loop.run_until_complete(manager.aclose())
    loop.close()
    return 0


def set_forward_threads(threads: int) -> None:
    """torch's intra-op threads for this process (0: leave torch's default), set in the main thread before any worker
    thread exists: a thread that already ran a torch op keeps the count it started with, later ones take this one.
    On 2 busy cores 1 thread answered 3-6x faster than 2 (a 2-thread forward waits at every barrier for a thread
    another process has descheduled); on 2 idle cores 2 threads were 1.7x faster (benchmarks/bench_serve.py)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def default_token_path(home: Path) -> Path:
    return home / "serving" / "jwt.key"
