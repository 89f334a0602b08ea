"""Drift verdicts that must not mislead: too few rows, missing labels, the predicted-label reference, old profiles.

- A batch under `min_rows` is `insufficient_data` and never drift, whatever the embedding test says.
- Missing labels are treated alike on both sides (the label histogram is over labelled rows; the unlabelled share
  is its own check), so an identical batch with 10 % unlabelled rows is not label drift.
- The `predicted_label` reference is the model predicting its held-out split at the max_length it was trained
  with, which the profile records and scoring reuses.
- A format 1 profile still loads (migrated, with notes); a newer one is refused with a clear message.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from airflow_provider_llmops.core.drift.profile import (
    PROFILE_FILE,
    EmbeddingProfile,
    ReferenceProfile,
    ScoreOptions,
    build_profile,
    label_missing_check,
    score,
)
from airflow_provider_llmops.core.model import modeling
from airflow_provider_llmops.core.model.train_job import held_out_rows, rows_to_chunk
from airflow_provider_llmops.core.model.training import split_of, split_rows
from airflow_provider_llmops.errors import ConfigurationError
from airflow_provider_llmops.resources import sample_data_dir

# profiles of thousands of rows and a trained tiny model: in the full suite (CI), not in the quick tier
pytestmark = pytest.mark.slow

SAMPLES = sample_data_dir()
NO_EMBEDDINGS = ScoreOptions(embeddings=False)


def _rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SAMPLES / name).read_text().splitlines()]


def _blank(rows: list[dict[str, Any]], every: int, value: Any = None) -> list[dict[str, Any]]:
    """A copy of `rows` with the label of every `every`-th row replaced by `value`."""
    return [{**r, "label": value} if i % every == 0 else dict(r) for i, r in enumerate(rows)]


def _profile(rows: list[dict[str, Any]], **kwargs: Any) -> ReferenceProfile:
    chunk = rows_to_chunk(rows)
    return build_profile(lambda: iter([chunk]), embedding_sample=0, **kwargs)


def _score(profile: ReferenceProfile, rows: list[dict], options: ScoreOptions = NO_EMBEDDINGS, **kw: Any) -> dict:
    return score(profile, iter([rows_to_chunk(rows)]), options, **kw)


@pytest.fixture(scope="module")
def reference() -> list[dict[str, Any]]:
    return _rows("tickets_reference.jsonl")


@pytest.fixture(scope="module")
def full_profile(reference: list[dict[str, Any]]) -> ReferenceProfile:
    return _profile(reference)


@pytest.fixture(scope="module")
def blanked_profile(reference: list[dict[str, Any]]) -> ReferenceProfile:
    return _profile(_blank(reference, 10))  # 10 % of the reference rows unlabelled


# --- min_rows and the embedding test ---------------------------------------------------------------------------


def test_a_batch_under_min_rows_is_never_drift_even_when_the_embedding_test_fires(full_profile, monkeypatch):
    import airflow_provider_llmops.core.drift.embedding as E

    class FakeEncoder:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def encode(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 4), dtype=np.float32)

    def says_drift(reference: np.ndarray, current: np.ndarray, bandwidth: float, rules: Any) -> dict[str, Any]:
        return {
            "drift": True,
            "rows": len(current),
            "centroid_cosine_distance": 0.5,
            "mmd2": 0.3,
            "mmd_pvalue": 0.001,
            "domain_auc": 0.99,
            "rule": "MMD p=0.001 < 0.01 and domain AUC=0.990 >= 0.65",
        }

    monkeypatch.setattr(E, "Encoder", FakeEncoder)
    monkeypatch.setattr(E, "embedding_drift", says_drift)
    profile = dataclasses.replace(full_profile, embedding=EmbeddingProfile("fake", np.eye(4, dtype=np.float32), 1.0))
    batch = _rows("tickets_batch_same.jsonl")

    small = _score(profile, batch[:20], ScoreOptions())
    assert small["verdict"] == "insufficient_data" and small["drift"] is False
    assert small["embedding"]["drift"] is False and small["embedding"]["test_drift"] is True
    assert "20 rows < min_rows 30: no verdict" in small["embedding"]["rule"]
    assert small["drifting_features"] == []

    enough = _score(profile, batch[:40], ScoreOptions())  # at min_rows the embedding test decides again
    assert enough["verdict"] == "drift" and enough["drift"] is True and enough["embedding"]["drift"] is True


# --- missing labels -----------------------------------------------------------------------------------------------


def test_the_label_histogram_is_over_labelled_rows_in_the_reference(blanked_profile, reference):
    label = blanked_profile.features["label"]
    assert "__null__" not in label.binning.categories
    blanked = len(reference[::10])
    assert int(label.counts.sum()) == len(reference) - blanked and blanked_profile.label_missing == blanked
    blank_strings = _profile(_blank(reference, 10, value="  "))
    assert blank_strings.label_missing == blanked and "  " not in blank_strings.features["label"].binning.categories


@pytest.mark.parametrize(("reference_blanked", "current_blanked"), [(True, True), (False, True), (True, False)])
def test_an_identical_batch_with_unlabelled_rows_is_not_label_drift(
    reference_blanked, current_blanked, full_profile, blanked_profile, reference
):
    profile = blanked_profile if reference_blanked else full_profile
    current = _blank(reference, 10) if current_blanked else reference
    report = _score(profile, current)
    label = report["features"]["label"]
    assert label["scores"]["psi"] < 0.1, label["scores"]  # was ~0.7 with the unlabelled rows as a reference category
    assert label["verdict"]["drift"] is False and "label" not in report["drifting_features"]
    assert report["verdict"] == "no_drift"
    check = report["checks"]["label_missing"]
    assert check["current_share"] == pytest.approx(0.1 if current_blanked else 0.0, abs=1e-3)
    assert check["reference_share"] == pytest.approx(0.1 if reference_blanked else 0.0, abs=1e-3)
    assert check["flagged"] is False


def test_a_shifted_label_distribution_is_still_detected_with_unlabelled_rows(blanked_profile):
    report = _score(blanked_profile, _blank(_rows("tickets_batch_drift.jsonl"), 10))  # billing 15 % -> 40 %
    assert report["features"]["label"]["verdict"]["drift"] is True and "label" in report["drifting_features"]
    assert report["features"]["label"]["rows"] == 900


def test_the_unlabelled_share_is_its_own_check_and_never_drift(full_profile, reference):
    report = _score(full_profile, _blank(reference, 2))  # half the rows unlabelled
    check = report["checks"]["label_missing"]
    assert check["flagged"] is True and check["current_share"] == 0.5 and "50.0% unlabelled vs 0.0%" in check["rule"]
    assert report["features"]["label"]["scores"]["psi"] < 0.1
    assert report["verdict"] == "no_drift" and report["drift"] is False
    unlabelled = _score(full_profile, [{k: v for k, v in r.items() if k != "label"} for r in reference[:100]])
    assert "label" not in unlabelled["features"] and "label_missing" not in unlabelled["checks"]
    assert label_missing_check(0, 100, 100, 100, 0.2) == {
        "reference_share": 0.0,
        "current_share": 1.0,
        "unlabelled_rows": 100,
        "flagged": False,
        "rule": "no row labelled: not checked",
    }


# --- the predicted-label reference ------------------------------------------------------------------------------


def test_held_out_rows_are_exactly_the_training_validation_split(reference):
    rows = reference[:500] + [{"text": "no id", "label": "billing"}]
    chosen = held_out_rows(7, 0.25)(rows_to_chunk(rows))
    _, validation = split_rows(reference[:500], 7, 0.25)
    assert {r["id"] for r, keep in zip(rows, chosen, strict=True) if keep} == {r["id"] for r in validation}
    assert chosen[-1] is False and 0 < sum(chosen) < 500


def test_the_predicted_label_reference_uses_only_the_chosen_rows_and_records_max_length(reference, tmp_path):
    seen: list[str] = []

    def route(texts: list[str]) -> list[str]:
        seen.extend(texts)
        return ["billing" if "charge" in t.lower() else "other" for t in texts]

    profile = _profile(
        reference,
        predictor=route,
        predict_rows=held_out_rows(13, 0.2),
        predict_rows_rule="held-out split",
        predictor_max_length=48,
        predicted_categories=["billing", "other", "never_predicted"],
    )
    held_out = [r["text"] for r in reference if split_of(r["id"], 13, 0.2) == "validation"]
    assert sorted(seen) == sorted(held_out) and 300 < len(held_out) < 900  # never the rows the model trained on
    feature = profile.features["predicted_label"]
    assert int(feature.counts.sum()) == len(held_out) and "never_predicted" in feature.binning.categories
    assert profile.predictor == {"max_length": 48, "rows": "held-out split", "predicted_rows": len(held_out)}
    again = ReferenceProfile.load(profile.save(tmp_path / "p"))
    assert again.predictor_max_length == 48 and again.profile_id == profile.profile_id
    report = _score(again, _rows("tickets_batch_same.jsonl"), predictor=route)
    assert report["reference"]["predicted_label"]["max_length"] == 48
    assert report["features"]["predicted_label"]["verdict"]["drift"] is False


def test_scoring_predicts_at_the_max_length_of_the_reference_predictions(reference):
    calls: list[dict[str, Any]] = []

    class Loaded:
        def predict(self, texts: list[str]) -> list[str]:
            return ["x"] * len(texts)

    def loader(model_dir: Any, **kwargs: Any) -> Loaded:
        calls.append({"model_dir": model_dir, **kwargs})
        return Loaded()

    rows = reference[:200]
    with_model = _profile(rows, predictor=lambda t: ["x"] * len(t), predictor_max_length=64)
    assert modeling.champion_predictor(with_model, "/m", loader=loader) is not None
    assert calls == [{"model_dir": "/m", "max_length": 64}]  # not the classifier's default of 128
    assert modeling.champion_predictor(_profile(rows), "/m", loader=loader) is None and len(calls) == 1


def test_a_trained_model_profile_predicts_its_held_out_split_at_its_max_length(reference, tmp_path):
    """End to end on a tiny BERT built from a config: training, the drift profile, and the scoring predictor."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from airflow_provider_llmops.core.drift.features import default_model_dir
    from airflow_provider_llmops.core.model.train_job import SnapshotSel
    from airflow_provider_llmops.core.model.train_job import _profile as training_profile
    from airflow_provider_llmops.core.model.training import TrainConfig, train

    base = tmp_path / "tiny-bert"
    tokenizer = AutoTokenizer.from_pretrained(default_model_dir())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    rows = reference[:160]
    train_config = TrainConfig(base_model=str(base), max_length=24, batch_size=16, epochs=1, max_steps=1, seed=5)
    result = train(rows, train_config, tmp_path / "model", log=lambda _: None)
    profile = training_profile(rows, tmp_path / "model", train_config, [SnapshotSel("d", "s")], 0)
    assert profile.predictor["max_length"] == 24
    predicted = int(profile.features["predicted_label"].counts.sum())
    assert profile.predictor["predicted_rows"] == result.split["validation_rows"] == predicted
    predict = modeling.champion_predictor(profile, tmp_path / "model")
    assert predict.__self__.max_length == 24


