"""Property-based tests of ingest: whatever the bytes, every row is accepted or quarantined with a known reason,
the counts add up against a count taken independently of the outcomes, the snapshot commits and reads back, and
the same bytes give the same snapshot id. Sources: arbitrary bytes as JSONL, CSV and Parquet; arbitrary JSON
values (big integers, NaN/Infinity, lone surrogates, deep nesting, duplicate keys) as JSONL lines; the same kind of
rows written as CSV; arbitrary Arrow tables (many column types, nulls, out-of-range timestamps) written as Parquet.

The `ci` profile (tests/conftest.py) is derandomized; `HYPOTHESIS_PROFILE=dev` runs many more examples at random.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from airflow_provider_llmops.core.data import records as R
from airflow_provider_llmops.core.data.ingest import IngestResult, ingest
from airflow_provider_llmops.core.data.sources import SourceBlob
from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.errors import SourceError

# Hypothesis properties over generated files: in the full suite (CI), not in the quick tier
pytestmark = pytest.mark.slow

DATASET = "prop"
# a store per example: in memory where the OS offers it, since fsync and rmtree on disk dominate the run time
FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
CANONICAL = ["id", "text", "label", "timestamp"]


def blob_of(data: bytes, fmt: str) -> SourceBlob:
    sha256 = hashlib.sha256(data).hexdigest()
    return SourceBlob(uri=f"memory.{fmt}", location=f"memory.{fmt}", data=data, sha256=sha256, file_format=fmt)


@dataclass
class Outcome:
    result: IngestResult
    quarantine: list[dict[str, Any]]
    table: pa.Table


def ingest_and_check(
    data: bytes, fmt: str, max_row_bytes: int = 4096, mapping: R.ColumnMapping | None = None
) -> Outcome | None:
    """Ingest `data` into a fresh store and check every invariant; None when the source is refused as a whole.

    Any exception other than `SourceError` propagates and fails the test.
    """
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        store = DatasetStore(tmp)
        try:
            result = ingest(blob_of(data, fmt), store, DATASET, mapping, max_row_bytes=max_row_bytes)
        except SourceError:
            assert not store.list_snapshots(DATASET)  # a refused source commits nothing
            event("source refused")
            return None
        assert result.created
        event("some rows accepted" if result.accepted else "no row accepted")
        for reason in result.reasons:
            event(f"quarantined: {reason}")
        assert result.accepted + result.quarantined == result.rows_read
        assert result.rows_read > 0
        snapshot_id = result.snapshot.snapshot_id
        assert store.list_snapshots(DATASET) == [snapshot_id]
        quarantine = store.read_quarantine(DATASET, snapshot_id)
        assert len(quarantine) == result.quarantined
        for entry in quarantine:
            assert entry["reason"] in R.REASONS, entry
            assert isinstance(entry["line"], int) and entry["line"] >= 1
            assert isinstance(entry["detail"], str) and entry["detail"]
            assert isinstance(entry["raw"], str)
            assert not entry["detail"].startswith("unexpected error"), entry  # every row failure is a known case
        assert sum(result.reasons.values()) == result.quarantined
        table = store.read_table(DATASET, snapshot_id)
        assert table.num_rows == result.accepted
        ids = table.column("id").to_pylist()
        assert len(set(ids)) == len(ids) and all(isinstance(i, str) and i.strip() for i in ids)
        assert all(isinstance(t, str) and t.strip() for t in table.column("text").to_pylist())
        assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
        manifest = store.read_manifest(DATASET, snapshot_id)
        assert manifest["counts"]["rows_read"] == result.rows_read
        assert manifest["counts"]["accepted"] == result.accepted
        assert manifest["counts"]["quarantined"] == result.quarantined
        json.dumps(result.summary())  # JSON-safe for XCom
        json.dumps(result.source_columns).encode("utf-8")  # source columns go to a lineage facet
        again = ingest(blob_of(data, fmt), store, DATASET, mapping, max_row_bytes=max_row_bytes)
        assert again.snapshot.snapshot_id == snapshot_id and not again.created
        return Outcome(result, quarantine, table)


# --- (1) arbitrary bytes as JSONL ------------------------------------------------------------------------------

JSON_TOKENS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b'"',
    b" ",
    b"\n",
    b"\r",
    b"\r\n",
    b"\t",
    b"\x00",
    b"\xff",
    b"\xc3\xa9",
    b"\xef\xbb\xbf",
    b'"id"',
    b'"text"',
    b'"label"',
    b'"timestamp"',
    b'"meta"',
    b'""',
    b'"x"',
    b'"\\ud800"',
    b'"\\u0000"',
    b'"a\\"b"',
    b"0",
    b"1",
    b"-7",
    b"1.5",
    b"1e400",
    b"-1e400",
    b"1e20",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"true",
    b"false",
    b"null",
    b"9" * 5000,
    b"9" * 40,
    b'"99999-01-01"',
    b'"2026-03-04T13:22:10Z"',
    b'"9999-12-31T23:59:59-01:00"',
    b"[" * 3000,
]
json_soup = st.lists(st.sampled_from(JSON_TOKENS) | st.binary(max_size=3), max_size=12).map(b"".join)
# a line that is often a JSON object: {"key": value, ...} with keys and values from the tokens above
json_soup_pairs = st.tuples(st.sampled_from(JSON_TOKENS[16:26]), st.sampled_from(JSON_TOKENS[21:]) | json_soup)
json_soup_objects = st.lists(json_soup_pairs, max_size=4).map(
    lambda pairs: b"{" + b", ".join(k + b": " + v for k, v in pairs) + b"}"
)


def jsonl_rows_in(data: bytes) -> int:
    """Rows a JSONL file holds, counted from the bytes alone: lines with something other than whitespace."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return sum(1 for line in data.split(b"\n") if line.strip())


