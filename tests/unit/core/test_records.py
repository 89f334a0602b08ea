from __future__ import annotations

import datetime as dt
import re
import sys
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from airflow_provider_llmops.core.data import records as R

# Python versions this project is tested on (CI runs 3.11); a classifier outside this set is a claim nobody tests
SUPPORTED_PYTHONS = {"3.11"}


def test_normalise_maps_columns_and_keeps_metadata_as_strings():
    mapping = R.ColumnMapping.from_config({"ticket_id": "id", "body": "text", "queue": "label"})
    record = R.normalise_row(
        {
            "ticket_id": 17,
            "body": "Printer on fire",
            "queue": "technical_support",
            "priority": 2,
            "vip": True,
            "note": "",
        },
        mapping,
    )
    assert record == {
        "id": "17",
        "text": "Printer on fire",
        "label": "technical_support",
        "timestamp": None,
        "priority": "2",
        "vip": "true",
        "note": None,
    }


def test_metadata_selection_drops_unlisted_columns():
    mapping = R.ColumnMapping.from_config(metadata=["channel"])
    record = R.normalise_row({"id": "a", "text": "t", "channel": "chat", "secret_internal": "x"}, mapping)
    assert "channel" in record and "secret_internal" not in record


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-04T13:22:10Z", "2026-03-04T13:22:10Z"),
        ("2026-03-04T15:22:10+02:00", "2026-03-04T13:22:10Z"),
        ("2026-03-04 13:22:10", "2026-03-04T13:22:10Z"),
        (0, "1970-01-01T00:00:00Z"),
        (None, None),
        ("", None),
    ],
)
def test_timestamps_normalise_to_utc_iso(value, expected):
    assert R.normalise_row({"id": "a", "text": "t", "timestamp": value}, R.ColumnMapping())["timestamp"] == expected


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"text": "no id"}, R.MISSING_COLUMN),
        ({"id": "a"}, R.MISSING_COLUMN),
        ({"id": "a", "text": None}, R.MISSING_COLUMN),
        ({"id": "a", "text": 12}, R.WRONG_TYPE),
        ({"id": ["a"], "text": "t"}, R.WRONG_TYPE),
        ({"id": True, "text": "t"}, R.WRONG_TYPE),
        ({"id": "a", "text": "t", "label": 1.5}, R.WRONG_TYPE),
        ({"id": "a", "text": "t", "channel": {"nested": 1}}, R.WRONG_TYPE),
        ({"id": "a", "text": "  \n "}, R.EMPTY_TEXT),
        ({"id": "  ", "text": "t"}, R.EMPTY_ID),
        ({"id": "a", "text": "t", "timestamp": "yesterday"}, R.INVALID_TIMESTAMP),
        ({"id": "a", "text": "t", "timestamp": float("nan")}, R.INVALID_TIMESTAMP),
    ],
)
def test_bad_rows_are_rejected_with_a_reason(row, reason):
    with pytest.raises(R.RowRejected) as caught:
        R.normalise_row(row, R.ColumnMapping())
    assert caught.value.reason == reason
    assert caught.value.detail


def test_mapping_rejects_two_sources_for_one_column():
    with pytest.raises(ValueError, match="text"):
        R.ColumnMapping.from_config({"body": "text", "subject": "text"})


def test_missing_required_reports_after_mapping():
    mapping = R.ColumnMapping.from_config({"body": "text"})
    assert mapping.missing_required(["id", "body"]) == []
    assert mapping.missing_required(["ticket", "body"]) == ["id"]


# --- hostile values: each is a reason, never an exception other than RowRejected ---------------------------------

_BIG = 10**4400  # past Python's int<->str limit (4300 digits): str() of it raises ValueError


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"id": "a", "text": "t", "timestamp": "99999-01-01"}, R.INVALID_TIMESTAMP),
        ({"id": "a", "text": "t", "timestamp": 1e20}, R.INVALID_TIMESTAMP),
        ({"id": "a", "text": "t", "timestamp": -1e20}, R.INVALID_TIMESTAMP),
        ({"id": "a", "text": "t", "timestamp": 253402300800}, R.INVALID_TIMESTAMP),  # 10000-01-01
        ({"id": "a", "text": "t", "timestamp": 2**70}, R.INVALID_TIMESTAMP),
        ({"id": "a", "text": "t", "timestamp": _BIG}, R.INVALID_TIMESTAMP),
        ({"id": "a", "text": "t", "timestamp": float("inf")}, R.INVALID_TIMESTAMP),
        ({"id": "a", "text": "t", "timestamp": "9999-12-31T23:59:59-01:00"}, R.INVALID_TIMESTAMP),  # year 10000 in UTC
        ({"id": "a", "text": "t", "timestamp": "0001-01-01T00:00:00+01:00"}, R.INVALID_TIMESTAMP),  # year 0 in UTC
        ({"id": "a", "text": "t", "timestamp": ["2026-01-01"]}, R.INVALID_TIMESTAMP),
        ({"id": _BIG, "text": "t"}, R.WRONG_TYPE),
        ({"id": "a", "text": "t", "label": _BIG}, R.WRONG_TYPE),
        ({"id": "a", "text": "t", "meta": _BIG}, R.WRONG_TYPE),
        ({"id": float("nan"), "text": "t"}, R.WRONG_TYPE),
        ({"id": "a", "text": float("inf")}, R.WRONG_TYPE),
        ({"id": False, "text": "t"}, R.WRONG_TYPE),
        ({"id": "a", "text": "t", "meta": [1, 2]}, R.WRONG_TYPE),
        ({"id": "a", "text": "t", "meta": b"bytes"}, R.WRONG_TYPE),
        ({"id": "\ud800", "text": "t"}, R.INVALID_UTF8),  # a lone surrogate has no UTF-8 form: Parquet cannot hold it
        ({"id": "a", "text": "caf\udce9"}, R.INVALID_UTF8),
        ({"id": "a", "text": "t", "label": "x\udfff"}, R.INVALID_UTF8),
        ({"id": "a", "text": "t", "meta": "\ud83d"}, R.INVALID_UTF8),
        ({"id": "a", "text": "t", "col\ud800": "v"}, R.INVALID_UTF8),  # in a metadata column's name
        ({"id": "a", "text": "t", "timestamp": R.Unreadable(R.WRONG_TYPE, "date32 out of range")}, R.INVALID_TIMESTAMP),
        ({"id": "a", "text": R.Unreadable(R.INVALID_UTF8, "not UTF-8")}, R.INVALID_UTF8),
        ({"id": "a", "text": "t", "meta": R.Unreadable(R.WRONG_TYPE, "cannot be read")}, R.WRONG_TYPE),
    ],
)
def test_hostile_values_are_rejected_with_a_reason(row, reason):
    with pytest.raises(R.RowRejected) as caught:
        R.normalise_row(row, R.ColumnMapping())
    assert caught.value.reason == reason
    assert 0 < len(caught.value.detail) < 200  # a detail shows the value, never all of it
    caught.value.detail.encode("utf-8")  # and can be written to quarantine.jsonl


