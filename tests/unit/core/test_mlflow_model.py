"""Registered versions are MLflow Models: tiny models built from a config, trained and registered by
`train_and_register` to a SQLite MLflow in tmp_path, then loaded back with `mlflow.pyfunc.load_model("models:/...")`
(same labels and scores as `load_classifier`, bounded generation for a causal LM), the ONNX export found through the
contract, and a version registered the old way (no MLmodel) still fetched and loaded."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airflow_provider_llmops.core.model import mlflow_model
from airflow_provider_llmops.core.model.contract import (
    CHAMPION,
    MLMODEL_FILE,
    MODEL_ARTIFACT,
    ONNX_EXPORTED,
    ONNX_SKIPPED,
    PLOTS_ARTIFACT,
    PROFILE_ARTIFACT,
    SPLIT_ARTIFACT,
    TAG_ONNX,
    TAG_ONNX_LABEL_AGREEMENT,
    TAG_ONNX_MAX_ABS_DIFF,
    TAG_ONNX_PARITY_ROWS,
    TAG_ONNX_REASON,
    fetch_model,
    fetch_onnx,
    is_mlflow_model,
)
from airflow_provider_llmops.core.model.modeling import MAX_NEW_TOKENS_LIMIT, load_classifier, load_generator
from airflow_provider_llmops.core.model.onnx_runtime import load_onnx_classifier
from airflow_provider_llmops.core.model.registry import ModelRegistry
from airflow_provider_llmops.core.model.train_job import SnapshotSel, train_and_register
from airflow_provider_llmops.core.model.training import TrainConfig, split_of
from airflow_provider_llmops.errors import ConfigurationError
from tests.unit.core.test_training import build_tiny_bert, build_tiny_gpt
from tests.unit.fake_model import _template_db

# tiny models trained and registered, loaded through MLflow: in the full suite (CI), not in the quick tier
pytestmark = pytest.mark.slow


class _Store:
    """The one DatasetStore method training reads: a snapshot's rows as a table."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def read_table(self, dataset: str, snapshot_id: str) -> Any:
        import pyarrow as pa

        return pa.Table.from_pylist(self.rows)