@given(st.binary(max_size=300) | st.lists(json_soup | json_soup_objects, max_size=8).map(b"\n".join))
def test_property_arbitrary_bytes_as_jsonl(data: bytes):
    outcome = ingest_and_check(data, "jsonl")
    if outcome is None:
        assert jsonl_rows_in(data) == 0  # the only reason to refuse a JSONL source is that it has no row
    else:
        assert outcome.result.rows_read == jsonl_rows_in(data)


# --- (3) arbitrary JSON values as JSONL lines ------------------------------------------------------------------


@dataclass(frozen=True)
class BigInt:
    """An integer written with `digits` digits: past Python's int<->str limit (4300 digits) when `digits` is large."""

    digits: int
    negative: bool = False


@dataclass(frozen=True)
class Deep:
    """A value nested `depth` lists deep (past the recursion limit when `depth` is large)."""

    depth: int


@dataclass(frozen=True)
class Obj:
    """A JSON object as key/value pairs, so a key may repeat."""

    pairs: tuple[tuple[str, Any], ...]


def dump(value: Any, ascii_only: bool) -> str:
    """JSON text for values `json.dumps` refuses or normalises away (huge ints, duplicate keys, deep nesting)."""
    if isinstance(value, BigInt):
        return ("-" if value.negative else "") + "9" * value.digits
    if isinstance(value, Deep):
        return "[" * value.depth + "1" + "]" * value.depth
    if isinstance(value, Obj):
        return "{" + ", ".join(f"{dump(k, ascii_only)}: {dump(v, ascii_only)}" for k, v in value.pairs) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)  # NaN/Infinity, surrogates as \udxxx escapes when ascii_only


