"""Reference drift scores from Evidently's DataDriftPreset, for side-by-side benchmarks.

Evidently is never a dependency of the project: this script runs only inside the separate venv
that benchmarks/evidently_env.sh builds (evidently 0.7.23, pandas<3).

    PY=$(bash benchmarks/evidently_env.sh | tail -n1)
    $PY benchmarks/evidently_runner.py --reference ref.parquet --current cur.parquet \
        --numeric a,b --categorical c,d [--out result.json]

Column types are declared explicitly (DataDefinition); stat tests and thresholds are Evidently's
defaults, which depend on sample size (reference <=1000 rows: K-S / chi-square or Z p-values at
0.05; more: normed Wasserstein / Jensen-Shannon distances at 0.1). The last stdout line is one JSON
object; --out gets the same JSON. seconds_drift covers the report run plus extracting the results;
peak_rss_mib is this process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's telemetry opt-out (used only by its UI)

import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report, __version__  # noqa: E402
from evidently.legacy.calculations.stattests.registry import _registered_stat_tests  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

# ValueDrift reports a stat test's display name ("Wasserstein distance (normed)"); map it to the short name.
STATTEST_NAMES = {t.display_name: t.name for by_type in _registered_stat_tests.values() for t in by_type.values()}


def _csv(text: str) -> list[str]:
    return [c for c in (p.strip() for p in text.split(",")) if c]


def extract(result: dict) -> tuple[bool, dict]:
    """Dataset verdict and per-column results from Snapshot.json(), using Evidently's own test verdicts."""
    columns: dict[str, dict] = {}
    share, drift_share = 0.0, 0.5
    for metric in result["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            method = config.get("method")
            columns[config["column"]] = {
                "drift_detected": None,
                "stattest": STATTEST_NAMES.get(method, method),
                "score": float(metric["value"]),
                "threshold": float(config["threshold"]),
            }
        elif config.get("type", "").endswith(":DriftedColumnsCount"):
            share, drift_share = float(metric["value"]["share"]), float(config.get("drift_share", 0.5))
    dataset_drift = share >= drift_share  # Evidently's rule (legacy get_dataset_drift); the test below agrees
    for test in result["tests"]:  # a drift test FAILs when drift is detected
        params = test["metric_config"]["params"]
        failed = str(test["status"]).upper().endswith("FAIL")
        if params["type"].endswith(":ValueDrift") and params["column"] in columns:
            columns[params["column"]]["drift_detected"] = failed
        elif params["type"].endswith(":DriftedColumnsCount"):
            dataset_drift = failed
    missing = [c for c, v in columns.items() if v["drift_detected"] is None]
    if missing:
        raise RuntimeError(f"no drift verdict from Evidently for columns {missing}")
    return dataset_drift, columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True)
    parser.add_argument("--current", required=True)
    parser.add_argument("--numeric", type=_csv, default=[])
    parser.add_argument("--categorical", type=_csv, default=[])
    parser.add_argument("--out")
    args = parser.parse_args()
    wanted = args.numeric + args.categorical
    if not wanted:
        parser.error("name at least one column with --numeric or --categorical")

    start = time.perf_counter()
    reference = pd.read_parquet(args.reference, columns=wanted)
    current = pd.read_parquet(args.current, columns=wanted)
    seconds_load = time.perf_counter() - start

    start = time.perf_counter()
    definition = DataDefinition(numerical_columns=args.numeric, categorical_columns=args.categorical)
    report = Report([DataDriftPreset(columns=wanted)], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    dataset_drift, columns = extract(json.loads(snapshot.json()))
    seconds_drift = time.perf_counter() - start

    out = {
        "evidently_version": __version__,
        "pandas_version": pd.__version__,
        "rows_reference": len(reference),
        "rows_current": len(current),
        "seconds_load": round(seconds_load, 4),
        "seconds_drift": round(seconds_drift, 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "dataset_drift": dataset_drift,
        "columns": columns,
    }
    text = json.dumps(out)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
