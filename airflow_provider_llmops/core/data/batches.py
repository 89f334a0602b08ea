"""Stream a JSONL, CSV or Parquet file (or Parquet bytes) as column chunks, so memory does not grow with the batch."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_llmops.core.data.sources import detect_format
from airflow_provider_llmops.errors import SourceError

Chunk = dict[str, list[Any]]


def _table_chunks(batches: Iterator[Any], columns: list[str] | None) -> Iterator[Chunk]:
    for batch in batches:
        names = batch.schema.names
        wanted = columns if columns is not None else names
        yield {c: (batch.column(names.index(c)).to_pylist() if c in names else [None] * batch.num_rows) for c in wanted}


def iter_chunks(
    source: str | Path | bytes,
    file_format: str | None = None,
    columns: list[str] | None = None,
    chunk_rows: int = 65_536,
) -> Iterator[Chunk]:
    """Yield dicts of column -> list of values, `chunk_rows` rows at a time (fewer for JSONL/CSV blocks)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    if isinstance(source, bytes):
        fmt, handle, name = file_format or "parquet", io.BytesIO(source), "<bytes>"
    else:
        name = str(source)
        if not Path(name).is_file():
            raise SourceError(name, "does not exist")
        fmt, handle = detect_format(name, file_format), name
    try:
        if fmt == "parquet":
            parquet = pq.ParquetFile(handle)
            present = [c for c in (columns or parquet.schema_arrow.names) if c in parquet.schema_arrow.names]
            yield from _table_chunks(parquet.iter_batches(batch_size=chunk_rows, columns=present), columns)
        elif fmt == "jsonl":
            reader = pjson.open_json(handle, read_options=pjson.ReadOptions(block_size=8 << 20))
            yield from _table_chunks(iter(reader), columns)
        else:
            reader = pcsv.open_csv(
                handle,
                read_options=pcsv.ReadOptions(block_size=8 << 20),
                convert_options=pcsv.ConvertOptions(
                    column_types={c: pa.string() for c in (columns or [])}, strings_can_be_null=True
                ),
            )
            yield from _table_chunks(iter(reader), columns)
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise SourceError(name, f"cannot be read as {fmt}: {exc}") from None
