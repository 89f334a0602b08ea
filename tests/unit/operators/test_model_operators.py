"""FineTuneOperator, EvaluateModelOperator, PromoteModelOperator and RollbackModelOperator, fast: each operator's
`execute` with a stand-in task context, on a real SQLite MLflow registry, a real store and the real audit trail,
configured through `[llmops]` settings in the environment as a worker reads them.

Mocked: fine-tuning (`core.model.training.train`, ~45 s for a real run) and loading a classifier
(`core.model.modeling.load_classifier`, seconds plus torch) are replaced by `tests.unit.fake_model`, which writes a
tiny dummy model folder and predicts from it; the slow tier trains and scores for real in
tests/integration/test_model_lifecycle.py. Checked: the XCom summaries, the registry's aliases and tags after the
call, the audit records, the links pushed, the lineage (`OperatorLineage` inputs/outputs and the custom facets
against their schemas) and the errors bad Params raise, before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.serde import Serde

from airflow_provider_llmops.core.governance.promote_job import RollbackRefusedError
from airflow_provider_llmops.core.model.contract import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    TAG_AUDIT_HEAD,
    TAG_DAG_ID,
    TAG_DAG_RUN,
    TAG_EVAL_KEY,
    TAG_EVAL_PREFIX,
    TAG_EVALUATION,
    TAG_EVALUATION_SHA256,
    TAG_GATE,
    TAG_PROFILE,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
    TAG_PROMOTION_ID,
    TAG_ROLLED_BACK,
    TAG_ROLLED_BACK_BY,
    TAG_SEED,
    TAG_SNAPSHOTS,
    TAG_STOPPED_BY,
    TAG_TASK,
    TAG_TRAIN_KEY,
    TAG_TRAIN_METRIC_PREFIX,
)
from airflow_provider_llmops.core.model.evaluate_job import EvaluationIntegrityError
from airflow_provider_llmops.core.model.train_job import train_key
from airflow_provider_llmops.core.model.training import split_rows
from airflow_provider_llmops.errors import ConfigurationError, GateRejectedError
from airflow_provider_llmops.operators.evaluate import EvaluateModelOperator
from airflow_provider_llmops.operators.promote import PromoteModelOperator
from airflow_provider_llmops.operators.rollback import RollbackModelOperator
from airflow_provider_llmops.operators.train import FineTuneOperator
from tests.openlineage_spec import SCHEMAS, _validator
from tests.unit.fake_model import (
    ModelEnv,
    add_snapshot,
    context,
    dummy_versions,
    fake_models,
    register_version,
    sample_rows,
    stored_evaluation,
)

DATASET = "tickets"
MODEL = "router"
NO_FAIRNESS = {"max_fairness_gap": None}  # the author's gate: 40 held-out rows make group gaps noise
REASON = "canary error rate above 2%"
# metrics of hand-written stored evaluations (for promote and rollback, which judge a stored report)
GOOD = {"accuracy": 0.9, "macro_f1": 0.88, "ece": 0.03, "fairness_gap": 0.05, "latency_p95_ms": 10.0}
BETTER = {**GOOD, "accuracy": 0.93, "macro_f1": 0.92}
BAD = {**GOOD, "accuracy": 0.4, "macro_f1": 0.3}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_home: Path) -> ModelEnv:
    return ModelEnv(tmp_path, monkeypatch, test_home)


@pytest.fixture
def snapshot(env: ModelEnv, sample_dir: Path) -> str:
    return add_snapshot(env.store, DATASET, sample_rows(sample_dir, count=200))


def _facet_ok(facet: Any, name: str) -> dict[str, Any]:
    data = json.loads(Serde.to_json(facet))
    _validator(SCHEMAS[f"{name}.json"]["$id"], f"/$defs/{name}").validate(data)
    return data


def _names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def _train(run_id: str, **kwargs: Any) -> dict[str, Any]:
    kwargs = {"model_name": MODEL, "dataset": DATASET, "embedding_sample": 0, **kwargs}
    op = FineTuneOperator(task_id="fine_tune", **kwargs)
    return op.execute(context(run_id, "fine_tune"))


def _evaluate(**kwargs: Any) -> dict[str, Any]:
    op = EvaluateModelOperator(task_id="evaluate", model_name=MODEL, latency_sample=5, min_group_size=5, **kwargs)
    return op.execute(context(task_id="evaluate"))


def _promote(evaluation: Any, run_id: str = "manual__1", **kwargs: Any) -> dict[str, Any]:
    op = PromoteModelOperator(task_id="promote", evaluation=evaluation, gate=NO_FAIRNESS, **kwargs)
    return op.execute(context(run_id, "promote"))


# ---- FineTuneOperator ----------------------------------------------------------------------------------------


def test_fine_tune_registers_a_challenger_with_its_tags_audit_links_and_lineage(
    env: ModelEnv, snapshot: str, monkeypatch: pytest.MonkeyPatch
):
    trainer = fake_models(monkeypatch, "oracle")
    op = FineTuneOperator(
        task_id="fine_tune", model_name=MODEL, dataset=DATASET, training={"max_length": 32}, embedding_sample=0
    )
    ctx = context("manual__1", "fine_tune")
    result = op.execute(ctx)

    # XCom: a JSON-safe summary that names the version and how training went
    assert json.loads(json.dumps(result)) == result
    assert (result["model_name"], result["version"], result["reused"], result["alias"]) == (
        MODEL,
        "1",
        False,
        CHALLENGER,
    )
    assert result["snapshots"] == [f"{DATASET}/{snapshot}"] and result["task"] == "sequence-classification"
    assert result["training"]["steps"] == 2 and result["training"]["stopped_by"] == "completed"
    assert result["split"]["train_rows"] + result["split"]["validation_rows"] == 200
    assert result["tracking_uri"] == env.uri and trainer.calls == 1
    experiment = env.experiment_id
    assert result["run_url"] == f"http://mlflow.test/#/experiments/{experiment}/runs/{result['run_id']}"
    assert result["version_url"] == f"http://mlflow.test/#/models/{MODEL}/versions/1"
    assert ctx["pushed"] == {"mlflow_run_url": result["run_url"], "mlflow_version_url": result["version_url"]}

    # registry: challenger on the new version, which carries the training contract's tags
    assert env.registry.aliases(MODEL) == {CHALLENGER: "1"}
    tags = env.registry.get_version(MODEL, "1").tags
    assert tags[TAG_TRAIN_KEY] == train_key("llmops_retrain", "manual__1", "fine_tune", fallback="unused")
    assert tags[TAG_SNAPSHOTS] == f"{DATASET}/{snapshot}" and tags[TAG_TASK] == "sequence-classification"
    assert (tags[TAG_DAG_ID], tags[TAG_DAG_RUN], tags[TAG_SEED]) == ("llmops_retrain", "manual__1", "42")
    assert tags[TAG_PROFILE] == result["profile_id"] and tags[f"{TAG_TRAIN_METRIC_PREFIX}steps"] == "2"
    run = env.registry.client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["max_length"] == "32" and run.data.params["rows"] == "200"
    assert run.data.tags[TAG_STOPPED_BY] == "completed" and run.data.metrics["train_loss"] == 0.5
    artifacts = {a.path for a in env.registry.client.list_artifacts(result["run_id"])}
    assert artifacts == {"model", "profile", "split", "plots"}

    # audit: one model.registered record, anchored on the registered model
    (record,) = env.events("model.registered")
    assert record["data"]["version"] == "1" and record["data"]["snapshots"] == [f"{DATASET}/{snapshot}"]
    assert record["actor"] == "airflow:llmops_retrain/manual__1/fine_tune"
    model_tags = env.registry.client.get_registered_model(MODEL).tags
    assert model_tags[TAG_AUDIT_HEAD] == f"{record['seq']}:{record['hash']}"

    # lineage: the snapshot in, the model version out, the training facet
    lineage = op.get_openlineage_facets_on_complete(None)
    assert _names(lineage.inputs) == [("file", env.store.ref(DATASET, snapshot).uri.removeprefix("file://"))]
    assert _names(lineage.outputs) == [("mlflow://localhost", f"models/{MODEL}/versions/1")]
    facet = _facet_ok(lineage.run_facets["llmopsTraining"], "LlmopsTrainingRunFacet")
    assert (facet["version"], facet["reused"], facet["steps"], facet["profileId"]) == ("1", False, 2, tags[TAG_PROFILE])


def test_a_retry_reuses_its_version_and_another_run_registers_the_next(
    env: ModelEnv, snapshot: str, monkeypatch: pytest.MonkeyPatch
):
    trainer = fake_models(monkeypatch)
    first = _train("manual__1")
    retry = _train("manual__1")
    assert retry["reused"] is True and retry["version"] == first["version"] == "1" and trainer.calls == 1
    assert retry["run_id"] == first["run_id"] and len(env.events("model.registered")) == 1
    second = _train("manual__2")
    assert (second["version"], second["reused"], trainer.calls) == ("2", False, 2)
    assert env.registry.aliases(MODEL) == {CHALLENGER: "2"}
    env.registry.client.set_registered_model_alias(MODEL, CHAMPION, "2")
    again = _train("manual__2")  # a retry after its version became champion leaves challenger where it is
    assert again["reused"] is True and env.registry.aliases(MODEL) == {CHALLENGER: "2", CHAMPION: "2"}


def test_rendered_params_are_coerced(env: ModelEnv, sample_dir: Path):
    """Params arrive rendered as text: JSON for `training`, numbers and "None" for the budgets, a comma or newline
    separated list of snapshot ids (bare ids are of `dataset`). Checked on what `execute` hands to the job (the
    config and the snapshots), without training: the values' way into MLflow is the first test's."""
    from airflow_provider_llmops.core.model.train_job import SnapshotSel

    rows = sample_rows(sample_dir, count=40)
    one, two = add_snapshot(env.store, DATASET, rows[:20]), add_snapshot(env.store, "other", rows[20:])
    op = FineTuneOperator(
        task_id="fine_tune",
        dataset=DATASET,
        snapshots=f"{one},\n other/{two}",
        training='{"seed": 7, "max_length": 24}',
        max_steps="1",
        max_train_minutes="None",
    )
    config = op._config()
    assert (config.seed, config.max_length, config.max_steps, config.max_train_minutes) == (7, 24, 1, None)
    assert op._snapshots(env.store) == [SnapshotSel(DATASET, one), SnapshotSel("other", two)]
    op.snapshots = ""  # an empty Param: every validated snapshot of `dataset`
    assert op._snapshots(env.store) == [SnapshotSel(DATASET, one)]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"training": '{"epochs": '}, ConfigurationError, "training is not a JSON object"),
        ({"training": {"epochz": 1}}, ConfigurationError, r"unknown training settings \['epochz'\]"),
        ({"max_steps": "0"}, ConfigurationError, "max_steps must be positive, got 0"),
        ({"max_train_minutes": "-1"}, ConfigurationError, "max_train_minutes must be positive"),
        ({"model_task": "translation"}, ConfigurationError, "unknown task 'translation'"),
        ({"snapshots": "tickets/"}, ConfigurationError, "snapshot reference 'tickets/' must be 'dataset/snapshot_id'"),
        ({"snapshots": "0123456789abcdef"}, ConfigurationError, "snapshot tickets/0123456789abcdef does not exist"),
        ({"dataset": "empty"}, ConfigurationError, "no validated snapshot of dataset 'empty' to train on"),
        ({"dataset": "failed"}, ConfigurationError, "no validated snapshot of dataset 'failed' to train on"),
    ],
    ids=[
        "bad-training-json",
        "unknown-training-field",
        "zero-max-steps",
        "negative-minutes",
        "unknown-task",
        "half-a-snapshot-reference",
        "missing-snapshot",
        "no-snapshot",
        "no-validated-snapshot",
    ],
)
def test_bad_params_fail_before_anything_is_registered(
    env: ModelEnv,
    snapshot: str,
    sample_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
):
    trainer = fake_models(monkeypatch)
    add_snapshot(env.store, "failed", sample_rows(sample_dir, count=20), passed=False)
    with pytest.raises(error, match=message):
        _train("manual__1", **kwargs)
    assert trainer.calls == 0 and env.registry.aliases(MODEL) == {} and env.events("model.registered") == []
    assert env.registry.client.search_registered_models(f"name = '{MODEL}'") == []


def test_a_budget_that_is_not_a_number_is_a_configuration_error(env: ModelEnv, snapshot: str):
    with pytest.raises(ConfigurationError, match="max_steps must be a whole number of optimizer steps"):
        _train("manual__1", max_steps="twelve")
    assert env.registry.aliases(MODEL) == {}


# ---- EvaluateModelOperator -----------------------------------------------------------------------------------


def test_evaluate_scores_the_first_challenger_on_its_frozen_held_out_split(
    env: ModelEnv, snapshot: str, monkeypatch: pytest.MonkeyPatch
):
    fake_models(monkeypatch)
    register_version(env, MODEL, [f"{DATASET}/{snapshot}"], "oracle")
    op = EvaluateModelOperator(task_id="evaluate", model_name=MODEL, golden_path="", latency_sample=5)
    ctx = context(task_id="evaluate")
    summary = op.execute(ctx)

    held_out = len(split_rows(env.store.read_table(DATASET, snapshot).to_pylist(), 42, 0.2)[1])
    assert (summary["challenger_version"], summary["champion_version"], summary["champion"]) == ("1", None, None)
    assert summary["eval_set"]["rows"] == held_out and summary["eval_set"]["parts"] == {
        f"heldout:{DATASET}/{snapshot[:12]}": held_out
    }
    metrics = summary["challenger"]
    assert (metrics["accuracy"], metrics["macro_f1"], metrics["latency_p95_ms"]) == (1.0, 1.0, 2.0)
    assert metrics["fairness_measured"] is False and metrics["fairness_gap"] is None  # groups < 30 rows
    assert summary["key"] == f"v1-vs-none-{summary['eval_set']['id'][:12]}"
    report = Path(summary["report_uri"].removeprefix("file://"))
    assert summary["report_sha256"] == hashlib.sha256(report.read_bytes()).hexdigest()
    assert json.loads(report.read_text())["summary"]["challenger"] == metrics
    assert report.with_name("evaluation.html").is_file() and report.with_name("eval_set.parquet").is_file()

    tags = env.registry.get_version(MODEL, "1").tags
    assert tags[TAG_EVALUATION] == summary["report_uri"] and tags[TAG_EVALUATION_SHA256] == summary["report_sha256"]
    assert tags[f"{TAG_EVAL_PREFIX}macro_f1"] == "1.0"
    eval_run = env.registry.client.get_run(summary["mlflow_run_id"])
    assert eval_run.info.status == "FINISHED" and eval_run.data.tags[TAG_EVAL_KEY] == summary["key"]
    assert eval_run.data.metrics["challenger.accuracy"] == 1.0
    assert ctx["pushed"]["mlflow_version_url"] == f"http://mlflow.test/#/models/{MODEL}/versions/1"
    assert ctx["pushed"]["mlflow_run_url"].endswith(f"/runs/{summary['mlflow_run_id']}")
    assert env.registry.aliases(MODEL) == {CHALLENGER: "1"}  # evaluation decides nothing

    lineage = op.get_openlineage_facets_on_complete(None)
    assert _names(lineage.inputs) == [("mlflow://localhost", f"models/{MODEL}/versions/1")]
    assert _names(lineage.outputs) == [("file", str(report))]
    facet = _facet_ok(lineage.run_facets["llmopsEvaluation"], "LlmopsEvaluationRunFacet")
    assert facet["evalRows"] == held_out and "championVersion" not in facet

    again = _evaluate(golden_path="")  # a retry finds the committed evaluation
    assert again == summary


def test_evaluate_against_the_champion_with_a_golden_set(
    env: ModelEnv, snapshot: str, tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    fake_models(monkeypatch)
    register_version(env, MODEL, [f"{DATASET}/{snapshot}"], "noisy")
    env.registry.client.set_registered_model_alias(MODEL, CHAMPION, "1")
    register_version(env, MODEL, [f"{DATASET}/{snapshot}"], "oracle")
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join((sample_dir / "golden.jsonl").read_text().splitlines(keepends=True)[:12]))
    op = EvaluateModelOperator(task_id="evaluate", model_name=MODEL, golden_path=str(golden), min_group_size=5)
    summary = op.execute(context(task_id="evaluate"))
    assert (summary["challenger_version"], summary["champion_version"]) == ("2", "1")
    assert summary["eval_set"]["parts"]["golden"] == 12 and summary["key"].startswith("v2-vs-v1-")
    assert summary["champion"]["accuracy"] < summary["challenger"]["accuracy"]
    assert summary["challenger"]["golden.accuracy"] <= 1.0 and "golden.macro_f1" in summary["champion"]
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [d.name for d in lineage.inputs] == [f"models/{MODEL}/versions/2", f"models/{MODEL}/versions/1"]
    facet = _facet_ok(lineage.run_facets["llmopsEvaluation"], "LlmopsEvaluationRunFacet")
    assert facet["championVersion"] == "1" and facet["champion"]["accuracy"] == summary["champion"]["accuracy"]


def test_evaluate_errors_name_what_is_missing(env: ModelEnv, snapshot: str, monkeypatch: pytest.MonkeyPatch):
    fake_models(monkeypatch)
    with pytest.raises(ConfigurationError, match=f"model '{MODEL}' has no challenger to evaluate"):
        _evaluate(challenger_version="None")
    register_version(env, MODEL, [f"{DATASET}/{snapshot}"])
    with pytest.raises(ConfigurationError, match=r"golden set /nowhere/golden.jsonl does not exist"):
        _evaluate(golden_path="/nowhere/golden.jsonl")
    assert env.registry.client.search_runs([env.experiment_id], f"tags.`{TAG_EVAL_KEY}` != ''") == []


# ---- PromoteModelOperator -------------------------------------------------------------------------------------


def test_promote_the_first_model_swaps_audits_emits_and_records_lineage(
    env: ModelEnv, snapshot: str, monkeypatch: pytest.MonkeyPatch
):
    from airflow_provider_llmops.assets import champion_alias

    fake_models(monkeypatch, "oracle")
    _train("manual__1")
    evaluation = _evaluate()
    op = PromoteModelOperator(task_id="promote", evaluation=json.dumps(evaluation))  # as rendered from XCom
    ctx = context("manual__1", "promote", outlets=[champion_alias()], triggered_by="alice")
    result = op.execute(ctx)

    assert (result["promoted"], result["champion"], result["first_model"], result["reasons"]) == (True, "1", True, [])
    assert result["aliases"] == {CHAMPION: "1"} == env.registry.aliases(MODEL)  # challenger cleared
    assert result["champion_event"] is True and result["announce"] is True
    ((asset, extra),) = ctx["outlet_events"][champion_alias()].added
    assert asset.name == f"llmops_champion_{MODEL}" and asset.uri == f"mlflow://localhost/models/{MODEL}"
    assert extra == {
        "model": MODEL,
        "version": "1",
        "previous": None,
        "action": "promote",
        "decision_id": result["decision_id"],
    }
    tags = env.registry.get_version(MODEL, "1").tags
    assert tags[TAG_GATE] == "passed" and TAG_PROMOTED_AT in tags
    assert tags[TAG_PROMOTION_ID] == tags[TAG_PROMOTED_BY] == result["decision_id"]
    (record,) = env.events("model.promoted")
    assert record["data"]["version"] == "1" and record["data"]["previous_champion"] is None
    assert record["data"]["evaluation_sha256"] == evaluation["report_sha256"] and record["seq"] == result["audit_seq"]
    assert env.registry.client.get_registered_model(MODEL).tags[TAG_AUDIT_HEAD] == f"{record['seq']}:{record['hash']}"
    assert ctx["pushed"] == {"mlflow_version_url": f"http://mlflow.test/#/models/{MODEL}/versions/1"}

    lineage = op.get_openlineage_facets_on_complete(None)
    assert _names(lineage.inputs) == [("mlflow://localhost", f"models/{MODEL}/versions/1")]
    assert _names(lineage.outputs) == [("mlflow://localhost", f"models/{MODEL}/versions/1")]
    facet = _facet_ok(lineage.run_facets["llmopsGate"], "LlmopsGateRunFacet")
    assert (facet["action"], facet["passed"], facet["changed"], facet["version"]) == ("promote", True, True, "1")


def test_a_rejection_is_a_decision_unless_fail_on_reject(env: ModelEnv, tmp_path: Path):
    dummy_versions(env, MODEL, 2, tmp_path)
    env.registry.client.set_registered_model_alias(MODEL, CHALLENGER, "1")
    assert _promote(stored_evaluation(env, MODEL, "1", None, GOOD))["promoted"] is True
    env.registry.client.set_registered_model_alias(MODEL, CHALLENGER, "2")
    evaluation = stored_evaluation(env, MODEL, "2", "1", BAD, GOOD)
    op = PromoteModelOperator(task_id="promote", evaluation=evaluation, gate=NO_FAIRNESS)
    result = op.execute(context("manual__2", "promote"))
    assert (result["promoted"], result["champion"], result["champion_event"]) == (False, "1", None)
    assert any(r.startswith("macro_f1") for r in result["reasons"]), result["reasons"]
    assert env.registry.aliases(MODEL) == {CHAMPION: "1", CHALLENGER: "2"}
    assert env.registry.get_version(MODEL, "2").tags[TAG_GATE] == "rejected"
    (record,) = env.events("model.rejected")
    assert record["data"]["version"] == "2" and record["data"]["reasons"] == result["reasons"]
    lineage = op.get_openlineage_facets_on_complete(None)
    assert (
        lineage.outputs == [] and _facet_ok(lineage.run_facets["llmopsGate"], "LlmopsGateRunFacet")["changed"] is False
    )
    with pytest.raises(GateRejectedError, match=f"gate rejected {MODEL} v2: macro_f1"):
        _promote(evaluation, "manual__2", fail_on_reject=True)
    assert env.registry.aliases(MODEL) == {CHAMPION: "1", CHALLENGER: "2"} and len(env.events("model.rejected")) == 1


REFERENCE = {"model_name": MODEL, "key": "v1-vs-none-abc", "report_uri": "file:///x", "report_sha256": "0" * 64}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"evaluation": "{oops"}, ConfigurationError, "evaluation is not a JSON object"),
        ({"evaluation": {"model_name": MODEL}}, ConfigurationError, "evaluation must be the result of EvaluateModel"),
        ({"evaluation": "None"}, ConfigurationError, "evaluation is not a JSON object"),
        ({"gate": {"florrs": {}}}, ConfigurationError, "invalid gate: .*florrs"),
        ({"gate_override": '{"floors": '}, ConfigurationError, "gate_override is not a JSON object"),
        ({"gate_override": {"primary": 3}}, ConfigurationError, "invalid gate"),
    ],
    ids=["bad-json", "not-an-evaluation", "none", "unknown-gate-field", "bad-override-json", "bad-override-type"],
)
def test_bad_promote_params_fail_before_the_registry_is_opened(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], error: type[Exception], message: str
):
    from airflow_provider_llmops.operators import _common

    monkeypatch.setattr(_common, "open_registry", lambda *a, **k: pytest.fail("the registry must not be opened"))
    op = PromoteModelOperator(task_id="promote", **{"evaluation": REFERENCE, **kwargs})
    with pytest.raises(error, match=message):
        op.execute(context())


def test_a_forged_evaluation_hash_promotes_nothing(env: ModelEnv, tmp_path: Path):
    dummy_versions(env, MODEL, 1, tmp_path)
    env.registry.client.set_registered_model_alias(MODEL, CHALLENGER, "1")
    evaluation = stored_evaluation(env, MODEL, "1", None, GOOD)
    with pytest.raises(EvaluationIntegrityError, match="does not match its hash"):
        _promote({**evaluation, "report_sha256": "f" * 64})
    assert env.registry.aliases(MODEL) == {CHALLENGER: "1"} and env.events("model.promoted") == []


# ---- RollbackModelOperator ------------------------------------------------------------------------------------


@pytest.fixture
def two_champions(env: ModelEnv, tmp_path: Path) -> ModelEnv:
    """Three dummy versions (no training, no run): v1 promoted, then v2 promoted over it, both by the operator
    on stored evaluations; v3 never champion."""
    dummy_versions(env, MODEL, 3, tmp_path)
    env.registry.client.set_registered_model_alias(MODEL, CHALLENGER, "1")
    assert _promote(stored_evaluation(env, MODEL, "1", None, GOOD), "manual__1")["promoted"] is True
    env.registry.client.set_registered_model_alias(MODEL, CHALLENGER, "2")
    assert _promote(stored_evaluation(env, MODEL, "2", "1", BETTER, GOOD), "manual__2")["promoted"] is True
    env.registry.client.set_registered_model_alias(MODEL, CHALLENGER, "3")
    assert env.registry.aliases(MODEL) == {CHAMPION: "2", PREVIOUS: "1", CHALLENGER: "3"}
    return env


def test_rollback_restores_the_previous_champion_once(two_champions: ModelEnv):
    from airflow_provider_llmops.assets import champion_alias

    env = two_champions
    op = RollbackModelOperator(task_id="rollback", model_name=MODEL, target_version="None", reason=REASON)
    ctx = context("manual__9", "rollback", "llmops_rollback", outlets=[champion_alias()], triggered_by="bob")
    result = op.execute(ctx)

    assert (result["champion"], result["rolled_back_from"], result["reason"]) == ("1", "2", REASON)
    assert result["evidence"]["kind"] == "was_champion" and result["champion_event"] is True
    assert result["aliases"] == {CHAMPION: "1", CHALLENGER: "3"} == env.registry.aliases(MODEL)  # no previous
    ((_, extra),) = ctx["outlet_events"][champion_alias()].added
    assert extra == {"model": MODEL, "version": "1", "previous": "2", "action": "rollback", "reason": REASON}
    tags = env.registry.get_version(MODEL, "2").tags
    assert TAG_ROLLED_BACK in tags and tags[TAG_ROLLED_BACK_BY] == result["rollback_id"]
    (record,) = env.events("model.rolled_back")
    assert (record["data"]["from"], record["data"]["to"], record["data"]["reason"]) == ("2", "1", REASON)
    assert record["data"]["triggered_by"] == "bob" and record["actor"] == "airflow:llmops_rollback/manual__9/rollback"
    assert env.registry.client.get_registered_model(MODEL).tags[TAG_AUDIT_HEAD] == f"{record['seq']}:{record['hash']}"
    assert ctx["pushed"] == {"mlflow_version_url": f"http://mlflow.test/#/models/{MODEL}/versions/1"}

    lineage = op.get_openlineage_facets_on_complete(None)
    assert lineage.inputs == [] and _names(lineage.outputs) == [("mlflow://localhost", f"models/{MODEL}/versions/1")]
    facet = _facet_ok(lineage.run_facets["llmopsGate"], "LlmopsGateRunFacet")
    assert (facet["action"], facet["version"], facet["championBefore"]) == ("rollback", "1", "2")

    with pytest.raises(ConfigurationError, match="has no 'previous-champion' alias to roll back to"):
        RollbackModelOperator(task_id="rollback", model_name=MODEL, reason=REASON).execute(context("manual__10"))
    assert env.registry.aliases(MODEL) == {CHAMPION: "1", CHALLENGER: "3"}


ROLLBACK_REFUSALS = [
    ({"reason": "oops"}, ConfigurationError, "a rollback needs a reason of at least 10 characters"),
    ({"reason": "          "}, ConfigurationError, "a rollback needs a reason of at least 10 characters"),
    ({"gate": {"florrs": {}}}, ConfigurationError, "invalid gate: .*florrs"),
    ({"target_version": "3"}, RollbackRefusedError, r"refusing to make router v3 champion: it was never champion"),
]


def test_bad_rollback_params_change_nothing_and_a_named_former_champion_is_accepted(two_champions: ModelEnv):
    """Each refusal leaves aliases, audit and lineage untouched (one world for all: a refusal changes nothing,
    which is what is checked); then a named former champion (`" 1 "`, as a Param may render it) is accepted."""
    env = two_champions
    for kwargs, error, message in ROLLBACK_REFUSALS:
        op = RollbackModelOperator(task_id="rollback", model_name=MODEL, **{"reason": REASON, **kwargs})
        with pytest.raises(error, match=message):
            op.execute(context("manual__9", "rollback", "llmops_rollback"))
        assert env.registry.aliases(MODEL) == {CHAMPION: "2", PREVIOUS: "1", CHALLENGER: "3"}, kwargs
        assert env.events("model.rolled_back") == [] and op.get_openlineage_facets_on_complete(None).outputs == []
    op = RollbackModelOperator(task_id="rollback", model_name=MODEL, target_version=" 1 ", reason=REASON)
    result = op.execute(context("manual__9", "rollback", "llmops_rollback"))
    assert (result["champion"], result["rolled_back_from"], result["champion_event"]) == ("1", "2", False)
    assert env.registry.aliases(MODEL) == {CHAMPION: "1", CHALLENGER: "3"}


# ---- a version that does not exist -----------------------------------------------------------------------------


def test_a_rollback_to_a_version_that_does_not_exist_is_a_configuration_error(env: ModelEnv, tmp_path: Path):
    dummy_versions(env, MODEL, 2, tmp_path)
    env.registry.client.set_registered_model_alias(MODEL, CHAMPION, "2")
    env.registry.client.set_registered_model_alias(MODEL, PREVIOUS, "1")
    op = RollbackModelOperator(task_id="rollback", model_name=MODEL, target_version="99", reason=REASON)
    try:
        op.execute(context("manual__9", "rollback", "llmops_rollback"))
    except Exception as exc:  # noqa: BLE001 (the type is what is checked)
        assert isinstance(exc, ConfigurationError), f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        assert "99" in str(exc) and MODEL in str(exc)
    else:
        pytest.fail("a rollback to a version that does not exist must fail")
    assert env.registry.aliases(MODEL) == {CHAMPION: "2", PREVIOUS: "1"}


def test_evaluating_a_version_that_does_not_exist_is_a_configuration_error(env: ModelEnv, tmp_path: Path):
    dummy_versions(env, MODEL, 1, tmp_path)
    try:
        _evaluate(challenger_version="99")
    except Exception as exc:  # noqa: BLE001 (the type is what is checked)
        assert isinstance(exc, ConfigurationError), f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        assert "99" in str(exc) and MODEL in str(exc)
    else:
        pytest.fail("evaluating a version that does not exist must fail")
