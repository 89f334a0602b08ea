"""IngestBatchOperator: a source file -> an immutable, content-addressed dataset snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class IngestBatchOperator(BaseOperator):
    """Read a batch of text records and commit it as a snapshot of `dataset` in the dataset store.

    Reads: `source_uri`, a JSONL, CSV or Parquet file given as a local path, `file://`, `s3://` or `http(s)://`.
    Local paths must resolve inside `[llmops] allowed_roots`; remote URIs must start with one of
    `[llmops] allowed_uri_prefixes`. S3 credentials, endpoint and region come from `source_conn_id`
    (an `llmops_s3` connection); for HTTP, that connection's login/password are sent as basic auth.

    Writes: `<store>/snapshots/<dataset>/<snapshot_id>/` with `data.parquet`, `quarantine.jsonl` (each rejected
    row, its line number and reason) and `manifest.json` (the commit point). The same content gives the same
    snapshot id and writes nothing new.

    Decides: which rows are accepted; the task fails when the source is unusable as a whole or no row is valid.
    Returns (XCom): a small summary with `snapshot_id`, URIs and row counts.
    """

    template_fields: Sequence[str] = ("source_uri", "dataset", "file_format", "column_map", "metadata_columns", "source_conn_id", "store_uri")
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
        store_uri: str | None = None,
        store_conn_id: str | None = None,
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
        self.store_uri = store_uri
        self.store_conn_id = store_conn_id
        self.max_row_bytes = max_row_bytes
        self._lineage: dict[str, Any] = {}

    def _http_headers(self) -> dict[str, str] | None:
        if not self.source_conn_id:  # may be rendered from an empty Param
            return None
        import base64

        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(self.source_conn_id)
        headers = dict(conn.extra_dejson.get("headers", {}))
        if conn.login:
            token = base64.b64encode(f"{conn.login}:{conn.password or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        elif conn.password:
            headers["Authorization"] = f"Bearer {conn.password}"
        return headers

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.core.ingest import ingest
        from airflow_provider_llmops.core.records import ColumnMapping
        from airflow_provider_llmops.core.sources import read_source
        from airflow_provider_llmops.errors import NoValidRowsError
        from airflow_provider_llmops.operators._common import open_store, run_info, s3_client_for
        from airflow_provider_llmops.settings import load_settings

        settings = load_settings()
        self._lineage = {"source_uri": self.source_uri}
        mapping = ColumnMapping.from_config(_as_mapping(self.column_map), self.metadata_columns)
        remote_s3 = self.source_uri.strip().startswith("s3://")
        blob = read_source(
            self.source_uri,
            allowed_roots=settings.allowed_roots,
            allowed_uri_prefixes=settings.allowed_uri_prefixes,
            file_format=self.file_format,
            s3_client=s3_client_for(self.source_conn_id or None) if remote_s3 else None,
            http_headers=None if remote_s3 else self._http_headers(),
            max_bytes=settings.max_source_bytes,
        )
        store = open_store(self.store_uri or settings.store_uri, self.store_conn_id or settings.store_conn_id)
        result = ingest(
            blob,
            store,
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

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_llmops.lineage import facets as F

        source = self._lineage.get("source_location") or self._lineage.get("source_uri") or self.source_uri
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

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)


def _as_mapping(value: dict[str, str] | str | None) -> dict[str, str] | None:
    """`column_map` may arrive as a dict or, rendered from a Param, as JSON text."""
    if isinstance(value, str):
        import json

        from airflow_provider_llmops.errors import ConfigurationError

        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"column_map is not a JSON object: {exc}") from None
    if value is not None and not (isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        from airflow_provider_llmops.errors import ConfigurationError

        raise ConfigurationError(f"column_map must map source column names to canonical names, got {value!r}")
    return value or None
