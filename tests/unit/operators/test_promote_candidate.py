"""PromoteModelOperator with an inference service configured: a passed challenger becomes `candidate` (champion
untouched) and is announced as the asset `llmops_candidate_<model>`, which schedules `llmops_deploy`; without a
service, promotion is unchanged. Real SQLite registry, store and audit trail; hand-written stored evaluations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_llmops.core.model.contract import CANDIDATE, CHAMPION
from airflow_provider_llmops.core.model.registry import ModelRegistry
from tests.unit.core.test_promote_job import GOOD, OK, World
from tests.unit.fake_model import context


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    ModelRegistry(uri, artifact_root=str(root / "artifacts")).ensure_model("warmup")
    return uri


@pytest.fixture
def world(registry_uri: str, tmp_path: Path) -> World:
    """v1 champion, v2 challenger with a stored evaluation that passes the gate."""
    w = World(registry_uri, tmp_path)
    w.registry.compare_and_swap(w.name, {}, {CHAMPION: "1", "challenger": "2"})
    return w


def promote_op(world: World, **kwargs: Any) -> Any:
    from airflow_provider_llmops.operators.promote import PromoteModelOperator

    op = PromoteModelOperator(task_id="promote", evaluation=json.dumps(world.evaluation("2", "1", GOOD, OK)), **kwargs)
    op.registry, op.audit, op.store = world.registry, world.audit, world.store
    return op


def test_with_a_service_the_challenger_becomes_candidate_and_is_announced(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    from airflow.sdk import Asset

    from airflow_provider_llmops.assets import candidate_alias, champion_alias

    monkeypatch.setenv("AIRFLOW__LLMOPS__SERVE_URL", "http://127.0.0.1:8765")
    ctx = context("manual__1", "promote", outlets=[champion_alias(), candidate_alias()])
    result = promote_op(world).execute(ctx)
    assert result["candidate"] == "2" and result["promoted"] is False and result["passed"] is True
    assert world.registry.aliases(world.name) == {CHAMPION: "1", CANDIDATE: "2"}
    assert result["candidate_event"] is True and result["champion_event"] is None
    ((asset, extra),) = ctx["outlet_events"][candidate_alias()].added
    assert asset.name == f"llmops_candidate_{world.name}"
    assert asset.uri == f"mlflow://localhost/models/{world.name}?alias=candidate"
    assert Asset(name=asset.name, uri=asset.uri).uri == asset.uri  # Airflow's URI check accepts it as it is
    assert extra == {"model": world.name, "version": "2", "champion": "1", "decision_id": result["decision_id"]}
    assert ctx["outlet_events"][champion_alias()].added == []


def test_without_a_service_or_when_told_promotion_moves_the_champion(world: World, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__LLMOPS__SERVE_URL", "http://127.0.0.1:8765")
    result = promote_op(world, deploy_via_canary=False).execute(context("manual__2", "promote"))
    assert result["promoted"] is True and result["candidate"] is None and result["candidate_event"] is None
    assert world.registry.aliases(world.name) == {CHAMPION: "2", "previous-champion": "1"}


def test_the_default_is_no_service(world: World, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AIRFLOW__LLMOPS__SERVE_URL", raising=False)
    result = promote_op(world).execute(context("manual__3", "promote"))
    assert result["promoted"] is True and result["target"] == CHAMPION
