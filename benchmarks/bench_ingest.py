"""Ingest throughput and peak memory: `core.ingest` (parse, normalise, dedupe, quarantine, hash, Parquet,
atomic commit) against a bare baseline in the same process (pandas.read_json(lines=True) + to_parquet, which
validates nothing and quarantines nothing).

    .venv/bin/python benchmarks/bench_ingest.py [--rows 200000]

Each measurement runs in a fresh subprocess so its peak RSS (VmHWM) belongs to that step alone.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_batch(path: Path, rows: int) -> None:
    reference = [json.loads(line) for line in (ROOT / "include/data/tickets_reference.jsonl").read_text().splitlines()]
    rng = random.Random(7)
    with open(path, "w") as fh:
        for i in range(rows):
            row = dict(rng.choice(reference))
            row["id"] = f"bench-{i:08d}"
            fh.write(json.dumps(row) + "\n")


def step(kind: str, source: str, out: str) -> None:
    start = time.perf_counter()
    if kind == "llmops":
        from airflow_provider_llmops.core.data.ingest import ingest
        from airflow_provider_llmops.core.data.sources import read_source
        from airflow_provider_llmops.core.data.store import DatasetStore

        blob = read_source(source, allowed_roots=[str(Path(source).parent)])
        result = ingest(blob, DatasetStore(out), "bench")
        rows = result.accepted
    else:
        import pandas as pd

        frame = pd.read_json(source, lines=True, dtype={"id": str})
        frame.to_parquet(Path(out) / "baseline.parquet")
        rows = len(frame)
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: on Linux ru_maxrss keeps the parent's peak across fork+exec
    status = Path("/proc/self/status").read_text().splitlines()
    peak_mib = next(
        (int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")),
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    print(json.dumps({"kind": kind, "rows": rows, "seconds": seconds, "peak_mib": peak_mib}))


def measure(kind: str, source: Path, workdir: Path) -> dict:
    out = tempfile.mkdtemp(dir=workdir)
    proc = subprocess.run(
        [sys.executable, __file__, "--step", kind, str(source), out], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--step", nargs=3, metavar=("KIND", "SOURCE", "OUT"))
    args = parser.parse_args()
    if args.step:
        step(*args.step)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        source = workdir / "batch.jsonl"
        make_batch(source, args.rows)
        size_mib = source.stat().st_size / 2**20
        baseline = measure("baseline", source, workdir)
        ours = measure("llmops", source, workdir)
    print(f"ingest of {args.rows:,} rows ({size_mib:.0f} MiB JSONL), 1 process:")
    for label, r in (("pandas read_json+to_parquet (baseline)", baseline), ("llmops core.ingest", ours)):
        print(
            f"  {label:<40} {r['seconds']:7.2f} s  {r['rows'] / r['seconds']:>10,.0f} rows/s  "
            f"peak RSS {r['peak_mib']:6.0f} MiB"
        )
    print(
        f"  ratio llmops/baseline: time x{ours['seconds'] / baseline['seconds']:.2f}, "
        f"peak memory x{ours['peak_mib'] / baseline['peak_mib']:.2f}"
    )


if __name__ == "__main__":
    main()
