"""Run a provider DAG for real (`dag.test()` on the migrated embedded SQLite DB) and collect what it left."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_llmops import embedded
from tests.openlineage_spec import read_events


@dataclass
class RunOutcome:
    state: str
    tasks: dict[str, str]
    xcom: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)


def run_dag(home: Path, dag_id: str, conf: dict[str, Any]) -> RunOutcome:
    from airflow.dag_processing.dagbag import DagBag

    lineage = embedded.lineage_file(home)
    seen = len(read_events(lineage))
    bag = DagBag(dag_folder=str(home / "dags"))
    assert bag.import_errors == {}
    run = bag.dags[dag_id].test(run_conf=conf)
    tis = run.get_task_instances()
    return RunOutcome(
        state=str(run.state),
        tasks={ti.task_id: str(ti.state) for ti in tis},
        xcom={ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in tis},
        events=read_events(lineage)[seen:],
    )
