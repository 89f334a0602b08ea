"""Reference profiles and batch scoring on the shipped samples (real tokenizer, real MiniLM encoder)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from airflow_provider_llmops.core.data.batches import iter_chunks
from airflow_provider_llmops.core.drift.profile import ReferenceProfile, ScoreOptions, build_profile, score
from airflow_provider_llmops.core.drift.statistics import UNSEEN
from airflow_provider_llmops.errors import ConfigurationError
from airflow_provider_llmops.resources import sample_data_dir

# real MiniLM encoder over the shipped samples: in the full suite (CI), not in the quick tier
pytestmark = pytest.mark.slow

SAMPLES = sample_data_dir()


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory) -> Path:
    # build from a copy, then delete the copy: scoring must never need the reference data again
    work = tmp_path_factory.mktemp("profile")
    copy = work / "reference.jsonl"
    shutil.copy(SAMPLES / "tickets_reference.jsonl", copy)
    profile = build_profile(lambda: iter_chunks(str(copy)), embedding_sample=200, snapshot_ids=["ref"])
    copy.unlink()
    return profile.save(work / "saved")


@pytest.fixture(scope="module")
def profile(profile_dir: Path) -> ReferenceProfile:
    return ReferenceProfile.load(profile_dir)


def _score(profile: ReferenceProfile, name: str, **options) -> dict:
    # 300 batch texts embedded (the default is 1000): enough for the embedding verdicts, a third of the time
    options.setdefault("embedding_sample", 300)
    return score(profile, iter_chunks(str(SAMPLES / name)), ScoreOptions(**options))


@pytest.fixture(scope="module")
def drifted(profile: ReferenceProfile) -> dict:
    return _score(profile, "tickets_batch_drift.jsonl")


def test_profile_contents(profile: ReferenceProfile):
    assert profile.row_count == 3000 and profile.label_column == "label"
    assert set(profile.features) == {
        "char_length",
        "token_count",
        "oov_rate",
        "unk_token_rate",
        "label",
        "meta:channel",
        "meta:region",
        "meta:language",
        "meta:product",
    }
    assert profile.tokenizer.name == "sentence-transformers/all-MiniLM-L6-v2" and len(profile.tokenizer.sha256) == 16
    assert profile.embedding is not None and profile.embedding.sample.shape == (200, 384)
    assert abs(float(np.linalg.norm(profile.embedding.sample[0])) - 1.0) < 1e-4
    # vocabulary rates are out-of-sample, so the reference shows some unseen words, not all zeros
    assert profile.features["oov_rate"].counts.sum() == 1500 and len(profile.features["oov_rate"].binning.edges) >= 1
    assert profile.features["char_length"].halves["psi"] < 0.05  # the two halves of the reference agree


def test_save_load_round_trip_keeps_the_id(profile_dir: Path, profile: ReferenceProfile, tmp_path: Path):
    again = ReferenceProfile.load(profile.save(tmp_path / "copy"))
    assert (
        again.profile_id == profile.profile_id == json.loads((profile_dir / "profile.json").read_text())["profile_id"]
    )
    with pytest.raises(ConfigurationError, match="no reference profile"):
        ReferenceProfile.load(tmp_path)


def test_same_distribution_is_not_drift_and_drifted_batch_is(profile: ReferenceProfile, drifted: dict):
    same = _score(profile, "tickets_batch_same.jsonl")
    assert same["verdict"] == "no_drift" and same["drifting_features"] == [] and not same["embedding"]["drift"]
    assert drifted["verdict"] == "drift"
    assert {"char_length", "token_count", "label", "meta:channel", "oov_rate"} <= set(drifted["drifting_features"])
    assert drifted["embedding"]["drift"] and drifted["embedding"]["domain_auc"] > 0.9
    channel = drifted["features"]["meta:channel"]["histogram"]
    assert channel["bins"][-1] == UNSEEN and channel["current_counts"][-1] > 300  # social_media is new
    assert drifted["batch"]["word_oov_share"] > 5 * same["batch"]["word_oov_share"]
    assert drifted["features"]["char_length"]["verdict"]["fired"] == ["fixed", "calibrated"]


def test_scores_are_deterministic(profile: ReferenceProfile, drifted: dict):
    first, second = copy.deepcopy(drifted), _score(profile, "tickets_batch_drift.jsonl")
    for report in (first, second):
        report.pop("timings_seconds")
        report["embedding"].pop("seconds_embedding")
        report["embedding"].pop("seconds_math")
    assert first == second


@pytest.mark.parametrize("rows", [0, 1])
def test_empty_and_one_row_batches_are_finite(profile: ReferenceProfile, tmp_path: Path, rows: int):
    source = tmp_path / "tiny.jsonl"
    lines = [json.loads(line) for line in (SAMPLES / "tickets_batch_drift.jsonl").read_text().splitlines()[:rows]]
    source.write_text("".join(json.dumps(r) + "\n" for r in lines) or "")
    chunks = iter_chunks(str(source)) if rows else iter([{"text": [], "label": [], "channel": []}])
    report = score(profile, chunks, ScoreOptions())
    json.dumps(report, allow_nan=False)  # raises on NaN or inf anywhere
    assert report["rows"] == rows and not report["drift"]
    assert report["verdict"] == ("no_data" if rows == 0 else "insufficient_data")


def test_unlabelled_batch_skips_label_shift(profile: ReferenceProfile, tmp_path: Path):
    rows = [json.loads(line) for line in (SAMPLES / "tickets_batch_same.jsonl").read_text().splitlines()]
    (tmp_path / "unlabelled.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "label"}) + "\n" for r in rows)
    )
    report = score(profile, iter_chunks(str(tmp_path / "unlabelled.jsonl")), ScoreOptions(embeddings=False))
    assert "label" not in report["features"] and report["embedding"] is None


def test_predicted_label_distribution_with_a_model(tmp_path: Path):
    """A keyword router stands in for a trained model here (the model issue supplies real ones)."""

    def route(texts: list[str]) -> list[str]:
        return [
            "billing" if any(w in t.lower() for w in ("invoice", "charge", "pay", "refund")) else "other" for t in texts
        ]

    profile = build_profile(
        lambda: iter_chunks(str(SAMPLES / "tickets_reference.jsonl")), embedding_sample=0, predictor=route
    )
    assert profile.predicted_labels and "predicted_label" in profile.features
    report = score(
        profile,
        iter_chunks(str(SAMPLES / "tickets_batch_drift.jsonl")),
        ScoreOptions(embeddings=False),
        predictor=route,
    )
    assert report["features"]["predicted_label"]["verdict"]["drift"]  # billing 15 % -> 40 % shows in predictions too


def test_monitored_features_limit_the_overall_verdict(profile: ReferenceProfile):
    report = _score(profile, "tickets_batch_drift.jsonl", embeddings=False, features=("meta:region",))
    assert report["drifting_features"] == [] and report["verdict"] == "no_drift"
    assert (
        report["features"]["char_length"]["verdict"]["drift"]
        and not report["features"]["char_length"]["verdict"]["monitored"]
    )


def test_missing_text_column_is_a_clear_error(profile: ReferenceProfile):
    with pytest.raises(ConfigurationError, match="no text column 'text'"):
        score(profile, iter([{"body": ["x"]}]), ScoreOptions(embeddings=False))