any_text = st.text(st.characters(exclude_categories=()), max_size=20)  # surrogates and NUL included
keys = st.sampled_from(CANONICAL + ["meta", "", " id", "ID", "\ud800", "a\x00b"]) | any_text
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.builds(BigInt, st.integers(1, 6000), st.booleans())
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e20, -1e20, 1e308, 253402300800, -62135596801, 2**63, 0.5])
    | any_text
    | st.sampled_from(
        [
            "2026-03-04T13:22:10Z",
            "2026-03-04T13:22:10+00:00",
            "2026-03-04 13:22:10",
            "99999-01-01",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00+01:00",
            "2026-02-30",
            "  ",
            "\x00",
        ]
    )
)
json_values = st.recursive(
    json_scalars | st.builds(Deep, st.integers(1, 5000)),
    lambda inner: (
        st.lists(inner, max_size=3) | st.lists(st.tuples(keys, inner), max_size=3).map(lambda p: Obj(tuple(p)))
    ),
    max_leaves=8,
)
clean_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=30).filter(str.strip)
# values of the canonical columns: often plausible, so rows get past `id`/`text` to the later checks
plausible = {
    "id": st.text(max_size=8)
    | st.integers()
    | st.builds(BigInt, st.integers(4000, 4400))
    | st.sampled_from([True, 1.5, " "]),
    "text": clean_text | st.sampled_from(["", " \n", "a\x00b", "\ud800", "x\udfffy"]),
    "label": st.text(max_size=8) | st.integers() | st.sampled_from([None, 2.5, False]),
    "timestamp": st.sampled_from(
        [
            0,
            -1,
            1e20,
            -1e20,
            1e308,
            253402299999,
            253402300800,
            -62135596800,
            -62135596801,
            2**70,
            1.5,
            "2026-03-04T13:22:10Z",
            "2026-03-04T13:22:10+00:00",
            "2026-03-04 13:22:10",
            "2026-03-04",
            "99999-01-01",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00+01:00",
            "2026-02-30",
            "20260304T132210Z",
            "",
            None,
        ]
    ),
}


@st.composite
def row_objects(draw: st.DrawFn) -> Obj:
    pairs: list[tuple[str, Any]] = []
    for column in CANONICAL:
        if draw(st.integers(0, 9)) < 8:  # present 80% of the time
            pairs.append((column, draw(plausible[column] | json_values if draw(st.booleans()) else plausible[column])))
    pairs += draw(st.lists(st.tuples(keys, json_values), max_size=3))  # may repeat a key, or be any key at all
    return Obj(tuple(draw(st.permutations(pairs))))


@given(
    st.lists(st.tuples(row_objects() | json_values, st.booleans(), st.booleans()), max_size=8),
    st.lists(clean_text, max_size=3),
)
def test_property_arbitrary_json_values_as_jsonl(rows: list[tuple[Any, bool, bool]], good_texts: list[str]):
    lines: list[bytes] = []
    good: dict[str, str] = {}
    for value, ascii_only, crlf in rows:
        text = dump(value, ascii_only).encode("utf-8", "surrogatepass")  # a raw lone surrogate is invalid UTF-8
        lines.append(text + (b"\r" if crlf else b""))
    for i, text in enumerate(good_texts):  # rows that must be accepted, whatever surrounds them
        good[f"good-{i}"] = text
        lines.append(json.dumps({"id": f"good-{i}", "text": text, "timestamp": "2026-01-01T00:00:00Z"}).encode())
    data = b"\n".join(lines) + b"\n"
    outcome = ingest_and_check(data, "jsonl", max_row_bytes=65536)
    if outcome is None:
        assert not lines
        return
    assert outcome.result.rows_read == len(lines)
    accepted = dict(zip(outcome.table.column("id").to_pylist(), outcome.table.column("text").to_pylist(), strict=True))
    for record_id, text in good.items():
        assert accepted.get(record_id) == text


# --- (2) arbitrary bytes as CSV, (4) arbitrary rows written as CSV -----------------------------------------------

