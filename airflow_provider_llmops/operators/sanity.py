"""SanityCheckOperator: one check of the nightly sanity run (`core/governance/sanity.py`), as its own task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_llmops.operators.base import LLMOpsBaseOperator

RESULT_KEY = "sanity_result"
TOKEN_SUBJECT = "llmops-sanity"
MAX_ENDPOINT_TEXTS = 512


def lineage_transport() -> tuple[str, Any]:
    """(the configured OpenLineage transport in words, the file it writes or None): a `file` transport's
    `log_file_path` (`[openlineage] transport`); anything else cannot be read back."""
    import json
    from pathlib import Path

    from airflow.sdk import conf

    try:
        if str(conf.get("openlineage", "disabled", fallback="False")).lower() == "true":
            return "nowhere ([openlineage] disabled = True)", None
        raw = conf.get("openlineage", "transport", fallback="") or ""
    except Exception:  # no [openlineage] section at all
        raw = ""
    if not raw.strip():
        return "nowhere ([openlineage] transport is not set)", None
    try:
        transport = json.loads(raw)
    except ValueError:
        return "an unreadable [openlineage] transport", None
    kind = str(transport.get("type", "?")) if isinstance(transport, dict) else "?"
    if kind == "file" and transport.get("log_file_path"):
        return f"file {transport['log_file_path']}", Path(str(transport["log_file_path"]))
    return f"a {kind!r} transport", None


class SanityCheckOperator(LLMOpsBaseOperator):
    """Run one nightly sanity check and record its result.

    Reads: the registry (champion, its tags and artifacts), the store (evaluations, snapshots, drift reports), the
    audit trail, the OpenLineage file log and, for `endpoint`, the live inference service. Writes: nothing but its
    result, pushed to XCom under key `sanity_result` (also returned), for the report task. Decides: pass, or fail
    with `SanityCheckFailed` whose message says what is wrong and where to look (after the result is recorded).

    :param check: which check: `champion`, `endpoint`, `freshness`, `audit` or `lineage`.
    :param model_name: the registered model; default `[llmops] model_name`. (templated)
    :param datasets: datasets whose freshness is checked (a list, or comma-separated text); default
        `[llmops] dataset`. (templated)
    :param golden_path: the golden set (JSON lines with text and label); default `[llmops] golden_sets` of the
        model. None there too: `champion` re-scores a sample of the stored frozen evaluation set and `endpoint` sends
        (at most 512 of) the frozen set's texts. (templated)
    :param tolerances: per metric, the largest |now - stored| the champion's re-scored metrics may show (default
        `{"macro_f1": 0.02, "accuracy": 0.02}`). (templated)
    :param sample_rows: most rows of the frozen evaluation set scored when there is no golden set. (templated)
    :param require_mlmodel: require the `MLmodel` file beside the weights (versions registered before the
        provider wrote MLflow Models lack it).
    :param max_age_hours: the newest validated snapshot must be younger than this (default 26). (templated)
    :param drift_grace_hours: a validated batch younger than this may still wait for its drift run (default 2).
        (templated)
    :param lineage_within_hours: the lineage transport must have received `min_lineage_events` events within this
        many hours (default 24). (templated)
    :param min_lineage_events: see `lineage_within_hours` (default 1). (templated)
    :param serve_url: base URL of the inference service; default `[llmops] serve_url`. Empty in both: `endpoint`
        passes as skipped and says so. (templated)
    :param serve_conn_id: a connection whose password is a bearer token with scope `predict`; default: a token
        minted with the service's HS key (`[llmops] serve_jwt_*`) for subject `llmops-sanity`. (templated)
    :param endpoint_timeout_s: seconds per request to the service (default 10).
    :param cache_dir: where model files are downloaded; default: a temporary folder per try, so the check reads
        what the registry holds now.
    """

    template_fields: Sequence[str] = (
        *LLMOpsBaseOperator.base_template_fields,
        "model_name",
        "datasets",
        "golden_path",
        "tolerances",
        "sample_rows",
        "max_age_hours",
        "drift_grace_hours",
        "lineage_within_hours",
        "min_lineage_events",
        "serve_url",
        "serve_conn_id",
    )

    def __init__(
        self,
        *,
        check: str,
        model_name: str | None = None,
        datasets: Sequence[str] | str | None = None,
        golden_path: str | None = None,
        tolerances: dict[str, float] | str | None = None,
        sample_rows: int | str = 2000,
        require_mlmodel: bool = True,
        max_age_hours: float | str = 26,
        drift_grace_hours: float | str = 2,
        lineage_within_hours: float | str = 24,
        min_lineage_events: int | str = 1,
        serve_url: str | None = None,
        serve_conn_id: str | None = None,
        endpoint_timeout_s: float = 10.0,
        cache_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_llmops.errors import ConfigurationError

        checks = ("champion", "endpoint", "freshness", "audit", "lineage")
        if check not in checks:
            raise ConfigurationError(f"check must be one of {', '.join(checks)}, got {check!r}")
        super().__init__(**kwargs)
        self.check = check
        self.model_name = model_name
        self.datasets = datasets
        self.golden_path = golden_path
        self.tolerances = tolerances
        self.sample_rows = sample_rows
        self.require_mlmodel = require_mlmodel
        self.max_age_hours = max_age_hours
        self.drift_grace_hours = drift_grace_hours
        self.lineage_within_hours = lineage_within_hours
        self.min_lineage_events = min_lineage_events
        self.serve_url = serve_url
        self.serve_conn_id = serve_conn_id
        self.endpoint_timeout_s = endpoint_timeout_s
        self.cache_dir = cache_dir
        self._scratch: Any = None

    # ---------------------------------------------------------------------------------------------- inputs
    def _model(self) -> str:
        return str(self.as_optional(self.model_name) or self.settings.model_name)

    def _golden(self) -> str | None:
        return self.as_optional(self.golden_path) or self.settings.golden_for(self._model())

    def _cache(self) -> Any:
        """`cache_dir`, else a folder of this try (removed after it): the check must see what the registry holds
        now, not a copy downloaded on an earlier night."""
        from pathlib import Path

        if self.cache_dir:
            return Path(self.cache_dir)
        if self._scratch is None:
            import tempfile

            self._scratch = tempfile.TemporaryDirectory(prefix="llmops-sanity-")
        return Path(self._scratch.name)

    def _datasets(self) -> list[str]:
        from airflow_provider_llmops.settings import split_list

        value = self.as_optional(self.datasets)
        if isinstance(value, str) and value.strip().startswith("["):  # a list rendered as JSON text
            value = self.as_json(value, "datasets")
        if not value:
            return [self.settings.dataset]
        return split_list(value) if isinstance(value, str) else [str(d) for d in value]

    def _hours(self, value: Any, name: str) -> Any:
        from datetime import timedelta

        from airflow_provider_llmops.errors import ConfigurationError

        hours = self.as_float(value)
        if hours is None or not hours > 0:
            raise ConfigurationError(f"{name} must be a number of hours > 0, got {value!r}")
        return timedelta(hours=hours)

    def _token(self) -> str | None:
        """`serve_conn_id`'s password, else a predict-scope token minted with the service's HS key."""
        from airflow_provider_llmops.errors import ConfigurationError

        conn_id = self.as_optional(self.serve_conn_id)
        if conn_id:
            from airflow.sdk import BaseHook

            try:
                password = BaseHook.get_connection(conn_id).password
            except Exception as exc:
                raise ConfigurationError(
                    f"serve_conn_id: connection {conn_id!r} cannot be read ({type(exc).__name__}); create it with a "
                    "predict-scope token of the service as its password"
                ) from None
            return str(password) if password else None
        from airflow_provider_llmops.serving.auth import AuthConfig, mint_token
        from airflow_provider_llmops.settings import serve_options

        config = AuthConfig.from_mapping(serve_options(), self.settings.home)
        if not all(a.upper().startswith("HS") for a in config.algorithms):
            return None
        return mint_token(config, TOKEN_SUBJECT, ["predict"], ttl_s=600)

    def _audit_keys(self) -> list[bytes] | None:
        if not self.settings.audit_conn_id:
            return None
        from airflow_provider_llmops.operators._common import audit_key

        return [audit_key(self.settings.audit_conn_id)]

    # ---------------------------------------------------------------------------------------------- checks
    def _endpoint_texts(self) -> list[str]:
        from airflow_provider_llmops.core.governance.sanity import frozen_texts
        from airflow_provider_llmops.core.model.evaluate_job import read_golden

        golden = self._golden()
        if not golden:
            return frozen_texts(self.registry, self.store, self._model(), MAX_ENDPOINT_TEXTS)
        rows = read_golden(golden)
        return [str(r["text"]) for r in rows if str(r.get("text") or "").strip()][:MAX_ENDPOINT_TEXTS]

    def _run(self) -> Any:
        from airflow_provider_llmops.core.governance import sanity
        from airflow_provider_llmops.core.governance.audit import default_audit_path
        from airflow_provider_llmops.settings import serve_options

        if self.check == "champion":
            return sanity.check_champion(
                registry=self.registry,
                store=self.store,
                model_name=self._model(),
                cache_dir=self._cache(),
                golden_path=self._golden(),
                tolerances=sanity.tolerance_map(self.as_json(self.as_optional(self.tolerances), "tolerances")),
                sample_rows=self.as_int(self.sample_rows) or 2000,
                require_mlmodel=self.require_mlmodel,
            )
        if self.check == "endpoint":
            url = str(self.as_optional(self.serve_url) or serve_options().get("serve_url") or "").strip()
            if not url:
                return sanity.check_endpoint(serve_url=None, champion_version=None, texts=[], expected=[], token=None)
            texts = self._endpoint_texts()
            version, expected = (
                sanity.champion_labels(self.registry, self._model(), self._cache(), texts) if texts else (None, [])
            )
            return sanity.check_endpoint(
                serve_url=url,
                champion_version=version,
                texts=texts,
                expected=expected,
                token=self._token(),
                timeout_s=float(self.endpoint_timeout_s),
            )
        if self.check == "freshness":
            return sanity.check_freshness(
                store=self.store,
                datasets=self._datasets(),
                max_age=self._hours(self.max_age_hours, "max_age_hours"),
                drift_grace=self._hours(self.drift_grace_hours, "drift_grace_hours"),
            )
        transport, lineage_file = lineage_transport()
        if self.check == "audit":
            return sanity.check_audit(
                audit_path=default_audit_path(self.settings.home),
                registry=self.registry,
                model_name=self._model(),
                keys=self._audit_keys(),
                lineage_file=lineage_file,
                transport=transport,
            )
        return sanity.check_lineage(
            lineage_file=lineage_file,
            transport=transport,
            within=self._hours(self.lineage_within_hours, "lineage_within_hours"),
            min_events=self.as_int(self.min_lineage_events) or 1,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_llmops.core.governance.sanity import CheckResult, SanityCheckFailed

        try:
            result = self._run()
        except Exception as exc:  # a check that cannot run is a failed check: recorded, then raised
            result = CheckResult(
                self.check, False, f"the {self.check} check could not run: {type(exc).__name__}: {exc}", {}
            )
        finally:
            if self._scratch is not None:
                self._scratch.cleanup()
                self._scratch = None
        recorded = result.to_dict()
        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is not None:
            ti.xcom_push(key=RESULT_KEY, value=recorded)
        if not result.ok:
            raise SanityCheckFailed(f"sanity check {self.check} failed: {result.message}")
        self.log.info("sanity check %s: %s", self.check, result.message)
        return recorded
