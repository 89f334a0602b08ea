"""Drift statistics on fixed histograms: KL divergence, PSI, Jensen-Shannon distance, and size-aware thresholds.

Histograms: numeric features use quantile bin edges fixed from the reference (open-ended first and last bins);
categorical features use the reference categories plus an `__unseen__` bucket. Edges and categories live in the
reference profile, so the same batch always gets the same score.

Smoothing: a histogram becomes proportions `p_i = (c_i / n + EPSILON) / (1 + k * EPSILON)` with `EPSILON = 1e-4`
(k bins); an empty histogram (n = 0) is taken as uniform before smoothing. Every proportion is therefore in
(0, 1), and KL, PSI and JS are finite for any input: no NaN, no inf.

Thresholds: a fixed threshold per statistic (PSI 0.1 / 0.2 bands) says whether a change is big enough to matter;
a calibrated threshold says whether it is bigger than sampling noise for *this* batch size and *this* reference
size. The calibrated one is the larger of mean + 3 sigma and the 99.5th percentile of the statistic over 1,000
seeded bootstrap pairs drawn from the reference histogram: a resampled reference of the reference's own size
against a resampled batch of the batch's size (both sides, because a small reference is itself a noisy estimate:
treating a 200-row histogram as exact flags most same-distribution batches of 1,000 rows). It is computed from the
stored histogram alone and is deterministic. Raw divergences shrink towards 0 at 1M rows and are noisy at 50;
requiring both rules keeps verdicts meaningful at either end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from airflow_provider_llmops.errors import ConfigurationError

EPSILON = 1e-4
UNSEEN = "__unseen__"
OTHER = "__other__"
STATISTICS = ("psi", "js", "kl", "kl_symmetric")
DEFAULT_THRESHOLDS = {"psi": 0.2, "js": 0.1, "kl": 0.1, "kl_symmetric": 0.2}
PSI_BANDS = ((0.1, "none"), (0.2, "moderate"))  # below 0.1: no shift; 0.1-0.2: moderate; >= 0.2: significant


def proportions(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    """Smoothed proportions of a histogram (see the module docstring for the exact formula)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    raw = counts / total if total > 0 else np.full_like(counts, 1.0 / max(len(counts), 1))
    return (raw + EPSILON) / (1.0 + EPSILON * len(counts))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats, for smoothed (strictly positive) proportions."""
    return float(np.sum(p * np.log(p / q)))


def psi(p: np.ndarray, q: np.ndarray) -> float:
    """Population stability index of current q against reference p: sum((q - p) * ln(q / p))."""
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance with base-2 logarithms: in [0, 1]."""
    m = 0.5 * (p + q)
    divergence = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    return float(np.sqrt(max(divergence, 0.0)))


def compare(
    reference_counts: Sequence[float] | np.ndarray, current_counts: Sequence[float] | np.ndarray
) -> dict[str, float]:
    p, q = proportions(reference_counts), proportions(current_counts)
    kl_rc = kl_divergence(p, q)
    return {"psi": psi(p, q), "js": js_distance(p, q), "kl": kl_rc, "kl_symmetric": kl_rc + kl_divergence(q, p)}


def psi_band(value: float) -> str:
    for bound, name in PSI_BANDS:
        if value < bound:
            return name
    return "significant"


# --- binning -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericBinning:
    edges: tuple[float, ...]  # inner edges; bins are (-inf, e0), [e0, e1), ..., [e_last, inf)

    @classmethod
    def from_reference(cls, values: np.ndarray, bins: int = 10) -> NumericBinning:
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return cls(edges=())
        quantiles = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
        return cls(edges=tuple(float(e) for e in np.unique(quantiles)))

    @property
    def size(self) -> int:
        return len(self.edges) + 1

    def counts(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        index = np.searchsorted(np.asarray(self.edges), values, side="right")
        return np.bincount(index, minlength=self.size).astype(np.int64)

    def labels(self) -> list[str]:
        if not self.edges:
            return ["all"]
        e = [f"{x:.4g}" for x in self.edges]
        return [f"< {e[0]}"] + [f"[{a}, {b})" for a, b in zip(e, e[1:], strict=False)] + [f">= {e[-1]}"]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "numeric", "edges": list(self.edges)}