@pytest.fixture(scope="module")
def rows(sample_dir: Path) -> list[dict[str, Any]]:
    lines = (sample_dir / "tickets_reference.jsonl").read_text().splitlines()[:160]
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]], test_home: Path) -> dict[str, Any]:
    """One SQLite registry with a classifier and a causal LM registered by the training job, champions both."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow-model")
    shutil.copy(_template_db(str(test_home)), root / "mlflow.db")  # the session's migrated empty database
    registry = ModelRegistry(f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "artifacts"))
    registry.settle_s = 0.0
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(registry.tracking_uri)  # what "models:/..." resolves against (also sets the env vars)
    mlflow.set_registry_uri(registry.registry_uri)
    out: dict[str, Any] = {"registry": registry, "root": root, "logs": []}
    for name, task, base in (
        ("router", "sequence-classification", build_tiny_bert(root / "tiny-bert", layers=1)),
        ("writer", "causal-lm", build_tiny_gpt(root / "tiny-gpt", layers=1)),
    ):
        config = TrainConfig(
            task=task, base_model=str(base), max_length=32, batch_size=16, epochs=1, max_steps=2, log_every_steps=1
        )
        work = root / f"work-{name}"
        work.mkdir()
        summary = train_and_register(
            store=_Store(rows),  # type: ignore[arg-type]
            registry=registry,
            model_name=name,
            snapshots=[SnapshotSel("tickets", "s1")],
            config=config,
            key=f"key-{name}",
            run={"dag_id": "d", "run_id": "r"},
            work_dir=work,
            embedding_sample=0,
            log=out["logs"].append,
        )
        registry.client.set_registered_model_alias(name, CHAMPION, summary["version"])
        out[name] = summary
    yield out
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _held_out(rows: list[dict[str, Any]]) -> list[str]:
    return [r["text"] for r in rows if split_of(str(r["id"]), 42, 0.2) == "validation"]


# --- classifier ---------------------------------------------------------------------------------------------------


def test_pyfunc_from_the_registry_predicts_what_load_classifier_predicts(world, rows, tmp_path):
    import mlflow
    import pandas as pd

    registry = world["registry"]
    version = registry.get_version("router", world["router"]["version"])
    model_dir = fetch_model(registry, version, tmp_path / "cache")
    assert is_mlflow_model(model_dir) and (model_dir / "model.safetensors").is_file()
    texts = _held_out(rows)[:20] + ["", "a much longer ticket " * 40]

    pyfunc = mlflow.pyfunc.load_model("models:/router@champion")
    got = pyfunc.predict(pd.DataFrame({"text": texts}))
    classifier = load_classifier(model_dir)
    probs = classifier.predict_proba(texts)
    assert list(got.columns) == ["label", "score"] and len(got) == len(texts)
    assert got["label"].tolist() == classifier.predict(texts)
    np.testing.assert_allclose(got["score"].to_numpy(), probs.max(axis=1), rtol=0, atol=1e-6)
    # the dict form MLflow's REST scoring hands over, and the version alias resolves to the same model
    same = mlflow.pyfunc.load_model(f"models:/router/{version.version}").predict({"text": texts[:3]})
    assert same["label"].tolist() == got["label"].tolist()[:3]


def test_the_mlflow_model_has_a_signature_an_example_and_pinned_requirements(world, tmp_path):
    import mlflow
    import torch
    import transformers

    import airflow_provider_llmops

    registry = world["registry"]
    version = registry.get_version("router", world["router"]["version"])
    info = mlflow.models.get_model_info("models:/router@champion")
    assert info.signature.inputs.input_names() == ["text"]
    assert info.signature.outputs.input_names() == ["label", "score"]
    assert [t.name for t in info.signature.outputs.input_types()] == ["string", "double"]
    assert info.flavors["python_function"]["loader_module"] == "airflow_provider_llmops.core.model.mlflow_model"
    assert "data" not in info.flavors["python_function"]  # the folder itself is the data: no copy of the weights
    assert "cloudpickle" not in json.dumps(info.flavors) and "python_model" not in info.flavors["python_function"]
    model_dir = fetch_model(registry, version, tmp_path / "cache")
    requirements = (model_dir / "requirements.txt").read_text().split()
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements
    assert f"transformers=={transformers.__version__}" in requirements
    assert f"airflow-provider-llmops=={airflow_provider_llmops.__version__}" in requirements
    assert any(r.startswith("mlflow==") for r in requirements)
    example = json.loads((model_dir / "input_example.json").read_text())
    assert example["columns"] == ["text"] and isinstance(example["data"][0][0], str)
    assert not list(model_dir.glob("*.pkl")) and not list(model_dir.glob("*.bin"))
    # the profile, split and plots stay beside the model in the version's run
    listed = {a.path for a in registry.client.list_artifacts(version.run_id)}
    assert {MODEL_ARTIFACT, PROFILE_ARTIFACT, SPLIT_ARTIFACT, PLOTS_ARTIFACT, "onnx"} <= listed
    assert version.source.endswith(f"/{MODEL_ARTIFACT}")


def test_the_classifier_version_carries_its_onnx_export_with_parity(world, rows, tmp_path):
    registry = world["registry"]
    version = registry.get_version("router", world["router"]["version"])
    assert version.tags[TAG_ONNX] == ONNX_EXPORTED and world["router"]["onnx"]["status"] == ONNX_EXPORTED
    assert float(version.tags[TAG_ONNX_MAX_ABS_DIFF]) <= 1e-4
    assert float(version.tags[TAG_ONNX_LABEL_AGREEMENT]) == 1.0
    assert int(version.tags[TAG_ONNX_PARITY_ROWS]) == len(_held_out(rows))
    run = registry.client.get_run(version.run_id)
    assert run.data.metrics["onnx_max_abs_diff"] <= 1e-4 and run.data.metrics["onnx_label_agreement"] == 1.0
    assert run.data.tags[TAG_ONNX] == ONNX_EXPORTED
    path = fetch_onnx(registry, version, tmp_path / "cache")
    assert path is not None and path.name == "model.onnx" and path.stat().st_size > 1000
    model_dir = fetch_model(registry, version, tmp_path / "cache")
    texts = _held_out(rows)
    onnx = load_onnx_classifier(model_dir, path, intra_op_threads=1)
    torch = load_classifier(model_dir)
    assert onnx.predict(texts) == torch.predict(texts)
    assert np.abs(onnx.predict_proba(texts, batch_size=1) - torch.predict_proba(texts)).max() <= 1e-4


def test_a_retry_reuses_the_version_and_reports_its_onnx_status(world, rows):
    config = TrainConfig(
        base_model=str(world["root"] / "tiny-bert"), max_length=32, batch_size=16, epochs=1, max_steps=2
    )
    again = train_and_register(
        store=_Store(rows),  # type: ignore[arg-type]
        registry=world["registry"],
        model_name="router",
        snapshots=[SnapshotSel("tickets", "s1")],
        config=config,
        key="key-router",
        run={},
        work_dir=world["root"],
        log=lambda _: None,
    )
    assert (
        again["reused"] and again["version"] == world["router"]["version"] and again["onnx"]["status"] == ONNX_EXPORTED
    )


# --- a version registered before MLmodel existed ------------------------------------------------------------------


def test_a_version_registered_without_mlmodel_still_fetches_and_loads(world, tmp_path):
    registry = world["registry"]
    current = fetch_model(registry, registry.get_version("router", world["router"]["version"]), tmp_path / "a")
    old = tmp_path / "old" / MODEL_ARTIFACT
    old.mkdir(parents=True)
    for path in current.iterdir():  # the files a version had before: no MLmodel, no environment files
        if path.name not in mlflow_model.MLFLOW_FILES:
            (old / path.name).write_bytes(path.read_bytes())
    experiment = registry.experiment_id(registry.experiment_name)
    run_id = registry.client.create_run(experiment).info.run_id
    registry.client.log_artifacts(run_id, str(old), MODEL_ARTIFACT)
    source = f"{registry.client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
    legacy = registry.register("legacy", source, run_id, {})

    fetched = fetch_model(registry, legacy, tmp_path / "b")
    assert not is_mlflow_model(fetched) and (fetched / "model.safetensors").is_file()
    assert fetch_onnx(registry, legacy, tmp_path / "b") is None  # no ONNX tag: nothing to fetch
    texts = ["my card was charged twice", "the app crashes on start"]
    assert load_classifier(fetched).predict(texts) == load_classifier(current).predict(texts)
    # a version registered from a bare folder (no run) still fetches through its source
    bare = registry.client.create_model_version("legacy", source=str(old), run_id=None)
    assert (
        fetch_model(registry, registry.get_version("legacy", bare.version), tmp_path / "c") / MLMODEL_FILE
    ).exists() is False


# --- causal LM ----------------------------------------------------------------------------------------------------


def test_a_causal_lm_version_is_a_pyfunc_that_generates_bounded_text(world, tmp_path):
    import mlflow
    import pandas as pd

    registry = world["registry"]
    version = registry.get_version("writer", world["writer"]["version"])
    assert version.tags[TAG_ONNX] == ONNX_SKIPPED and "sequence classifiers only" in version.tags[TAG_ONNX_REASON]
    info = mlflow.models.get_model_info("models:/writer@champion")
    assert info.signature.outputs.input_names() == ["generated_text"]
    assert {p.name: p.default for p in info.signature.params.params} == {"max_new_tokens": 64, "do_sample": False}

    prompts = ["my order has not arrived", "reset my password please"]
    pyfunc = mlflow.pyfunc.load_model("models:/writer@champion")
    got = pyfunc.predict(pd.DataFrame({"text": prompts}), params={"max_new_tokens": 4})
    generator = load_generator(fetch_model(registry, version, tmp_path / "cache"))
    assert got["generated_text"].tolist() == generator.generate(prompts, max_new_tokens=4)  # greedy: deterministic
    tokens = generator.generate_tokens(prompts, max_new_tokens=4)
    assert [len(t) for t in tokens] == [4, 4]  # no end-of-sequence in this vocabulary: exactly the bound
    assert generator.tokenizer.batch_decode(tokens, skip_special_tokens=True) == got["generated_text"].tolist()


def test_generation_is_bounded_and_refuses_unbounded_requests(world, tmp_path):
    registry = world["registry"]
    model_dir = fetch_model(registry, registry.get_version("writer", world["writer"]["version"]), tmp_path / "c")
    generator = load_generator(model_dir, max_new_tokens=3)
    assert generator.max_new_tokens == 3 and generator.max_length == 32  # prompts cut at the trained length
    long_prompt = "word " * 500  # far beyond the 128-token context: cut from the left, still answers
    outputs = generator.generate([long_prompt, "hello"], max_new_tokens=6)
    assert len(outputs) == 2 and all(isinstance(o, str) for o in outputs)
    assert [len(t) for t in generator.generate_tokens([long_prompt, "hello"], max_new_tokens=6)] == [6, 6]
    assert [len(t) for t in generator.generate_tokens(["hello"])] == [3]  # the generator's default bound
    streamed = list(generator.stream("hello", max_new_tokens=6))
    assert 1 <= len(streamed) <= 6  # pieces as they come, at most one per new token
    assert "".join(streamed).strip() == generator.generate(["hello"], max_new_tokens=6)[0].strip()
    for bad in (0, -1, MAX_NEW_TOKENS_LIMIT + 1, True, 2.5, "8"):
        with pytest.raises(ConfigurationError, match="max_new_tokens"):
            generator.generate(["hi"], max_new_tokens=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_new_tokens"):
        load_generator(model_dir, max_new_tokens=MAX_NEW_TOKENS_LIMIT * 10)


# --- the pieces ---------------------------------------------------------------------------------------------------


def test_pyfunc_input_forms_and_bad_inputs():
    import pandas as pd

    texts = mlflow_model._texts
    assert texts(pd.DataFrame({"text": ["a", "b"]})) == ["a", "b"]
    assert texts(pd.DataFrame({"body": ["a"]})) == ["a"]  # a single column, whatever its name
    assert texts(pd.Series(["a"])) == ["a"] and texts("a") == ["a"] and texts({"text": "a"}) == ["a"]
    assert texts({"text": ["a", "b"]}) == ["a", "b"] and texts(["a"]) == ["a"]
    assert texts(pd.DataFrame({"text": [["a", "b"]]})) == ["a", "b"]  # a dict of lists after schema enforcement
    with pytest.raises(ConfigurationError, match="'text' column"):
        texts(pd.DataFrame({"a": ["x"], "b": ["y"]}))
    with pytest.raises(ConfigurationError, match="must be a string"):
        texts(pd.DataFrame({"text": ["ok", None, 3]}))
    with pytest.raises(ConfigurationError, match="no MLflow signature"):
        mlflow_model.signature("seq2seq")


def test_write_mlflow_model_refuses_a_folder_that_already_is_one(world, tmp_path):
    registry = world["registry"]
    model_dir = fetch_model(registry, registry.get_version("router", world["router"]["version"]), tmp_path / "c")
    with pytest.raises(ConfigurationError, match="already"):
        mlflow_model.write_mlflow_model(model_dir)
