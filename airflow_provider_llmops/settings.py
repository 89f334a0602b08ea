"""Provider settings, resolved in this one place: operator argument > Airflow config `[llmops]` (or
`AIRFLOW__LLMOPS__*`) > built-in default. Every built-in default appears once, in `DEFAULTS`.

The `[llmops]` section is declared in `get_provider_info()` so `airflow config list` shows it. Defaults that are
paths derive from the provider's home (`llmops_home()`), so an embedded install needs no configuration. The CLI,
the operators and the DAG factories all read their settings through `load_settings()`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_llmops.resources import expectations_dir, sample_data_dir

SECTION = "llmops"
EMBEDDED_DIRNAME = ".llmops"

# The built-in defaults of every scalar setting (path defaults derive from the home and are set in load_settings).
DEFAULTS: dict[str, Any] = {
    "max_row_bytes": 65536,
    "max_source_bytes": 1 << 30,
    "model_name": "support_ticket_router",
    "dataset": "support_tickets",
    "default_suite": "generic",
    "registry_pool": "llmops_registry",
}


# The inference service's settings (`[llmops] serve_*`, read by `llmops serve` and the deploy stage): name ->
# (built-in default as text, description). `serving.config.ServeConfig` parses and bounds them.
SERVE_OPTIONS: dict[str, tuple[str, str]] = {
    "serve_url": (
        "",
        "Base URL of the inference service the deploy stage rolls canaries out on (e.g. "
        "http://127.0.0.1:8765). Empty: no service, promotion moves champion directly.",
    ),
    "serve_host": ("127.0.0.1", "Address llmops serve binds to."),
    "serve_port": ("8765", "Port llmops serve listens on."),
    "serve_backend": ("torch", "torch or onnx (ONNX Runtime on the version's ONNX export; torch when it has none)."),
    "serve_poll_interval": ("10", "Seconds between registry polls (aliases and canary share)."),
    "serve_max_batch_size": ("32", "Most texts per forward pass."),
    "serve_max_wait_ms": (
        "0",
        "Most milliseconds a text waits for its batch to fill; 0: leave at once (batches fill while one runs).",
    ),
    "serve_max_queue": ("256", "Most texts waiting per version; past it requests get 503 with Retry-After."),
    "serve_max_body_bytes": ("1048576", "Largest request body (413 above)."),
    "serve_max_text_chars": ("8192", "Longest text or prompt in characters (422 above)."),
    "serve_max_texts": ("64", "Most texts in one predict request (422 above)."),
    "serve_max_new_tokens": ("64", "Upper bound of max_new_tokens for /v1/generate."),
    "serve_cors_origins": ("", "Comma-separated origins allowed by CORS. Empty: CORS off."),
    "serve_tls_cert": ("", "PEM certificate file: serve HTTPS when set with serve_tls_key."),
    "serve_tls_key": ("", "PEM private key file of serve_tls_cert."),
    "serve_guardrails": ("", "Guardrails YAML file. Empty: the shipped default (PII redaction)."),
    "serve_quota_requests_per_day": ("0", "Requests per client (token subject) per UTC day. 0: unlimited."),
    "serve_quota_chars_per_day": ("0", "Characters per client per UTC day. 0: unlimited."),
    "serve_redis_url": ("", "Redis for shared quotas and the /v1/jobs queue (redis://127.0.0.1:6379/0). Empty: off."),
    "serve_audit_raw_text": ("false", "Write raw request texts into the inference audit log (a hash otherwise)."),
    "serve_fallback_queue_depth": (
        "0",
        "Queue depth (texts) past which champion traffic goes to the fallback alias. 0: off.",
    ),
    "serve_mirror_fraction": ("1.0", "Share of champion requests mirrored to the canary to measure disagreement."),
    "serve_threads": (
        "0",
        "Intra-op threads of one forward pass (torch and ONNX Runtime). 0: the runtimes' defaults (all cores); "
        "1 is faster on a small machine shared with other busy processes.",
    ),
    "serve_jwt_algorithms": ("", "Pinned JWT algorithms (HS256, RS256, ES256...). Empty: HS256 with the local key."),
    "serve_jwt_secret": (
        "",
        "HS* shared secret (at least 32 bytes). Empty with no key file: the local key under <home>/serving/jwt.key.",
    ),
    "serve_jwt_public_key_file": ("", "PEM public key (RS*/ES*)."),
    "serve_jwt_jwks_file": ("", "JWKS JSON file; keys picked by kid."),
    "serve_jwt_issuer": ("", "Expected iss claim. Empty: llmops-local."),
    "serve_jwt_audience": ("", "Expected aud claim. Empty: llmops-serve."),
}


def serve_options() -> dict[str, str]:
    """Every `[llmops] serve_*` setting as text: the configured value, else the built-in default."""
    return {key: _airflow_option(key) or default for key, (default, _) in SERVE_OPTIONS.items()}


def _airflow_option(key: str) -> str:
    env = os.environ.get(f"AIRFLOW__{SECTION.upper()}__{key.upper()}")
    if env is not None:
        return env.strip()
    try:
        from airflow.sdk import conf
    except ImportError:  # core used without Airflow (CLI, notebooks)
        return ""
    try:
        return (conf.get(SECTION, key, fallback="") or "").strip()
    except Exception:  # an unconfigured Airflow in a plain shell: behave as if the option were unset
        return ""


def llmops_home() -> Path:
    """The provider's local state (audit trail, locks, embedded store and MLflow), the same for the CLI and the
    operators: `[llmops] home` > `$LLMOPS_HOME` > `$AIRFLOW_HOME/llmops` > `./.llmops` when it exists (the embedded
    default's home in the current directory) > `~/airflow/llmops` (Airflow's own default home)."""
    explicit = _airflow_option("home") or os.environ.get("LLMOPS_HOME", "")
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get("AIRFLOW_HOME"):
        return (Path(os.environ["AIRFLOW_HOME"]).expanduser() / "llmops").resolve()
    embedded = Path.cwd() / EMBEDDED_DIRNAME
    if embedded.is_dir():
        return embedded.resolve()
    return (Path("~/airflow").expanduser() / "llmops").resolve()


def embedded_home() -> Path:
    """Where the embedded default (`llmops demo|ui|env|mlflow`) lives: `$LLMOPS_HOME`, else `./.llmops`."""
    return Path(os.environ.get("LLMOPS_HOME") or Path.cwd() / EMBEDDED_DIRNAME).expanduser().resolve()


def split_list(value: str) -> list[str]:
    return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]


def _json_object(key: str) -> dict[str, Any]:
    """A JSON object setting with values of any JSON type (checked by whoever uses it); {} when unset."""
    raw = _airflow_option(key)
    if not raw:
        return {}
    from airflow_provider_llmops.errors import ConfigurationError

    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"[{SECTION}] {key} must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"[{SECTION}] {key} must be a JSON object, got {raw!r}")
    return value


def _json_mapping(key: str) -> dict[str, str]:
    """A JSON object setting of strings (name -> value); {} when unset."""
    value = _json_object(key)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        from airflow_provider_llmops.errors import ConfigurationError

        raise ConfigurationError(f'[{SECTION}] {key} must be a JSON object of strings, e.g. {{"name": "value"}}')
    return value


def _int(key: str) -> int:
    raw = _airflow_option(key)
    if not raw:
        return int(DEFAULTS[key])
    try:
        return int(raw)
    except ValueError:
        from airflow_provider_llmops.errors import ConfigurationError

        raise ConfigurationError(f"[{SECTION}] {key} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    home: Path
    store_uri: str
    store_conn_id: str | None
    allowed_roots: tuple[str, ...]
    # remote sources allowed: entries `scheme://host[:port][/path]`, compared parsed (see core.sources); empty:
    # no remote source is allowed until configured
    allowed_uri_prefixes: tuple[str, ...]
    max_row_bytes: int
    max_source_bytes: int
    pushgateway_url: str | None
    mlflow_conn_id: str | None = None
    mlflow_tracking_uri: str | None = None
    model_name: str = DEFAULTS["model_name"]
    mlflow_ui_url: str | None = None
    dataset: str = DEFAULTS["dataset"]
    # Great Expectations suites: looked up by name in these folders only (first match wins)
    suites_dirs: tuple[str, ...] = ()
    # the suite of a dataset: dataset_suites[dataset], else default_suite
    default_suite: str = DEFAULTS["default_suite"]
    dataset_suites: dict[str, str] = field(default_factory=dict)
    # golden set per registered model (optional; a model without one is evaluated on its held-out split only)
    golden_sets: dict[str, str] = field(default_factory=dict)
    # connection (or secrets-backend connection) whose password is the audit trail's HMAC key; none: plain chain
    audit_conn_id: str | None = None
    # Airflow pool of one slot that every registry-changing task runs in
    registry_pool: str = DEFAULTS["registry_pool"]
    # connection ids a run of a build_ingest_validate_dag DAG may choose by the source_conn_id Param (default: none)
    allowed_source_conn_ids: tuple[str, ...] = ()
    # the canary policy of build_deploy_dag when its author passes none (CanaryPolicy fields; {}: the defaults)
    deploy_policy: dict[str, Any] = field(default_factory=dict)
    # webhook the nightly sanity run's alerts (and its deadline alert) are posted to; None: alerts are only logged
    alert_webhook_url: str | None = None

    def suite_for(self, dataset: str) -> str:
        return self.dataset_suites.get(dataset, self.default_suite)

    def golden_for(self, model_name: str) -> str | None:
        return self.golden_sets.get(model_name) or None


def load_settings() -> Settings:
    home = llmops_home()
    roots = split_list(_airflow_option("allowed_roots")) or [str(sample_data_dir()), str(home / "incoming")]
    suites_dirs = split_list(_airflow_option("suites_dirs")) or [str(expectations_dir()), str(home / "expectations")]
    return Settings(
        home=home,
        store_uri=_airflow_option("store_uri") or str(home / "store"),
        store_conn_id=_airflow_option("store_conn_id") or None,
        allowed_roots=tuple(roots),
        allowed_uri_prefixes=tuple(split_list(_airflow_option("allowed_uri_prefixes"))),
        max_row_bytes=_int("max_row_bytes"),
        max_source_bytes=_int("max_source_bytes"),
        pushgateway_url=_airflow_option("pushgateway_url") or None,
        mlflow_conn_id=_airflow_option("mlflow_conn_id") or None,
        mlflow_tracking_uri=_airflow_option("mlflow_tracking_uri") or None,
        model_name=_airflow_option("model_name") or DEFAULTS["model_name"],
        mlflow_ui_url=_airflow_option("mlflow_ui_url") or None,
        dataset=_airflow_option("dataset") or DEFAULTS["dataset"],
        suites_dirs=tuple(suites_dirs),
        default_suite=_airflow_option("default_suite") or DEFAULTS["default_suite"],
        dataset_suites=_json_mapping("dataset_suites"),
        golden_sets=_json_mapping("golden_sets"),
        audit_conn_id=_airflow_option("audit_conn_id") or None,
        registry_pool=_airflow_option("registry_pool") or DEFAULTS["registry_pool"],
        allowed_source_conn_ids=tuple(split_list(_airflow_option("allowed_source_conn_ids"))),
        deploy_policy=_json_object("deploy_policy"),
        alert_webhook_url=_airflow_option("alert_webhook_url") or None,
    )
