from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_llmops.core.validation import load_suite, validate_frame
from airflow_provider_llmops.errors import ConfigurationError


@pytest.fixture(scope="module")
def reference(sample_dir_module) -> pd.DataFrame:
    return pd.read_json(sample_dir_module / "tickets_reference.jsonl", lines=True, dtype={"id": str})


@pytest.fixture(scope="module")
def sample_dir_module():
    from airflow_provider_llmops.resources import sample_data_dir

    return sample_data_dir()


@pytest.mark.parametrize("batch", ["tickets_reference", "tickets_batch_same", "tickets_batch_drift", "golden"])
def test_shipped_batches_pass_the_shipped_suite(sample_dir_module: Path, batch):
    frame = pd.read_json(sample_dir_module / f"{batch}.jsonl", lines=True, dtype={"id": str})
    outcome = validate_frame(frame, load_suite("support_tickets"))
    assert outcome.success, outcome.failed
    assert outcome.evaluated == len(load_suite("support_tickets")["expectations"]) == outcome.successful


def test_failures_name_the_expectation_column_and_observation(reference: pd.DataFrame):
    frame = reference.head(200).copy()
    frame.loc[0, "label"] = "refund_maybe"
    frame.loc[1, "id"] = frame.loc[2, "id"]
    frame.loc[3, "text"] = "x" * 6000
    outcome = validate_frame(frame, load_suite("support_tickets"))
    assert not outcome.success
    failed = "\n".join(outcome.failed)
    assert "expect_column_values_to_be_in_set on column 'label'" in failed and "refund_maybe" in failed
    assert "expect_column_values_to_be_unique on column 'id'" in failed
    assert "expect_column_values_to_be_between on column 'text_length'" in failed
    assert len(outcome.failed) == 3
    report = outcome.report("tickets", "abc", "failed")
    json.dumps(report, default=str)  # the stored report is JSON
    assert report["statistics"]["failed"] == 3 and report["great_expectations"]["success"] is False


def test_row_count_and_distribution_expectations_fire(reference: pd.DataFrame):
    tiny = reference.head(5)
    flood = pd.concat([reference.head(100)] * 1, ignore_index=True)
    flood["text"] = "same text every time"
    assert any("expect_table_row_count_to_be_between" in f for f in validate_frame(tiny, load_suite("support_tickets")).failed)
    assert any("proportion_of_unique_values" in f for f in validate_frame(flood, load_suite("support_tickets")).failed)


def test_unknown_suite_lists_the_shipped_ones():
    with pytest.raises(ConfigurationError, match=r"shipped suites: \['support_tickets'\]"):
        load_suite("nope")


def test_invalid_expectation_is_a_configuration_error(tmp_path: Path, reference: pd.DataFrame):
    suite = tmp_path / "bad.json"
    suite.write_text(json.dumps({"name": "bad", "expectations": [{"type": "expect_the_moon", "kwargs": {}}]}))
    with pytest.raises(ConfigurationError, match="expect_the_moon"):
        validate_frame(reference.head(30), load_suite(str(suite)))


def test_equivalent_expectations_are_refused_not_silently_merged(tmp_path: Path, reference: pd.DataFrame):
    twice = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}
    suite = tmp_path / "dup.json"
    suite.write_text(json.dumps({"name": "dup", "expectations": [twice, twice]}))
    with pytest.raises(ConfigurationError, match="lists 2 expectations but Great Expectations kept 1"):
        validate_frame(reference.head(30), load_suite(str(suite)))
