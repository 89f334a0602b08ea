"""core.suite_init: what a reference batch's profile turns into (value sets, length bounds, null rates, counts)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_llmops.core.data.suite_init import build_suite, write_suite
from airflow_provider_llmops.core.data.validation import validate_frame
from airflow_provider_llmops.errors import ConfigurationError


def _frame(n: int = 200) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "text": ["w" * (10 + i % 91) for i in range(n)],  # lengths 10..100
            "label": [["a", "b", "c"][i % 3] for i in range(n)],
            "timestamp": [None] * n,
            "tier": [None if i % 5 == 0 else ["gold", "free"][i % 2] for i in range(n)],  # 20% null, 2 values
            "user": [f"user-{i}" for i in range(n)],  # high cardinality: no value set
        }
    )


def _by_key(suite: dict) -> dict[tuple[str, str | None], dict]:
    return {(e["type"], e["kwargs"].get("column")): e for e in suite["expectations"]}


def test_profile_of_a_labelled_reference():
    suite = build_suite(_frame(), "mine", "ref.jsonl")
    assert suite["name"] == "mine" and suite["meta"]["profiled_from"] == "ref.jsonl" and suite["meta"]["rows"] == 200
    e = _by_key(suite)
    columns = ["id", "text", "label", "tier", "user"]
    assert e[("expect_table_columns_to_match_set", None)]["kwargs"] == {"column_set": columns, "exact_match": False}
    assert e[("expect_column_values_to_be_unique", "id")]["kwargs"] == {"column": "id"}
    lengths = e[("expect_column_values_to_be_between", "text_length")]["kwargs"]
    assert lengths == {"column": "text_length", "min_value": 5, "max_value": 200}  # lengths 10..100, widened
    quantiles = e[("expect_column_quantile_values_to_be_between", "text_length")]["kwargs"]["quantile_ranges"]
    assert quantiles["quantiles"] == [0.05, 0.5, 0.95]
    assert all(low <= high for low, high in quantiles["value_ranges"])
    assert e[("expect_column_values_to_be_in_set", "label")] == {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "label", "value_set": ["a", "b", "c"]},
        "meta": e[("expect_column_values_to_be_in_set", "label")]["meta"],
        "when": "labelled",
    }
    assert e[("expect_column_values_to_not_be_null", "label")]["kwargs"] == {"column": "label"}  # all labelled: strict
    assert e[("expect_column_values_to_not_be_null", "tier")]["kwargs"] == {"column": "tier", "mostly": 0.75}  # 80% - 5
    tiers = e[("expect_column_values_to_be_in_set", "tier")]["kwargs"]
    assert tiers == {"column": "tier", "value_set": ["free", "gold"], "mostly": 0.95}
    assert ("expect_column_values_to_be_in_set", "user") not in e  # high cardinality: no value set
    assert ("expect_column_values_to_not_be_null", "user") in e
    assert not any(column == "timestamp" for _, column in e)  # all null in the reference
    assert e[("expect_table_row_count_to_be_between", None)]["kwargs"] == {"min_value": 2, "max_value": 20000}
    assert all(item["meta"]["why"] for item in suite["expectations"])


def test_partially_labelled_and_unlabelled_references():
    partly = _frame()
    partly.loc[partly.index[:20], "label"] = None  # 90% labelled
    e = _by_key(build_suite(partly, "p", "x"))
    assert e[("expect_column_values_to_not_be_null", "label")]["kwargs"] == {"column": "label", "mostly": 0.85}
    none = _frame().assign(label=None)
    e = _by_key(build_suite(none, "n", "x"))
    assert not any(column == "label" for _, column in e)
    assert e[("expect_table_columns_to_match_set", None)]["kwargs"]["column_set"] == ["id", "text", "tier", "user"]


@pytest.mark.slow
def test_the_profile_validates_its_own_reference_and_catches_a_changed_batch():
    reference = _frame()
    suite = build_suite(reference, "mine", "ref")
    assert validate_frame(reference, suite).success
    changed = reference.copy()
    changed.loc[0:9, "label"] = "zzz"
    changed.loc[0:99, "tier"] = None
    outcome = validate_frame(changed, suite)
    assert sorted((r["type"], r["column"]) for r in outcome.results if not r["success"]) == [
        ("expect_column_values_to_be_in_set", "label"),
        ("expect_column_values_to_not_be_null", "tier"),
    ]


def test_refusals(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="no accepted rows"):
        build_suite(_frame(0), "x", "empty.jsonl")
    with pytest.raises(ConfigurationError, match="never by path"):
        build_suite(_frame(), "../x", "ref")
    suite = build_suite(_frame(), "x", "ref")
    target = write_suite(suite, tmp_path / "sub" / "x.json")
    assert json.loads(target.read_text())["name"] == "x"
    with pytest.raises(ConfigurationError, match="already exists; pass --force"):
        write_suite({**suite, "meta": {}}, target)
    assert json.loads(target.read_text())["meta"] != {}
    write_suite({**suite, "meta": {}}, target, force=True)
    assert json.loads(target.read_text())["meta"] == {}
