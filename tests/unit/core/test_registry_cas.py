"""Compare-and-swap of registry aliases across processes that share no lock: the registry-side epoch/claim check
alone keeps the aliases consistent. Two worker processes (one with its own lock folder, one with none) race a
promotion against a rollback on the same SQLite MLflow registry, round after round."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_llmops.core.model.contract import CHALLENGER, CHAMPION, PREVIOUS, TAG_ALIAS_CLAIM, TAG_ALIAS_EPOCH
from airflow_provider_llmops.core.model.registry import AliasConflict, ModelRegistry

# two processes racing over many rounds: in the full suite (CI), not in the quick tier
pytestmark = pytest.mark.slow

MODEL = "race"
PROMOTE = ({CHAMPION: "2", CHALLENGER: "3"}, {CHAMPION: "3", CHALLENGER: None, PREVIOUS: "2"})
ROLLBACK = ({CHAMPION: "2", PREVIOUS: "1"}, {CHAMPION: "1", PREVIOUS: None})
START = {CHAMPION: "2", PREVIOUS: "1", CHALLENGER: "3"}
AFTER_PROMOTE = {CHAMPION: "3", PREVIOUS: "2"}
AFTER_ROLLBACK = {CHAMPION: "1", CHALLENGER: "3"}


def _worker(uri: str, lock_dir: str | None, action: str, commands: Any, results: Any) -> None:
    """Run `action` (promote or rollback) whenever told, at the given wall-clock time; report the outcome."""
    registry = ModelRegistry(uri, lock_dir=lock_dir)
    expected, updates = PROMOTE if action == "promote" else ROLLBACK
    while True:
        command = commands.get(timeout=120)
        if command is None:
            return
        time.sleep(max(0.0, command - time.time()))
        try:
            registry.compare_and_swap(MODEL, expected, updates)
            results.put((action, "ok", ""))
        except AliasConflict as exc:
            results.put((action, "conflict", str(exc)))
        except Exception as exc:  # anything else is a test failure, reported by the parent
            results.put((action, "error", f"{type(exc).__name__}: {exc}"))


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("race")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    registry = ModelRegistry(uri, artifact_root=str(root / "artifacts"))
    registry.ensure_model(MODEL)
    source = root / "model"
    source.mkdir()
    (source / "weights.txt").write_text("dummy")
    for _ in range(3):
        registry.client.create_model_version(MODEL, source=str(source), run_id=None)
    return uri


def _reset(registry: ModelRegistry) -> None:
    for alias in (CHAMPION, PREVIOUS, CHALLENGER):
        registry.client.set_registered_model_alias(MODEL, alias, START[alias])


def test_two_processes_without_a_shared_lock_never_both_win(registry_uri: str, tmp_path: Path):
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    queues = {"promote": ctx.Queue(), "rollback": ctx.Queue()}
    workers = [
        ctx.Process(
            target=_worker,
            args=(registry_uri, str(tmp_path / "lock-a"), "promote", queues["promote"], results),
            daemon=True,
        ),
        ctx.Process(target=_worker, args=(registry_uri, None, "rollback", queues["rollback"], results), daemon=True),
    ]
    for worker in workers:
        worker.start()
    registry = ModelRegistry(registry_uri)
    rng = random.Random(7)
    wins = {"promote": 0, "rollback": 0, "none": 0}
    try:
        for round_number in range(12):
            _reset(registry)
            epoch_before = registry.alias_state(MODEL)[1]
            start = time.time() + 0.3
            offsets = {"promote": 0.0, "rollback": 0.0}
            offsets[rng.choice(["promote", "rollback"])] = rng.choice([0.0, 0.005, 0.02, 0.1, 0.3])
            for action, queue in queues.items():
                queue.put(start + offsets[action])
            outcome = dict((a, (s, m)) for a, s, m in (results.get(timeout=120) for _ in range(2)))
            assert not any(s == "error" for s, _ in outcome.values()), (round_number, outcome)
            ok = [a for a, (s, _) in outcome.items() if s == "ok"]
            aliases, epoch, claim = registry.alias_state(MODEL)
            assert len(ok) <= 1, (round_number, outcome, aliases)
            if ok == ["promote"]:
                assert aliases == AFTER_PROMOTE, (round_number, outcome)
            elif ok == ["rollback"]:
                assert aliases == AFTER_ROLLBACK, (round_number, outcome)
            else:
                assert aliases == START, (round_number, outcome)
            assert epoch == epoch_before + len(ok)  # every completed change counted once, an aborted one never
            assert claim is not None and int(claim.split(":")[0]) == epoch  # no claim left open
            wins[ok[0] if ok else "none"] += 1
    finally:
        for queue in queues.values():
            queue.put(None)
        for worker in workers:
            worker.join(timeout=30)
    assert wins["promote"] + wins["rollback"] >= 6, wins  # most rounds have a winner; the loser changed nothing


def test_conflict_when_an_alias_moved_changes_nothing(registry_uri: str):
    registry = ModelRegistry(registry_uri)
    registry.settle_s = 0.0
    _reset(registry)
    epoch = registry.alias_state(MODEL)[1]
    with pytest.raises(AliasConflict, match="champion expected 1 but is 2"):
        registry.compare_and_swap(MODEL, {CHAMPION: "1"}, {CHAMPION: "3"})
    assert registry.alias_state(MODEL)[:2] == (START, epoch)


def test_a_writer_that_claims_meanwhile_makes_the_first_abort_untouched(
    registry_uri: str, monkeypatch: pytest.MonkeyPatch
):
    registry = ModelRegistry(registry_uri)
    _reset(registry)
    epoch = registry.alias_state(MODEL)[1]
    other = ModelRegistry(registry_uri)
    real_sleep = time.sleep

    def sleep_and_let_another_claim(seconds: float) -> None:  # the other writer's claim lands during our settle
        other.client.set_registered_model_tag(MODEL, TAG_ALIAS_CLAIM, f"{epoch + 1}:other:{time.time():.3f}")
        real_sleep(0)

    monkeypatch.setattr("airflow_provider_llmops.core.model.registry.time.sleep", sleep_and_let_another_claim)
    with pytest.raises(AliasConflict, match="another writer"):
        registry.compare_and_swap(MODEL, *PROMOTE)
    assert registry.aliases(MODEL) == START
    monkeypatch.undo()
    # the other writer's claim is open: a new change waits for it, then gives up without changing anything
    registry.claim_wait_s = 0.2
    with pytest.raises(AliasConflict, match="more than 0.2 s"):
        registry.compare_and_swap(MODEL, *PROMOTE)
    assert registry.aliases(MODEL) == START
    other.client.set_registered_model_tag(MODEL, TAG_ALIAS_EPOCH, str(epoch + 1))  # the other writer finished
    registry.settle_s = 0.0
    assert registry.compare_and_swap(MODEL, *ROLLBACK) == AFTER_ROLLBACK
    assert registry.alias_state(MODEL)[1] == epoch + 2


def test_a_stale_claim_does_not_block_forever(registry_uri: str):
    registry = ModelRegistry(registry_uri)
    registry.settle_s = 0.0
    _reset(registry)
    epoch = registry.alias_state(MODEL)[1]
    registry.client.set_registered_model_tag(MODEL, TAG_ALIAS_CLAIM, f"{epoch + 1}:crashed:{time.time() - 3600:.3f}")
    assert registry.compare_and_swap(MODEL, *PROMOTE) == AFTER_PROMOTE
    assert registry.alias_state(MODEL)[1] == epoch + 1
