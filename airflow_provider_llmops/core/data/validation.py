"""Run a Great Expectations 1.x suite (core API, ephemeral context) against a snapshot's records.

Suites are GX suite JSON files (`{"name", "expectations": [{"type", "kwargs", "meta"}]}`) found BY NAME in the
configured suites folders only (`[llmops] suites_dirs`: the shipped `include/expectations` and
`<home>/expectations` by default): a name is 1-128 letters, digits, `_`, `-` or `.` (no `..`), resolved to
`<dir>/<name>.json`, and the resolved file must stay inside its folder (a symlink out is refused). Paths are never
accepted, so a Param or an operator argument cannot read an arbitrary file.

Which suite validates a dataset: the operator argument / `--suite` when given, else `[llmops] dataset_suites`
for the dataset, else `[llmops] default_suite` (`generic`); `SuiteChoice` records which and why, and the report
names it.

An expectation may carry `"when": "labelled"`: it is evaluated only when the batch is labelled (its `label`
column has a non-null value) and otherwise skipped with a note in the report.

Before validation two derived columns are added so suites can bound lengths and their distribution: `text_length`
(characters) and `text_words` (whitespace-separated tokens). Great Expectations is imported here only, never at
DAG parse.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_provider_llmops.core.data.store import NAME_PATTERN, is_valid_name
from airflow_provider_llmops.errors import ConfigurationError
from airflow_provider_llmops.resources import expectations_dir

DERIVED_COLUMNS = ("text_length", "text_words")
SUITE_NAME_PATTERN = NAME_PATTERN
# conditions an expectation's "when" may name, and the note written when the batch does not meet them
CONDITIONS = {"labelled": "skipped: the batch has no labels (its label column is empty)"}
# why a suite was chosen (SuiteChoice.source)
BY_ARGUMENT, BY_DATASET_SUITES, BY_DEFAULT_SUITE = "argument", "dataset_suites", "default_suite"


def check_suite_name(name: str) -> str:
    """`name` itself when it is a valid suite name; a `ConfigurationError` otherwise (paths are not names)."""
    if not is_valid_name(name):
        raise ConfigurationError(
            f"invalid suite name {name!r}: a suite is chosen by name (1-128 letters, digits, '_', '-' or '.', no '..'),"
            " never by path; put the suite file <name>.json in one of the [llmops] suites_dirs folders"
        )
    return name


def _dirs(dirs: Sequence[str | Path] | None) -> list[Path]:
    return [Path(d).expanduser() for d in (dirs if dirs is not None else (expectations_dir(),))]


def _inside(path: Path, folder: Path) -> Path | None:
    """The real path of `path` when it is a regular file whose real path lies inside `folder`'s real path."""
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    if base not in real.parents or not real.is_file():
        return None
    return real


def available_suites(dirs: Sequence[str | Path] | None = None) -> dict[str, Path]:
    """Suite name -> file, over the folders in order (the first folder holding a name wins)."""
    found: dict[str, Path] = {}
    for folder in _dirs(dirs):
        if not folder.is_dir():
            continue
        for candidate in sorted(folder.glob("*.json")):
            name = candidate.stem
            if name in found or not is_valid_name(name):
                continue
            real = _inside(candidate, folder)
            if real is not None:
                found[name] = real
    return dict(sorted(found.items()))


def resolve_suite(name: str, dirs: Sequence[str | Path] | None = None) -> Path:
    """The file of suite `name`: `<dir>/<name>.json` in the first folder of `dirs` that holds it (default: the
    shipped suites only). Refuses anything that is not a plain name and a file that resolves out of its folder."""
    check_suite_name(name)
    folders = _dirs(dirs)
    for folder in folders:
        candidate = folder / f"{name}.json"
        if not os.path.lexists(candidate):
            continue
        real = _inside(candidate, folder)
        if real is None:
            raise ConfigurationError(
                f"expectation suite {name!r}: {candidate} resolves to {os.path.realpath(candidate)},"
                " which is not a file"
                f" inside {folder}; suites must be regular files inside the suites folders (no symlinks out)"
            )
        return real
    raise ConfigurationError(
        f"expectation suite {name!r} not found in the suites folders {[str(f) for f in folders]}"
        f" (setting [llmops] suites_dirs); available suites: {sorted(available_suites(dirs))}"
    )


