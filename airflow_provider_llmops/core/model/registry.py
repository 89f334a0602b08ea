"""The MLflow model registry as the provider uses it: runs, versions, aliases, compare-and-swap, rollback.

Plain Python over `mlflow.MlflowClient`; no Airflow. Aliases: `champion` (serves), `challenger` (under
evaluation), `canary` (partial traffic), `previous-champion` (rollback target). Stages are never used.

Alias changes are compare-and-swap: the caller states which versions it expects the aliases to point at (as
read when the decision was made); the current aliases are re-read, and on any mismatch nothing is changed and
`AliasConflict` says what moved. MLflow has no server-side compare-and-swap, so writers coordinate through the
registry itself, which every worker shares:

* a model-level tag `llmops.alias_epoch` counts completed alias changes (monotonic), and `llmops.alias_claim`
  (`<epoch + 1>:<token>:<unix time>`) names the writer in progress. A writer waits (bounded) while another
  writer's claim is open (claim epoch > epoch; a claim older than `CLAIM_STALE_S` is abandoned), writes its own
  claim, waits `settle_s` so that a concurrent claim lands, and re-reads: if the claim is no longer its own or
  the epoch moved, it aborts without touching an alias. It then re-checks the expected aliases, writes, reads
  the aliases and the claim back (a writer that slipped in: its own writes are undone where they are still
  its own, and `AliasConflict`), and closes with epoch + 1.
* Across hosts, every registry-changing task also runs in the Airflow pool `[llmops] registry_pool` (one slot);
  on one host the file lock under the provider's home serialises writers as well.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from airflow_provider_llmops.core.model.contract import (
    TAG_ALIAS_CLAIM,
    TAG_ALIAS_EPOCH,
    TAG_MANAGED,
)
from airflow_provider_llmops.errors import ConfigurationError, LLMOpsError

CLAIM_STALE_S = 120.0


class RegistryError(LLMOpsError):
    """The registry refused or could not do what was asked."""


class AliasConflict(RegistryError):
    """An alias moved between the decision and the change: nothing was changed."""


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str]
    aliases: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "source": self.source,
            "aliases": list(self.aliases),
        }


def _info(mv: Any) -> VersionInfo:
    return VersionInfo(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        source=mv.source,
        tags=dict(mv.tags or {}),
        aliases=tuple(getattr(mv, "aliases", None) or ()),
    )


def tracking_host(tracking_uri: str) -> str:
    """The `<tracking host>` of the OpenLineage namespace `mlflow://<tracking host>` (localhost for local stores)."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("http", "https", "databricks") and parsed.netloc:
        return parsed.netloc.rsplit("@", 1)[-1]
    return "localhost"


def model_version_dataset(tracking_uri: str, name: str, version: str) -> tuple[str, str]:
    """(namespace, name) of a model version as an OpenLineage dataset."""
    return f"mlflow://{tracking_host(tracking_uri)}", f"models/{name}/versions/{version}"


@dataclass(frozen=True)
class MlflowConfig:
    """Where MLflow is and how to authenticate. Credentials are handed to MLflow through its own environment
    variables (MLFLOW_TRACKING_USERNAME / _PASSWORD / _TOKEN) in this process only; they are never logged."""

    tracking_uri: str
    registry_uri: str | None = None
    artifact_root: str | None = None  # artifact location of new experiments (local stores); None: server default
    username: str | None = None
    password: str | None = None
    token: str | None = None
    experiment: str = "llmops"

    def __repr__(self) -> str:  # never show credentials
        return (
            f"MlflowConfig(tracking_uri={self.tracking_uri!r}, registry_uri={self.registry_uri!r}, "
            f"experiment={self.experiment!r})"
        )

    def apply_credentials(self) -> None:
        """Hand the credentials to MLflow. Values an earlier config of this process set and this one lacks are
        removed, so one connection's credentials never reach another server; values set by the environment
        itself are left alone."""
        for key, value in (
            ("MLFLOW_TRACKING_USERNAME", self.username),
            ("MLFLOW_TRACKING_PASSWORD", self.password),
            ("MLFLOW_TRACKING_TOKEN", self.token),
        ):
            if value:
                os.environ[key] = value
                _CREDENTIALS_SET.add(key)
            elif key in _CREDENTIALS_SET:
                os.environ.pop(key, None)
                _CREDENTIALS_SET.discard(key)


_CREDENTIALS_SET: set[str] = set()


def default_config(home: Path) -> MlflowConfig:
    """The embedded default: a SQLite tracking and registry store with local artifacts under `<home>/mlflow`."""
    root = home / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    return MlflowConfig(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "artifacts"))


