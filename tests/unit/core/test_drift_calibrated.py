"""The calibrated drift rule on its own (`mode=calibrated`), at a small and a large reference.

Each trial draws a fresh reference of `ref_size` rows from the population and a fresh batch, fixes the bins from
that reference, and asks the calibrated rule alone. Same-distribution batches must not be flagged in at least 95
of 100 seeded trials, clearly shifted ones must be flagged in at least 95. With a 200-row reference the reference
histogram is itself noisy; a threshold that treats it as exact (resampling only the batch) flagged 94 of 100
numeric and 57 of 100 categorical same-distribution batches of 1,000 rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from airflow_provider_llmops.core.drift import statistics as D

# bootstrap calibration over many simulated batches: in the full suite (CI), not in the quick tier
pytestmark = pytest.mark.slow

CALIBRATED = D.DriftRules(mode="calibrated")
P_REF, P_SHIFT = [0.4, 0.3, 0.2, 0.1], [0.15, 0.25, 0.3, 0.3]


def _numeric_flags(ref_size: int, cur_size: int, shift: float, seed: int) -> int:
    rng = np.random.default_rng(seed)
    flagged = 0
    for _ in range(100):
        reference = rng.normal(0.0, 1.0, ref_size)
        binning = D.NumericBinning.from_reference(reference, 10)
        ref_counts, cur_counts = binning.counts(reference), binning.counts(rng.normal(shift, 1.0, cur_size))
        thresholds = D.calibrated_thresholds(ref_counts, cur_size, "x")
        flagged += D.verdict(D.compare(ref_counts, cur_counts), thresholds, CALIBRATED, cur_size)["drift"]
    return flagged


def _categorical_flags(ref_size: int, cur_size: int, probs: list[float], seed: int) -> int:
    rng = np.random.default_rng(seed)
    flagged = 0
    for _ in range(100):
        reference = rng.choice(list("abcd"), ref_size, p=P_REF)
        binning = D.CategoricalBinning.from_reference(reference)
        ref_counts, cur_counts = binning.counts(reference), binning.counts(rng.choice(list("abcd"), cur_size, p=probs))
        thresholds = D.calibrated_thresholds(ref_counts, cur_size, "c")
        flagged += D.verdict(D.compare(ref_counts, cur_counts), thresholds, CALIBRATED, cur_size)["drift"]
    return flagged


@pytest.mark.parametrize("ref_size", [200, 20_000])
@pytest.mark.parametrize("cur_size", [50, 1000, 5000])
def test_calibrated_rule_alone_rarely_flags_same_distribution_batches(ref_size: int, cur_size: int):
    numeric = _numeric_flags(ref_size, cur_size, 0.0, seed=ref_size + cur_size)
    categorical = _categorical_flags(ref_size, cur_size, P_REF, seed=ref_size + cur_size + 1)
    assert numeric <= 5 and categorical <= 5, (numeric, categorical)


@pytest.mark.parametrize("ref_size", [200, 20_000])
@pytest.mark.parametrize("cur_size", [1000, 5000])
def test_calibrated_rule_alone_flags_shifted_batches(ref_size: int, cur_size: int):
    numeric = _numeric_flags(ref_size, cur_size, 0.75, seed=ref_size + cur_size + 2)
    categorical = _categorical_flags(ref_size, cur_size, P_SHIFT, seed=ref_size + cur_size + 3)
    assert numeric >= 95 and categorical >= 95, (numeric, categorical)


def test_a_small_reference_raises_the_threshold_a_large_one_barely_moves_it():
    """The null distribution includes the reference's own noise: at 200 reference rows the threshold for a
    1,000-row batch is several times the batch-noise-only one; at 1M reference rows it is the same up to the bootstrap's
    own noise (different seeds)."""
    probs = np.array([0.4, 0.3, 0.2, 0.1])
    small = D.calibrated_thresholds(probs * 200, 1000, "f")["psi"]
    exact = D.calibrated_thresholds(probs * 200, 1000, "f", reference_size=0)["psi"]  # 0 rows: taken as exact
    huge = D.calibrated_thresholds(probs * 1_000_000, 1000, "f")["psi"]
    assert small > 3 * exact
    assert abs(huge - exact) / exact < 0.3
    assert D.calibrated_thresholds(probs * 200, 1000, "f") == D.calibrated_thresholds(probs * 200, 1000, "f")
