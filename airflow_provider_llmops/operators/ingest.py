"""IngestBatchOperator: a source file -> an immutable, content-addressed dataset snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.operators.base import LLMOpsBaseOperator, as_json

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context


class IngestBatchOperator(LLMOpsBaseOperator):
    """Read a batch of text records and commit it as a snapshot of `dataset` in the dataset store.

    Reads: `source_uri`, a JSONL, CSV or Parquet file given as a local path, `file://`, `s3://` or `http(s)://`.
    Local paths must resolve inside `[llmops] allowed_roots`; remote URIs must be admitted by
    `[llmops] allowed_uri_prefixes` (compared parsed: scheme, host, port, path on a `/` boundary; empty, the
    default: no remote source). S3 credentials, endpoint and region come from `source_conn_id` (an `llmops_s3`
    connection); for HTTP, that connection's login/password are sent as basic auth (password alone: bearer), plus
    its extra `headers`. A connection is bound to the hosts in its extra `allowed_hosts` (`host[:port]`,
    `scheme://host[:port][/path]` or `s3://bucket[/prefix]`; list or comma-separated), else, for http(s), to its
    Host field when set: a URI outside them is refused before anything is sent. HTTP redirects are followed only
    within the allow-list, at most 5, and credentials go only to the origin of `source_uri`.

    Decides which connection may be used: a `source_conn_id` written literally by the DAG author is always
    allowed; one rendered from a template (e.g. a run's Param) must be in `allowed_conn_ids`, else the task fails
    before reading anything. When `source_uri` is rendered from a template, an http(s) connection with
    credentials must be bound to hosts (a run may not choose where its credentials go).

    Writes: `<store>/snapshots/<dataset>/<snapshot_id>/` with `data.parquet`, `quarantine.jsonl` (each rejected
    row, its line number and reason) and `manifest.json` (the commit point). The same content gives the same
    snapshot id and writes nothing new.

    Decides: which rows are accepted; the task fails when the source is unusable as a whole or no row is valid.
    Returns (XCom): a small summary with `snapshot_id`, URIs and row counts.

    :param source_uri: the file to read: a local path, `file://`, `s3://` or `http(s)://` URI, at most
        `[llmops] max_source_bytes` (1 GiB by default). Local paths must resolve inside `[llmops] allowed_roots`
        (default: the shipped samples and `<home>/incoming`), remote URIs must be admitted by
        `[llmops] allowed_uri_prefixes`; anything else is refused before it is read. Required. (templated)
    :param dataset: the dataset the snapshot belongs to: 1-128 letters, digits, `_`, `-` or `.`, starting with a
        letter or digit; snapshots go under `<store>/snapshots/<dataset>/`. Required. (templated)
    :param file_format: `jsonl`, `csv` or `parquet` (`json`, `ndjson` and `pq` are accepted as aliases); default
        None: from the suffix of `source_uri` (`.jsonl`/`.ndjson`/`.json`, `.csv`, `.parquet`/`.pq`). (templated)
    :param column_map: source column -> canonical column (`id`, `text`, `label`, `timestamp`), e.g.
        `{"body": "text"}`, as a dict or as JSON text (what a Param renders to); each canonical column may be the
        target of one source column only. Default None: the source already uses the canonical names. (templated)
    :param metadata_columns: the non-canonical columns (named after `column_map`) kept as string metadata, e.g.
        `["region", "channel"]`; default None: every non-canonical column is kept. (templated)
    :param source_conn_id: the Airflow connection used to read the source: an `llmops_s3` (or `aws`) connection
        for `s3://` (credentials, endpoint, region), an http connection for `http(s)://` (login/password as basic
        auth, password alone as bearer token, extra `headers`; extra `allowed_hosts` binds it to hosts). Unused
        for local files. Default None: boto3's default credential chain for S3, no credentials for http(s). A
        value rendered from a template must be in `allowed_conn_ids`. (templated)
    :param allowed_conn_ids: the connection ids a templated `source_conn_id` (e.g. a run's Param) may render to;
        a literal `source_conn_id` written by the DAG author is always allowed. Default None: none (a connection
        id chosen at run time is refused).
    :param max_row_bytes: the largest row accepted, in bytes (UTF-8) of a JSONL line, a CSV record, or a Parquet
        row written as JSON; larger rows are quarantined with reason `oversized_row`. Default None (or 0):
        `[llmops] max_row_bytes` (65536).
    """

    template_fields: Sequence[str] = (
        *LLMOpsBaseOperator.base_template_fields,
        "source_uri",
        "dataset",
        "file_format",
        "column_map",
        "metadata_columns",
        "source_conn_id",
    )
    template_fields_renderers = {"column_map": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        source_uri: str,
        dataset: str,
        file_format: str | None = None,
        column_map: dict[str, str] | str | None = None,
        metadata_columns: list[str] | None = None,
        source_conn_id: str | None = None,
        allowed_conn_ids: Sequence[str] | None = None,
        max_row_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_uri = source_uri
        self.dataset = dataset
        self.file_format = file_format
        self.column_map = column_map
        self.metadata_columns = metadata_columns
        self.source_conn_id = source_conn_id or None
        # connection ids a templated `source_conn_id` (a run's Param) may render to; a literal id is the author's
        self.allowed_conn_ids = tuple(allowed_conn_ids or ())
        self._conn_id_templated = _is_template(source_conn_id)
        self._uri_templated = _is_template(source_uri)
        self.max_row_bytes = max_row_bytes

    def _checked_conn_id(self) -> str | None:
        """The connection id to use, refused when it came from a template and the author did not allow it."""
        conn_id = (self.source_conn_id or "").strip() or None
        if conn_id and self._conn_id_templated and conn_id not in self.allowed_conn_ids:
            from airflow_provider_llmops.errors import ConnectionNotAllowedError

            allowed = list(self.allowed_conn_ids) or "none"
            raise ConnectionNotAllowedError(
                f"source_conn_id {conn_id!r} was chosen at run time and is not one the DAG author allowed "
                f"(allowed: {allowed}); the author lists them in allowed_conn_ids= of IngestBatchOperator "
                "(allowed_source_conn_ids= of build_ingest_validate_dag, or [llmops] allowed_source_conn_ids)"
            )
        return conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.core.data.ingest import ingest
        from airflow_provider_llmops.core.data.records import ColumnMapping
        from airflow_provider_llmops.core.data.sources import read_source, redact
        from airflow_provider_llmops.errors import NoValidRowsError
        from airflow_provider_llmops.operators._common import run_info

        settings = self.settings
        self._lineage = {"source_uri": redact(self.source_uri)}  # never a password typed into the URI
        mapping = ColumnMapping.from_config(_as_mapping(self.column_map), self.metadata_columns)
        access = source_access(self._checked_conn_id(), self.source_uri)
        if access.conn_id and access.http_headers and access.credential_hosts is None and self._uri_templated:
            from airflow_provider_llmops.errors import ConnectionNotAllowedError

            raise ConnectionNotAllowedError(
                f"connection {access.conn_id!r} is not bound to hosts and source_uri was chosen at run time, so its "
                "credentials could be sent to any allowed host: set the connection's extra allowed_hosts "
                '(e.g. ["data.example.com"] or "https://data.example.com/exports") or its Host'
            )
        if access.credential_hosts is not None:
            self.log.info("source connection %s is bound to %s", access.conn_id, list(access.credential_hosts))
        elif access.conn_id:
            self.log.warning(
                "source connection %s is not bound to hosts: its credentials may go to any source that "
                "[llmops] allowed_uri_prefixes admits; set its extra allowed_hosts to bind it",
                access.conn_id,
            )
        blob = read_source(
            self.source_uri,
            allowed_roots=settings.allowed_roots,
            allowed_uri_prefixes=settings.allowed_uri_prefixes,
            file_format=self.file_format,
            s3_client=access.s3_client() if access.is_s3 else None,
            http_headers=access.http_headers,
            credential_hosts=access.credential_hosts,
            credential_setting=access.credential_setting,
            max_bytes=settings.max_source_bytes,
        )
        result = ingest(
            blob,
            self.store,
            self.dataset,
            mapping,
            max_row_bytes=self.max_row_bytes or settings.max_row_bytes,
            run_info=run_info(context),
        )
        self._lineage.update(source_location=blob.location, result=result)
        self.log.info(
            "%s snapshot %s of %s: %d rows read, %d accepted, %d quarantined %s -> %s",
            "committed" if result.created else "reused existing",
            result.snapshot.snapshot_id,
            self.dataset,
            result.rows_read,
            result.accepted,
            result.quarantined,
            result.reasons or "",
            result.snapshot.uri,
        )
        if result.accepted == 0:
            raise NoValidRowsError(self.source_uri, result.rows_read, result.snapshot.quarantine_uri, result.reasons)
        return result.summary()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_llmops.core.data.sources import redact
        from airflow_provider_llmops.lineage import facets as F

        source = self._lineage.get("source_location") or self._lineage.get("source_uri") or redact(self.source_uri)
        result = self._lineage.get("result")
        if result is None:
            return OperatorLineage(inputs=[F.input_dataset(source)])
        inputs = [
            F.input_dataset(
                source,
                facets={"schema": F.schema_facet((c, "string") for c in result.source_columns)},
                input_facets={"inputStatistics": F.input_statistics(result.rows_read, result.source_bytes)},
            )
        ]
        schema = F.schema_facet((c, "timestamp" if c == "timestamp" else "string") for c in result.columns)
        outputs = [
            F.output_dataset(result.snapshot.uri, facets={"schema": schema}, row_count=result.accepted),
            F.output_dataset(result.snapshot.quarantine_uri, row_count=result.quarantined),
        ]
        return OperatorLineage(inputs=inputs, outputs=outputs)


def _as_mapping(value: dict[str, str] | str | None) -> dict[str, str] | None:
    """`column_map` may arrive as a dict or, rendered from a Param, as JSON text."""
    value = as_json(value, "column_map")
    if value is not None and not (
        isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        from airflow_provider_llmops.errors import ConfigurationError

        raise ConfigurationError(f"column_map must map source column names to canonical names, got {value!r}")
    return value or None


def _is_template(value: Any) -> bool:
    """Whether an argument is rendered at run time (a Jinja template, or not a plain string)."""
    return not isinstance(value, str) or "{{" in value or "{%" in value


S3_CONN_TYPES = frozenset({"llmops_s3", "aws", "s3"})


@dataclass(frozen=True)
class SourceAccess:
    """What a source connection contributes to a read, and the hosts its credentials are for.

    `credential_hosts`: None when the connection is not bound (or there is none); otherwise the entries a URI must
    match before anything is sent (from the extra `allowed_hosts`, else an http(s) connection's Host).
    """

    conn_id: str | None
    is_s3: bool
    http_headers: dict[str, str] | None = None
    credential_hosts: tuple[str, ...] | None = None
    credential_setting: str = "the connection's extra allowed_hosts"

    def s3_client(self) -> Any:
        from airflow_provider_llmops.operators._common import s3_client_for

        return s3_client_for(self.conn_id)

    def __repr__(self) -> str:  # never show the headers (credentials)
        return f"SourceAccess(conn_id={self.conn_id!r}, is_s3={self.is_s3}, credential_hosts={self.credential_hosts!r})"


def source_access(conn_id: str | None, source_uri: str) -> SourceAccess:
    """Read the connection `conn_id` (if any) for a source: its credentials and the hosts it is bound to.

    Reads: the Airflow connection (login, password, extra `headers` and `allowed_hosts`, Host). Decides: an S3
    connection (`llmops_s3`/`aws`) is refused for an http(s) source, so its keys never become basic auth; a local
    source uses no connection (it is not even read).
    """
    from urllib.parse import urlsplit

    try:
        scheme = urlsplit(source_uri.strip()).scheme.lower()
    except ValueError:
        scheme = ""
    is_s3 = scheme == "s3"
    if not conn_id or scheme not in ("s3", "http", "https"):
        return SourceAccess(conn_id=None, is_s3=is_s3)
    from airflow.sdk import BaseHook

    from airflow_provider_llmops.errors import ConfigurationError, ConnectionNotAllowedError

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    conn_type = (conn.conn_type or "").lower()
    setting = f"connection {conn_id!r} extra allowed_hosts"
    raw_hosts = extra.get("allowed_hosts")
    hosts: tuple[str, ...] | None
    if raw_hosts not in (None, "", []):
        if isinstance(raw_hosts, str):
            hosts = tuple(h.strip() for h in raw_hosts.replace("\n", ",").split(",") if h.strip())
        elif isinstance(raw_hosts, list) and all(isinstance(h, str) for h in raw_hosts):
            hosts = tuple(h.strip() for h in raw_hosts if h.strip())
        else:
            raise ConfigurationError(f"{setting} must be a list of strings or a comma-separated string")
    elif conn.host and conn_type not in S3_CONN_TYPES:
        host = conn.host.strip()
        hosts = (host if "://" in host or not conn.port else f"{host}:{conn.port}",)
        setting = f"the Host of connection {conn_id!r} (set its extra allowed_hosts to widen it)"
    else:
        hosts = None
    if is_s3:
        return SourceAccess(conn_id=conn_id, is_s3=True, credential_hosts=hosts, credential_setting=setting)
    if conn_type in S3_CONN_TYPES:
        raise ConnectionNotAllowedError(
            f"connection {conn_id!r} is an S3 connection ({conn_type}); it is not sent to an http(s) source. "
            "Use an http connection (login/password or password as bearer token) for http(s) sources"
        )
    headers = extra.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise ConfigurationError(f"connection {conn_id!r} extra headers must be a JSON object of strings")
    headers = dict(headers)
    if conn.login:
        import base64

        token = base64.b64encode(f"{conn.login}:{conn.password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    elif conn.password:
        headers["Authorization"] = f"Bearer {conn.password}"
    return SourceAccess(
        conn_id=conn_id, is_s3=False, http_headers=headers, credential_hosts=hosts, credential_setting=setting
    )
