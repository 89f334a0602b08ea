"""Airflow DAG file: roll the support-ticket router's candidate out through a canary (on the candidate asset)."""

from airflow_provider_llmops.dags.deploy import build_deploy_dag

dag = build_deploy_dag()
