"""Airflow DAG file: retrain, evaluate and promote the support-ticket router (nightly and on drift)."""

from airflow_provider_llmops.dags.retrain import build_retrain_dag

dag = build_retrain_dag()
