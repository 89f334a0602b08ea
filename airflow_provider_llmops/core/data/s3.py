"""S3 client configuration (endpoint URL, region, credentials) so AWS S3 and MinIO work alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str | None = None
    region_name: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    addressing_style: str = "path"  # what MinIO and most S3-compatible servers expect


def make_client(config: S3Config) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        aws_session_token=config.session_token,
        region_name=config.region_name,
    )
    return session.client(
        "s3",
        endpoint_url=config.endpoint_url,
        config=Config(
            s3={"addressing_style": config.addressing_style},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        ),
    )
