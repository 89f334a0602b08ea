"""Exceptions that say what failed, on which input, and where the full result is."""

from __future__ import annotations

from collections.abc import Sequence


class LLMOpsError(Exception):
    """Base class of every error this provider raises on purpose."""


class ConfigurationError(LLMOpsError, ValueError):
    """A setting, operator argument, Param or connection field is missing or invalid (also a ValueError, so code
    that catches ValueError from the core keeps working)."""


class ModelOutputError(LLMOpsError, ValueError):
    """A model's outputs cannot be scored (NaN or infinite class probabilities): the model itself is unusable, e.g.
    its training diverged. Also a ValueError, which the metric functions raised before."""


class AuditError(LLMOpsError):
    """The audit trail cannot be appended to or read (a corrupt or forged record, a missing key)."""


class SourceError(LLMOpsError):
    """A source is unusable as a whole (unreachable, unauthorised, empty, not parseable, not allowed)."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"source {source!r}: {problem}")


class PathNotAllowedError(SourceError):
    """A local path resolves outside every allowed root, or a remote URI (or a redirect) is outside the
    allow-list or outside the hosts its connection is bound to. Nothing was requested from it."""


class ConnectionNotAllowedError(LLMOpsError):
    """A connection id chosen at run time (a Param) is not one the DAG author allowed, or a connection is used for
    a kind of source it is not for."""


class SnapshotNotFoundError(LLMOpsError):
    """No committed snapshot with this id exists in the store."""

    def __init__(self, dataset: str, snapshot_id: str, store: str) -> None:
        super().__init__(f"snapshot {snapshot_id!r} of dataset {dataset!r} not found (or not committed) in {store}")


class NoValidRowsError(LLMOpsError):
    """Every row of a source was rejected; the quarantine file says why."""

    def __init__(self, source: str, rows_read: int, quarantine_uri: str, reasons: dict[str, int]) -> None:
        summary = ", ".join(f"{k}={v}" for k, v in sorted(reasons.items()))
        super().__init__(
            f"source {source!r}: none of {rows_read} rows is valid ({summary}); "
            f"every rejected row and its reason is in {quarantine_uri}"
        )


class ValidationFailedError(LLMOpsError):
    """A Great Expectations suite failed on a snapshot."""

    def __init__(self, dataset: str, snapshot_id: str, failed: Sequence[str], report_uri: str) -> None:
        self.failed = list(failed)
        self.report_uri = report_uri
        lines = "\n".join(f"  - {f}" for f in self.failed)
        super().__init__(
            f"validation of snapshot {snapshot_id!r} of dataset {dataset!r} failed "
            f"{len(self.failed)} expectation(s):\n{lines}\nfull report: {report_uri}"
        )


class GateRejectedError(LLMOpsError):
    """The promotion gate rejected a challenger (raised only when the operator is told to fail on rejection)."""

    def __init__(self, model: str, version: str, reasons: Sequence[str]) -> None:
        super().__init__(f"gate rejected {model} v{version}: " + "; ".join(reasons))
