"""Airflow DAG file: the ingest-and-validate DAG of airflow-provider-llmops, with its defaults."""

from airflow_provider_llmops.dags.ingest_validate import build_ingest_validate_dag

dag = build_ingest_validate_dag()
