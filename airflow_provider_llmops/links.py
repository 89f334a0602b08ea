"""Airflow extra links: buttons on the training, evaluation and promotion tasks that open MLflow pages.

The operators push the page URLs to XCom (keys below) while they run; a link is empty until then, or when no
MLflow UI address is known (a local SQLite store without `[llmops] mlflow_ui_url`).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

XCOM_RUN_URL = "mlflow_run_url"
XCOM_VERSION_URL = "mlflow_version_url"


def _xcom(ti_key: Any, key: str) -> str:
    from airflow.sdk.execution_time.xcom import XCom

    value = XCom.get_value(ti_key=ti_key, key=key)
    return value if isinstance(value, str) else ""


class MlflowRunLink(BaseOperatorLink):
    """The MLflow run of this task (training or evaluation)."""

    name = "MLflow run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return _xcom(ti_key, XCOM_RUN_URL)


class MlflowModelVersionLink(BaseOperatorLink):
    """The registered model version this task produced or promoted."""

    name = "MLflow model version"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return _xcom(ti_key, XCOM_VERSION_URL)


def push_links(context: Any, run_url: str | None, version_url: str | None) -> None:
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None:
        return
    if run_url:
        ti.xcom_push(key=XCOM_RUN_URL, value=run_url)
    if version_url:
        ti.xcom_push(key=XCOM_VERSION_URL, value=version_url)