def load_suite(name: str, dirs: Sequence[str | Path] | None = None) -> dict[str, Any]:
    """Suite `name` as a dict, found by name in `dirs` (see `resolve_suite`). Its `name` is the file's name."""
    return read_suite(resolve_suite(name, dirs), name)


def read_suite(path: Path, name: str) -> dict[str, Any]:
    """The suite in file `path` (already resolved by `resolve_suite`), checked; its `name` is set to `name`."""
    try:
        spec = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"expectation suite {path} is not valid JSON: {exc}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("expectations"), list):
        raise ConfigurationError(f"expectation suite {path} needs a list of 'expectations'")
    for index, item in enumerate(spec["expectations"]):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise ConfigurationError(f"expectation #{index} of suite {path} needs a 'type'")
        when = item.get("when")
        if when is not None and when not in CONDITIONS:
            raise ConfigurationError(
                f"expectation #{index} ({item['type']!r}) of suite {path}: unknown condition when={when!r};"
                f" known: {sorted(CONDITIONS)}"
            )
    return {**spec, "name": name, "path": str(path)}


@dataclass(frozen=True)
class SuiteChoice:
    """Which suite validates a dataset and why: `source` is `argument` (operator argument, Param or `--suite`),
    `dataset_suites` (`[llmops] dataset_suites[dataset]`) or `default_suite` (`[llmops] default_suite`)."""

    name: str
    source: str
    path: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "source": self.source, "path": self.path}


def choose_suite(
    argument: str | None,
    dataset: str,
    *,
    dataset_suites: dict[str, str],
    default_suite: str,
    dirs: Sequence[str | Path],
    allowed: Iterable[str] | None = None,
) -> SuiteChoice:
    """Pick the suite for `dataset`: `argument` when non-empty (it must be one of `allowed` when that is given,
    and exist in `dirs`), else `dataset_suites[dataset]`, else `default_suite`. Raises `ConfigurationError`."""
    argument = (argument or "").strip()
    if argument:
        check_suite_name(argument)
        allowed_names = None if allowed is None else sorted(set(allowed))
        if allowed_names is not None and argument not in allowed_names:
            raise ConfigurationError(
                f"suite {argument!r} is not one this DAG allows (allowed_suites={allowed_names});"
                " leave the suite empty to use the configured one"
            )
        name, source = argument, BY_ARGUMENT
    elif dataset in dataset_suites:
        name, source = dataset_suites[dataset], BY_DATASET_SUITES
    else:
        name, source = default_suite, BY_DEFAULT_SUITE
    return SuiteChoice(name=name, source=source, path=str(resolve_suite(name, dirs)))


def choose_configured_suite(
    argument: str | None, dataset: str, settings: Any, allowed: Iterable[str] | None = None
) -> SuiteChoice:
    """`choose_suite` with the `[llmops]` settings (`settings.Settings`: dataset_suites, default_suite,
    suites_dirs), as the operator and the CLI both call it."""
    return choose_suite(
        argument,
        dataset,
        dataset_suites=settings.dataset_suites,
        default_suite=settings.default_suite,
        dirs=settings.suites_dirs,
        allowed=allowed,
    )


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
        percent = observed.get("unexpected_percent") or 0  # None on an empty batch
        seen = f"{observed['unexpected_count']} unexpected ({percent:.2f}%), e.g. {sample!r}"
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
    skipped: list[dict[str, Any]] = field(default_factory=list)  # conditional expectations not evaluated, and why
    labelled: bool = False

    def report(self, dataset: str, snapshot_id: str, status: str, choice: SuiteChoice | None = None) -> dict[str, Any]:
        return {
            "status": status,
            "dataset": dataset,
            "snapshot_id": snapshot_id,
            "suite": self.suite_name,
            "suite_source": choice.source if choice else None,
            "suite_path": choice.path if choice else None,
            "validated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "success": self.success,
            "labelled": self.labelled,
            "statistics": {
                "evaluated": self.evaluated,
                "successful": self.successful,
                "failed": len(self.failed),
                "skipped": len(self.skipped),
                "rows": self.row_count,
            },
            "failed": self.failed,
            "skipped": self.skipped,
            "results": self.results,
            "great_expectations": self.gx_result,
        }


