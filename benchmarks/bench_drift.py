"""Drift scoring benchmark (run on demand, prints numbers and ratios; nothing here is a test).

    .venv/bin/python benchmarks/bench_drift.py [--rows 1000000] [--no-evidently] [--embedding-rows 10000]

1. Text statistics end to end: build a reference profile from `--rows` short tickets (stored), then score
   current batches of 100k, 300k and `--rows` rows streamed from Parquet, each in a fresh process: rows/s, the
   share of time in tokenization, the cost of everything after tokenization relative to the tokenizer, and peak
   RSS (which should grow sublinearly: the batch is streamed in chunks).
2. The same columns side by side with Evidently's DataDriftPreset (its own venv, `benchmarks/evidently_env.sh`,
   pandas < 3; never a runtime dependency): char_length and token_count (precomputed with the model tokenizer),
   label, channel, region, language; one same-distribution and one drifted batch; time ratio and verdicts.
3. Embedding drift on `--embedding-rows` current texts against the cached reference sample: time and the share
   spent embedding.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "include" / "data"
NUMERIC = ["char_length", "token_count"]
CATEGORICAL = ["label", "channel", "region", "language"]


def _peak_mib() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: on Linux that keeps the parent's peak across fork+exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_parquet(source: Path, target: Path, rows: int, seed: int) -> None:
    """`rows` rows drawn with replacement from a sample file (unique ids), with the model's length features."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_provider_llmops.core.drift.features import TextFeaturizer, load_tokenizer

    base = [json.loads(line) for line in source.read_text().splitlines()]
    rng = random.Random(seed)
    featurizer = TextFeaturizer(load_tokenizer()[0])
    writer = None
    for start in range(0, rows, 100_000):
        picked = [dict(rng.choice(base)) for _ in range(min(100_000, rows - start))]
        for i, row in enumerate(picked):
            row["id"] = f"{seed}-{start + i}"
        texts = [r["text"] for r in picked]
        feats = featurizer.features(texts)
        columns = {k: [r.get(k) for r in picked] for k in ("id", "text", *CATEGORICAL)}
        columns.update({"char_length": feats["char_length"], "token_count": feats["token_count"]})
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(target, table.schema)
        writer.write_table(table)
    writer.close()


# --- steps run in fresh processes -----------------------------------------------------------------------------


def step_build(reference: str, out: str) -> dict:
    from airflow_provider_llmops.core.data.batches import iter_chunks
    from airflow_provider_llmops.core.drift.profile import build_profile

    start = time.perf_counter()
    profile = build_profile(
        lambda: iter_chunks(reference, "parquet", columns=["text", *CATEGORICAL]), embedding_sample=1000
    )
    profile.save(out)
    return {"seconds": time.perf_counter() - start, "peak_mib": _peak_mib(), "rows": profile.row_count}


def step_score(profile_dir: str, current: str, embeddings: str) -> dict:
    from airflow_provider_llmops.core.data.batches import iter_chunks
    from airflow_provider_llmops.core.drift.profile import ReferenceProfile, ScoreOptions, score

    profile = ReferenceProfile.load(profile_dir)
    rows = int(embeddings) if embeddings != "0" else 0
    options = ScoreOptions(embeddings=rows > 0, embedding_sample=max(rows, 1))
    start = time.perf_counter()
    report = score(profile, iter_chunks(current, "parquet", columns=["text", *CATEGORICAL]), options)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_mib": _peak_mib(),
        "rows": report["rows"],
        "timings": report["timings_seconds"],
        "verdict": report["verdict"],
        "features": {
            n: {"psi": f["scores"]["psi"], "js": f["scores"]["js"], "drift": f["verdict"]["drift"]}
            for n, f in report["features"].items()
        },
        "embedding": report["embedding"],
    }


def step_same_columns(reference: str, current: str) -> dict:
    """Our statistics on exactly Evidently's columns (no tokenizer: the length columns are precomputed)."""
    import pyarrow.parquet as pq

    from airflow_provider_llmops.core.drift import statistics as D

    start = time.perf_counter()
    ref = pq.read_table(reference, columns=NUMERIC + CATEGORICAL)
    cur = pq.read_table(current, columns=NUMERIC + CATEGORICAL)
    loaded = time.perf_counter()
    rules, out = D.DriftRules(), {}
    for column in NUMERIC + CATEGORICAL:
        r, c = ref.column(column), cur.column(column)
        if column in NUMERIC:
            binning = D.NumericBinning.from_reference(r.to_numpy())
            rc, cc = binning.counts(r.to_numpy()), binning.counts(c.to_numpy())
        else:
            r_counts = {v["values"]: v["counts"] for v in r.value_counts().to_pylist()}
            c_counts = {v["values"]: v["counts"] for v in c.value_counts().to_pylist()}
            binning = D.CategoricalBinning.from_counter(r_counts)
            rc, cc = binning.counts_from_counter(r_counts), binning.counts_from_counter(c_counts)
        scores = D.compare(rc, cc)
        decision = D.verdict(scores, D.calibrated_thresholds(rc, int(cc.sum()), column), rules, int(cc.sum()))
        out[column] = {"psi": scores["psi"], "js": scores["js"], "drift": decision["drift"]}
    return {
        "seconds_load": loaded - start,
        "seconds_drift": time.perf_counter() - loaded,
        "peak_mib": _peak_mib(),
        "columns": out,
    }