def test_two_source_columns_on_one_canonical_name_reject_the_row():
    mapping = R.ColumnMapping.from_config({"body": "text"})
    with pytest.raises(R.RowRejected) as caught:
        R.normalise_row({"id": "a", "body": "from body", "text": "from text"}, mapping)
    assert caught.value.reason == R.MALFORMED
    assert caught.value.detail == "columns 'body' and 'text' both map to 'text'"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"id": "a", "text": "a\x00b"}, {"text": "a\x00b"}),  # NUL is a character like any other
        ({"id": 10**4000, "text": "t"}, {"id": "1" + "0" * 4000}),  # long, but within the int<->str limit
        ({"id": "a", "text": "t", "meta": float("nan")}, {"meta": None}),
        ({"id": "a", "text": "t", "meta": Decimal("1.25")}, {"meta": "1.25"}),
        ({"id": "a", "text": "t", "meta": dt.date(2026, 1, 2)}, {"meta": "2026-01-02"}),
        ({"id": "a", "text": "t", "timestamp": dt.date(2026, 1, 2)}, {"timestamp": "2026-01-02T00:00:00Z"}),
        ({"id": "a", "text": "t", "timestamp": 253402300799}, {"timestamp": "9999-12-31T23:59:59Z"}),
        ({"id": "a", "text": "t", "": "unnamed"}, {}),  # a column named "" is not kept
    ],
)
def test_unusual_but_valid_values(row, expected):
    record = R.normalise_row(row, R.ColumnMapping())
    assert {k: record[k] for k in expected} == expected
    assert "" not in record


def test_nanosecond_timestamps_keep_microseconds():
    import pandas as pd

    value = pd.Timestamp("2001-09-09T01:46:40.123456789", tz="UTC")
    record = R.normalise_row({"id": "a", "text": "t", "timestamp": value}, R.ColumnMapping())
    assert record["timestamp"] == "2001-09-09T01:46:40.123456Z"


# --- Python versions: what pyproject declares is what runs the tests ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-04T13:22:10Z", "2026-03-04T13:22:10Z"),  # `Z` needs Python >= 3.11's fromisoformat
        ("2026-03-04T13:22:10.5Z", "2026-03-04T13:22:10.500000Z"),
        ("2026-03-04T13:22:10+00:00", "2026-03-04T13:22:10Z"),
        ("2026-03-04T13:22:10", "2026-03-04T13:22:10Z"),  # naive = UTC
        ("2026-03-04", "2026-03-04T00:00:00Z"),
        (1772630530, "2026-03-04T13:22:10Z"),  # epoch seconds
        (1772630530.25, "2026-03-04T13:22:10.250000Z"),
    ],
)
def test_timestamp_forms(value, expected):
    assert R.normalise_row({"id": "a", "text": "t", "timestamp": value}, R.ColumnMapping())["timestamp"] == expected


def _pyproject() -> dict:
    return tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())


def test_running_python_is_one_the_project_declares():
    project = _pyproject()["project"]
    requires = SpecifierSet(project["requires-python"])
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert Version(running) in requires, f"Python {running} does not satisfy requires-python {requires}"
    declared = _declared_pythons()
    assert running in declared, f"tests run on Python {running}, which the classifiers {declared} do not list"


def _declared_pythons() -> list[str]:
    pattern = re.compile(r"Programming Language :: Python :: (3\.\d+)")
    return [m.group(1) for c in _pyproject()["project"]["classifiers"] if (m := pattern.fullmatch(c))]


def test_classifiers_list_only_supported_versions():
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    declared = _declared_pythons()
    assert declared, "pyproject lists no Programming Language :: Python :: 3.X classifier"
    assert set(declared) <= SUPPORTED_PYTHONS, f"classifiers {declared}, tested {sorted(SUPPORTED_PYTHONS)}"
    assert all(Version(v) in requires for v in declared)
    # 3.10's datetime.fromisoformat() rejects a `Z` suffix, so requires-python must exclude it ...
    assert Version("3.10") not in requires
    # ... and its floor must be a version the classifiers name (one the tests run on)
    floor = next(f"3.{minor}" for minor in range(0, 30) if Version(f"3.{minor}") in requires)
    assert floor in declared
