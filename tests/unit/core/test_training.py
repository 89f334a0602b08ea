"""core.training on tiny models built from a config (real transformers training, seconds not minutes):
determinism, the seeded split, budgets, both tasks, safetensors-only loading, clear errors."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from airflow_provider_llmops.core.drift.features import default_model_dir
from airflow_provider_llmops.core.model.modeling import load_classifier, load_generator, model_task
from airflow_provider_llmops.core.model.training import TrainConfig, split_of, split_rows, train
from airflow_provider_llmops.errors import ConfigurationError

# real transformers training of tiny models: in the full suite (CI), not in the quick tier
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rows(sample_dir: Path) -> list[dict]:
    lines = (sample_dir / "tickets_reference.jsonl").read_text().splitlines()[:160]
    return [json.loads(line) for line in lines]


def build_tiny_bert(directory: Path, layers: int = 2) -> Path:
    """A tiny random BERT (hidden 32) with the packaged MiniLM tokenizer, saved as a base checkpoint (no download)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_tiny_gpt(directory: Path, layers: int = 2) -> Path:
    """A tiny random GPT-2 (n_embd 32) with the packaged MiniLM tokenizer, saved as a base checkpoint."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir())
    config = GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=layers, n_head=2, n_positions=128)
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tiny_gpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt(tmp_path_factory.mktemp("tiny-gpt"))


def _config(base: Path, **overrides) -> TrainConfig:
    values = {"base_model": str(base), "max_length": 32, "batch_size": 16, "epochs": 1, "log_every_steps": 1}
    return TrainConfig(**{**values, **overrides})


def test_split_depends_on_seed_and_id_only(rows: list[dict]):
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    a_train, a_val = split_rows(rows, 42, 0.2)
    b_train, b_val = split_rows(shuffled, 42, 0.2)
    assert {r["id"] for r in a_val} == {r["id"] for r in b_val} and len(a_train) + len(a_val) == len(rows)
    assert 0.1 < len(a_val) / len(rows) < 0.3
    assert {split_of(r["id"], 7, 0.2) for r in rows} == {"train", "validation"}
    assert [split_of(r["id"], 7, 0.2) for r in rows] != [split_of(r["id"], 42, 0.2) for r in rows]


def test_same_seed_same_training(rows: list[dict], tiny_bert: Path, tmp_path: Path):
    logs: list[str] = []
    first = train(rows, _config(tiny_bert), tmp_path / "a", log=logs.append)
    second = train(rows, _config(tiny_bert), tmp_path / "b", log=lambda _: None)
    assert [h["loss"] for h in first.history] == [h["loss"] for h in second.history]
    assert first.stopped_by == "completed" and first.steps == first.planned_steps == math.ceil(
        first.split["train_rows"] / 16
    )
    assert first.split == second.split and first.labels == sorted({r["label"] for r in rows})
    assert any("samples/s" in line and "ETA" in line for line in logs) and any(
        line.startswith("epoch 1 done") for line in logs
    )
    files = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "label_map.json", "training.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    record = json.loads((tmp_path / "a" / "training.json").read_text())
    assert (
        record["stopped_by"] == "completed"
        and record["split"]["validation_ids_sha256"] == first.split["validation_ids_sha256"]
    )
    classifier = load_classifier(tmp_path / "a")
    assert model_task(tmp_path / "a") == "sequence-classification"
    # inference truncates as training did (evaluation and drift load the model this way), unless told otherwise
    assert record["config"]["max_length"] == first.config["max_length"] == classifier.max_length != 128
    assert load_classifier(tmp_path / "a", max_length=96).max_length == 96
    predictions = classifier.predict([r["text"] for r in rows[:5]])
    assert len(predictions) == 5 and set(predictions) <= set(first.labels)
    assert len(classifier.latencies([r["text"] for r in rows[:4]], warmup=1)) == 4


def test_budgets_stop_training_cleanly(rows: list[dict], tiny_bert: Path, tmp_path: Path):
    by_steps = train(rows, _config(tiny_bert, epochs=3, max_steps=4), tmp_path / "steps", log=lambda _: None)
    assert by_steps.stopped_by == "max_steps" and by_steps.steps == 4 and by_steps.epochs[-1]["step"] == 4.0
    by_time = train(rows, _config(tiny_bert, epochs=50, max_train_minutes=0.02), tmp_path / "time", log=lambda _: None)
    assert by_time.stopped_by == "max_train_minutes" and 1 <= by_time.steps < by_time.planned_steps
    assert (tmp_path / "time" / "model.safetensors").is_file()  # the partial model is still saved, and says why


def test_causal_lm_on_a_tiny_checkpoint(rows: list[dict], tiny_gpt: Path, tmp_path: Path):
    result = train(rows, _config(tiny_gpt, task="causal-lm", max_steps=3), tmp_path / "lm", log=lambda _: None)
    assert result.labels == [] and result.steps == 3 and result.stopped_by == "max_steps"
    assert math.isfinite(result.validation["perplexity"]) and result.validation["perplexity"] > 1
    assert (tmp_path / "lm" / "model.safetensors").is_file() and not (tmp_path / "lm" / "label_map.json").exists()
    assert model_task(tmp_path / "lm") == "causal-lm" and model_task(tiny_gpt) == "causal-lm"  # record, architecture
    generator = load_generator(tmp_path / "lm", max_new_tokens=5)
    assert generator.max_length == 32
    first, second = generator.generate(["my parcel", "refund please"]), generator.generate(["my parcel", "x"])
    assert len(first) == 2 and first[0] == second[0]  # greedy: the same prompt gives the same text
    assert [len(ids) for ids in generator.generate_tokens(["my parcel", "x"])] == [5, 5]  # bounded new tokens


def test_bad_settings_and_unsafe_models_are_refused(rows: list[dict], tiny_bert: Path, tmp_path: Path):
    with pytest.raises(ConfigurationError, match="unknown training settings"):
        TrainConfig.from_dict({"epochs": 1, "learnin_rate": 0.1})
    with pytest.raises(ConfigurationError, match="unknown task"):
        TrainConfig(task="seq2seq")
    with pytest.raises(ConfigurationError, match="not a local directory"):
        train(rows, TrainConfig(base_model=str(tmp_path / "nowhere")), tmp_path / "x", log=lambda _: None)
    with pytest.raises(ConfigurationError, match="outside the label set"):
        train(rows, _config(tiny_bert, labels=("billing",)), tmp_path / "y", log=lambda _: None)
    with pytest.raises(ConfigurationError, match="too few rows"):
        train(rows[:1], _config(tiny_bert), tmp_path / "z", log=lambda _: None)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ConfigurationError, match="refusing pickle"):
        load_classifier(pickled)
