from __future__ import annotations

import base64
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_llmops.core.data import records as R
from airflow_provider_llmops.core.data.parsing import parse_csv, parse_jsonl, parse_parquet
from airflow_provider_llmops.errors import SourceError


def test_jsonl_line_numbers_skip_blank_lines_and_keep_bad_bytes():
    data = b'{"id": "1", "text": "a"}\n\n{"id": "2", "text": "caf\xe9"}\n[1, 2]\n{broken\n'
    parsed = parse_jsonl(data, 1000)
    assert parsed.blank_lines == 1
    assert [(r.line, r.reason) for r in parsed.rows] == [
        (1, None),
        (3, R.INVALID_UTF8),
        (4, R.MALFORMED),
        (5, R.MALFORMED),
    ]
    bad = parsed.rows[1]
    assert base64.b64decode(bad.raw_base64) == b'{"id": "2", "text": "caf\xe9"}'


def test_jsonl_oversized_row_is_flagged_not_parsed():
    data = b'{"id": "1", "text": "' + b"x" * 200 + b'"}\n'
    parsed = parse_jsonl(data, 100)
    assert parsed.rows[0].reason == R.OVERSIZED and "over the limit of 100" in parsed.rows[0].detail


def test_csv_quoted_newlines_keep_their_start_line():
    data = b'id,text,label\n1,"first line\nsecond line",billing\n2,plain,billing\n3,too,many,fields\n'
    parsed = parse_csv(data, 1000, "x.csv")
    assert parsed.columns == ["id", "text", "label"]
    assert [(r.line, r.reason) for r in parsed.rows] == [(2, None), (4, None), (5, R.MALFORMED)]
    assert parsed.rows[0].row["text"] == "first line\nsecond line"
    assert parsed.rows[2].raw == "3,too,many,fields"


def test_csv_invalid_utf8_row_is_quarantined_with_its_bytes():
    data = b"id,text\n1,ok\n2,caf\xe9\n"
    parsed = parse_csv(data, 1000, "x.csv")
    assert [r.reason for r in parsed.rows] == [None, R.INVALID_UTF8]
    assert base64.b64decode(parsed.rows[1].raw_base64) == b"2,caf\xe9"


@pytest.mark.parametrize(("data", "problem"), [(b"", "empty"), (b"id,id\n1,2\n", "duplicate CSV columns")])
def test_csv_unusable_header_fails_the_source(data, problem):
    with pytest.raises(SourceError, match=problem):
        parse_csv(data, 1000, "x.csv")


def test_parquet_rows_are_numbered_from_one():
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", "y" * 500]}), sink)
    parsed = parse_parquet(sink.getvalue(), 200, "x.parquet")
    assert [(r.line, r.reason) for r in parsed.rows] == [(1, None), (2, R.OVERSIZED)]


def test_corrupt_parquet_fails_the_source():
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        parse_parquet(b"PAR1 not really", 100, "x.parquet")
