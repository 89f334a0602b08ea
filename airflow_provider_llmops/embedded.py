"""The embedded default: Airflow on SQLite with the LocalExecutor, everything under one home directory.

`<home>` is `$LLMOPS_HOME`, or `.llmops` in the current directory. Inside it:
`airflow/` (AIRFLOW_HOME, airflow.db), `dags/` (the provider's thin DAG files), `store/` (snapshots),
`lineage/events.jsonl` (OpenLineage file transport) and `incoming/` (drop files here to ingest them).
Nothing here touches `~/airflow`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from airflow_provider_llmops.resources import dag_files_dir, sample_data_dir


def default_home() -> Path:
    from airflow_provider_llmops.settings import embedded_home

    return embedded_home()


def lineage_file(home: Path) -> Path:
    return home / "lineage" / "events.jsonl"


def embedded_env(home: Path, port: int = 8080) -> dict[str, str]:
    """Environment variables that configure Airflow and the provider for the embedded default."""
    airflow_home = home / "airflow"
    transport = {"type": "file", "log_file_path": str(lineage_file(home)), "append": True}
    return {
        "LLMOPS_HOME": str(home),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        # Local, single-user: every UI user is admin. Do not use this on a shared host.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        # every listener on 127.0.0.1: the scheduler's health check server, should it be enabled (the log servers
        # are not started at all by `llmops ui`: task logs are read from local files)
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "llmops",
        "AIRFLOW__LLMOPS__HOME": str(home),
        "AIRFLOW__LLMOPS__STORE_URI": str(home / "store"),
        "AIRFLOW__LLMOPS__ALLOWED_ROOTS": f"{sample_data_dir()},{home / 'incoming'}",
        # the demo's dataset is validated with the support-ticket suite and its model evaluated on the ticket golden set
        "AIRFLOW__LLMOPS__DATASET_SUITES": json.dumps({"support_tickets": "support_tickets"}),
        "AIRFLOW__LLMOPS__GOLDEN_SETS": json.dumps({"support_ticket_router": str(sample_data_dir() / "golden.jsonl")}),
        # MLflow: SQLite store and artifacts under <home>/mlflow; `llmops mlflow` serves its UI here
        "AIRFLOW__LLMOPS__MLFLOW_UI_URL": "http://127.0.0.1:5000",
        "GX_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def install_dag_files(target: Path) -> list[Path]:
    """Copy the provider's thin DAG files into a DAGs folder (overwriting older copies)."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(dag_files_dir().glob("*.py")):
        destination = target / source.name
        if not destination.exists() or destination.read_bytes() != source.read_bytes():
            shutil.copyfile(source, destination)
        written.append(destination)
    return written


def prepare(home: Path, env: dict[str, str]) -> None:
    """Idempotent set-up: folders, DAG files, migrated metadata DB, and the one-slot pool that every
    registry-changing task runs in (Airflow does not schedule a task whose pool does not exist)."""
    for sub in ("airflow", "dags", "store", "lineage", "incoming"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    install_dag_files(home / "dags")
    airflow = Path(sys.executable).with_name("airflow")
    command = [str(airflow)] if airflow.exists() else [sys.executable, "-m", "airflow"]
    run_env = {**os.environ, **env}
    subprocess.run([*command, "db", "migrate"], env=run_env, check=True, stdout=subprocess.DEVNULL)
    from airflow_provider_llmops.settings import DEFAULTS

    pool = run_env.get("AIRFLOW__LLMOPS__REGISTRY_POOL") or DEFAULTS["registry_pool"]
    description = "llmops: registry-changing tasks (fine_tune, promote, rollback), one at a time"
    pool_command = [*command, "pools", "set", pool, "1", description]
    subprocess.run(pool_command, env=run_env, check=True, stdout=subprocess.DEVNULL)


def apply(env: dict[str, str]) -> None:
    """Put the embedded settings into this process's environment (before Airflow is imported)."""
    os.environ.update(env)
