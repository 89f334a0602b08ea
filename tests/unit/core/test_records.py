from __future__ import annotations

import pytest

from airflow_provider_llmops.core import records as R


def test_normalise_maps_columns_and_keeps_metadata_as_strings():
    mapping = R.ColumnMapping.from_config({"ticket_id": "id", "body": "text", "queue": "label"})
    record = R.normalise_row(
        {"ticket_id": 17, "body": "Printer on fire", "queue": "technical_support", "priority": 2, "vip": True, "note": ""},
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