class ModelRegistry:
    """One registered model's versions and aliases, plus the runs that produce them."""

    @classmethod
    def from_config(cls, config: MlflowConfig, lock_dir: str | Path | None = None) -> ModelRegistry:
        config.apply_credentials()
        registry = cls(config.tracking_uri, config.registry_uri, lock_dir=lock_dir, artifact_root=config.artifact_root)
        registry.experiment_name = config.experiment
        return registry

    def __init__(
        self,
        tracking_uri: str,
        registry_uri: str | None = None,
        lock_dir: str | Path | None = None,
        artifact_root: str | None = None,
    ) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.artifact_root = artifact_root
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=self.registry_uri)
        self.lock_dir = Path(lock_dir) if lock_dir else None
        self.experiment_name = "llmops"
        self.ui_url: str | None = None
        self.settle_s = 0.25  # compare-and-swap: how long a claim must survive before aliases are written
        self.claim_wait_s = 30.0  # compare-and-swap: how long to wait for another writer's open claim

    # ---- experiments and runs -------------------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = None
        if self.artifact_root:
            location = f"{self.artifact_root.rstrip('/')}/{name}"
            if "://" not in location:
                location = Path(location).resolve().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:  # created concurrently by another task
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def find_runs(self, experiment_id: str, tags: Mapping[str, str]) -> list[Any]:
        query = " and ".join(f"tags.`{k}` = '{_quote(v)}'" for k, v in tags.items())
        return list(
            self.client.search_runs([experiment_id], filter_string=query, order_by=["attributes.start_time DESC"])
        )

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        base = _ui_base(self.tracking_uri, self.ui_url)
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}" if base else None

    def version_url(self, name: str, version: str) -> str | None:
        base = _ui_base(self.tracking_uri, self.ui_url)
        return f"{base}/#/models/{name}/versions/{version}" if base else None

    # ---- versions ---------------------------------------------------------------------------------------------
    def ensure_model(self, name: str, description: str | None = None) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            try:
                self.client.create_registered_model(name, description=description, tags={TAG_MANAGED: "true"})
            except MlflowException:
                self.client.get_registered_model(name)  # created concurrently: fine if it exists now

    def get_version(self, name: str, version: str) -> VersionInfo:
        """A version of `name`; one that does not exist is a ConfigurationError (a version number is user input:
        a Param of the rollback or retrain DAG)."""
        from mlflow.exceptions import MlflowException

        try:
            return _info(self.client.get_model_version(name, str(version)))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise ConfigurationError(
                f"model {name!r} has no version {str(version)!r} in the MLflow registry at "
                f"{tracking_host(self.tracking_uri)}: give the number of an existing version (the model's versions "
                "are listed in the MLflow UI)"
            ) from None

    def find_versions(self, name: str, tags: Mapping[str, str]) -> list[VersionInfo]:
        query = " and ".join([f"name = '{_quote(name)}'", *(f"tags.`{k}` = '{_quote(v)}'" for k, v in tags.items())])
        found = [_info(mv) for mv in self.client.search_model_versions(query)]
        return sorted(found, key=lambda v: int(v.version))

    def register(
        self, name: str, source: str, run_id: str, tags: Mapping[str, str], description: str | None = None
    ) -> VersionInfo:
        """A new version of `name` from artifacts at `source`; waits until it is READY. A failure after creation
        deletes the half-made version so nothing is left behind."""
        self.ensure_model(name)
        mv = self.client.create_model_version(
            name, source=source, run_id=run_id, tags=dict(tags), description=description
        )
        try:
            deadline = time.monotonic() + 300
            while str(getattr(mv, "status", "READY")) not in ("READY", "ModelVersionStatus.READY"):
                if "FAILED" in str(mv.status):
                    raise RegistryError(f"model version {name}/{mv.version} failed to register: {mv.status_message}")
                if time.monotonic() > deadline:
                    raise RegistryError(f"model version {name}/{mv.version} not ready after 300 s")
                time.sleep(0.5)
                mv = self.client.get_model_version(name, mv.version)
        except BaseException:
            self.delete_version(name, str(mv.version))
            raise
        return self.get_version(name, str(mv.version))

    def delete_version(self, name: str, version: str) -> None:
        with contextlib.suppress(Exception):
            self.client.delete_model_version(name, version)

    def tag_version(self, name: str, version: str, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, str(version), key, str(value))

    # ---- aliases ----------------------------------------------------------------------------------------------
    def alias(self, name: str, alias: str) -> str | None:
        """The version an alias points at, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def aliases(self, name: str) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(name)
        except MlflowException:
            return {}
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Serialise alias changes of one model on this host."""
        if self.lock_dir is None:
            yield
            return
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        path = self.lock_dir / f"registry-{''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)}.lock"
        with open(path, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def alias_state(self, name: str) -> tuple[dict[str, str], int, str | None]:
        """(aliases, epoch, open claim or None) of a registered model, read in one call."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(name)
        except MlflowException:
            return {}, 0, None
        tags = dict(model.tags or {})
        aliases = {alias: str(version) for alias, version in (model.aliases or {}).items()}
        return aliases, _epoch(tags.get(TAG_ALIAS_EPOCH)), tags.get(TAG_ALIAS_CLAIM)

    def compare_and_swap(
        self, name: str, expected: Mapping[str, str | None], updates: Mapping[str, str | None]
    ) -> dict[str, str]:
        """Set (version) or remove (None) aliases in `updates` if every alias in `expected` still points at the
        expected version (None: unset). Returns the aliases after the change. Raises AliasConflict, having
        changed no alias, when an alias moved or another writer is changing them (see the module docstring)."""
        with self.locked(name):
            token = uuid.uuid4().hex
            epoch = self._wait_for_open_claim(name)
            current, _, _ = self.alias_state(name)
            self._check_expected(name, expected, current)
            mine = f"{epoch + 1}:{token}:{time.time():.3f}"
            self.client.set_registered_model_tag(name, TAG_ALIAS_CLAIM, mine)
            time.sleep(self.settle_s)
            current, epoch_now, claim = self.alias_state(name)
            if claim != mine or epoch_now != epoch:
                raise AliasConflict(
                    f"another writer is changing the aliases of {name!r} at the same time (epoch {epoch} -> "
                    f"{epoch_now}); nothing was changed"
                )
            try:
                self._check_expected(name, expected, current)
            except AliasConflict:
                self._release(name, mine, epoch)
                raise
            before = dict(current)
            try:
                for alias, version in updates.items():
                    if version is None:
                        if alias in current:
                            self.client.delete_registered_model_alias(name, alias)
                    else:
                        self.client.set_registered_model_alias(name, alias, str(version))
            except BaseException:
                self._restore(name, before, updates)
                self._release(name, mine, epoch)
                raise
            after, epoch_now, claim = self.alias_state(name)
            wrong = {a: after.get(a) for a, v in updates.items() if after.get(a) != (str(v) if v is not None else None)}
            if wrong or claim != mine or epoch_now != epoch:
                self._restore(name, before, updates, only_if_ours=True)
                self._release(name, mine, epoch)
                raise AliasConflict(
                    f"a concurrent change to {name!r} was detected after writing (aliases {after}, expected "
                    f"{dict(updates)}); this change was undone"
                )
            self.client.set_registered_model_tag(name, TAG_ALIAS_EPOCH, str(epoch + 1))
            return after

    def _check_expected(self, name: str, expected: Mapping[str, str | None], current: Mapping[str, str]) -> None:
        wanted = {a: None if v is None else str(v) for a, v in expected.items()}
        moved = {a: (v, current.get(a)) for a, v in wanted.items() if current.get(a) != v}
        if moved:
            raise AliasConflict(
                f"aliases of {name!r} changed since the decision; nothing was changed: "
                + ", ".join(f"{a} expected {exp or 'unset'} but is {now or 'unset'}" for a, (exp, now) in moved.items())
            )

    def _wait_for_open_claim(self, name: str) -> int:
        """The epoch once no other writer's claim is open (bounded by `claim_wait_s`)."""
        deadline = time.monotonic() + self.claim_wait_s
        while True:
            _, epoch, claim = self.alias_state(name)
            if not _claim_open(claim, epoch):
                return epoch
            if time.monotonic() > deadline:
                raise AliasConflict(
                    f"another writer has been changing the aliases of {name!r} for more than {self.claim_wait_s:g} s "
                    f"(claim {claim}); nothing was changed, retry later"
                )
            time.sleep(0.05)

    def _release(self, name: str, mine: str, epoch: int) -> None:
        """Close our claim without counting a change (only when it is still ours)."""
        with contextlib.suppress(Exception):
            _, _, claim = self.alias_state(name)
            if claim == mine:
                self.client.set_registered_model_tag(name, TAG_ALIAS_CLAIM, f"{epoch}:released:{time.time():.3f}")

    def _restore(
        self, name: str, before: Mapping[str, str], touched: Mapping[str, str | None], only_if_ours: bool = False
    ) -> None:
        now = self.aliases(name) if only_if_ours else {}
        for alias, ours in touched.items():
            if only_if_ours and now.get(alias) != (str(ours) if ours is not None else None):
                continue  # another writer's value: leave it
            with contextlib.suppress(Exception):
                if alias in before:
                    self.client.set_registered_model_alias(name, alias, before[alias])
                else:
                    self.client.delete_registered_model_alias(name, alias)


def _epoch(value: str | None) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _claim_open(claim: str | None, epoch: int) -> bool:
    """Whether a claim tag names a writer still in progress: claim epoch > epoch and not older than CLAIM_STALE_S."""
    if not claim:
        return False
    parts = claim.split(":")
    try:
        claimed, stamp = int(parts[0]), float(parts[-1])
    except (ValueError, IndexError):
        return False
    return claimed > epoch and time.time() - stamp < CLAIM_STALE_S


def _quote(value: str) -> str:
    return str(value).replace("'", "\\'")


def _ui_base(tracking_uri: str, explicit: str | None = None) -> str | None:
    """Base URL of the MLflow UI for links: `explicit` (`[llmops] mlflow_ui_url`), else the tracking server."""
    if explicit:
        return explicit.rstrip("/")
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("http", "https"):
        return f"{parsed.scheme}://{parsed.netloc.rsplit('@', 1)[-1]}{parsed.path.rstrip('/')}"
    return None
