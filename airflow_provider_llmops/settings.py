"""Provider settings: operator argument > Airflow config `[llmops]` (or `AIRFLOW__LLMOPS__*`) > built-in default.

The `[llmops]` section is declared in `get_provider_info()` so `airflow config list` shows it. Built-in defaults
are derived from `LLMOPS_HOME` (or `$AIRFLOW_HOME/llmops`), so an embedded install needs no configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_llmops.resources import sample_data_dir

SECTION = "llmops"


def _airflow_option(key: str) -> str:
    env = os.environ.get(f"AIRFLOW__{SECTION.upper()}__{key.upper()}")
    if env is not None:
        return env.strip()
    try:
        from airflow.sdk import conf
    except ImportError:  # core used without Airflow (CLI, notebooks)
        return ""
    return (conf.get(SECTION, key, fallback="") or "").strip()


def llmops_home() -> Path:
    explicit = _airflow_option("home") or os.environ.get("LLMOPS_HOME", "")
    if explicit:
        return Path(explicit).expanduser().resolve()
    airflow_home = os.environ.get("AIRFLOW_HOME") or str(Path("~/airflow").expanduser())
    return (Path(airflow_home) / "llmops").resolve()


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]


@dataclass(frozen=True)
class Settings:
    home: Path
    store_uri: str
    store_conn_id: str | None
    allowed_roots: tuple[str, ...]
    allowed_uri_prefixes: tuple[str, ...]
    max_row_bytes: int
    max_source_bytes: int
    pushgateway_url: str | None
    mlflow_conn_id: str | None = None
    mlflow_tracking_uri: str | None = None
    model_name: str = "support_ticket_router"
    mlflow_ui_url: str | None = None


def load_settings() -> Settings:
    home = llmops_home()
    roots = _split(_airflow_option("allowed_roots")) or [str(sample_data_dir()), str(home / "incoming")]
    prefixes = _split(_airflow_option("allowed_uri_prefixes")) or ["s3://", "http://", "https://"]
    return Settings(
        home=home,
        store_uri=_airflow_option("store_uri") or str(home / "store"),
        store_conn_id=_airflow_option("store_conn_id") or None,
        allowed_roots=tuple(roots),
        allowed_uri_prefixes=tuple(prefixes),
        max_row_bytes=int(_airflow_option("max_row_bytes") or 65536),
        max_source_bytes=int(_airflow_option("max_source_bytes") or 1 << 30),
        pushgateway_url=_airflow_option("pushgateway_url") or None,
        mlflow_conn_id=_airflow_option("mlflow_conn_id") or None,
        mlflow_tracking_uri=_airflow_option("mlflow_tracking_uri") or None,
        model_name=_airflow_option("model_name") or "support_ticket_router",
        mlflow_ui_url=_airflow_option("mlflow_ui_url") or None,
    )
