"""Reference profiles: everything needed to score drift against training data without re-reading it.

A profile holds, per feature, the bin edges (or categories) fixed from the reference and the reference histogram;
the training vocabulary (words and token ids); the tokenizer's identity; a bounded embedding sample with its
centroid and RBF bandwidth; and the statistics between two halves of the reference (a chunking check of how
much the reference differs from itself). It is saved as `profile.json` plus NumPy files.

Vocabulary features are measured out-of-sample: the vocabulary comes from the even rows of the reference and the
reference histogram of `oov_rate` / `unk_token_rate` from the odd rows, so the reference shows the natural rate
of unseen words in new in-distribution text (against its own full vocabulary every rate would be 0).

Labels: the `label` histogram is computed over labelled rows only, in the reference and in every batch alike
(a missing label is None, NaN or an empty string). How many reference rows had no label is kept apart
(`label_missing`), and scoring compares the unlabelled share as its own check, which never makes drift.

Predicted labels: when a predictor is given, `predict_rows` chooses which reference rows it predicts (training
passes the model's held-out split, so the reference is not the model predicting its own training rows) and
`predictor_max_length` records the truncation it predicted at; scoring must predict at the same length
(`core.model.modeling.champion_predictor`).

Format versions: 2 (this one) added `label_missing` and `predictor`. A version 1 profile still loads: its label
histogram loses the `__null__` bin (moved to `label_missing`), and its `predicted_label` reference (the model on
its own training rows, at an unrecorded length) is dropped with a note; retraining writes a version 2 profile.
A profile newer than this code is refused with a message to upgrade.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from airflow_provider_llmops import __version__
from airflow_provider_llmops.core.data.batches import Chunk
from airflow_provider_llmops.core.drift import statistics as D
from airflow_provider_llmops.core.drift.features import (
    NUMERIC_FEATURES,
    TextFeaturizer,
    TokenizerRef,
    VocabularyBuilder,
    load_tokenizer,
)

PROFILE_FILE = "profile.json"
TOKENS_FILE = "token_seen.npy"
EMBEDDINGS_FILE = "embedding_sample.npy"
PROFILE_VERSION = 2
OUT_OF_SAMPLE = ("oov_rate", "unk_token_rate")
EXCLUDED_COLUMNS = {"id", "timestamp", "text_length", "text_words"}

Predictor = Callable[[list[str]], list[str]]
RowSelector = Callable[[Chunk], "list[bool]"]


def is_missing_label(value: Any) -> bool:
    """A row without a label: None, NaN or a blank string (training skips the same rows)."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and value != value)


@dataclass
class FeatureProfile:
    name: str
    binning: D.NumericBinning | D.CategoricalBinning
    counts: np.ndarray
    halves: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "numeric" if isinstance(self.binning, D.NumericBinning) else "categorical"

    def to_dict(self) -> dict[str, Any]:
        return {**self.binning.to_dict(), "counts": self.counts.tolist(), "halves": self.halves}

    @classmethod
    def from_dict(cls, name: str, spec: dict[str, Any]) -> FeatureProfile:
        return cls(
            name=name,
            binning=D.binning_from_dict(spec),
            counts=np.asarray(spec["counts"], dtype=np.int64),
            halves=spec.get("halves", {}),
        )


@dataclass
class EmbeddingProfile:
    model: str
    sample: np.ndarray  # (n, d) float32, L2-normalised
    bandwidth: float

    @property
    def centroid(self) -> np.ndarray:
        return self.sample.mean(0)


