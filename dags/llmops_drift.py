"""Airflow DAG file: the drift DAG of airflow-provider-llmops, scheduled on the validated support tickets."""

from airflow_provider_llmops.dags.drift import build_drift_dag

dag = build_drift_dag()