CSV_HEADER = b"id,text,label,timestamp,meta\n"
CSV_TOKENS = [
    b",",
    b'"',
    b'""',
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\xff",
    b"\xc3\xa9",
    b"a",
    b"1",
    b" ",
    b"x" * 200,
    b"99999-01-01",
    b"2026-03-04T13:22:10Z",
    b"\xed\xa0\x80",
]
csv_soup = st.lists(st.sampled_from(CSV_TOKENS) | st.binary(max_size=3), max_size=12).map(b"".join)
csv_body = st.lists(csv_soup, max_size=8).map(b"\n".join)


@given(st.binary(max_size=300) | csv_body | csv_body.map(lambda body: CSV_HEADER + body))
def test_property_arbitrary_bytes_as_csv(data: bytes):
    outcome = ingest_and_check(data, "csv", max_row_bytes=256)
    if outcome is not None and data.startswith(CSV_HEADER):
        assert outcome.result.source_columns == ["id", "text", "label", "timestamp", "meta"]


csv_cells = any_text | st.sampled_from(
    ["", " ", "\r", "\n", '"', "a,b", "\x00", "99999-01-01", "2026-03-04T13:22:10Z", "1e20"]
)
csv_header_names = st.lists(st.sampled_from(["label", "timestamp", "meta", "", "ID", "x\x00"]) | any_text, max_size=3)


@given(
    csv_header_names,
    st.lists(st.tuples(st.booleans(), st.lists(csv_cells, min_size=2, max_size=6)), max_size=8),
    st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\n", csv.QUOTE_ALL)]),
)
def test_property_arbitrary_rows_written_as_csv(
    extra: list[str], rows: list[tuple[bool, list[str]]], dialect: tuple[str, int]
):
    header = ["id", "text", *extra]
    buffer = io.StringIO()
    # not lineterminator="\n" with QUOTE_MINIMAL: that writer leaves a lone "\r" unquoted, which is not valid CSV
    writer = csv.writer(buffer, lineterminator=dialect[0], quoting=dialect[1])
    writer.writerow(header)
    good: dict[str, str] = {}
    written = 0
    for i, (is_good, cells) in enumerate(rows):
        cells = (cells + [""] * len(header))[: len(header)] if is_good else cells  # a bad row may have any width
        if is_good:
            cells[0], cells[1] = f"good-{i}", f"text {i}"
            if "timestamp" in header:
                cells[header.index("timestamp")] = "2026-01-01T00:00:00+00:00"
        if len(cells) == 1 and not cells[0].strip():
            continue  # a lone empty field is a blank line, not a row
        writer.writerow(cells)
        written += 1
        if is_good:
            good[cells[0]] = cells[1]
    data = buffer.getvalue().encode("utf-8", "surrogatepass")
    outcome = ingest_and_check(data, "csv")
    stripped = [h.strip() for h in header]
    usable_header = (
        len({h for h in stripped if h}) == len([h for h in stripped if h])  # unnamed columns may repeat
        and not any("\ud800" <= c <= "\udfff" for c in "".join(header))
        and not any(c in h for h in header for c in "\r\n")
    )
    if outcome is None:
        assert not usable_header or written == 0
        return
    assert outcome.result.rows_read == written
    accepted = dict(zip(outcome.table.column("id").to_pylist(), outcome.table.column("text").to_pylist(), strict=True))
    if all(h.isprintable() for h in header):  # a header cell with a control character may be read differently
        for record_id, text in good.items():
            assert accepted.get(record_id) == text


# --- (5) arbitrary tables written as Parquet, (6) arbitrary bytes as Parquet ------------------------------------


def _array(type_: pa.DataType, values: list[Any]) -> pa.Array:
    return pa.array(values, type=type_)


