"""Embedding drift pieces: the real MiniLM encoder, bounded samples, MMD permutation test, domain classifier."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_provider_llmops.core.drift.embedding import (
    EmbeddingRules,
    Encoder,
    Reservoir,
    domain_classifier_auc,
    embedding_drift,
    median_bandwidth,
    mmd_permutation_test,
)


@pytest.mark.slow
def test_encoder_gives_normalised_sentence_embeddings():
    vectors = Encoder().encode(["My invoice is wrong", "I was charged twice", "The router keeps rebooting"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similar, different = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > different  # billing texts sit closer together than billing vs. technical


def test_reservoir_is_bounded_and_deterministic():
    a, b = Reservoir(100, seed=1), Reservoir(100, seed=1)
    for start in range(0, 10_000, 1000):
        chunk = [str(i) for i in range(start, start + 1000)]
        a.add(chunk)
        b.add(chunk)
    assert len(a.items) == 100 and a.items == b.items and a.seen == 10_000
    assert int(max(a.items, key=int)) > 5000  # later rows get their chance


def test_mmd_and_auc_separate_shifted_samples_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 32))
    same, shifted = rng.normal(size=(400, 32)), rng.normal(size=(400, 32)) + 0.3
    bandwidth = median_bandwidth(x)
    _, p_same = mmd_permutation_test(x, same, bandwidth, 200, seed=1)
    mmd_shift, p_shift = mmd_permutation_test(x, shifted, bandwidth, 200, seed=1)
    assert p_same > 0.05 and p_shift < 0.01 and mmd_shift > 0
    assert domain_classifier_auc(x, same) < 0.6 < 0.8 < domain_classifier_auc(x, shifted)


def test_embedding_drift_verdict_and_empty_current():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    result = embedding_drift(x, x[:0], median_bandwidth(x), EmbeddingRules())
    assert result["drift"] is False and result["rows"] == 0
    shifted = embedding_drift(x, x + 0.5, median_bandwidth(x), EmbeddingRules())
    assert shifted["drift"] and "MMD p=" in shifted["rule"] and shifted["centroid_cosine_distance"] > 0
