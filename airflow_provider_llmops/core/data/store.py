"""Immutable, content-addressed dataset snapshots on a local directory or an S3 prefix.

Layout: `<store>/snapshots/<dataset>/<snapshot_id>/{data.parquet, quarantine.jsonl, manifest.json, validation.json}`.
A snapshot is visible only once committed:
- local: every file is written into `<dataset>/.staging/<id>.<random>/`, then the directory is renamed into place
  in one atomic `rename`; a crash leaves only an invisible staging directory.
- S3: the data files are put first and `manifest.json` last; readers treat a prefix without a manifest as absent.
Writing a snapshot id that is already committed writes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from airflow_provider_llmops.errors import ConfigurationError, SnapshotNotFoundError

DATA_FILE = "data.parquet"
QUARANTINE_FILE = "quarantine.jsonl"
MANIFEST_FILE = "manifest.json"
VALIDATION_FILE = "validation.json"
PROFILE_MARKER = "profile.json"
PROFILE_FILES = ("token_seen.npy", "embedding_sample.npy", PROFILE_MARKER)
EVALUATION_MARKER = "evaluation.json"

# One rule for every name that becomes a path segment (datasets, suites, evaluation keys): 1-128 letters, digits,
# '_', '-' or '.', starting with a letter or digit, never '..'. Also the JSON-schema pattern of the dataset Param.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_NAME_RE = re.compile(NAME_PATTERN)
_SNAPSHOT_RE = re.compile(r"^[0-9a-f]{16,64}$")


def is_valid_name(value: object) -> bool:
    """Whether `value` is a safe name (whole-string match: a trailing newline is not allowed)."""
    return isinstance(value, str) and _NAME_RE.fullmatch(value) is not None and ".." not in value


def check_dataset_name(dataset: str) -> str:
    if not is_valid_name(dataset):
        raise ConfigurationError(
            f"invalid dataset name {dataset!r}: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return dataset


def check_snapshot_id(snapshot_id: str) -> str:
    if not isinstance(snapshot_id, str) or not _SNAPSHOT_RE.match(snapshot_id):
        raise ConfigurationError(f"invalid snapshot id {snapshot_id!r}: expected lowercase hex")
    return snapshot_id


class _LocalBackend:
    def __init__(self, root: Path) -> None:
        self.root = root

    def uri(self, key: str) -> str:
        return (self.root / key).as_uri()

    def path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def put(self, key: str, data: bytes) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def list_dirs(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def commit(self, prefix: str, files: dict[str, bytes], marker: str = MANIFEST_FILE) -> bool:
        final = self.root / prefix
        staging = final.parent / ".staging" / f"{final.name}.{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            for name, data in files.items():
                with open(staging / name, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            try:
                os.rename(staging, final)
            except OSError:
                if (final / marker).is_file():
                    return False  # a concurrent writer committed the same content first
                raise
            return True
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class _S3Backend:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def list_dirs(self, prefix: str) -> list[str]:
        full = self._key(prefix).rstrip("/") + "/"
        names: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full, Delimiter="/"
        ):
            names.extend(p["Prefix"][len(full) :].rstrip("/") for p in page.get("CommonPrefixes", []))
        return sorted(n for n in names if n and not n.startswith("."))

    def commit(self, prefix: str, files: dict[str, bytes], marker: str = MANIFEST_FILE) -> bool:
        if self.exists(f"{prefix}/{marker}"):
            return False
        for name, data in files.items():
            if name != marker:
                self.put(f"{prefix}/{name}", data)
        self.put(f"{prefix}/{marker}", files[marker])  # the commit point
        return True


@dataclass(frozen=True)
class SnapshotRef:
    dataset: str
    snapshot_id: str
    uri: str  # the snapshot directory / prefix
    data_uri: str
    quarantine_uri: str
    manifest_uri: str
    validation_uri: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


class DatasetStore:
    """Snapshots under a local directory or `s3://bucket/prefix` (pass a boto3 client for S3)."""

    def __init__(self, uri: str, s3_client: Any = None) -> None:
        parsed = urlparse(uri)
        self.uri = uri
        if parsed.scheme == "s3":
            if s3_client is None:
                raise ConfigurationError(
                    f"store {uri} is on S3 but no S3 client was given (set [llmops] store_conn_id)"
                )
            if not parsed.netloc:
                raise ConfigurationError(f"store {uri} must be s3://bucket[/prefix]")
            self._backend: _LocalBackend | _S3Backend = _S3Backend(s3_client, parsed.netloc, parsed.path)
        elif parsed.scheme in ("", "file"):
            root = Path(parsed.path if parsed.scheme == "file" else uri).expanduser().resolve()
            self._backend = _LocalBackend(root)
        else:
            raise ConfigurationError(f"unsupported store URI {uri!r}: use a local path, file:// or s3://")

    @property
    def is_local(self) -> bool:
        return isinstance(self._backend, _LocalBackend)

    def _prefix(self, dataset: str, snapshot_id: str) -> str:
        return f"snapshots/{check_dataset_name(dataset)}/{check_snapshot_id(snapshot_id)}"

    def dataset_uri(self, dataset: str) -> str:
        return self._backend.uri(f"snapshots/{check_dataset_name(dataset)}")

    def ref(self, dataset: str, snapshot_id: str) -> SnapshotRef:
        prefix = self._prefix(dataset, snapshot_id)
        uri = self._backend.uri
        return SnapshotRef(
            dataset=dataset,
            snapshot_id=snapshot_id,
            uri=uri(prefix),
            data_uri=uri(f"{prefix}/{DATA_FILE}"),
            quarantine_uri=uri(f"{prefix}/{QUARANTINE_FILE}"),
            manifest_uri=uri(f"{prefix}/{MANIFEST_FILE}"),
            validation_uri=uri(f"{prefix}/{VALIDATION_FILE}"),
        )

    def exists(self, dataset: str, snapshot_id: str) -> bool:
        return self._backend.exists(f"{self._prefix(dataset, snapshot_id)}/{MANIFEST_FILE}")

    def commit_snapshot(
        self, dataset: str, snapshot_id: str, data: bytes, quarantine: bytes, manifest: dict[str, Any]
    ) -> tuple[SnapshotRef, bool]:
        """Write and commit a snapshot; returns (ref, created). `created` is False when it already existed."""
        ref = self.ref(dataset, snapshot_id)
        if self.exists(dataset, snapshot_id):
            return ref, False
        files = {
            DATA_FILE: data,
            QUARANTINE_FILE: quarantine,
            MANIFEST_FILE: json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"),
        }
        created = self._backend.commit(self._prefix(dataset, snapshot_id), files)
        return ref, created

    def _require(self, dataset: str, snapshot_id: str) -> str:
        if not self.exists(dataset, snapshot_id):
            raise SnapshotNotFoundError(dataset, snapshot_id, self.uri)
        return self._prefix(dataset, snapshot_id)

    def read_manifest(self, dataset: str, snapshot_id: str) -> dict[str, Any]:
        return json.loads(self._backend.get(f"{self._require(dataset, snapshot_id)}/{MANIFEST_FILE}"))

    def read_data(self, dataset: str, snapshot_id: str) -> bytes:
        return self._backend.get(f"{self._require(dataset, snapshot_id)}/{DATA_FILE}")

    def read_table(self, dataset: str, snapshot_id: str) -> Any:
        """The accepted records as a `pyarrow.Table`."""
        import io

        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(self.read_data(dataset, snapshot_id)))

    def read_quarantine(self, dataset: str, snapshot_id: str) -> list[dict[str, Any]]:
        raw = self._backend.get(f"{self._require(dataset, snapshot_id)}/{QUARANTINE_FILE}")
        return [json.loads(line) for line in raw.decode("utf-8").split("\n") if line]

    def write_beside(self, dataset: str, snapshot_id: str, name: str, data: bytes) -> str:
        """Store (or atomically replace) a report file beside a committed snapshot; returns its URI."""
        if name in (DATA_FILE, QUARANTINE_FILE, MANIFEST_FILE) or "/" in name:
            raise ConfigurationError(f"{name!r} cannot be written beside a snapshot: snapshot files are immutable")
        prefix = self._require(dataset, snapshot_id)
        self._backend.put(f"{prefix}/{name}", data)
        return self._backend.uri(f"{prefix}/{name}")

    def read_beside(self, dataset: str, snapshot_id: str, name: str) -> bytes | None:
        """A report file stored beside a committed snapshot, or None when there is none."""
        key = f"{self._require(dataset, snapshot_id)}/{name}"
        return self._backend.get(key) if self._backend.exists(key) else None

    def write_validation(self, dataset: str, snapshot_id: str, report: dict[str, Any]) -> str:
        """Store (or replace) the validation report beside a committed snapshot; returns its URI."""
        return self.write_beside(
            dataset, snapshot_id, VALIDATION_FILE, json.dumps(report, indent=2, default=str).encode("utf-8")
        )

    def data_source(self, dataset: str, snapshot_id: str) -> str | bytes:
        """The snapshot's Parquet data to stream: a local path, or the bytes of an S3 object."""
        prefix = self._require(dataset, snapshot_id)
        if isinstance(self._backend, _LocalBackend):
            return str(self._backend.path(f"{prefix}/{DATA_FILE}"))
        return self._backend.get(f"{prefix}/{DATA_FILE}")

    # --- reference profiles: <store>/profiles/<dataset>/<snapshot_id>/, committed by profile.json ---------

    def _profile_prefix(self, dataset: str, snapshot_id: str) -> str:
        return f"profiles/{check_dataset_name(dataset)}/{check_snapshot_id(snapshot_id)}"

    def profile_uri(self, dataset: str, snapshot_id: str) -> str:
        return self._backend.uri(self._profile_prefix(dataset, snapshot_id))

    def has_profile(self, dataset: str, snapshot_id: str) -> bool:
        return self._backend.exists(f"{self._profile_prefix(dataset, snapshot_id)}/{PROFILE_MARKER}")

    def commit_profile(self, dataset: str, snapshot_id: str, files: dict[str, bytes]) -> bool:
        return self._backend.commit(self._profile_prefix(dataset, snapshot_id), files, marker=PROFILE_MARKER)

    def fetch_profile(self, dataset: str, snapshot_id: str, cache_dir: Path) -> Path:
        """A local directory holding the committed profile (the store's own folder when it is local)."""
        prefix = self._profile_prefix(dataset, snapshot_id)
        if isinstance(self._backend, _LocalBackend):
            return self._backend.path(prefix)
        target = cache_dir / prefix
        if not (target / PROFILE_MARKER).is_file():
            target.mkdir(parents=True, exist_ok=True)
            for name in PROFILE_FILES:
                key = f"{prefix}/{name}"
                if self._backend.exists(key):
                    (target / name).write_bytes(self._backend.get(key))
        return target

    def read_validation(self, dataset: str, snapshot_id: str) -> dict[str, Any] | None:
        raw = self.read_beside(dataset, snapshot_id, VALIDATION_FILE)
        return None if raw is None else json.loads(raw)

    def list_snapshots(self, dataset: str) -> list[str]:
        """Committed snapshot ids of a dataset (uncommitted or staging ones are not listed)."""
        ids = self._backend.list_dirs(f"snapshots/{check_dataset_name(dataset)}")
        return [i for i in ids if _SNAPSHOT_RE.match(i) and self.exists(dataset, i)]

    # --- evaluations: <store>/evaluations/<model>/<key>/, committed by evaluation.json ---------------------

    def _evaluation_prefix(self, model: str, key: str) -> str:
        if not is_valid_name(key):
            raise ConfigurationError(f"invalid evaluation key {key!r}")
        return f"evaluations/{check_dataset_name(model)}/{key}"

    def evaluation_uri(self, model: str, key: str, name: str = EVALUATION_MARKER) -> str:
        return self._backend.uri(f"{self._evaluation_prefix(model, key)}/{name}")

    def commit_evaluation(self, model: str, key: str, files: dict[str, bytes]) -> bool:
        """Commit an evaluation (its frozen set, JSON and HTML reports); `evaluation.json` marks it complete."""
        return self._backend.commit(self._evaluation_prefix(model, key), files, marker=EVALUATION_MARKER)

    def read_evaluation(self, model: str, key: str) -> dict[str, Any] | None:
        raw = self.read_evaluation_bytes(model, key)
        return None if raw is None else json.loads(raw)

    def read_evaluation_bytes(self, model: str, key: str) -> bytes | None:
        """The committed `evaluation.json` exactly as stored (to check its hash), or None."""
        marker = f"{self._evaluation_prefix(model, key)}/{EVALUATION_MARKER}"
        return self._backend.get(marker) if self._backend.exists(marker) else None

    def list_evaluations(self, model: str) -> list[str]:
        """Keys of the committed evaluations of a model."""
        keys = self._backend.list_dirs(f"evaluations/{check_dataset_name(model)}")
        return [k for k in keys if is_valid_name(k) and self.read_evaluation_bytes(model, k) is not None]
