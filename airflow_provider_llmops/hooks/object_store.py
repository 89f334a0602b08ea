"""An Airflow connection for S3-compatible object stores (AWS S3, MinIO): endpoint URL, region, credentials."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from airflow_provider_llmops.core.data.s3 import S3Config, make_client


class ObjectStoreHook(BaseHook):
    """Builds a boto3 S3 client from a connection of type `llmops_s3` (or an `aws`-style connection).

    Fields: Host = endpoint URL (empty for AWS), Login = access key id, Password = secret access key,
    extra `region_name`, optional extra `session_token` and `addressing_style` (`path` or `virtual`).
    `endpoint_url`, `aws_access_key_id` and `aws_secret_access_key` in extra are honoured too, so connections
    written for the Amazon provider work unchanged.
    """

    conn_name_attr = "s3_conn_id"
    default_conn_name = "llmops_s3_default"
    conn_type = "llmops_s3"
    hook_name = "LLMOps object store (S3 / MinIO)"

    def __init__(self, s3_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.s3_conn_id = s3_conn_id

    def get_config(self) -> S3Config:
        conn = self.get_connection(self.s3_conn_id)
        extra = conn.extra_dejson
        endpoint = extra.get("endpoint_url") or conn.host or None
        if endpoint and "://" not in endpoint:
            scheme = "https" if extra.get("use_ssl", False) else "http"
            endpoint = f"{scheme}://{endpoint}" + (f":{conn.port}" if conn.port else "")
        return S3Config(
            endpoint_url=endpoint,
            region_name=extra.get("region_name") or None,
            access_key_id=conn.login or extra.get("aws_access_key_id") or None,
            secret_access_key=conn.password or extra.get("aws_secret_access_key") or None,
            session_token=extra.get("session_token") or extra.get("aws_session_token") or None,
            addressing_style=extra.get("addressing_style", "path"),
        )

    def get_conn(self) -> Any:
        return make_client(self.get_config())

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.get_conn().list_buckets()
        except Exception as exc:  # report any client error to the UI's "Test" button
            return False, str(exc)
        return True, "Connection to the object store works"
