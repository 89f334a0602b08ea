"""MlflowHook.get_config from connections given as AIRFLOW_CONN_* environment variables (JSON form), and the
credential handling of MlflowConfig."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import pytest

from airflow_provider_llmops.core.model.registry import MlflowConfig
from airflow_provider_llmops.hooks.mlflow import MlflowHook

PASSWORD = "pw-Xq7#secret-9"
TOKEN = "dapi-token-0123456789abcdef"
CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def _config(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> MlflowConfig:
    # A distinct connection id per test, so no lookup can be answered from an earlier test's connection.
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "llmops_mlflow", **fields}))
    return MlflowHook(mlflow_conn_id=conn_id).get_config()


def test_a_full_http_uri_is_used_as_given(monkeypatch: pytest.MonkeyPatch):
    config = _config(monkeypatch, "mlflow_full_uri", host="https://mlflow.example.com:8443/tracking")
    assert config.tracking_uri == "https://mlflow.example.com:8443/tracking"
    assert config.registry_uri is None and config.artifact_root is None
    assert config.username is None and config.password is None and config.token is None
    assert config.experiment == "llmops"


def test_a_bare_host_and_port_get_http(monkeypatch: pytest.MonkeyPatch):
    assert (
        _config(monkeypatch, "mlflow_bare_host", host="mlflow.internal", port=5000).tracking_uri
        == "http://mlflow.internal:5000"
    )
    assert _config(monkeypatch, "mlflow_bare_noport", host="mlflow.internal").tracking_uri == "http://mlflow.internal"
    # The Schema field picks another scheme for a bare host.
    assert (
        _config(monkeypatch, "mlflow_bare_https", host="mlflow.internal", port=443, schema="https").tracking_uri
        == "https://mlflow.internal:443"
    )


def test_a_sqlite_uri_is_kept_and_gets_no_port(monkeypatch: pytest.MonkeyPatch, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    config = _config(
        monkeypatch,
        "mlflow_sqlite",
        host=uri,
        port=5000,
        extra={"artifact_root": str(tmp_path / "artifacts"), "experiment": "local"},
    )
    assert config.tracking_uri == uri
    assert config.artifact_root == str(tmp_path / "artifacts") and config.experiment == "local"


def test_login_and_password_are_basic_auth(monkeypatch: pytest.MonkeyPatch):
    config = _config(monkeypatch, "mlflow_basic_auth", host="http://mlflow:5000", login="alice", password=PASSWORD)
    assert (config.username, config.password, config.token) == ("alice", PASSWORD, None)


def test_a_token_in_extra_is_the_bearer_token(monkeypatch: pytest.MonkeyPatch):
    config = _config(monkeypatch, "mlflow_token", host="https://mlflow.example.com", extra={"token": TOKEN})
    assert (config.username, config.password, config.token) == (None, None, TOKEN)


def test_registry_uri_from_extra(monkeypatch: pytest.MonkeyPatch):
    config = _config(
        monkeypatch, "mlflow_registry", host="http://tracking:5000", extra={"registry_uri": "http://registry:5001"}
    )
    assert config.tracking_uri == "http://tracking:5000" and config.registry_uri == "http://registry:5001"
    # An empty registry_uri means "the tracking URI", not an empty URI.
    assert (
        _config(
            monkeypatch, "mlflow_registry_empty", host="http://tracking:5000", extra={"registry_uri": ""}
        ).registry_uri
        is None
    )


@pytest.mark.parametrize("host", [None, "", "   "])
def test_a_missing_host_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, host: str | None):
    fields = {} if host is None else {"host": host}
    with pytest.raises(ValueError, match=r"connection 'mlflow_no_host': Host must hold the MLflow tracking URI"):
        _config(monkeypatch, "mlflow_no_host", **fields)


def test_repr_and_str_never_show_credentials(monkeypatch: pytest.MonkeyPatch):
    config = _config(
        monkeypatch,
        "mlflow_secret",
        host="https://mlflow.example.com",
        login="alice",
        password=PASSWORD,
        extra={"token": TOKEN},
    )
    assert config.password == PASSWORD and config.token == TOKEN
    for text in (repr(config), str(config), f"{config}", f"{config!s}", repr([config])):
        assert PASSWORD not in text and TOKEN not in text
        assert "https://mlflow.example.com" in text


def test_apply_credentials_sets_mlflows_environment(monkeypatch: pytest.MonkeyPatch):
    for key in CREDENTIAL_VARS:  # recorded by monkeypatch, so whatever was there is restored afterwards
        monkeypatch.delenv(key, raising=False)
    MlflowConfig(
        tracking_uri="http://mlflow:5000", username="alice", password=PASSWORD, token=TOKEN
    ).apply_credentials()
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == PASSWORD
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == TOKEN


def test_apply_credentials_without_credentials_sets_nothing(monkeypatch: pytest.MonkeyPatch):
    for key in CREDENTIAL_VARS:
        monkeypatch.delenv(key, raising=False)
    MlflowConfig(tracking_uri="http://mlflow:5000").apply_credentials()
    assert not any(key in os.environ for key in CREDENTIAL_VARS)


def test_test_connection_reports_an_unreachable_server(monkeypatch: pytest.MonkeyPatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_CLOSED", json.dumps({"conn_type": "llmops_mlflow", "host": f"http://127.0.0.1:{port}"})
    )
    started = time.monotonic()
    ok, message = MlflowHook(mlflow_conn_id="mlflow_closed").test_connection()
    assert ok is False and message
    assert time.monotonic() - started < 60


def test_credentials_of_one_connection_do_not_leak_to_the_next(monkeypatch):
    from airflow_provider_llmops.core.model.registry import MlflowConfig

    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "from-the-environment")
    MlflowConfig(tracking_uri="http://a:5000", username="alice", password="pw-a").apply_credentials()
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "pw-a"
    MlflowConfig(tracking_uri="http://b:5000").apply_credentials()
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ and "MLFLOW_TRACKING_PASSWORD" not in os.environ
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "from-the-environment"  # not ours to remove
