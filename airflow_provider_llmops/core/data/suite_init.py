"""Profile a reference batch of canonical records into a starter Great Expectations suite (`llmops suite init`).

Reads: a pandas DataFrame of canonical records (a file parsed by the same code as ingest, or a committed snapshot).
Decides, per column, what the reference supports, widened so that a batch like the reference passes:
- schema: the columns present (`expect_table_columns_to_match_set`, extra columns allowed);
- `id`: non-null and unique; `text`: non-null, per-row length bounds from the p0.1/p99.9 quantiles (widened:
  half the low one, twice the high one), the 5/50/95% length quantiles within [q/2, 2q], and a floor on the share
  of distinct texts;
- `label` (when the reference is labelled): its value set, and its null rate as `mostly`, both flagged
  `"when": "labelled"` so an unlabelled batch skips them;
- metadata columns: their null rate as `mostly`, and a value set when they are low-cardinality;
- the row count: from a hundredth of the reference's to a hundred times it.
Writes nothing: `build_suite` returns the suite as a dict, `write_suite` writes it (refusing to overwrite).
Every expectation carries `meta.why` with what was observed, for the user to edit.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_provider_llmops.errors import ConfigurationError

CANONICAL = ("id", "text", "label", "timestamp")
MAX_VALUE_SET = 50  # a column with at most this many distinct values (and mostly repeats) gets a value set
NULL_SLACK = 0.05  # `mostly` is the observed non-null share minus this
LENGTH_QUANTILES = (0.05, 0.5, 0.95)


def _floor2(value: float) -> float:
    return math.floor(max(0.0, min(1.0, value)) * 100) / 100


def _mostly(non_null_share: float) -> float | None:
    """`mostly` for a non-null expectation: the observed share less NULL_SLACK, floored to 2 decimals."""
    value = _floor2(non_null_share - NULL_SLACK)
    return value if value > 0 else None


def _low_cardinality(values: Any) -> list[str] | None:
    """The sorted distinct values when the column is categorical enough for a value set, else None."""
    present = values.dropna().astype(str)
    if present.empty:
        return None
    distinct = sorted(present.unique().tolist())
    if len(distinct) > MAX_VALUE_SET or len(distinct) > 0.5 * len(present):
        return None
    return distinct


def _expectation(kind: str, kwargs: dict[str, Any], why: str, when: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": kind, "kwargs": kwargs, "meta": {"why": why}}
    if when:
        item["when"] = when
    return item


def build_suite(frame: Any, name: str, source: str) -> dict[str, Any]:
    """A starter suite named `name` from the canonical records in `frame` (profiled from `source`)."""
    from airflow_provider_llmops.core.data.validation import check_suite_name

    check_suite_name(name)
    rows = len(frame)
    if rows == 0:
        raise ConfigurationError(f"{source}: no accepted rows to profile")
    columns = [str(c) for c in frame.columns if not (c in ("label", "timestamp") and frame[c].isna().all())]
    items: list[dict[str, Any]] = [
        _expectation(
            "expect_table_columns_to_match_set",
            {"column_set": columns, "exact_match": False},
            f"schema: the columns of the reference ({len(columns)}); extra columns are allowed",
        ),
        _expectation("expect_column_values_to_not_be_null", {"column": "id"}, "every record is addressable"),
        _expectation("expect_column_values_to_be_unique", {"column": "id"}, "ids identify records"),
        _expectation("expect_column_values_to_not_be_null", {"column": "text"}, "every record has text"),
    ]
    texts = frame["text"].fillna("").astype(str)
    lengths = texts.str.len()
    low, high = float(lengths.quantile(0.001)), float(lengths.quantile(0.999))
    min_len, max_len = max(1, math.floor(low / 2)), max(2, math.ceil(high * 2))
    items.append(
        _expectation(
            "expect_column_values_to_be_between",
            {"column": "text_length", "min_value": min_len, "max_value": max_len},
            f"text length: reference p0.1={low:g}, p99.9={high:g} characters, widened to [p0.1/2, 2*p99.9]",
        )
    )
    quantiles = [float(lengths.quantile(q)) for q in LENGTH_QUANTILES]
    items.append(
        _expectation(
            "expect_column_quantile_values_to_be_between",
            {
                "column": "text_length",
                "quantile_ranges": {
                    "quantiles": list(LENGTH_QUANTILES),
                    "value_ranges": [[math.floor(q / 2), math.ceil(q * 2)] for q in quantiles],
                },
            },
            "length distribution: reference quantiles "
            + ", ".join(f"q{q:g}={v:g}" for q, v in zip(LENGTH_QUANTILES, quantiles, strict=True))
            + ", each within [q/2, 2q]",
        )
    )
    unique_share = texts.nunique() / rows
    if _floor2(unique_share / 2) > 0:
        items.append(
            _expectation(
                "expect_column_proportion_of_unique_values_to_be_between",
                {"column": "text", "min_value": _floor2(unique_share / 2), "max_value": 1.0},
                f"no flood of copies: {unique_share:.1%} of reference texts are distinct; at least half that",
            )
        )
    if "label" in frame.columns and frame["label"].notna().any():
        labels = frame["label"]
        share = float(labels.notna().mean())
        mostly = _mostly(share) if share < 1 else None
        kwargs: dict[str, Any] = {"column": "label"}
        if mostly is not None:
            kwargs["mostly"] = mostly
        items.append(
            _expectation(
                "expect_column_values_to_not_be_null",
                kwargs,
                f"labelled batches: {share:.1%} of reference rows are labelled"
                + ("" if mostly is None else f"; at least {mostly:.0%}"),
                when="labelled",
            )
        )
        value_set = _low_cardinality(labels)
        if value_set is not None:
            items.append(
                _expectation(
                    "expect_column_values_to_be_in_set",
                    {"column": "label", "value_set": value_set},
                    f"labels: the {len(value_set)} seen in the reference (nulls allowed here)",
                    when="labelled",
                )
            )
    for column in frame.columns:
        column = str(column)
        if column in CANONICAL:
            continue
        values = frame[column]
        share = float(values.notna().mean())
        if share == 0:
            continue
        mostly = _mostly(share)
        if mostly is not None:
            items.append(
                _expectation(
                    "expect_column_values_to_not_be_null",
                    {"column": column, "mostly": mostly},
                    f"metadata: {share:.1%} of reference rows have {column}; at least {mostly:.0%}",
                )
            )
        value_set = _low_cardinality(values)
        if value_set is not None:
            items.append(
                _expectation(
                    "expect_column_values_to_be_in_set",
                    {"column": column, "value_set": value_set, "mostly": 0.95},
                    f"metadata: the {len(value_set)} values of {column} seen in the reference (95% of rows)",
                )
            )
    items.append(
        _expectation(
            "expect_table_row_count_to_be_between",
            {"min_value": max(1, rows // 100), "max_value": max(rows * 100, 10_000)},
            f"row count: the reference has {rows} rows; a batch has a hundredth to a hundred times that",
        )
    )
    return {
        "name": name,
        "meta": {
            "description": f"Starter suite profiled from {source} by `llmops suite init`: edit it to your data.",
            "profiled_from": source,
            "rows": rows,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        "expectations": items,
    }


def write_suite(suite: dict[str, Any], path: Path, *, force: bool = False) -> Path:
    """Write `suite` as JSON to `path` (creating folders); refuses to replace an existing file unless `force`."""
    if path.exists() and not force:
        raise ConfigurationError(f"{path} already exists; pass --force to overwrite it, or choose another --name/--out")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(suite, indent=2, ensure_ascii=False) + "\n", "utf-8")
    tmp.replace(path)
    return path
