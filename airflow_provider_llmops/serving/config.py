"""The inference service's configuration: `[llmops] serve_*` settings (see `settings.SERVE_OPTIONS`) parsed, checked
and bounded once, so a bad value stops `llmops serve` at start with a message naming the key, never a request later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_llmops.errors import ConfigurationError
from airflow_provider_llmops.settings import split_list

# (low, high) bounds of the numeric settings: beyond them a value is a typo or a way to exhaust the machine
BOUNDS: dict[str, tuple[float, float]] = {
    "serve_port": (1, 65535),
    "serve_poll_interval": (0.05, 86400),
    "serve_max_batch_size": (1, 1024),
    "serve_max_wait_ms": (0, 1000),
    "serve_max_queue": (1, 100_000),
    "serve_max_body_bytes": (1024, 64 << 20),
    "serve_max_text_chars": (1, 1_000_000),
    "serve_max_texts": (1, 10_000),
    "serve_max_new_tokens": (1, 4096),
    "serve_quota_requests_per_day": (0, 10**12),
    "serve_quota_chars_per_day": (0, 10**15),
    "serve_fallback_queue_depth": (0, 100_000),
    "serve_mirror_fraction": (0, 1),
    "serve_threads": (0, 1024),
}
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class ServeConfig:
    model_name: str
    home: Path
    host: str = "127.0.0.1"
    port: int = 8765
    backend: str = "torch"
    poll_interval_s: float = 10.0
    max_batch_size: int = 32
    max_wait_ms: float = 0.0
    max_queue: int = 256
    max_body_bytes: int = 1 << 20
    max_text_chars: int = 8192
    max_texts: int = 64
    max_new_tokens: int = 64
    cors_origins: tuple[str, ...] = ()
    tls_cert: str | None = None
    tls_key: str | None = None
    guardrails_file: str | None = None
    quota_requests_per_day: int = 0
    quota_chars_per_day: int = 0
    redis_url: str | None = None
    audit_raw_text: bool = False
    fallback_queue_depth: int = 0
    mirror_fraction: float = 1.0
    threads: int = 0  # intra-op threads of a forward pass; 0: the runtimes' defaults

    @property
    def audit_path(self) -> Path:
        return self.home / "serving" / "inference-audit.jsonl"

    @property
    def cache_dir(self) -> Path:
        return self.home / "serving" / "models"

    @classmethod
    def from_options(cls, options: Mapping[str, str], *, model_name: str, home: Path) -> ServeConfig:
        def number(key: str, kind: type = int) -> float:
            raw = (options.get(key) or "").strip()
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigurationError(f"[llmops] {key} must be a {kind.__name__}, got {raw!r}") from None
            low, high = BOUNDS[key]
            if not low <= value <= high:
                raise ConfigurationError(f"[llmops] {key} must be within [{low:g}, {high:g}], got {raw!r}")
            return value

        def text(key: str) -> str | None:
            value = (options.get(key) or "").strip()
            return value or None

        backend = (text("serve_backend") or "torch").lower()
        if backend not in ("torch", "onnx"):
            raise ConfigurationError(f"[llmops] serve_backend must be torch or onnx, got {backend!r}")
        raw_audit = (options.get("serve_audit_raw_text") or "").strip().lower()
        if raw_audit not in TRUE + FALSE:
            raise ConfigurationError(f"[llmops] serve_audit_raw_text must be true or false, got {raw_audit!r}")
        cert, key = text("serve_tls_cert"), text("serve_tls_key")
        if bool(cert) != bool(key):
            raise ConfigurationError("[llmops] serve_tls_cert and serve_tls_key must be set together")
        for path in (cert, key):
            if path and not Path(path).is_file():
                raise ConfigurationError(f"TLS file {path} does not exist")
        redis_url = text("serve_redis_url")
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError("[llmops] serve_redis_url must be a redis://, rediss:// or unix:// URL")
        origins = tuple(split_list(options.get("serve_cors_origins") or ""))
        if "*" in origins:
            raise ConfigurationError("[llmops] serve_cors_origins: list the origins; '*' is not accepted")
        return cls(
            model_name=model_name,
            home=Path(home),
            host=text("serve_host") or "127.0.0.1",
            port=int(number("serve_port")),
            backend=backend,
            poll_interval_s=float(number("serve_poll_interval", float)),
            max_batch_size=int(number("serve_max_batch_size")),
            max_wait_ms=float(number("serve_max_wait_ms", float)),
            max_queue=int(number("serve_max_queue")),
            max_body_bytes=int(number("serve_max_body_bytes")),
            max_text_chars=int(number("serve_max_text_chars")),
            max_texts=int(number("serve_max_texts")),
            max_new_tokens=int(number("serve_max_new_tokens")),
            cors_origins=origins,
            tls_cert=cert,
            tls_key=key,
            guardrails_file=text("serve_guardrails"),
            quota_requests_per_day=int(number("serve_quota_requests_per_day")),
            quota_chars_per_day=int(number("serve_quota_chars_per_day")),
            redis_url=redis_url,
            audit_raw_text=raw_audit in TRUE,
            fallback_queue_depth=int(number("serve_fallback_queue_depth")),
            mirror_fraction=float(number("serve_mirror_fraction", float)),
            threads=int(number("serve_threads")),
        )