@dataclass
class ReferenceProfile:
    row_count: int
    text_column: str
    label_column: str | None
    categorical_columns: list[str]
    tokenizer: TokenizerRef
    features: dict[str, FeatureProfile]
    word_vocab: list[str]
    token_seen: np.ndarray
    snapshot_ids: list[str] = field(default_factory=list)
    embedding: EmbeddingProfile | None = None
    created_at: str = ""
    predicted_labels: bool = False
    label_missing: int = 0  # reference rows without a label (not in the `label` histogram)
    predictor: dict[str, Any] | None = None  # how `predicted_label` was made: max_length, rows rule, rows predicted
    notes: list[str] = field(default_factory=list)  # what loading an older format changed
    stored_id: str = ""  # the id a migrated profile was stored under (kept, so tags and reports still match)

    @property
    def predictor_max_length(self) -> int | None:
        """The truncation length the reference predictions were made at (None: not recorded)."""
        value = (self.predictor or {}).get("max_length")
        return int(value) if value is not None else None

    @property
    def profile_id(self) -> str:
        if self.stored_id:
            return self.stored_id
        identity = self._core_dict()
        identity["tokenizer"] = {
            k: v for k, v in identity["tokenizer"].items() if k != "path"
        }  # where it lies is not what it is
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
        digest.update(self.token_seen.tobytes())
        if self.embedding is not None:
            digest.update(self.embedding.sample.tobytes())
        return digest.hexdigest()[:16]

    def _core_dict(self) -> dict[str, Any]:
        return {
            "version": PROFILE_VERSION,
            "row_count": self.row_count,
            "text_column": self.text_column,
            "label_column": self.label_column,
            "categorical_columns": self.categorical_columns,
            "tokenizer": self.tokenizer.to_dict(),
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "word_vocab": self.word_vocab,
            "snapshot_ids": self.snapshot_ids,
            "predicted_labels": self.predicted_labels,
            "label_missing": self.label_missing,
            "predictor": self.predictor,
            "embedding": None
            if self.embedding is None
            else {
                "model": self.embedding.model,
                "bandwidth": self.embedding.bandwidth,
                "rows": int(len(self.embedding.sample)),
            },
        }

    def to_files(self) -> dict[str, bytes]:
        """The profile as files; `profile.json` comes last and marks a complete profile."""
        import io

        files: dict[str, bytes] = {}
        for name, array in (
            (TOKENS_FILE, self.token_seen),
            (EMBEDDINGS_FILE, None if self.embedding is None else self.embedding.sample),
        ):
            if array is not None:
                buffer = io.BytesIO()
                np.save(buffer, array, allow_pickle=False)
                files[name] = buffer.getvalue()
        body = {
            **self._core_dict(),
            "profile_id": self.profile_id,
            "created_at": self.created_at,
            "provider_version": __version__,
        }
        files[PROFILE_FILE] = json.dumps(body, indent=1).encode()
        return files

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self.to_files().items():  # profile.json last: a directory without it is not a profile
            tmp = directory / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(directory / name)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ReferenceProfile:
        directory = Path(directory)
        path = directory / PROFILE_FILE
        if not path.is_file():
            from airflow_provider_llmops.errors import ConfigurationError

            raise ConfigurationError(f"no reference profile at {directory} (missing {PROFILE_FILE})")
        body = json.loads(path.read_text())
        version = int(body.get("version", 1))
        if version > PROFILE_VERSION:
            from airflow_provider_llmops.errors import ConfigurationError

            raise ConfigurationError(
                f"the reference profile at {directory} has format version {version}, newer than this provider reads "
                f"({PROFILE_VERSION}; written by airflow-provider-llmops {body.get('provider_version', '?')}): "
                "upgrade airflow-provider-llmops"
            )
        notes: list[str] = []
        if version < 2:
            body, notes = _migrate_v1(body)
        embedding = None
        if body.get("embedding"):
            embedding = EmbeddingProfile(
                model=body["embedding"]["model"],
                sample=np.load(directory / EMBEDDINGS_FILE, allow_pickle=False),
                bandwidth=float(body["embedding"]["bandwidth"]),
            )
        return cls(
            row_count=body["row_count"],
            text_column=body["text_column"],
            label_column=body["label_column"],
            categorical_columns=body["categorical_columns"],
            tokenizer=TokenizerRef(**body["tokenizer"]),
            features={name: FeatureProfile.from_dict(name, spec) for name, spec in body["features"].items()},
            word_vocab=body["word_vocab"],
            token_seen=np.load(directory / TOKENS_FILE, allow_pickle=False),
            snapshot_ids=body.get("snapshot_ids", []),
            embedding=embedding,
            created_at=body.get("created_at", ""),
            predicted_labels=body.get("predicted_labels", False),
            label_missing=int(body.get("label_missing", 0)),
            predictor=body.get("predictor"),
            notes=notes,
            stored_id=body.get("profile_id", "") if notes else "",
        )


