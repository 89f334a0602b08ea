"""Airflow DAG file: the nightly sanity run of the support-ticket router's loop (03:00 every day)."""

from airflow_provider_llmops.dags.sanity import build_sanity_dag

dag = build_sanity_dag()
