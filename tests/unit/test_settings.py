"""Settings resolve in one place: the CLI and the operators agree on the home, and each default appears once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_llmops import cli, settings
from airflow_provider_llmops.errors import ConfigurationError
from airflow_provider_llmops.get_provider_info import get_provider_info


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No [llmops] option, no LLMOPS_HOME, no AIRFLOW_HOME; the working directory is an empty tmp dir."""
    import os

    for key in list(os.environ):
        if key.startswith("AIRFLOW__LLMOPS__") or key in ("LLMOPS_HOME", "AIRFLOW_HOME"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return tmp_path


def _cli_home(*argv: str) -> Path:
    return cli._state_home(cli.build_parser().parse_args([*argv, "audit", "verify"]))


def test_airflow_home_is_shared_by_cli_and_operators(bare_env: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(bare_env / "af"))
    assert settings.load_settings().home == bare_env / "af" / "llmops"
    assert _cli_home() == bare_env / "af" / "llmops"


def test_embedded_home_in_the_working_directory_is_found_by_both(bare_env: Path):
    (bare_env / ".llmops").mkdir()
    assert settings.llmops_home() == bare_env / ".llmops" == _cli_home() == settings.embedded_home()


def test_without_any_configuration_both_use_airflows_default_home(bare_env: Path):
    expected = bare_env / "user" / "airflow" / "llmops"
    assert settings.llmops_home() == expected == _cli_home()


def test_explicit_home_wins_in_this_order(bare_env: Path, monkeypatch: pytest.MonkeyPatch):
    (bare_env / ".llmops").mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(bare_env / "af"))
    monkeypatch.setenv("LLMOPS_HOME", str(bare_env / "env-home"))
    assert settings.llmops_home() == bare_env / "env-home"
    monkeypatch.setenv("AIRFLOW__LLMOPS__HOME", str(bare_env / "cfg-home"))
    assert settings.llmops_home() == bare_env / "cfg-home" == _cli_home()
    assert _cli_home("--home", str(bare_env / "flag")) == bare_env / "flag"


def test_audit_verify_reads_the_operators_home(bare_env: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setenv("AIRFLOW_HOME", str(bare_env / "af"))
    assert cli.main(["audit", "verify"]) == 2
    assert str(bare_env / "af" / "llmops" / "audit" / "audit.jsonl") in capsys.readouterr().err


def test_each_default_is_declared_once_and_matches_the_provider_info():
    options = get_provider_info()["config"]["llmops"]["options"]
    for key, default in settings.DEFAULTS.items():
        assert key in options, key
        assert options[key]["default"] == str(default), key
    fields = set(settings.Settings.__dataclass_fields__)
    # every documented option is a setting, or a serve_* option (read by serve_options(), parsed by ServeConfig)
    assert set(options) - set(settings.SERVE_OPTIONS) <= fields
    assert not fields & set(settings.SERVE_OPTIONS)


def test_defaults_without_configuration(bare_env: Path):
    s = settings.load_settings()
    assert (s.model_name, s.dataset, s.default_suite, s.registry_pool) == (
        "support_ticket_router",
        "support_tickets",
        "generic",
        "llmops_registry",
    )
    assert s.allowed_uri_prefixes == ()  # no remote source until configured
    assert s.suite_for("anything") == "generic" and s.golden_for("support_ticket_router") is None


def test_mappings_and_numbers_are_checked(bare_env: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__LLMOPS__DATASET_SUITES", json.dumps({"tickets": "ticket_suite"}))
    monkeypatch.setenv("AIRFLOW__LLMOPS__MODEL_NAME", "router")
    s = settings.load_settings()
    assert s.suite_for("tickets") == "ticket_suite" and s.suite_for("other") == "generic" and s.model_name == "router"
    monkeypatch.setenv("AIRFLOW__LLMOPS__DATASET_SUITES", "[1, 2]")
    with pytest.raises(ConfigurationError, match="dataset_suites must be a JSON object"):
        settings.load_settings()
    monkeypatch.delenv("AIRFLOW__LLMOPS__DATASET_SUITES")
    monkeypatch.setenv("AIRFLOW__LLMOPS__MAX_ROW_BYTES", "lots")
    with pytest.raises(ConfigurationError, match="max_row_bytes must be an integer"):
        settings.load_settings()
