"""DriftScoreOperator: a validated snapshot against the reference profile of the training data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.operators.base import LLMOpsBaseOperator

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context


class DriftScoreOperator(LLMOpsBaseOperator):
    """Score snapshot `snapshot_id` of `dataset` for drift.

    Reads: the snapshot's data and a reference profile. An empty `snapshot_id` means the snapshot of the asset
    event that triggered the run, else the latest snapshot of `dataset` that passed validation. The reference is
    the profile stored with the `champion` version of `model_name` (default `[llmops] model_name`) in MLflow, and
    the champion itself predicts labels for the `predicted_label` feature, unless a reference is given
    explicitly or `use_champion=False`. Without a champion it is the profile of `reference_snapshot_id` (of
    `reference_dataset`, default `dataset`), or of the earliest snapshot of that dataset that passed validation;
    a missing snapshot profile is built once and stored under `<store>/profiles/`. Scoring never re-reads the
    reference data.
    Writes: `drift.json` and `drift.html` (per-feature histograms) beside the snapshot; Prometheus gauges
    (pushed to `[llmops] pushgateway_url` when set, and written to `<home>/metrics/`).
    Decides: the drift verdict, per feature (PSI by default, fixed AND size-calibrated threshold) and for the
    embeddings (MMD permutation test and domain-classifier AUC).
    Returns (XCom): verdict, drifting and top features with their scores, report URIs.

    :param dataset: the dataset to score (1-128 letters, digits, `_`, `-` or `.`). Required. (templated)
    :param snapshot_id: the snapshot to score. Default empty: the snapshot of the validated-dataset asset event
        that triggered the run (the newest, when several are queued), else the latest snapshot of `dataset` that
        passed validation. (templated)
    :param reference_dataset: the dataset of the reference snapshot; giving it (or `reference_snapshot_id`)
        scores against a snapshot instead of the champion. Default None (or empty): `dataset`. (templated)
    :param reference_snapshot_id: the reference snapshot. Default None (or empty): the earliest snapshot of the
        reference dataset that passed validation. (templated)
    :param statistic: the statistic the per-feature verdicts use: `psi` (the default), `js` (Jensen-Shannon),
        `kl` or `kl_symmetric`. (templated)
    :param mode: which thresholds a feature's score must exceed to drift: `both` (the default: the fixed AND
        the size-calibrated threshold), `fixed` or `calibrated`. (templated)
    :param thresholds: the fixed threshold per statistic, e.g. `{"psi": 0.25}`, merged over the defaults
        (`psi` 0.2, `js` 0.1, `kl` 0.1, `kl_symmetric` 0.2; `core.drift.statistics.DEFAULT_THRESHOLDS`); only the
        threshold of `statistic` decides (a score >= it fires the fixed rule). Keys must be statistic names and
        values non-negative numbers, else ConfigurationError. Default None: the defaults.
    :param embeddings: whether to run the embedding test (MMD permutation test, domain-classifier AUC) beside
        the per-feature statistics; default True. False: no text is embedded (faster, no encoder needed), and a
        reference profile built by this task has no embedding sample.
    :param embedding_sample: the most texts embedded per side, chosen by a seeded reservoir sample: of the
        scored batch, and of the reference when this task builds its profile; default 1000. Larger is more
        sensitive and slower.
    :param text_column: the text column of the reference snapshot when this task builds its profile; default
        `text`. A stored profile (the champion's, or one built earlier) keeps the columns it was built with.
    :param label_column: the label column of the reference snapshot when this task builds its profile (its
        distribution becomes the `label` feature); default `label`; None: labels are not profiled.
    :param model_dir: the local checkpoint (a directory with `tokenizer.json` and a safetensors encoder) whose
        tokenizer and encoder build a reference profile from a snapshot. Default None: the packaged
        all-MiniLM-L6-v2 (extra `[models]`). Not used with the champion's profile, which carries its own.
    :param model_name: the registered model whose `champion` provides the reference profile and the
        `predicted_label` predictions. Default None: `[llmops] model_name` (`support_ticket_router`). (templated)
    :param use_champion: whether to score against the champion's stored profile when no reference is given;
        default True. False (or no champion yet): the profile of the reference snapshot.
    """

    template_fields: Sequence[str] = (
        *LLMOpsBaseOperator.base_template_fields,
        "dataset",
        "snapshot_id",
        "reference_dataset",
        "reference_snapshot_id",
        "statistic",
        "mode",
        "model_name",
    )
    ui_color = "#fff4e5"

    def __init__(
        self,
        *,
        dataset: str,
        snapshot_id: str = "",
        reference_dataset: str | None = None,
        reference_snapshot_id: str | None = None,
        statistic: str = "psi",
        mode: str = "both",
        thresholds: dict[str, float] | None = None,
        embeddings: bool = True,
        embedding_sample: int = 1000,
        text_column: str = "text",
        label_column: str | None = "label",
        model_dir: str | None = None,
        model_name: str | None = None,
        use_champion: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.snapshot_id = snapshot_id
        self.reference_dataset = reference_dataset
        self.reference_snapshot_id = reference_snapshot_id
        self.statistic = statistic
        self.mode = mode
        self.thresholds = _checked_thresholds(thresholds)
        self.embeddings = embeddings
        self.embedding_sample = embedding_sample
        self.text_column = text_column
        self.label_column = label_column
        self.model_dir = model_dir
        self.model_name = model_name
        self.use_champion = use_champion

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.core.drift import statistics as D
        from airflow_provider_llmops.core.drift.job import (
            ProfileSettings,
            ensure_profile,
            latest_passed,
            resolve_reference,
            score_snapshot,
            summary,
        )
        from airflow_provider_llmops.core.drift.metrics import drift_registry
        from airflow_provider_llmops.core.drift.profile import ScoreOptions
        from airflow_provider_llmops.core.metrics import export

        settings = self.settings
        store = self.store
        # an unset Param renders as None, "" or "None"
        self.reference_dataset = self.as_optional(self.reference_dataset)
        self.reference_snapshot_id = self.as_optional(self.reference_snapshot_id)
        self.snapshot_id = (
            self.as_optional(self.snapshot_id)
            or _triggering_snapshot(context, self.dataset)
            or latest_passed(store, self.dataset)
        )
        ref = store.ref(self.dataset, self.snapshot_id)
        self._lineage = {"snapshot_uri": ref.uri}
        profile_settings = ProfileSettings(
            self.text_column, self.label_column, self.model_dir, self.embedding_sample if self.embeddings else 0
        )
        champion = None
        if self.use_champion and not (self.reference_snapshot_id or self.reference_dataset):
            champion = _champion_profile(self.model_name or settings.model_name, self.registry, settings.home / "cache")
        predictor = None
        if champion is not None:
            profile, predictor, model_version = champion
            profile_uri = None
            self._lineage["model_version"] = model_version
            self.log.info(
                "reference profile %s of the champion %s v%s", profile.profile_id, model_version[1], model_version[2]
            )
        else:
            ref_dataset, ref_snapshot = resolve_reference(
                store, self.dataset, self.reference_dataset or None, self.reference_snapshot_id or None
            )
            profile, built = ensure_profile(store, ref_dataset, ref_snapshot, settings.home / "cache", profile_settings)
            profile_uri = store.profile_uri(ref_dataset, ref_snapshot)
            self.log.info(
                "reference profile %s of %s/%s (%s)",
                profile.profile_id,
                ref_dataset,
                ref_snapshot,
                "built now" if built else "reused",
            )
        thresholds = {**D.DEFAULT_THRESHOLDS, **(self.thresholds or {})}
        options = ScoreOptions(
            rules=D.DriftRules(statistic=self.statistic, mode=self.mode, thresholds=tuple(thresholds.items())),
            embeddings=self.embeddings,
            embedding_sample=self.embedding_sample,
        )
        report, json_uri, html_uri = score_snapshot(
            store, self.dataset, self.snapshot_id, profile, options, predictor=predictor
        )
        self._lineage.update(report=report, profile_uri=profile_uri)
        for name, feature in report["features"].items():
            self.log.info(
                "%-16s psi=%.4f js=%.4f kl=%.4f %s | %s",
                name,
                feature["scores"]["psi"],
                feature["scores"]["js"],
                feature["scores"]["kl"],
                "DRIFT" if feature["verdict"]["drift"] else "ok",
                feature["verdict"]["rule"],
            )
        if report.get("embedding"):
            self.log.info("embedding: %s", report["embedding"]["rule"])
        self.log.info("verdict %s for %s/%s; report %s", report["verdict"], self.dataset, self.snapshot_id, html_uri)
        metrics = export(
            drift_registry(report, self.dataset),
            job="llmops_drift",
            grouping={"dataset": self.dataset},
            pushgateway_url=settings.pushgateway_url,
            textfile=settings.home / "metrics" / f"llmops_drift_{self.dataset}.prom",
        )
        result = summary(report, json_uri, html_uri)
        result["metrics_pushed"] = metrics["pushed"]
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_llmops.lineage import facets as F
        from airflow_provider_llmops.lineage.custom_facets import drift_run_facet

        uri = self._lineage.get("snapshot_uri")
        if uri is None:
            return OperatorLineage()
        inputs = [F.input_dataset(uri)]
        report = self._lineage.get("report")
        if report is None:
            return OperatorLineage(inputs=inputs)
        if self._lineage.get("model_version"):
            inputs.append(F.model_version_dataset(*self._lineage["model_version"]))
        else:
            inputs.append(F.input_dataset(self._lineage["profile_uri"]))
        return OperatorLineage(inputs=inputs, run_facets={"llmopsDrift": drift_run_facet(report)})


def _checked_thresholds(thresholds: Any) -> Any:
    """`thresholds` as given, refused (ConfigurationError) unless it maps statistic names to non-negative numbers:
    a misspelt statistic would otherwise be ignored without a word, and a non-number fail deep in scoring."""
    if thresholds is None:
        return None
    import math
    import numbers
    from collections.abc import Mapping

    from airflow_provider_llmops.core.drift.statistics import DEFAULT_THRESHOLDS, STATISTICS
    from airflow_provider_llmops.errors import ConfigurationError

    example = f"e.g. thresholds={{'psi': 0.25}} (defaults {DEFAULT_THRESHOLDS})"
    if not isinstance(thresholds, Mapping):
        raise ConfigurationError(
            f"thresholds must be a dict of statistic name -> fixed threshold, {example}; got {thresholds!r}"
        )
    unknown = sorted(str(k) for k in thresholds if k not in STATISTICS)
    if unknown:
        raise ConfigurationError(
            f"thresholds has unknown statistic(s) {unknown}: use {', '.join(STATISTICS)}, {example}"
        )
    for name, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise ConfigurationError(f"thresholds[{name!r}] must be a non-negative number, got {value!r}; {example}")
    return thresholds


def _champion_profile(model_name: str, registry: Any, cache_dir: Any) -> tuple[Any, Any, tuple[str, str, str]] | None:
    """(profile, predictor, (tracking uri, model, version)) of the champion: the drift profile stored with it
    (artifact `profile/`) and its classifier for the predicted-label feature; None without a champion."""
    import dataclasses

    from airflow_provider_llmops.core.drift.profile import ReferenceProfile
    from airflow_provider_llmops.core.model.contract import (
        CHAMPION,
        PROFILE_ARTIFACT,
        TOKENIZER_FILE,
        fetch_artifact_dir,
        fetch_model,
    )

    version = registry.alias(model_name, CHAMPION)
    if version is None:
        return None
    info = registry.get_version(model_name, version)
    if not info.run_id:
        return None
    profile = ReferenceProfile.load(fetch_artifact_dir(registry, info.run_id, PROFILE_ARTIFACT, cache_dir))
    model_dir = fetch_model(registry, info, cache_dir)
    # the profile was built with the model's tokenizer and encoder where training wrote them; use the registered copy
    profile = dataclasses.replace(
        profile, tokenizer=dataclasses.replace(profile.tokenizer, path=str(model_dir / TOKENIZER_FILE))
    )
    from airflow_provider_llmops.core.model.modeling import champion_predictor

    predictor = champion_predictor(profile, model_dir)  # at the max_length the profile's predictions were made at
    return profile, predictor, (registry.tracking_uri, model_name, version)


def _triggering_snapshot(context: Any, dataset: str) -> str | None:
    """The snapshot id carried by the validated-dataset asset event that triggered this run, if any."""
    from airflow_provider_llmops.assets import validated_asset_name

    events = context.get("triggering_asset_events") if hasattr(context, "get") else None
    found: list[tuple[str, str]] = []
    for key in events or {}:
        for event in events[key]:
            name = getattr(getattr(event, "asset", None), "name", None) or getattr(key, "name", None)
            extra = getattr(event, "extra", None) or {}
            if name == validated_asset_name(dataset) and extra.get("snapshot_id"):
                found.append((str(getattr(event, "timestamp", "")), extra["snapshot_id"]))
    return max(found)[1] if found else None  # several queued events: the newest snapshot is scored
