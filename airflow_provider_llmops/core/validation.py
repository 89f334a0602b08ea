"""Run a Great Expectations 1.x suite (core API, ephemeral context) against a snapshot's records.

Suites are GX suite JSON files (`{"name", "expectations": [{"type", "kwargs", "meta"}]}`). Before validation
two derived columns are added so suites can bound lengths and their distribution: `text_length` (characters)
and `text_words` (whitespace-separated tokens). Great Expectations is imported here only, never at DAG parse.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_provider_llmops.errors import ConfigurationError
from airflow_provider_llmops.resources import expectations_dir

DERIVED_COLUMNS = ("text_length", "text_words")


def load_suite(suite: str | Path) -> dict[str, Any]:
    """A suite by name (a file `include/expectations/<name>.json`) or by path."""
    path = Path(suite)
    if not path.suffix:
        path = expectations_dir() / f"{suite}.json"
    if not path.is_file():
        available = sorted(p.stem for p in expectations_dir().glob("*.json"))
        raise ConfigurationError(f"expectation suite {suite!r} not found at {path}; shipped suites: {available}")
    try:
        spec = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"expectation suite {path} is not valid JSON: {exc}") from None
    if not isinstance(spec.get("expectations"), list) or not spec.get("name"):
        raise ConfigurationError(f"expectation suite {path} needs a 'name' and a list of 'expectations'")
    return spec


def _exception_message(info: dict[str, Any]) -> str | None:
    """GX reports errors either flat or keyed by metric id; return the first message found."""
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("exception_message"):
            return str(value["exception_message"]).splitlines()[0]
    return None


def describe(result: dict[str, Any]) -> str:
    """One line per expectation result: what was expected, on which column, what was observed."""
    config = result.get("expectation_config", {})
    kwargs = {k: v for k, v in config.get("kwargs", {}).items() if k != "batch_id"}
    column = kwargs.pop("column", None)
    observed = result.get("result", {})
    if "observed_value" in observed:
        seen = f"observed {observed['observed_value']!r}"
    elif "unexpected_count" in observed:
        sample = observed.get("partial_unexpected_list", [])[:3]
        seen = f"{observed['unexpected_count']} unexpected ({observed.get('unexpected_percent', 0):.2f}%), e.g. {sample!r}"
    elif _exception_message(result.get("exception_info") or {}):
        seen = f"could not be evaluated: {_exception_message(result['exception_info'])}"
    else:
        seen = "failed"
    where = f" on column {column!r}" if column else ""
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k not in ("result_format",))
    return f"{config.get('type')}{where} ({args}): {seen}"


@dataclass(frozen=True)
class ValidationOutcome:
    success: bool
    suite_name: str
    evaluated: int
    successful: int
    failed: list[str]
    results: list[dict[str, Any]]  # per expectation: type, column, kwargs, success, observed
    gx_result: dict[str, Any]
    row_count: int

    def report(self, dataset: str, snapshot_id: str, status: str) -> dict[str, Any]:
        return {
            "status": status,
            "dataset": dataset,
            "snapshot_id": snapshot_id,
            "suite": self.suite_name,
            "validated_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "success": self.success,
            "statistics": {"evaluated": self.evaluated, "successful": self.successful, "failed": len(self.failed), "rows": self.row_count},
            "failed": self.failed,
            "results": self.results,
            "great_expectations": self.gx_result,
        }


def _quiet_gx() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def validate_frame(frame: Any, suite_spec: dict[str, Any]) -> ValidationOutcome:
    """Validate a pandas DataFrame of canonical records against a suite spec."""
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    frame = frame.copy()
    texts = frame["text"].fillna("").astype(str)
    frame["text_length"] = texts.str.len()
    frame["text_words"] = texts.str.split().str.len()

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("llmops").add_dataframe_asset("snapshot").add_batch_definition_whole_dataframe("whole")
    )
    suite = gx.ExpectationSuite(name=suite_spec["name"])
    for index, item in enumerate(suite_spec["expectations"]):
        try:
            suite.add_expectation_configuration(
                ExpectationConfiguration(type=item["type"], kwargs=item.get("kwargs", {}), meta=item.get("meta", {}))
            )
        except Exception as exc:  # GX raises several types for unknown/invalid expectations
            raise ConfigurationError(f"expectation #{index} ({item.get('type')!r}) of suite {suite_spec['name']!r} is invalid: {exc}") from None
    if len(suite.expectations) != len(suite_spec["expectations"]):
        raise ConfigurationError(
            f"suite {suite_spec['name']!r} lists {len(suite_spec['expectations'])} expectations but Great Expectations "
            f"kept {len(suite.expectations)}: some are duplicates of each other (GX merges equivalent expectations)"
        )
    suite = context.suites.add(suite)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    gx_result = batch.validate(suite, result_format="SUMMARY").to_json_dict()
    results = []
    for item in gx_result["results"]:
        config = item["expectation_config"]
        kwargs = {k: v for k, v in config.get("kwargs", {}).items() if k != "batch_id"}
        results.append(
            {
                "type": config["type"],
                "column": kwargs.get("column"),
                "kwargs": kwargs,
                "success": bool(item["success"]),
                "description": describe(item),
            }
        )
    failed = [r["description"] for r in results if not r["success"]]
    stats = gx_result.get("statistics", {})
    return ValidationOutcome(
        success=bool(gx_result["success"]),
        suite_name=suite_spec["name"],
        evaluated=int(stats.get("evaluated_expectations", len(results))),
        successful=int(stats.get("successful_expectations", len(results) - len(failed))),
        failed=failed,
        results=results,
        gx_result=gx_result,
        row_count=len(frame),
    )
