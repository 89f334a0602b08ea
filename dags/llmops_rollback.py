"""Airflow DAG file: roll the support-ticket router back to its previous champion (manual)."""

from airflow_provider_llmops.dags.rollback import build_rollback_dag

dag = build_rollback_dag()
