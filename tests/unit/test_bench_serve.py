"""benchmarks/bench_serve.py's pure parts: argument parsing, percentiles, and the targets it reports (no model, no
server: the benchmark itself runs on demand)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_serve", ROOT / "benchmarks" / "bench_serve.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_serve"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_serve", None)


def test_percentile_interpolates_between_closest_ranks(bench):
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert bench.percentile(values, 0) == 1.0
    assert bench.percentile(values, 50) == 3.0
    assert bench.percentile(values, 100) == 5.0
    assert bench.percentile(values, 95) == pytest.approx(4.8)
    assert bench.percentile([float(i) for i in range(1, 101)], 99) == pytest.approx(99.01)
    assert bench.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        bench.percentile([], 50)
    with pytest.raises(ValueError, match="within"):
        bench.percentile([1.0], 101)


def test_quick_mode_bounds_counts_and_times(bench):
    args = bench.parse_args(["--quick"])
    assert (args.requests, args.point_seconds, args.steps) == (30, 15.0, 3)
    assert args.systems == {"raw", "mlflow", "torch", "onnx"}
    args = bench.parse_args(["--requests", "50", "--systems", "raw, onnx", "--llmops-env", "OMP_NUM_THREADS=1"])
    assert args.requests == 50 and args.systems == {"raw", "onnx"}
    assert args.llmops_env == {"OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize(
    "argv",
    [["--requests", "0"], ["--systems", "raw,triton"], ["--llmops-env", "NOVALUE"], ["--llmops-threads", "-1"]],
)
def test_bad_arguments_are_refused(bench, argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        bench.parse_args(argv)
    assert stopped.value.code == 2


def _point(bench, system, c, ms, rate, n=100):
    # n identical latencies of `ms`; `rate` texts/s over one second
    return bench.Point(system, c, [ms / 1000.0] * n, 1.0, int(rate))


def test_verdicts_compare_each_backend_with_the_best_raw_forward_and_mlflow(bench):
    results = bench.Results()
    results.add(_point(bench, "raw torch", 1, 20.0, 50))
    results.add(_point(bench, "raw torch 1 thr", 1, 16.0, 60))
    results.add(_point(bench, "raw torch batch", 8, 100.0, 80))
    results.add(_point(bench, "raw torch 1 thr batch", 32, 400.0, 100))
    results.add(_point(bench, "mlflow models serve", 32, 500.0, 30))
    results.add(_point(bench, "llmops torch", 1, 18.0, 55))
    results.add(_point(bench, "llmops torch", 32, 350.0, 90))
    found = {v.what: v for v in bench.verdicts(results)}
    overhead = found["llmops torch: overhead at c=1 vs raw torch"]
    assert overhead.value == pytest.approx(18.0 / 16.0 - 1)  # against the fastest raw setting, not the default
    assert overhead.passed
    share = found["llmops torch: c=32 throughput vs raw torch best batch"]
    assert share.value == pytest.approx(0.9) and share.passed
    p99 = found["llmops torch: p99 at c=1"]
    assert p99.value == pytest.approx(18.0) and p99.passed
    mlflow = found["llmops torch: c=32 throughput vs mlflow models serve"]
    assert mlflow.value == pytest.approx(3.0) and mlflow.passed
    assert "at most x3.33" in mlflow.detail
    assert not any(what.startswith("llmops onnx") for what in found)  # nothing measured, nothing claimed
    lines = bench.format_verdicts(list(found.values()))
    assert sum(line.strip().startswith("PASS") for line in lines) == 4


def test_a_slow_service_fails_the_targets(bench):
    results = bench.Results()
    results.add(_point(bench, "raw onnx", 1, 10.0, 100))
    results.add(_point(bench, "raw onnx batch", 32, 200.0, 160))
    results.add(_point(bench, "raw torch", 1, 20.0, 50))
    results.add(_point(bench, "mlflow models serve", 32, 500.0, 60))
    results.add(_point(bench, "llmops onnx", 1, 120.0, 8))
    results.add(_point(bench, "llmops onnx", 32, 300.0, 100))
    found = {v.what: v for v in bench.verdicts(results)}
    assert found["llmops onnx: overhead at c=1 vs raw onnx"].value == pytest.approx(11.0)
    assert not found["llmops onnx: overhead at c=1 vs raw onnx"].passed
    assert not found["llmops onnx: p99 at c=1"].passed
    assert found["llmops onnx: c=32 throughput vs raw onnx best batch"].value == pytest.approx(0.625)
    assert not found["llmops onnx: c=32 throughput vs raw onnx best batch"].passed
    assert not found["llmops onnx: c=32 throughput vs mlflow models serve"].passed
    table = "\n".join(bench.format_table(results))
    assert "llmops onnx" in table and "120.00" in table


def test_rounds_of_one_point_are_pooled(bench):
    results = bench.Results()
    results.add(bench.Point("llmops onnx", 8, [0.010, 0.020], 0.5, 2, errors=1, client_cpu_s=0.1))
    results.add(bench.Point("llmops onnx", 8, [0.030], 0.5, 1, client_cpu_s=0.2, server_cpu_s=0.3))
    results.add(bench.Point("llmops onnx", 32, [0.040], 1.0, 1))
    pooled = results.get("llmops onnx", 8)
    assert pooled.latencies == [0.010, 0.020, 0.030]
    assert (pooled.items, pooled.errors, pooled.seconds) == (3, 1, 1.0)
    assert pooled.throughput == pytest.approx(3.0)
    assert pooled.client_cpu_s == pytest.approx(0.3) and pooled.server_cpu_s == pytest.approx(0.3)
    assert pooled.ms(50) == pytest.approx(20.0)
    assert len(results.points) == 2


def test_rounds_are_bounded_and_quick_mode_uses_two(bench):
    assert bench.parse_args([]).rounds == 4
    assert bench.parse_args(["--quick"]).rounds == 2
    with pytest.raises(SystemExit):
        bench.parse_args(["--rounds", "0"])