def _ints_as(type_: pa.DataType) -> Any:
    """Arrays of a temporal type built from raw int64 values, so they may lie far outside Python's datetime range."""
    storage = pa.int32() if type_ in (pa.date32(), pa.time32("s")) else pa.int64()
    bits = 31 if storage == pa.int32() else 63
    low, high = -(2**bits), 2**bits - 1
    values = st.one_of(st.none(), st.integers(low, high), st.integers(max(low, -(10**10)), min(high, 10**10)))
    if type_ == pa.time32("s"):
        values = st.one_of(st.none(), st.integers(0, 86399))
    elif pa.types.is_time64(type_):
        values = st.one_of(st.none(), st.integers(0, 86_399_999_999))
    return lambda n: st.lists(values, min_size=n, max_size=n).map(lambda v: pa.array(v, type=storage).cast(type_))


def _plain(type_: pa.DataType, values: st.SearchStrategy[Any]) -> Any:
    return lambda n: st.lists(st.none() | values, min_size=n, max_size=n).map(lambda v: _array(type_, v))


safe_text = st.text(st.characters(codec="utf-8"), max_size=20)
COLUMN_KINDS = {
    "string": _plain(pa.string(), safe_text),
    "large_string": _plain(pa.large_string(), safe_text),
    "dictionary": lambda n: _plain(pa.string(), st.sampled_from(["a", "b", " ", ""]))(n).map(
        lambda a: a.dictionary_encode()
    ),
    "int64": _plain(pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "int8": _plain(pa.int8(), st.integers(-128, 127)),
    "uint64": _plain(pa.uint64(), st.integers(0, 2**64 - 1)),
    "float64": _plain(pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
    "float32": _plain(pa.float32(), st.floats(width=32, allow_nan=True, allow_infinity=True)),
    "bool": _plain(pa.bool_(), st.booleans()),
    "binary": _plain(pa.binary(), st.binary(max_size=10)),
    "decimal": _plain(
        pa.decimal128(38, 4), st.decimals(min_value=-(10**20), max_value=10**20, places=4, allow_nan=False)
    ),
    "date32": _ints_as(pa.date32()),
    "time32": _ints_as(pa.time32("s")),
    "time64": _ints_as(pa.time64("us")),
    "ts_s": _ints_as(pa.timestamp("s")),
    "ts_ms_utc": _ints_as(pa.timestamp("ms", tz="UTC")),
    "ts_us_offset": _ints_as(pa.timestamp("us", tz="+05:30")),
    "ts_ns_zone": _ints_as(pa.timestamp("ns", tz="America/New_York")),
    "duration": _ints_as(pa.duration("s")),
    "null": lambda n: st.just(pa.nulls(n)),
    "list": _plain(pa.list_(pa.string()), st.lists(safe_text, max_size=3)),
    "struct": _plain(
        pa.struct([("a", pa.int64()), ("b", pa.string())]),
        st.fixed_dictionaries({"a": st.none() | st.integers(-5, 5), "b": st.none() | safe_text}),
    ),
    "map": _plain(pa.map_(pa.string(), pa.int64()), st.lists(st.tuples(safe_text, st.integers(-5, 5)), max_size=2)),
}
# the canonical columns get a plausible type most of the time, so many rows get past the first check
LIKELY = {
    "id": ["string", "int64", "dictionary"],
    "text": ["string", "large_string"],
    "timestamp": ["ts_us_offset", "string", "ts_s", "date32", "ts_ns_zone"],
}


@st.composite
def arrow_tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 6) if draw(st.integers(0, 9)) == 0 else st.integers(1, 6))
    extra = st.sampled_from(["label", "timestamp", "meta", "", "ID"]) | safe_text
    extras = draw(st.lists(extra, max_size=4, unique=True).filter(lambda e: "id" not in e and "text" not in e))
    names = ["id", "text", *extras]
    if draw(st.integers(0, 9)) == 0:
        names.remove(draw(st.sampled_from(["id", "text"])))
    if draw(st.integers(0, 9)) == 0:
        names.append(draw(st.sampled_from(names)))  # a duplicate column name
    plain = draw(st.integers(0, 3)) == 0  # a quarter of the tables: string columns only
    columns = []
    for name in names:
        kinds = sorted(COLUMN_KINDS)
        if plain:
            kinds = ["string"]
        elif name in LIKELY and draw(st.integers(0, 9)) < 8:
            kinds = LIKELY[name]
        kind = draw(st.sampled_from(kinds))
        if name == "id" and kind in ("string", "dictionary") and (plain or draw(st.integers(0, 9)) < 7):
            array = pa.array([f"row-{i}" for i in range(n)])  # unique ids, so rows are not all duplicates
        else:
            array = draw(COLUMN_KINDS[kind](n))
        columns.append(array)
    return pa.Table.from_arrays(columns, names=names)


