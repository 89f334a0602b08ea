"""Who ran a step: the identity of a pipeline run as the audit trail and the registry record it. Plain Python, the
lowest layer of `core/` (every stage may import it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def actor_of(run: Mapping[str, Any]) -> str:
    """Who acted, for the `actor` field: the Airflow task of a run (`airflow:<dag>/<run>/<task>`), else the CLI."""
    if run.get("dag_id"):
        return f"airflow:{run.get('dag_id')}/{run.get('run_id')}/{run.get('task_id')}"
    return "llmops-cli"