def _quiet_gx() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def _quiet_gx_loggers() -> None:
    """GX sets some of its loggers to INFO on import (e.g. a line per ephemeral context): lift them to WARNING."""
    import logging

    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        if name.startswith("great_expectations") and logger.level and logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def is_labelled(frame: Any) -> bool:
    """A batch is labelled when it has a `label` column with at least one non-null value."""
    return "label" in frame.columns and bool(frame["label"].notna().any())


def validate_frame(frame: Any, suite_spec: dict[str, Any]) -> ValidationOutcome:
    """Validate a pandas DataFrame of canonical records against a suite spec (see `load_suite`).

    Expectations whose `when` condition the batch does not meet are not evaluated; they are listed in
    `skipped` with the reason. The frame is not modified."""
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    _quiet_gx_loggers()
    frame = frame.copy()
    texts = frame["text"].fillna("").astype(str)
    frame["text_length"] = texts.str.len()
    frame["text_words"] = texts.str.split().str.len()
    conditions = {"labelled": is_labelled(frame)}

    active: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for item in suite_spec["expectations"]:
        when = item.get("when")
        if when is not None and not conditions.get(when, False):
            kwargs = item.get("kwargs", {})
            skipped.append(
                {"type": item.get("type"), "column": kwargs.get("column"), "when": when, "note": CONDITIONS[when]}
            )
        else:
            active.append(item)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("llmops")
        .add_dataframe_asset("snapshot")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = gx.ExpectationSuite(name=suite_spec["name"])
    for index, item in enumerate(active):
        try:
            suite.add_expectation_configuration(
                ExpectationConfiguration(type=item["type"], kwargs=item.get("kwargs", {}), meta=item.get("meta", {}))
            )
        except Exception as exc:  # GX raises several types for unknown/invalid expectations
            raise ConfigurationError(
                f"expectation #{index} ({item.get('type')!r}) of suite {suite_spec['name']!r} is invalid: {exc}"
            ) from None
    if len(suite.expectations) != len(active):
        raise ConfigurationError(
            f"suite {suite_spec['name']!r} lists {len(active)} expectations but Great Expectations "
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
        skipped=skipped,
        labelled=conditions["labelled"],
    )


@dataclass(frozen=True)
class SnapshotValidation:
    """A validated snapshot: the outcome, the status written to its report, and the report's URI."""

    outcome: ValidationOutcome
    choice: SuiteChoice
    status: str
    report_uri: str
    frame: Any

    def summary(self, dataset: str, snapshot_id: str) -> dict[str, Any]:
        """Small, JSON-safe summary (the operator's XCom, the CLI's output)."""
        outcome = self.outcome
        return {
            "dataset": dataset,
            "snapshot_id": snapshot_id,
            "status": self.status,
            "success": outcome.success,
            "suite": self.choice.name,
            "suite_source": self.choice.source,
            "evaluated": outcome.evaluated,
            "successful": outcome.successful,
            "failed": outcome.failed[:20],
            "skipped": [f"{s['type']} on {s['column']!r}: {s['note']}" for s in outcome.skipped][:20],
            "rows": outcome.row_count,
            "report_uri": self.report_uri,
        }


def validate_snapshot(
    store: Any, dataset: str, snapshot_id: str, choice: SuiteChoice, *, failed_status: str = "failed"
) -> SnapshotValidation:
    """Validate committed snapshot `snapshot_id` of `dataset` in `store` (a `DatasetStore`) with the chosen suite.

    Reads the snapshot's data and the suite file; writes `validation.json` beside the snapshot (status `passed`,
    else `failed_status`), naming the suite and why it was chosen. Raises `SnapshotNotFoundError` for an unknown
    snapshot and `ConfigurationError` for an invalid suite."""
    suite = read_suite(Path(choice.path), choice.name)
    frame = store.read_table(dataset, snapshot_id).to_pandas()
    outcome = validate_frame(frame, suite)
    status = "passed" if outcome.success else failed_status
    report_uri = store.write_validation(dataset, snapshot_id, outcome.report(dataset, snapshot_id, status, choice))
    return SnapshotValidation(outcome=outcome, choice=choice, status=status, report_uri=report_uri, frame=frame)
