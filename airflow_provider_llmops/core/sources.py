"""Read a source batch as bytes from a local path, `file://`, `s3://` or `http(s)://`, within allowed roots."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from airflow_provider_llmops.errors import PathNotAllowedError, SourceError

FORMATS = ("jsonl", "csv", "parquet")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class SourceBlob:
    uri: str  # as given by the user
    location: str  # normalised: absolute path for local files, the URL otherwise
    data: bytes
    sha256: str
    file_format: str


def detect_format(uri: str, explicit: str | None = None) -> str:
    if explicit:
        fmt = explicit.lower().lstrip(".")
        fmt = _SUFFIXES.get("." + fmt, fmt)
        if fmt not in FORMATS:
            raise SourceError(uri, f"unknown format {explicit!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(urlparse(uri).path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise SourceError(uri, f"cannot tell the format from suffix {suffix or '(none)'!r}; set file_format to one of {', '.join(FORMATS)}")
    return _SUFFIXES[suffix]


def local_path(uri: str) -> Path | None:
    """The filesystem path a local URI names, or None for a remote URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise SourceError(uri, "file:// URIs must name a local path (file:///abs/path)")
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(uri).expanduser()
    return None


def check_allowed(uri: str, path: Path, allowed_roots: tuple[str, ...] | list[str]) -> Path:
    """Resolve symlinks and `..`, then require the result to lie under one of the allowed roots."""
    resolved = path.resolve()
    for root in allowed_roots:
        root_path = Path(root).expanduser().resolve()
        if resolved == root_path or root_path in resolved.parents:
            return resolved
    raise PathNotAllowedError(uri, f"resolves to {resolved}, outside the allowed roots {list(allowed_roots)} (setting [llmops] allowed_roots)")


def _read_local(uri: str, path: Path, max_bytes: int) -> bytes:
    if not path.exists():
        raise SourceError(uri, f"does not exist ({path})")
    if not path.is_file():
        raise SourceError(uri, f"is not a regular file ({path})")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(uri, f"is {size} bytes, over the limit of {max_bytes} (setting [llmops] max_source_bytes)")
        return path.read_bytes()
    except PermissionError:
        raise SourceError(uri, f"is not readable by this worker: permission denied ({path})") from None


def _read_s3(uri: str, client: Any, max_bytes: int) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise SourceError(uri, "an s3 source must be s3://bucket/key")
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] > max_bytes:
            raise SourceError(uri, f"is {head['ContentLength']} bytes, over the limit of {max_bytes}")
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            raise SourceError(uri, "does not exist (no such bucket or key)") from None
        if status in (401, 403) or code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"):
            raise SourceError(uri, f"access denied: the credentials are not authorised ({code or status})") from None
        raise SourceError(uri, f"S3 error {code or status}: {exc}") from None
    except NoCredentialsError:
        raise SourceError(uri, "no S3 credentials: set them on the source connection") from None
    except EndpointConnectionError as exc:
        raise SourceError(uri, f"unreachable: {exc}") from None
    except BotoCoreError as exc:
        raise SourceError(uri, f"S3 client error: {exc}") from None


def _read_http(uri: str, max_bytes: int, timeout: float, headers: dict[str, str] | None) -> bytes:
    request = urllib.request.Request(uri, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked by caller)
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise SourceError(uri, f"access denied: HTTP {exc.code} (not authorised)") from None
        if exc.code == 404:
            raise SourceError(uri, "does not exist: HTTP 404") from None
        raise SourceError(uri, f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceError(uri, f"unreachable: {reason}") from None
    if len(data) > max_bytes:
        raise SourceError(uri, f"is over the limit of {max_bytes} bytes")
    return data


def read_source(
    uri: str,
    *,
    allowed_roots: tuple[str, ...] | list[str],
    allowed_uri_prefixes: tuple[str, ...] | list[str] = ("s3://", "http://", "https://"),
    file_format: str | None = None,
    s3_client: Any = None,
    http_headers: dict[str, str] | None = None,
    http_timeout: float = 30.0,
    max_bytes: int = 1 << 30,
) -> SourceBlob:
    """Fetch a whole source. Raises `SourceError` naming the source and the problem when it is unusable."""
    if not uri or not uri.strip():
        raise SourceError(repr(uri), "no source URI given")
    uri = uri.strip()
    fmt = detect_format(uri, file_format)
    path = local_path(uri)
    if path is not None:
        resolved = check_allowed(uri, path, allowed_roots)
        data, location = _read_local(uri, resolved, max_bytes), str(resolved)
    else:
        scheme = urlparse(uri).scheme
        if scheme not in ("s3", "http", "https"):
            raise SourceError(uri, f"unsupported scheme {scheme!r}; use a path, file://, s3:// or http(s)://")
        if not any(uri.startswith(prefix) for prefix in allowed_uri_prefixes):
            raise PathNotAllowedError(uri, f"is outside the allowed URI prefixes {list(allowed_uri_prefixes)} (setting [llmops] allowed_uri_prefixes)")
        if scheme == "s3":
            if s3_client is None:
                raise SourceError(uri, "no S3 client configured for this source")
            data = _read_s3(uri, s3_client, max_bytes)
        else:
            data = _read_http(uri, max_bytes, http_timeout, http_headers)
        location = uri
    if not data.strip():
        raise SourceError(uri, "is empty (0 rows)")
    return SourceBlob(uri=uri, location=location, data=data, sha256=hashlib.sha256(data).hexdigest(), file_format=fmt)
