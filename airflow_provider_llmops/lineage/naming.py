"""OpenLineage dataset naming (namespace, name) for the URIs this provider reads and writes.

Follows the OpenLineage naming spec: local files are namespace `file`, name = absolute path; S3 objects are
namespace `s3://<bucket>`, name = key; HTTP sources are namespace `<scheme>://<host>[:port]`, name = path.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse


def dataset_name(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme == "file" else uri
        return "file", str(Path(path).expanduser().resolve())
    if parsed.scheme in ("s3", "s3a", "gs", "abfss", "wasbs"):
        return f"{parsed.scheme if parsed.scheme != 's3a' else 's3'}://{parsed.netloc}", parsed.path.lstrip("/")
    if parsed.scheme in ("http", "https"):
        return f"{parsed.scheme}://{parsed.netloc}", parsed.path or "/"
    return f"{parsed.scheme}://{parsed.netloc}", parsed.path.lstrip("/")