@dataclass(frozen=True)
class CategoricalBinning:
    categories: tuple[str, ...]  # reference categories (possibly with OTHER), then UNSEEN is appended
    has_other: bool = False

    @classmethod
    def from_reference(cls, values: Iterable[Any], max_categories: int = 50) -> CategoricalBinning:
        from collections import Counter

        return cls.from_counter(Counter(values), max_categories)

    @classmethod
    def from_counter(cls, raw: dict[Any, int], max_categories: int = 50) -> CategoricalBinning:
        """Categories from value counts (a `collections.Counter` of the reference values)."""
        counter: dict[str, int] = {}
        for value, count in raw.items():
            key = _category(value)
            counter[key] = counter.get(key, 0) + count
        ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
        if len(ranked) > max_categories:
            return cls(categories=tuple(k for k, _ in ranked[: max_categories - 1]) + (OTHER,), has_other=True)
        return cls(categories=tuple(sorted(counter)))

    @property
    def size(self) -> int:
        return len(self.categories) + 1

    def counts(self, values: Iterable[Any]) -> np.ndarray:
        from collections import Counter

        return self.counts_from_counter(Counter(values))  # count first: one lookup per distinct value

    def counts_from_counter(self, raw: dict[Any, int]) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.categories)}
        fallback = index[OTHER] if self.has_other else len(self.categories)
        out = np.zeros(self.size, dtype=np.int64)
        for value, count in raw.items():
            out[index.get(_category(value), fallback)] += count
        return out

    def labels(self) -> list[str]:
        return [*self.categories, UNSEEN]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "categorical", "categories": list(self.categories), "has_other": self.has_other}


def _category(value: Any) -> str:
    return "__null__" if value is None or (isinstance(value, float) and value != value) else str(value)


def binning_from_dict(spec: dict[str, Any]) -> NumericBinning | CategoricalBinning:
    if spec["kind"] == "numeric":
        return NumericBinning(edges=tuple(spec["edges"]))
    return CategoricalBinning(categories=tuple(spec["categories"]), has_other=bool(spec.get("has_other")))


# --- thresholds and verdicts ---------------------------------------------------------------------------------


