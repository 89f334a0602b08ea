"""Provider metadata read by Airflow's ProvidersManager (entry point `apache_airflow_provider`)."""

from __future__ import annotations

from typing import Any

from airflow_provider_llmops import __version__
from airflow_provider_llmops.settings import SERVE_OPTIONS


def _option(description: str, default: str, example: str | None = None, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "version_added": "0.1.0", "type": kind, "example": example, "default": default}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-llmops",
        "name": "LLMOps",
        "description": "Operate a language model in production: ingest, validate (Great Expectations), drift, "
        "retrain, evaluate, promote (MLflow), serve, with OpenLineage lineage and an audit trail.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "LLMOps",
                "external-doc-url": "https://pypi.org/project/airflow-provider-llmops/",
                "tags": ["ml", "llmops"],
            },
            {
                "integration-name": "Great Expectations (core API)",
                "external-doc-url": "https://docs.greatexpectations.io/",
                "tags": ["data-quality"],
            },
            {
                "integration-name": "S3-compatible object store",
                "external-doc-url": "https://docs.aws.amazon.com/s3/",
                "tags": ["storage"],
            },
            {"integration-name": "MLflow", "external-doc-url": "https://mlflow.org/docs/latest/", "tags": ["ml"]},
        ],
        "operators": [
            {
                "integration-name": "LLMOps",
                "python-modules": [
                    "airflow_provider_llmops.operators.ingest",
                    "airflow_provider_llmops.operators.validate",
                    "airflow_provider_llmops.operators.drift",
                    "airflow_provider_llmops.operators.train",
                    "airflow_provider_llmops.operators.evaluate",
                    "airflow_provider_llmops.operators.promote",
                    "airflow_provider_llmops.operators.rollback",
                    "airflow_provider_llmops.operators.deploy",
                    "airflow_provider_llmops.operators.sanity",
                    "airflow_provider_llmops.operators.sanity_report",
                ],
            }
        ],
        "notifications": ["airflow_provider_llmops.notifications.webhook.WebhookNotifier"],
        "triggers": [
            {"integration-name": "LLMOps", "python-modules": ["airflow_provider_llmops.triggers.canary"]},
        ],
        "hooks": [
            {
                "integration-name": "S3-compatible object store",
                "python-modules": ["airflow_provider_llmops.hooks.object_store"],
            },
            {"integration-name": "MLflow", "python-modules": ["airflow_provider_llmops.hooks.mlflow"]},
        ],
        "asset-uris": [
            {
                "schemes": ["mlflow"],
                "handler": "airflow_provider_llmops.assets.sanitize_mlflow_uri",
                "to_openlineage_converter": "airflow_provider_llmops.assets.convert_mlflow_asset_to_openlineage",
            }
        ],
        "extra-links": [
            "airflow_provider_llmops.links.MlflowRunLink",
            "airflow_provider_llmops.links.MlflowModelVersionLink",
        ],
        "plugins": [
            {"name": "llmops_view", "plugin-class": "airflow_provider_llmops.plugins.llmops_view.LLMOpsViewPlugin"}
        ],
        "connection-types": [
            {
                "connection-type": "llmops_s3",
                "hook-class-name": "airflow_provider_llmops.hooks.object_store.ObjectStoreHook",
                "hook-name": "LLMOps object store (S3 / MinIO)",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "Endpoint URL", "login": "Access key id", "password": "Secret access key"},
                    "placeholders": {
                        "host": "http://127.0.0.1:9000 for MinIO; empty for AWS S3",
                        "login": "AKIA... / minio user",
                        "password": "secret key (masked)",
                        "extra": '{"region_name": "us-east-1", "addressing_style": "path"}',
                    },
                },
                "conn-fields": {
                    "region_name": {"label": "Region", "schema": {"type": ["string", "null"]}},
                    "addressing_style": {
                        "label": "Addressing style (path or virtual)",
                        "schema": {"type": ["string", "null"], "enum": ["path", "virtual", None]},
                    },
                },
            },
            {
                "connection-type": "llmops_mlflow",
                "hook-class-name": "airflow_provider_llmops.hooks.mlflow.MlflowHook",
                "hook-name": "LLMOps MLflow",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema"],
                    "relabeling": {
                        "host": "Tracking URI",
                        "login": "Username (basic auth)",
                        "password": "Password (basic auth)",
                    },
                    "placeholders": {
                        "host": "http://mlflow:5000 or sqlite:////opt/airflow/mlflow.db",
                        "extra": '{"registry_uri": "", "token": "", "experiment": "llmops", "artifact_root": ""}',
                    },
                },
                "conn-fields": {
                    "registry_uri": {
                        "label": "Registry URI (default: the tracking URI)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "token": {
                        "label": "Bearer token (instead of basic auth)",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "experiment": {"label": "Experiment", "schema": {"type": ["string", "null"]}},
                    "artifact_root": {
                        "label": "Artifact root for new experiments (local stores)",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
        ],
        "config": {
            "llmops": {
                "description": (
                    "Settings of airflow-provider-llmops. Empty values fall back to defaults under [llmops] home."
                ),
                "options": {
                    "home": _option(
                        "Root of the provider's local state (store, audit trail, locks, MLflow files), "
                        "the same for the CLI and the operators. "
                        "Empty: $LLMOPS_HOME, else $AIRFLOW_HOME/llmops, else ./.llmops when it exists, "
                        "else ~/airflow/llmops.",
                        "",
                        "/opt/airflow/llmops",
                    ),
                    "store_uri": _option(
                        "Dataset store: a local directory or s3://bucket/prefix. Empty: <home>/store.",
                        "",
                        "s3://llmops/store",
                    ),
                    "store_conn_id": _option(
                        "llmops_s3 connection used when store_uri is on S3. Empty: boto3's default credentials.",
                        "",
                        "llmops_s3_default",
                    ),
                    "allowed_roots": _option(
                        "Comma-separated local directories that sources may be read from "
                        "(symlinks and .. are resolved first). "
                        "Empty: the shipped sample data and <home>/incoming.",
                        "",
                        "/data/incoming,/mnt/shared/tickets",
                    ),
                    "allowed_uri_prefixes": _option(
                        "Comma-separated remote sources that may be read: scheme://host[:port][/path], "
                        "compared as parsed URLs "
                        "(host exactly, path on a / boundary). Empty: no remote source is allowed.",
                        "",
                        "s3://tickets-landing/,https://exports.example.com/tickets/",
                    ),
                    "allowed_source_conn_ids": _option(
                        "Comma-separated connection ids that a run of llmops_ingest_validate "
                        "(build_ingest_validate_dag "
                        "without allowed_source_conn_ids) may choose by the source_conn_id Param. Empty: none.",
                        "",
                        "tickets_https,llmops_s3_landing",
                    ),
                    "max_row_bytes": _option(
                        "Rows larger than this many bytes are quarantined as oversized.", "65536", None, "integer"
                    ),
                    "max_source_bytes": _option(
                        "Sources larger than this many bytes are refused as a whole.", "1073741824", None, "integer"
                    ),
                    "mlflow_conn_id": _option(
                        "llmops_mlflow connection of the tracking/registry server. "
                        "Empty: mlflow_tracking_uri, else the embedded SQLite store under <home>/mlflow.",
                        "",
                        "llmops_mlflow_default",
                    ),
                    "mlflow_tracking_uri": _option(
                        "MLflow tracking URI used when no connection is named (no credentials). "
                        "Empty: sqlite:///<home>/mlflow/mlflow.db with artifacts in <home>/mlflow/artifacts.",
                        "",
                        "http://mlflow:5000",
                    ),
                    "mlflow_ui_url": _option(
                        "Base URL of the MLflow UI for the extra links when the tracking URI is not an http(s) server.",
                        "",
                        "http://127.0.0.1:5000",
                    ),
                    "model_name": _option(
                        "Registered model name the operators and DAG factories use when none is given.",
                        "support_ticket_router",
                        None,
                    ),
                    "dataset": _option("Dataset the DAG factories use when none is given.", "support_tickets", None),
                    "suites_dirs": _option(
                        "Comma-separated folders that Great Expectations suites are looked up in, "
                        "by name (<name>.json). "
                        "Empty: the shipped suites and <home>/expectations.",
                        "",
                        "/opt/airflow/expectations",
                    ),
                    "default_suite": _option("Suite of a dataset that dataset_suites does not name.", "generic", None),
                    "dataset_suites": _option(
                        "JSON object: dataset -> suite name.", "", '{"support_tickets": "support_tickets"}'
                    ),
                    "golden_sets": _option(
                        "JSON object: registered model -> golden set file (JSONL) evaluated with every challenger.",
                        "",
                        '{"support_ticket_router": "/opt/airflow/golden/tickets.jsonl"}',
                    ),
                    "audit_conn_id": _option(
                        "Connection (or secrets-backend entry) whose password is the HMAC key of the audit trail. "
                        "Empty: a plain hash chain.",
                        "",
                        "llmops_audit_key",
                    ),
                    "registry_pool": _option(
                        "Airflow pool of one slot that every registry-changing task runs in.", "llmops_registry", None
                    ),
                    "pushgateway_url": _option(
                        "Prometheus Pushgateway to push metrics to (e.g. 127.0.0.1:9091). "
                        "Empty: no push; metrics are still written to <home>/metrics/*.prom.",
                        "",
                        "127.0.0.1:9091",
                    ),
                    "alert_webhook_url": _option(
                        "Webhook (http or https URL) the nightly sanity run (llmops_nightly_sanity) posts a JSON alert "
                        "to when a check fails or a run misses its deadline. Empty: alerts are only logged.",
                        "",
                        "http://127.0.0.1:9095/alerts",
                    ),
                    "deploy_policy": _option(
                        "Canary policy of llmops_deploy when the DAG's author passes none: a JSON object of "
                        "CanaryPolicy fields (step_weights, analysis_interval_s, min_requests, max_error_rate, "
                        "max_p95_latency_ms, max_disagreement, failure_threshold, progress_deadline_s). "
                        "Empty: the defaults (10%, 50%, 100%; 60 s windows; 50 requests).",
                        "",
                        '{"step_weights": [0.05, 0.25, 1.0], "min_requests": 200}',
                    ),
                    **{key: _option(text, default) for key, (default, text) in SERVE_OPTIONS.items()},
                },
            }
        },
    }
