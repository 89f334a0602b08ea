"""Test-session setup. Airflow reads its configuration at import time, so the embedded environment (a private
AIRFLOW_HOME with a SQLite metadata DB, never ~/airflow) is put in place here, before anything imports Airflow."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from airflow_provider_llmops import embedded
from airflow_provider_llmops.resources import sample_data_dir

TEST_HOME = Path(tempfile.mkdtemp(prefix="llmops-tests-"))
ENV = embedded.embedded_env(TEST_HOME)
ENV["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
embedded.apply(ENV)


@pytest.fixture(scope="session")
def test_home() -> Path:
    return TEST_HOME


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated embedded metadata DB with the provider's DAG files installed (once per session)."""
    embedded.prepare(TEST_HOME, ENV)
    return TEST_HOME


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return sample_data_dir()


@pytest.fixture
def allow_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Let operators read sources from this test's tmp_path and write the store there."""
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_ROOTS", f"{tmp_path},{sample_data_dir()}")
    monkeypatch.setenv("AIRFLOW__LLMOPS__STORE_URI", str(tmp_path / "store"))
    return tmp_path


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run a console script of this venv (llmops, airflow) with the test environment."""
    exe = Path(sys.executable).with_name(args[0])
    return subprocess.run(
        [str(exe), *args[1:]], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


# Property-based tests: `ci` (the default) is derandomized so a failure reproduces; `dev` runs longer, at random:
# HYPOTHESIS_PROFILE=dev .venv/bin/python -m pytest tests/unit/core/test_ingest_properties.py
hypothesis_settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
hypothesis_settings.register_profile(
    "dev", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