def _seed(name: str, size: int, reference_size: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{name}:{size}:{reference_size}".encode()).digest()[:8], "little")


def _smoothed_rows(samples: np.ndarray) -> np.ndarray:
    """`proportions` applied to every row of a (draws, bins) count matrix (an empty row is taken as uniform)."""
    samples = samples.astype(np.float64)
    totals = samples.sum(axis=1, keepdims=True)
    raw = np.divide(samples, totals, out=np.full_like(samples, 1.0 / samples.shape[1]), where=totals > 0)
    return (raw + EPSILON) / (1.0 + EPSILON * samples.shape[1])


def _matrix_statistics(p: np.ndarray, q: np.ndarray) -> dict[str, np.ndarray]:
    """The statistics of reference rows `p` against current rows `q` (vectorised over rows; `p` may be one row)."""
    kl_pq = np.sum(p * np.log(p / q), axis=1)
    kl_qp = np.sum(q * np.log(q / p), axis=1)
    m = 0.5 * (p + q)
    js = 0.5 * np.sum(p * np.log2(p / m), axis=1) + 0.5 * np.sum(q * np.log2(q / m), axis=1)
    return {
        "psi": np.sum((q - p) * np.log(q / p), axis=1),
        "js": np.sqrt(np.maximum(js, 0.0)),
        "kl": kl_pq,
        "kl_symmetric": kl_pq + kl_qp,
    }


def calibrated_thresholds(
    reference_counts: Sequence[float] | np.ndarray,
    size: int,
    name: str,
    draws: int = 1000,
    sigmas: float = 3.0,
    quantile: float = 0.995,
    reference_size: int | None = None,
) -> dict[str, float]:
    """Per statistic, the larger of mean + `sigmas` * std and the `quantile` of its null distribution.

    Reads only the reference histogram. The null distribution comes from `draws` seeded bootstrap pairs, both drawn
    from the reference proportions: a reference of `reference_size` rows (default: the histogram's own total) and
    a batch of `size` rows, compared exactly as a real batch is compared. Resampling the reference too is what
    makes a small reference safe: its own sampling noise is in the null distribution, so a same-distribution batch
    is not flagged just because the reference histogram is off by chance. For a large reference the resampled side
    is nearly exact and the threshold is that of the batch's noise alone. The quantile matters for small batches,
    where an empty bin makes the distribution heavy-tailed and mean + 3 sigma alone would be exceeded far more
    often than 0.3 %. `reference_size=0` takes the reference as exact (only the batch is resampled). Everything is
    one (draws x bins) matrix computation per side."""
    counts = np.asarray(reference_counts, dtype=np.float64)
    ref_rows = int(round(counts.sum())) if reference_size is None else max(int(reference_size), 0)
    p = counts if counts.sum() > 0 else np.ones_like(counts)  # an empty reference is uniform, as in `proportions`
    probs = p / p.sum()
    rng = np.random.default_rng(_seed(name, size, ref_rows))
    current = _smoothed_rows(rng.multinomial(max(size, 0), probs, size=draws))
    if ref_rows > 0:
        reference = _smoothed_rows(rng.multinomial(ref_rows, probs, size=draws))
    else:
        reference = proportions(p)[None, :]
    stats = _matrix_statistics(reference, current)
    return {s: float(max(v.mean() + sigmas * v.std(), np.quantile(v, quantile))) for s, v in stats.items()}


@dataclass(frozen=True)
class DriftRules:
    """How a feature's verdict is reached.

    `statistic`: the statistic the verdict uses (default PSI). `mode`: `both` (fixed AND calibrated threshold
    exceeded: the default), `fixed` or `calibrated`. `thresholds`: fixed threshold per statistic. `min_rows`:
    smaller batches get no verdict (a handful of rows cannot show a distribution shift, only single odd rows):
    no feature drifts, and `profile.score` does not let the embedding test decide either (`insufficient_data`).
    """

    statistic: str = "psi"
    mode: str = "both"
    thresholds: tuple[tuple[str, float], ...] = tuple(DEFAULT_THRESHOLDS.items())
    draws: int = 1000
    sigmas: float = 3.0
    min_rows: int = 30  # below this many rows no feature gets a drift verdict

    def threshold(self, statistic: str) -> float:
        return dict(self.thresholds)[statistic]

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ConfigurationError(f"statistic must be one of {STATISTICS}, got {self.statistic!r}")
        if self.mode not in ("both", "fixed", "calibrated"):
            raise ConfigurationError(f"mode must be both, fixed or calibrated, got {self.mode!r}")


def verdict(
    scores: dict[str, float], calibrated: dict[str, float], rules: DriftRules, rows: int | None = None
) -> dict[str, Any]:
    stat = rules.statistic
    value, fixed_at, calibrated_at = scores[stat], rules.threshold(stat), calibrated[stat]
    fixed_fired, calibrated_fired = value >= fixed_at, value > calibrated_at
    drift = {"both": fixed_fired and calibrated_fired, "fixed": fixed_fired, "calibrated": calibrated_fired}[rules.mode]
    if rows is not None and rows < rules.min_rows:
        return {
            "drift": False,
            "statistic": stat,
            "fired": [],
            "rule": f"{stat}={value:.4g} on {rows} rows (< min_rows {rules.min_rows}): no verdict",
        }
    fired = [r for r, f in (("fixed", fixed_fired), ("calibrated", calibrated_fired)) if f]
    rule = (
        f"{stat}={value:.4g} {'>=' if fixed_fired else '<'} fixed {fixed_at:g}; "
        f"{'>' if calibrated_fired else '<='} calibrated {calibrated_at:.4g} "
        f"(bootstrap max(mean+{rules.sigmas:g}sd, p99.5) at {rows if rows is not None else 'this'} rows); "
        f"mode {rules.mode}"
    )
    return {"drift": bool(drift), "statistic": stat, "fired": fired, "rule": rule}
