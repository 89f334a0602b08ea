"""core/model/train_job.py without Airflow: snapshot references and the train key, rows to a chunk, the held-out
row selector of the drift profile, and `train_and_register` on a real SQLite MLflow registry: the artifacts and
profile of a version, and what a failure leaves behind (nothing half-made: no version, the run FAILED).

Mocked: `core.model.training.train` (a real fine-tuning takes ~45 s) and `core.model.modeling.load_classifier` are
replaced by `tests.unit.fake_model` (a dummy model folder with the packaged tokenizer); the slow tier trains for
real in tests/integration/test_model_lifecycle.py. The operator around this job is tested in
tests/unit/operators/test_model_operators.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_llmops.core.model.contract import (
    CHALLENGER,
    PROFILE_ARTIFACT,
    SPLIT_ARTIFACT,
    SPLIT_FILE,
    TAG_PROFILE,
    TAG_TASK,
    TAG_TRAIN_KEY,
)
from airflow_provider_llmops.core.model.train_job import (
    SnapshotSel,
    held_out_rows,
    load_rows,
    rows_to_chunk,
    train_and_register,
    train_key,
)
from airflow_provider_llmops.core.model.training import TrainConfig, split_of, split_rows
from airflow_provider_llmops.errors import ConfigurationError
from tests.unit.fake_model import ModelEnv, add_snapshot, fake_models, sample_rows

MODEL = "router"
RUN = {"dag_id": "llmops_retrain", "run_id": "manual__1", "task_id": "fine_tune", "try_number": 1}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_home: Path) -> ModelEnv:
    return ModelEnv(tmp_path, monkeypatch, test_home)


def _run(env: ModelEnv, tmp_path: Path, snapshots: list[SnapshotSel], key: str = "k1", **kwargs: Any) -> dict:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return train_and_register(
        store=env.store,
        registry=env.registry,
        model_name=MODEL,
        snapshots=snapshots,
        config=kwargs.pop("config", TrainConfig(max_length=40)),
        key=key,
        run=RUN,
        work_dir=work,
        embedding_sample=0,
        log=lambda *_: None,
        **kwargs,
    )


def _train_key_runs(env: ModelEnv, key: str) -> list[Any]:
    return env.registry.find_runs(env.experiment_id, {TAG_TRAIN_KEY: key})


# ---- references, keys, rows ------------------------------------------------------------------------------------


def test_snapshot_references_parse_and_print():
    sel = SnapshotSel.parse("tickets/0123456789abcdef")
    assert (sel.dataset, sel.snapshot_id, str(sel)) == ("tickets", "0123456789abcdef", "tickets/0123456789abcdef")
    assert SnapshotSel.parse("a/b/c") == SnapshotSel("a", "b/c")  # partitioned at the first slash
    for bad in ("tickets/", "/0123", "tickets"):
        with pytest.raises(ConfigurationError, match=f"snapshot reference {bad!r} must be 'dataset/snapshot_id'"):
            SnapshotSel.parse(bad)


def test_the_train_key_is_the_task_of_a_dag_run_else_the_inputs():
    key = train_key("dag", "run1", "fine_tune", fallback="inputs")
    assert len(key) == 32 and int(key, 16) >= 0
    assert key == train_key("dag", "run1", "fine_tune", fallback="other inputs")  # a retry: same key
    assert key != train_key("dag", "run2", "fine_tune", fallback="inputs")
    assert key != train_key("dag", "run1", "fine_tune_2", fallback="inputs")
    assert train_key(None, None, None, "a") == train_key("dag", None, "t", "a") != train_key(None, None, None, "b")


def test_rows_become_one_chunk_with_the_union_of_columns(env: ModelEnv):
    assert rows_to_chunk([{"id": "1", "text": "a"}, {"id": "2", "label": "x"}]) == {
        "id": ["1", "2"],
        "text": ["a", None],
        "label": [None, "x"],
    }
    assert rows_to_chunk([]) == {}
    rows = [{"id": f"r{i}", "text": f"text number {i}", "label": "a"} for i in range(6)]
    one, two = add_snapshot(env.store, "d1", rows[:4]), add_snapshot(env.store, "d2", rows[4:])
    loaded = load_rows(env.store, [SnapshotSel("d2", two), SnapshotSel("d1", one)])
    assert [r["id"] for r in loaded] == ["r4", "r5", "r0", "r1", "r2", "r3"]


def test_the_profile_predicts_exactly_the_held_out_rows():
    ids = [f"row-{i}" for i in range(200)]
    select = held_out_rows(seed=7, fraction=0.25)
    chosen = select({"id": ids, "text": ["t"] * 200})
    assert chosen == [split_of(i, 7, 0.25) == "validation" for i in ids] and 20 < sum(chosen) < 80
    assert select({"id": [None, ids[chosen.index(True)]]}) == [False, True]  # a row without id is in no split
    assert select({"text": ["a", "b"]}) == [False, False]
    assert held_out_rows(7, 0.25, id_column="key")({"key": ids}) == chosen


# ---- train_and_register -----------------------------------------------------------------------------------------


def test_a_version_carries_its_split_and_a_profile_of_its_held_out_predictions(
    env: ModelEnv, tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    from airflow_provider_llmops.core.drift.profile import ReferenceProfile
    from airflow_provider_llmops.core.model.contract import fetch_artifact_dir

    trainer = fake_models(monkeypatch, "oracle")
    rows = sample_rows(sample_dir, count=150)
    snapshot = add_snapshot(env.store, "tickets", rows)
    result = _run(env, tmp_path, [SnapshotSel("tickets", snapshot)], config=TrainConfig(max_length=40, seed=5))
    assert (result["version"], result["reused"], trainer.calls) == ("1", False, 1)
    assert json.loads(json.dumps(result)) == result  # the operator's XCom
    held_out = split_rows(rows, 5, 0.2)[1]
    assert result["split"]["validation_rows"] == len(held_out) and result["training"]["val_accuracy"] == 1.0
    assert env.registry.aliases(MODEL) == {CHALLENGER: "1"}
    assert not (env.home / "audit").exists()  # no audit trail given: nothing written

    run_id = result["run_id"]
    split = json.loads(
        Path(fetch_artifact_dir(env.registry, run_id, SPLIT_ARTIFACT, tmp_path / "c")).joinpath(SPLIT_FILE).read_text()
    )
    assert split["snapshots"] == [f"tickets/{snapshot}"] and split["seed"] == 5
    profile = ReferenceProfile.load(fetch_artifact_dir(env.registry, run_id, PROFILE_ARTIFACT, tmp_path / "c"))
    assert profile.profile_id == result["profile_id"] == env.registry.get_version(MODEL, "1").tags[TAG_PROFILE]
    assert profile.row_count == 150 and profile.snapshot_ids == [snapshot] and profile.embedding is None
    assert profile.predicted_labels is True and profile.predictor["max_length"] == 40
    assert profile.predictor["predicted_rows"] == len(held_out)
    assert profile.predictor["rows"] == "held-out split: sha256('5:' + id) < 0.2"
    predicted = profile.features["predicted_label"].binning
    assert set(predicted.categories) >= {r["label"] for r in held_out}


def test_no_snapshots_is_a_configuration_error(env: ModelEnv, tmp_path: Path):
    with pytest.raises(ConfigurationError, match="no snapshots to train on"):
        _run(env, tmp_path, [])
    assert env.registry.aliases(MODEL) == {}


def test_a_failed_training_closes_its_run_and_a_stale_one_and_registers_nothing(
    env: ModelEnv, tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    from airflow_provider_llmops.core.model import train_job

    snapshot = add_snapshot(env.store, "tickets", sample_rows(sample_dir, count=60))
    stale = env.registry.client.create_run(env.experiment_id, tags={TAG_TRAIN_KEY: "k1"})  # an earlier try died

    def out_of_memory(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError("CUDA out of memory")

    monkeypatch.setattr(train_job, "train", out_of_memory)
    with pytest.raises(MemoryError):
        _run(env, tmp_path, [SnapshotSel("tickets", snapshot)])
    runs = {r.info.run_id: r.info.status for r in _train_key_runs(env, "k1")}
    assert len(runs) == 2 and set(runs.values()) == {"FAILED"} and runs[stale.info.run_id] == "FAILED"
    assert env.registry.find_versions(MODEL, {}) == [] and env.registry.aliases(MODEL) == {}
    assert list((tmp_path / "work").iterdir()) == []  # the scratch folder is removed


def test_a_failure_after_registration_deletes_the_version(
    env: ModelEnv, tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    fake_models(monkeypatch)
    snapshot = add_snapshot(env.store, "tickets", sample_rows(sample_dir, count=60))

    def registry_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("registry unavailable")

    monkeypatch.setattr(env.registry.client, "set_registered_model_alias", registry_down)
    with pytest.raises(ConnectionError):
        _run(env, tmp_path, [SnapshotSel("tickets", snapshot)], config=TrainConfig(task="causal-lm"))
    (run,) = _train_key_runs(env, "k1")
    assert run.info.status == "FAILED" and run.data.tags[TAG_TASK] == "causal-lm"
    assert env.registry.find_versions(MODEL, {}) == [] and env.registry.aliases(MODEL) == {}