# Parquet examples are slower (write, read, commit): fewer of them, still 10x more under the `dev` profile
PARQUET_EXAMPLES = max(100, settings.default.max_examples // 10)


def parquet_bytes(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


@settings(max_examples=PARQUET_EXAMPLES)
@given(arrow_tables(), st.sampled_from([256, 65536]), st.sampled_from([None, {"meta": "label"}, {"ID": "id"}]))
def test_property_arbitrary_tables_as_parquet(table: pa.Table, max_row_bytes: int, rename: dict[str, str] | None):
    try:
        data = parquet_bytes(table)
    except pa.ArrowInvalid:  # e.g. timestamp[s] values that overflow when the writer coerces them to ms
        assume(False)
    mapping = R.ColumnMapping.from_config(rename)
    outcome = ingest_and_check(data, "parquet", max_row_bytes=max_row_bytes, mapping=mapping)
    names = table.column_names
    if outcome is None:
        canonical = [mapping.canonical_name(n) for n in names if n]
        unusable = "id" not in canonical or "text" not in canonical or len(set(canonical)) != len(canonical)
        assert unusable or table.num_rows == 0
        return
    assert outcome.result.rows_read == table.num_rows
    # all-string tables with unique ids: exactly the rows with a non-blank text are accepted
    simple = set(names) <= {"id", "text", "label", "meta"} and all(t == pa.string() for t in table.schema.types)
    if simple and max_row_bytes == 65536:
        rows = table.to_pylist()
        if all(isinstance(r["id"], str) and r["id"].startswith("row-") for r in rows):
            event("all-string table with unique ids")
            expected = {r["id"] for r in rows if r["text"] is not None and r["text"].strip()}
            assert set(outcome.table.column("id").to_pylist()) == expected


# plain-encoded, uncompressed: a flipped byte often lands in a value (e.g. a date past year 9999), not only in
# the file's structure
SAMPLE_ROWS = 40
SAMPLE_PARQUET = parquet_bytes(
    pa.table(
        {
            "id": [f"r{i}" for i in range(SAMPLE_ROWS)],
            "text": [f"text {i}" for i in range(SAMPLE_ROWS)],
            "timestamp": pa.array([i * 31_536_000_000 for i in range(SAMPLE_ROWS)]).cast(pa.timestamp("ms", tz="UTC")),
            "day": pa.array([dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(SAMPLE_ROWS)]),
            "meta": pa.array([1.5 * i if i % 3 else None for i in range(SAMPLE_ROWS)]),
            "price": pa.array([decimal.Decimal(i) / 4 for i in range(SAMPLE_ROWS)], pa.decimal128(10, 2)),
        }
    ),
    compression="none",
    use_dictionary=False,
)


@st.composite
def mutated_parquet(draw: st.DrawFn) -> bytes:
    data = bytearray(SAMPLE_PARQUET)
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + data[cut + draw(st.integers(0, 16)) :]
    return bytes(data)


@settings(max_examples=PARQUET_EXAMPLES)
@given(st.binary(max_size=200) | st.binary(max_size=200).map(lambda b: b"PAR1" + b + b"PAR1") | mutated_parquet())
def test_property_arbitrary_bytes_as_parquet(data: bytes):
    outcome = ingest_and_check(data, "parquet")
    if outcome is not None:
        assert outcome.result.rows_read == pq.read_metadata(io.BytesIO(data)).num_rows