def _migrate_v1(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A version 1 profile body in the version 2 layout, and notes saying what changed."""
    body = dict(body)
    features = dict(body["features"])
    notes = ["profile format 1 read as format 2"]
    label = features.get("label")
    if label is not None and "__null__" in label["categories"]:
        index = label["categories"].index("__null__")
        counts = list(label["counts"])
        body["label_missing"] = int(counts.pop(index))
        categories = [c for c in label["categories"] if c != "__null__"]
        features["label"] = {**label, "categories": categories, "counts": counts, "halves": {}}
        notes.append(f"label: {body['label_missing']} unlabelled reference rows moved out of the label histogram")
    if "predicted_label" in features:
        del features["predicted_label"]
        body["predicted_labels"] = False
        notes.append(
            "predicted_label dropped: a format 1 reference was predicted on the model's own training rows at an "
            "unrecorded max_length; retrain to get a format 2 profile"
        )
    body["features"] = features
    body["predictor"] = None
    return body, notes


def _texts(chunk: Chunk, column: str) -> list[str]:
    return ["" if t is None else str(t) for t in chunk[column]]


def _model_dir(tokenizer: TokenizerRef) -> Path:
    return Path(tokenizer.path).parent


def build_profile(
    chunks: Callable[[], Iterator[Chunk]],
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    categorical_columns: list[str] | None = None,
    model_dir: str | Path | None = None,
    bins: int = 10,
    max_categories: int = 50,
    embedding_sample: int = 1000,
    predictor: Predictor | None = None,
    snapshot_ids: list[str] | None = None,
    predict_rows: RowSelector | None = None,
    predict_rows_rule: str = "every reference row",
    predictor_max_length: int | None = None,
    predicted_categories: Iterable[str] = (),
) -> ReferenceProfile:
    """Build a profile from a reference streamed twice (`chunks()` must return a fresh iterator each call).

    `predictor` predicts the rows `predict_rows(chunk)` marks (every row without it) for the `predicted_label`
    reference; `predict_rows_rule` (text) and `predictor_max_length` are recorded in the profile, and
    `predicted_categories` (the model's label set) get a bin even when no chosen row was predicted as them.
    `label_column` values that are missing (`is_missing_label`) are counted in `label_missing`, not binned."""
    from airflow_provider_llmops.core.drift.embedding import Encoder, Reservoir, median_bandwidth

    tokenizer, tokenizer_ref = load_tokenizer(model_dir)
    vocabulary = VocabularyBuilder(tokenizer.get_vocab_size())
    featurizer = TextFeaturizer(tokenizer)
    numeric: dict[str, list[np.ndarray]] = {"char_length": [], "token_count": []}
    categorical: dict[str, tuple[Counter[Any], Counter[Any]]] = {}  # column -> value counts of the even, odd rows
    reservoir = Reservoir(embedding_sample, seed=17)
    rows = 0
    label_missing = 0
    predicted_rows = 0
    auto_columns = categorical_columns is None
    # pass 1: lengths, categories, vocabulary from the even rows, embedding sample
    for chunk in chunks():
        if text_column not in chunk:
            from airflow_provider_llmops.errors import ConfigurationError

            raise ConfigurationError(f"reference has no text column {text_column!r}; columns: {sorted(chunk)}")
        texts = _texts(chunk, text_column)
        ids = featurizer.tokenize(texts)
        feats = featurizer.features(texts, ids)
        for name in numeric:
            numeric[name].append(feats[name].astype(np.float32))
        offset = rows % 2
        vocabulary.add(texts[offset::2], ids[offset::2])
        columns = (
            [c for c in chunk if c not in EXCLUDED_COLUMNS and c != text_column]
            if auto_columns
            else list(categorical_columns or [])
        )
        if label_column and label_column in chunk and label_column not in columns:
            columns.append(label_column)
        halves_by_column: dict[str, tuple[list[Any], list[Any]]] = {}
        for column in columns:
            values = list(chunk.get(column, [None] * len(texts)))
            even_values, odd_values = values[offset::2], values[1 - offset :: 2]
            if column == label_column:
                label_missing += sum(map(is_missing_label, values))
                even_values = [v for v in even_values if not is_missing_label(v)]
                odd_values = [v for v in odd_values if not is_missing_label(v)]
            halves_by_column[column] = (even_values, odd_values)
        if predictor is not None:
            chosen = [t for t, keep in zip(texts, predict_rows(chunk), strict=True) if keep] if predict_rows else texts
            predictions = list(predictor(chosen)) if chosen else []
            start = predicted_rows % 2
            halves_by_column["predicted_label"] = (predictions[start::2], predictions[1 - start :: 2])
            predicted_rows += len(predictions)
        for column, (even_values, odd_values) in halves_by_column.items():
            even, odd = categorical.setdefault(column, (Counter(), Counter()))
            even.update(even_values)
            odd.update(odd_values)
        reservoir.add(texts)
        rows += len(texts)

    word_vocab = vocabulary.word_vocab()
    features: dict[str, FeatureProfile] = {}
    halves_index = np.arange(rows) % 2
    for name, parts in numeric.items():
        values = np.concatenate(parts) if parts else np.zeros(0)
        binning = D.NumericBinning.from_reference(values, bins)
        halves = (
            D.compare(binning.counts(values[halves_index == 0]), binning.counts(values[halves_index == 1]))
            if rows >= 4
            else {}
        )
        features[name] = FeatureProfile(name, binning, binning.counts(values), halves)
    label_present = predicted_present = False
    if predictor is not None:
        declared = {str(c): 0 for c in predicted_categories}
        categorical.setdefault("predicted_label", (Counter(), Counter()))[0].update(declared)
    for column, (even, odd) in categorical.items():
        combined = even + odd  # note: `+` drops zero counts, so the declared categories are added back below
        if column == "predicted_label":
            if predicted_rows == 0:
                continue
            combined.update({k: 0 for k in even})
            predicted_present = True
        if column != label_column and column != "predicted_label" and _looks_like_identifier(combined, rows):
            continue
        if column == label_column:
            if not combined:
                continue
            label_present = True
        binning = D.CategoricalBinning.from_counter(combined, max_categories)
        name = _feature_name(column, label_column)
        halves = D.compare(binning.counts_from_counter(even), binning.counts_from_counter(odd)) if rows >= 4 else {}
        features[name] = FeatureProfile(name, binning, binning.counts_from_counter(combined), halves)

    # pass 2: out-of-sample vocabulary rates of the odd rows against the even rows' vocabulary
    featurizer = TextFeaturizer(tokenizer, set(word_vocab), vocabulary.token_seen)
    rates: dict[str, list[np.ndarray]] = {name: [] for name in OUT_OF_SAMPLE}
    seen = 0
    for chunk in chunks():
        texts = _texts(chunk, text_column)
        offset = 1 - seen % 2
        held_out = texts[offset::2]
        feats = featurizer.features(held_out)
        for name in OUT_OF_SAMPLE:
            rates[name].append(feats[name])
        seen += len(texts)
    for name, parts in rates.items():
        values = np.concatenate(parts) if parts else np.zeros(0)
        binning = D.NumericBinning.from_reference(values, bins)
        features[name] = FeatureProfile(name, binning, binning.counts(values))

    embedding = None
    if embedding_sample > 0 and reservoir.items:
        encoder = Encoder(_model_dir(tokenizer_ref))
        sample = encoder.encode(reservoir.items)
        embedding = EmbeddingProfile(model=encoder.name, sample=sample, bandwidth=median_bandwidth(sample))
    return ReferenceProfile(
        row_count=rows,
        text_column=text_column,
        label_column=label_column if label_present else None,
        categorical_columns=[
            c for c in categorical if c not in (label_column, "predicted_label") and f"meta:{c}" in features
        ],
        tokenizer=tokenizer_ref,
        features=features,
        word_vocab=word_vocab,
        token_seen=vocabulary.token_seen,
        snapshot_ids=list(snapshot_ids or []),
        embedding=embedding,
        created_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        predicted_labels=predicted_present,
        label_missing=label_missing if label_present else 0,
        predictor=None
        if not predicted_present
        else {
            "max_length": predictor_max_length,
            "rows": predict_rows_rule if predict_rows else "every reference row",
            "predicted_rows": predicted_rows,
        },
    )


def _feature_name(column: str, label_column: str | None) -> str:
    if column == label_column:
        return "label"
    if column == "predicted_label":
        return "predicted_label"
    return f"meta:{column}"


def _looks_like_identifier(counts: Counter[Any], rows: int) -> bool:
    """Free text or ids are not categorical: many distinct values, most of them unique."""
    distinct = len(counts)
    return distinct > 1000 or (rows >= 50 and distinct > 0.5 * rows)


# --- scoring -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreOptions:
    rules: D.DriftRules = D.DriftRules()
    embeddings: bool = True
    embedding_sample: int = 1000
    embedding_rules: Any = None
    features: tuple[str, ...] | None = None  # monitored features; None = all in the profile
    label_missing_gap: float = 0.2  # unlabelled-share check: flag a partly labelled batch this far off the reference


def label_missing_check(
    reference_missing: int, reference_rows: int, missing: int, rows: int, gap: float
) -> dict[str, Any]:
    """The unlabelled share of a batch against the reference's: its own check, reported and never drift.

    Flagged when the batch is partly labelled (an unlabelled batch is the normal case in production and says
    nothing) and its unlabelled share differs from the reference's by at least `gap` (absolute)."""
    ref_share = reference_missing / reference_rows if reference_rows else 0.0
    share = missing / rows if rows else 0.0
    partly = 0 < missing < rows
    flagged = partly and abs(share - ref_share) >= gap
    if not partly:
        rule = "every row labelled" if missing == 0 else "no row labelled: not checked"
    else:
        rule = f"{share:.1%} unlabelled vs {ref_share:.1%} in the reference: {'>=' if flagged else '<'} {gap:g} apart"
    return {
        "reference_share": ref_share,
        "current_share": share,
        "unlabelled_rows": missing,
        "flagged": bool(flagged),
        "rule": rule,
    }


def score(
    profile: ReferenceProfile,
    chunks: Iterable[Chunk],
    options: ScoreOptions | None = None,
    predictor: Predictor | None = None,
) -> dict[str, Any]:
    """Score a batch (streamed in chunks) against a profile. Never reads the reference data."""
    from airflow_provider_llmops.core.drift.embedding import EmbeddingRules, Reservoir

    options = options or ScoreOptions()
    timings = {"tokenize": 0.0, "features": 0.0, "statistics": 0.0, "embedding": 0.0, "read": 0.0}
    started = time.perf_counter()
    tokenizer, _ = load_tokenizer(profile.tokenizer.path)
    featurizer = TextFeaturizer(tokenizer, set(profile.word_vocab), profile.token_seen)
    counts = {name: np.zeros(f.binning.size, dtype=np.int64) for name, f in profile.features.items()}
    reservoir = Reservoir(options.embedding_sample, seed=23)
    rows = 0
    words_total = words_unseen = 0.0
    labelled = 0
    label_seen = False  # the batch has the label column at all
    mark = time.perf_counter()
    for chunk in chunks:
        timings["read"] += time.perf_counter() - mark
        texts = _texts(chunk, profile.text_column) if profile.text_column in chunk else []
        if profile.text_column not in chunk:
            from airflow_provider_llmops.errors import ConfigurationError

            raise ConfigurationError(f"batch has no text column {profile.text_column!r}; columns: {sorted(chunk)}")
        t0 = time.perf_counter()
        ids = featurizer.tokenize(texts)
        t1 = time.perf_counter()
        feats = featurizer.features(texts, ids)
        t2 = time.perf_counter()
        for name in NUMERIC_FEATURES:
            if name in counts:
                counts[name] += profile.features[name].binning.counts(feats[name])
        for name, feature in profile.features.items():
            if feature.kind != "categorical":
                continue
            if name == "label":
                label_seen = label_seen or (profile.label_column or "") in chunk
                values = [v for v in chunk.get(profile.label_column or "", []) if not is_missing_label(v)]
                labelled += len(values)
            elif name == "predicted_label":
                values = predictor(texts) if predictor is not None else []
            else:
                values = chunk.get(name.removeprefix("meta:"), [None] * len(texts))
            counts[name] += feature.binning.counts(values)
        if "oov_rate" in feats:
            token_totals = np.fromiter((len(t.split()) for t in texts), dtype=np.float64, count=len(texts))
            words_total += token_totals.sum()
            words_unseen += float((feats["oov_rate"] * token_totals).sum())
        if options.embeddings and profile.embedding is not None:
            reservoir.add(texts)
        t3 = time.perf_counter()
        timings["tokenize"] += t1 - t0
        timings["features"] += t2 - t1
        timings["statistics"] += t3 - t2
        rows += len(texts)
        mark = time.perf_counter()

    t_stats = time.perf_counter()
    report_features: dict[str, Any] = {}
    monitored = set(options.features) if options.features is not None else set(profile.features)
    for name, feature in profile.features.items():
        if name == "label" and labelled == 0:
            continue  # an unlabelled batch says nothing about label shift
        if name == "predicted_label" and predictor is None:
            continue
        current = counts[name]
        size = int(current.sum())
        scores = D.compare(feature.counts, current)
        calibrated = D.calibrated_thresholds(feature.counts, size, name, options.rules.draws, options.rules.sigmas)
        decision = D.verdict(scores, calibrated, options.rules, size)
        decision["monitored"] = name in monitored
        reference_p, current_p = D.proportions(feature.counts), D.proportions(current)
        report_features[name] = {
            "kind": feature.kind,
            "rows": size,
            "scores": scores,
            "psi_band": D.psi_band(scores["psi"]),
            "calibrated_thresholds": calibrated,
            "fixed_thresholds": dict(options.rules.thresholds),
            "reference_halves": feature.halves,
            "verdict": decision,
            "histogram": {
                "bins": feature.binning.labels(),
                "reference": reference_p.tolist(),
                "current": current_p.tolist(),
                "current_counts": current.tolist(),
            },
        }
    timings["statistics"] += time.perf_counter() - t_stats

    embedding = None
    if options.embeddings and profile.embedding is not None:
        from airflow_provider_llmops.core.drift.embedding import Encoder, embedding_drift

        t0 = time.perf_counter()
        encoder = Encoder(_model_dir(profile.tokenizer))
        current_sample = (
            encoder.encode(reservoir.items)
            if reservoir.items
            else np.zeros((0, profile.embedding.sample.shape[1]), dtype=np.float32)
        )
        t1 = time.perf_counter()
        embedding = embedding_drift(
            profile.embedding.sample,
            current_sample,
            profile.embedding.bandwidth,
            options.embedding_rules or EmbeddingRules(),
        )
        t2 = time.perf_counter()
        embedding["seconds_embedding"] = t1 - t0
        embedding["seconds_math"] = t2 - t1
        embedding["model"] = profile.embedding.model
        timings["embedding"] = t2 - t0

    enough = rows >= options.rules.min_rows
    if embedding is not None and not enough:  # too few rows: the embedding test is reported but does not decide
        embedding["test_drift"], embedding["drift"] = embedding["drift"], False
        too_few = f"{rows} rows < min_rows {options.rules.min_rows}: no verdict"
        embedding["rule"] = f"{too_few} (the test alone: {embedding['rule']})"
    drifting = [n for n, f in report_features.items() if f["verdict"]["drift"] and f["verdict"]["monitored"]]
    ranked = sorted(report_features.items(), key=lambda kv: -kv[1]["scores"][options.rules.statistic])
    drift = enough and (bool(drifting) or bool(embedding and embedding["drift"]))
    checks: dict[str, Any] = {}
    if profile.label_column and label_seen:
        checks["label_missing"] = label_missing_check(
            profile.label_missing, profile.row_count, rows - labelled, rows, options.label_missing_gap
        )
    timings["total"] = time.perf_counter() - started
    return {
        "verdict": "no_data" if rows == 0 else "insufficient_data" if not enough else "drift" if drift else "no_drift",
        "drift": drift,
        "rows": rows,
        "reference": {
            "profile_id": profile.profile_id,
            "rows": profile.row_count,
            "snapshot_ids": profile.snapshot_ids,
            "tokenizer": profile.tokenizer.to_dict(),
            "predicted_label": profile.predictor,
            "notes": profile.notes,
        },
        "checks": checks,
        "rules": {
            "statistic": options.rules.statistic,
            "mode": options.rules.mode,
            "min_rows": options.rules.min_rows,
            "fixed_thresholds": dict(options.rules.thresholds),
            "sigmas": options.rules.sigmas,
            "draws": options.rules.draws,
            "epsilon": D.EPSILON,
        },
        "drifting_features": drifting,
        "top_features": [
            {
                "feature": n,
                options.rules.statistic: f["scores"][options.rules.statistic],
                "js": f["scores"]["js"],
                "drift": f["verdict"]["drift"],
            }
            for n, f in ranked[:5]
        ],
        "batch": {"word_oov_share": (words_unseen / words_total) if words_total else 0.0},
        "features": report_features,
        "embedding": embedding,
        "timings_seconds": timings,
    }
