from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from airflow_provider_llmops.core.data.validation import (
    available_suites,
    check_suite_name,
    choose_suite,
    load_suite,
    resolve_suite,
    validate_frame,
)
from airflow_provider_llmops.errors import ConfigurationError
from airflow_provider_llmops.resources import expectations_dir

SHIPPED = [str(expectations_dir())]


@pytest.fixture(scope="module")
def reference(sample_dir_module) -> pd.DataFrame:
    return pd.read_json(sample_dir_module / "tickets_reference.jsonl", lines=True, dtype={"id": str})


@pytest.fixture(scope="module")
def sample_dir_module():
    from airflow_provider_llmops.resources import sample_data_dir

    return sample_data_dir()


def _suite_file(folder: Path, name: str, expectations: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"name": name, "expectations": expectations}))
    return path


LAX = [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 0, "max_value": 10**9}}]


@pytest.mark.parametrize("batch", ["tickets_reference", "tickets_batch_same", "tickets_batch_drift", "golden"])
@pytest.mark.parametrize("suite", ["support_tickets", "generic"])
def test_shipped_batches_pass_the_shipped_suites(sample_dir_module: Path, batch, suite):
    frame = pd.read_json(sample_dir_module / f"{batch}.jsonl", lines=True, dtype={"id": str})
    outcome = validate_frame(frame, load_suite(suite))
    assert outcome.success, outcome.failed
    assert outcome.evaluated == len(load_suite(suite)["expectations"]) == outcome.successful
    assert outcome.skipped == [] and outcome.labelled is True


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
    tickets = load_suite("support_tickets")
    assert any("expect_table_row_count_to_be_between" in f for f in validate_frame(tiny, tickets).failed)
    assert any("proportion_of_unique_values" in f for f in validate_frame(flood, load_suite("support_tickets")).failed)


# --- suites by name only, inside the configured folders -------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/etc/passwd", "/tmp/lax.json", "lax.json/..", "a/b", "..", "a..b", ".hidden", "", "x" * 129]
    + ["~root", "C:\\x", "file:///etc/passwd", "generic.json\x00", "generic\n", " generic"],
)
def test_anything_but_a_plain_name_is_refused(name: str):
    with pytest.raises(ConfigurationError, match="never by path"):
        check_suite_name(name)
    with pytest.raises(ConfigurationError, match="never by path"):
        load_suite(name, SHIPPED)


def test_a_suite_file_given_by_path_is_refused_even_when_it_exists(tmp_path: Path):
    """The old loader took any path: a Param could point validation at a file anyone can write."""
    lax = _suite_file(tmp_path, "lax", LAX)
    for given in (str(lax), str(lax.with_suffix("")), os.path.relpath(lax)):
        with pytest.raises(ConfigurationError):
            load_suite(given, SHIPPED)


def test_symlink_out_of_the_suites_folder_is_refused(tmp_path: Path):
    outside = _suite_file(tmp_path / "outside", "lax", LAX)
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "evil.json").symlink_to(outside)
    (suites / "passwd.json").symlink_to("/etc/passwd")
    for name in ("evil", "passwd"):
        with pytest.raises(ConfigurationError, match="no symlinks out"):
            resolve_suite(name, [suites])
    assert available_suites([suites]) == {}  # not listed either
    inside = _suite_file(suites / "real", "kept", LAX)  # a symlink that stays inside the folder is fine
    (suites / "alias.json").symlink_to(inside)
    assert resolve_suite("alias", [suites]) == inside.resolve()


def test_unknown_suite_lists_the_available_ones(tmp_path: Path):
    _suite_file(tmp_path / "mine", "my_suite", LAX)
    with pytest.raises(ConfigurationError, match=r"available suites: \['generic', 'my_suite', 'support_tickets'\]"):
        load_suite("nope", [*SHIPPED, str(tmp_path / "mine")])
    with pytest.raises(ConfigurationError, match=r"available suites: \['generic', 'support_tickets'\]"):
        load_suite("nope")


def test_first_folder_wins_and_the_name_is_the_file_name(tmp_path: Path):
    first = _suite_file(tmp_path / "a", "shared", LAX)
    _suite_file(tmp_path / "b", "shared", [])
    (tmp_path / "b" / "other.json").write_text(json.dumps({"name": "declared_otherwise", "expectations": LAX}))
    dirs = [tmp_path / "a", tmp_path / "b", tmp_path / "missing"]
    assert resolve_suite("shared", dirs) == first.resolve()
    assert load_suite("shared", dirs)["expectations"] == LAX
    assert load_suite("other", dirs)["name"] == "other"
    assert sorted(available_suites(dirs)) == ["other", "shared"]


def test_unknown_condition_and_invalid_json_are_configuration_errors(tmp_path: Path):
    _suite_file(tmp_path, "cond", [{**LAX[0], "when": "sometimes"}])
    with pytest.raises(ConfigurationError, match="unknown condition when='sometimes'"):
        load_suite("cond", [tmp_path])
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        load_suite("broken", [tmp_path])


