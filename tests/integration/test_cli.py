"""The installed package as a user meets it: `airflow providers ...`, `airflow config`, and `llmops demo` twice."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.openlineage_spec import read_events, validate_event

pytestmark = pytest.mark.integration


def test_airflow_sees_the_provider_its_connection_type_and_config():
    providers = json.loads(run_cli("airflow", "providers", "list", "-o", "json").stdout)
    assert any(p["package_name"] == "airflow-provider-llmops" for p in providers)
    hooks = json.loads(run_cli("airflow", "providers", "hooks", "-o", "json").stdout)
    (hook,) = [h for h in hooks if h["connection_type"] == "llmops_s3"]
    assert hook["class"] == "airflow_provider_llmops.hooks.object_store.ObjectStoreHook"
    (mlflow,) = [h for h in hooks if h["connection_type"] == "llmops_mlflow"]
    assert mlflow["class"] == "airflow_provider_llmops.hooks.mlflow.MlflowHook"
    links = run_cli("airflow", "providers", "links", "-o", "json").stdout
    assert (
        "airflow_provider_llmops.links.MlflowRunLink" in links
        and "airflow_provider_llmops.links.MlflowModelVersionLink" in links
    )
    assert run_cli("airflow", "config", "get-value", "llmops", "max_row_bytes").stdout.strip() == "65536"


def test_dags_install_copies_the_thin_dag_files(tmp_path: Path):
    result = run_cli("llmops", "dags", "install", str(tmp_path / "dags"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dags" / "llmops_ingest_validate.py").exists()


@pytest.mark.slow
def test_demo_runs_twice_in_a_fresh_home(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["LLMOPS_HOME"] = str(tmp_path / "home")
    user_airflow = Path.home() / "airflow"
    existed = user_airflow.exists()
    first = run_cli(
        "llmops", "demo", "--no-train", env=env
    )  # training is covered by test_retrain_dag and the lifecycle tests
    assert first.returncode == 0, first.stdout + first.stderr
    assert "llmops_ingest_validate (tickets_reference.jsonl): success" in first.stdout
    assert "(new)" in first.stdout and "validation  passed" in first.stdout
    second = run_cli("llmops", "demo", "--no-train", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "(already existed)" in second.stdout
    assert user_airflow.exists() == existed  # never the user's ~/airflow
    assert (tmp_path / "home" / "airflow" / "airflow.db").exists()
    events = read_events(tmp_path / "home" / "lineage" / "events.jsonl")
    assert len(events) >= 8
    for event in events:
        validate_event(event)