def run_step(*args: str) -> dict:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM", "true")}
    proc = subprocess.run([sys.executable, __file__, "--step", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def evidently(reference: Path, current: Path) -> dict | None:
    setup = subprocess.run(["bash", str(ROOT / "benchmarks" / "evidently_env.sh")], capture_output=True, text=True)
    if setup.returncode != 0:
        print(f"  (Evidently environment could not be built: {setup.stderr[-500:]})")
        return None
    python = setup.stdout.strip().splitlines()[-1]
    proc = subprocess.run(
        [
            python,
            str(ROOT / "benchmarks" / "evidently_runner.py"),
            "--reference",
            str(reference),
            "--current",
            str(current),
            "--numeric",
            ",".join(NUMERIC),
            "--categorical",
            ",".join(CATEGORICAL),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(f"  (Evidently failed: {proc.stderr[-500:]})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--embedding-rows", type=int, default=10_000)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--step", nargs="+")
    args = parser.parse_args()
    if args.step:
        name, *rest = args.step
        print(json.dumps({"build": step_build, "score": step_score, "same": step_same_columns}[name](*rest)))
        return

    n = args.rows
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        reference, same, drift = work / "reference.parquet", work / "same.parquet", work / "drift.parquet"
        make_parquet(DATA / "tickets_reference.jsonl", reference, n, 1)
        make_parquet(DATA / "tickets_batch_same.jsonl", same, n, 2)
        make_parquet(DATA / "tickets_batch_drift.jsonl", drift, n, 3)
        sizes = sorted({s for s in (100_000, 300_000, n) if s <= n})
        for size in sizes[:-1]:
            make_parquet(DATA / "tickets_batch_same.jsonl", work / f"same_{size}.parquet", size, 4)
        print(
            f"data: {n:,} reference rows, {n:,}-row same and drifted batches "
            f"(prepared in {time.perf_counter() - t0:.0f} s)"
        )

        built = run_step("build", str(reference), str(work / "profile"))
        print(
            f"\n1. profile of {built['rows']:,} reference rows built in {built['seconds']:.1f} s "
            f"(peak RSS {built['peak_mib']:.0f} MiB), stored"
        )
        print(
            "   scoring (features + KL/PSI/JS/calibration, no embeddings), streamed from Parquet in 65,536-row chunks:"
        )
        print(f"   {'rows':>9} {'seconds':>8} {'rows/s':>9} {'tokenize':>9} {'after-tok/tok':>14} {'peak RSS':>9}")
        scored = {}
        for size in sizes:
            path = same if size == n else work / f"same_{size}.parquet"
            r = run_step("score", str(work / "profile"), str(path), "0")
            t = r["timings"]
            after = t["features"] + t["statistics"]
            scored[size] = r
            print(
                f"   {size:>9,} {r['seconds']:>8.1f} {size / r['seconds']:>9,.0f} {t['tokenize'] / r['seconds']:>8.0%} "
                f"{after / t['tokenize']:>14.2f} {r['peak_mib']:>7.0f} MiB"
            )
        small, large = scored[sizes[0]], scored[sizes[-1]]
        print(
            f"   memory x{large['peak_mib'] / small['peak_mib']:.2f} for x{sizes[-1] / sizes[0]:.0f} rows "
            "(sublinear: streamed)"
        )
        drifted = run_step("score", str(work / "profile"), str(drift), "0")
        print(
            f"   verdicts at {n:,} rows: same-distribution batch {scored[n]['verdict']}, "
            f"drifted batch {drifted['verdict']} "
            f"({', '.join(k for k, v in drifted['features'].items() if v['drift'])})"
        )

        print(f"\n2. same columns as Evidently ({', '.join(NUMERIC + CATEGORICAL)}), {n:,} vs {n:,} rows:")
        for label, current in (("same", same), ("drifted", drift)):
            ours = run_step("same", str(reference), str(current))
            line = (
                f"   {label:<8} llmops: load {ours['seconds_load']:.2f} s + drift {ours['seconds_drift']:.2f} s, "
                f"peak {ours['peak_mib']:.0f} MiB"
            )
            theirs = None if args.no_evidently else evidently(reference, current)
            if theirs:
                line += (
                    f" | Evidently {theirs['evidently_version']}: load {theirs['seconds_load']:.2f} s "
                    f"+ drift {theirs['seconds_drift']:.2f} s, "
                    f"peak {theirs.get('peak_rss_mib', 0):.0f} MiB "
                    f"| drift-step ratio x{theirs['seconds_drift'] / ours['seconds_drift']:.0f}"
                )
            print(line)
            for column, r in ours["columns"].items():
                other = theirs["columns"].get(column) if theirs else None
                agree = (
                    ""
                    if other is None
                    else ("  same verdict" if other["drift_detected"] == r["drift"] else "  DIFFERENT verdict")
                )
                extra = (
                    ""
                    if other is None
                    else (
                        f" | Evidently {other['stattest']} {other['score']:.4f} "
                        f"(>= {other['threshold']:g}: {'drift' if other['drift_detected'] else 'ok'})"
                    )
                )
                print(
                    f"     {column:<12} psi {r['psi']:.4f} js {r['js']:.4f} "
                    f"{'drift' if r['drift'] else 'ok':<5}{extra}{agree}"
                )

        m = args.embedding_rows
        emb_path = work / f"emb_{m}.parquet"
        make_parquet(DATA / "tickets_batch_drift.jsonl", emb_path, m, 5)
        e = run_step("score", str(work / "profile"), str(emb_path), str(m))
        emb = e["embedding"]
        total = emb["seconds_embedding"] + emb["seconds_math"]
        print(
            f"\n3. embedding drift, {m:,} current texts vs the cached 1,000-text reference sample: {total:.1f} s "
            f"({emb['seconds_embedding'] / total:.0%} embedding at {m / emb['seconds_embedding']:.0f} texts/s, "
            f"{emb['seconds_math']:.1f} s drift math on "
            f"<= 2,000 rows per side); verdict {'drift' if emb['drift'] else 'no drift'} ({emb['rule']}), "
            f"peak {e['peak_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