def test_invalid_expectation_is_a_configuration_error(tmp_path: Path, reference: pd.DataFrame):
    _suite_file(tmp_path, "bad", [{"type": "expect_the_moon", "kwargs": {}}])
    with pytest.raises(ConfigurationError, match="expect_the_moon"):
        validate_frame(reference.head(30), load_suite("bad", [tmp_path]))


def test_equivalent_expectations_are_refused_not_silently_merged(tmp_path: Path, reference: pd.DataFrame):
    twice = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}
    _suite_file(tmp_path, "dup", [twice, twice])
    with pytest.raises(ConfigurationError, match="lists 2 expectations but Great Expectations kept 1"):
        validate_frame(reference.head(30), load_suite("dup", [tmp_path]))


# --- which suite, and why ------------------------------------------------------------------------------------


def test_choose_suite_argument_then_dataset_suites_then_default(tmp_path: Path):
    config = {"dataset_suites": {"support_tickets": "support_tickets"}, "default_suite": "generic", "dirs": SHIPPED}
    by_default = choose_suite("", "packages", **config)
    assert (by_default.name, by_default.source) == ("generic", "default_suite")
    assert by_default.path == str((expectations_dir() / "generic.json").resolve())
    mapped = choose_suite(None, "support_tickets", **config)
    assert (mapped.name, mapped.source) == ("support_tickets", "dataset_suites")
    chosen = choose_suite(" generic ", "support_tickets", **config)
    assert (chosen.name, chosen.source) == ("generic", "argument")
    with pytest.raises(ConfigurationError, match=r"not one this DAG allows \(allowed_suites=\['support_tickets'\]\)"):
        choose_suite("generic", "support_tickets", **config, allowed=["support_tickets"])
    assert choose_suite("", "support_tickets", **config, allowed=[]).name == "support_tickets"  # config is not a Param
    with pytest.raises(ConfigurationError, match="never by path"):
        choose_suite("../generic", "x", **config)
    with pytest.raises(ConfigurationError, match="available suites"):
        choose_suite("", "x", **{**config, "default_suite": "gone"})


# --- the generic suite ---------------------------------------------------------------------------------------


def _records(n: int, label: str | None = "a") -> pd.DataFrame:
    ids, texts = [f"r{i}" for i in range(n)], [f"text number {i}" for i in range(n)]
    return pd.DataFrame({"id": ids, "text": texts, "label": [label] * n, "timestamp": [None] * n})


def _failed_types(outcome) -> list[tuple[str, str | None]]:
    return sorted((r["type"], r["column"]) for r in outcome.results if not r["success"])


def test_generic_suite_checks_what_every_dataset_needs():
    generic = load_suite("generic")
    assert validate_frame(_records(3), generic).success
    bad = _records(5)
    bad.loc[0, "id"] = None
    bad.loc[1, "id"] = "r2"
    bad.loc[2, "text"] = None
    bad.loc[3, "text"] = "y" * 100_001
    outcome = validate_frame(bad, generic)
    assert _failed_types(outcome) == [
        ("expect_column_values_to_be_between", "text_length"),
        ("expect_column_values_to_be_unique", "id"),
        ("expect_column_values_to_not_be_null", "id"),
        ("expect_column_values_to_not_be_null", "text"),
    ]
    missing = validate_frame(_records(3).rename(columns={"id": "ident"}), generic)
    assert ("expect_table_columns_to_match_set", None) in _failed_types(missing)


def test_generic_label_expectation_applies_only_to_labelled_batches():
    generic = load_suite("generic")
    unlabelled = validate_frame(_records(4, label=None), generic)
    assert unlabelled.success and unlabelled.labelled is False
    skipped = [(s["type"], s["column"], s["when"]) for s in unlabelled.skipped]
    assert skipped == [("expect_column_values_to_not_be_null", "label", "labelled")]
    assert "no labels" in unlabelled.skipped[0]["note"]
    assert unlabelled.evaluated == len(generic["expectations"]) - 1
    report = unlabelled.report("d", "abc", "passed")
    assert report["statistics"]["skipped"] == 1 and report["skipped"][0]["column"] == "label"
    partly = _records(4)
    partly.loc[2, "label"] = None
    outcome = validate_frame(partly, generic)
    assert outcome.labelled is True and outcome.skipped == []
    assert _failed_types(outcome) == [("expect_column_values_to_not_be_null", "label")]
    no_label_column = validate_frame(_records(4).drop(columns=["label"]), generic)
    assert no_label_column.success and len(no_label_column.skipped) == 1


def test_generic_row_count_bounds():
    generic = load_suite("generic")
    row_count = next(e for e in generic["expectations"] if e["type"] == "expect_table_row_count_to_be_between")
    assert row_count["kwargs"] == {"min_value": 1, "max_value": 10_000_000}
    empty = validate_frame(_records(0), generic)
    assert ("expect_table_row_count_to_be_between", None) in _failed_types(empty)