# --- profile format versions --------------------------------------------------------------------------------------


def test_a_format_1_profile_loads_migrated_and_a_newer_one_is_refused(reference, tmp_path):
    profile = _profile(_blank(reference[:600], 10), predictor=lambda texts: ["a" if len(x) % 2 else "b" for x in texts])
    directory = profile.save(tmp_path / "v2")
    body = json.loads((directory / PROFILE_FILE).read_text())
    label = body["features"]["label"]
    v1 = {k: v for k, v in body.items() if k not in ("label_missing", "predictor")}
    v1["version"] = 1
    v1_label = {**label, "categories": ["__null__", *label["categories"]], "counts": [60, *label["counts"]]}
    v1["features"] = {**body["features"], "label": v1_label}
    (directory / PROFILE_FILE).write_text(json.dumps(v1))

    old = ReferenceProfile.load(directory)
    assert old.label_missing == 60 and old.features["label"].binning.categories == tuple(label["categories"])
    assert old.features["label"].counts.tolist() == label["counts"]
    assert "predicted_label" not in old.features and old.predicted_labels is False and old.predictor is None
    assert any("predicted_label dropped" in n for n in old.notes) and old.profile_id == body["profile_id"]
    report = _score(old, _blank(reference[:600], 10))
    assert report["features"]["label"]["scores"]["psi"] < 0.1 and report["reference"]["notes"] == old.notes

    (directory / PROFILE_FILE).write_text(json.dumps({**body, "version": 99, "provider_version": "9.0"}))
    with pytest.raises(ConfigurationError, match="format version 99, newer than this provider reads .* upgrade"):
        ReferenceProfile.load(directory)
