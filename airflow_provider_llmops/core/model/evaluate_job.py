"""Champion vs challenger on one frozen evaluation set, stored with its reports and logged to MLflow.

The evaluation set is the held-out split of the challenger's training snapshots (recomputed from the seed and
fraction recorded on the version) plus the model's golden set when it has one. It is frozen: written as Parquet
next to the reports under `<store>/evaluations/<model>/<key>/`, and its content hash is part of the key. Both
models score exactly these rows. A retry of the same comparison finds the committed evaluation and reuses it.

The summary returned (evaluate's XCom) carries `report_uri` and `report_sha256`, the SHA-256 of the stored
`evaluation.json`. The gate never judges metrics handed to it: `load_evaluation` reads the report back from the
store and checks that hash. Fairness that cannot be measured (no group column with two groups of at least
`min_group_size` rows) is reported as `fairness_gap` None, `fairness_measured` False and `fairness_reason`.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.core.model.contract import (
    CHALLENGER,
    CHAMPION,
    EVALUATION_ARTIFACT,
    EVALUATION_HTML,
    EVALUATION_REPORT,
    LABEL_MAP_FILE,
    TAG_CHALLENGER_VERSION,
    TAG_CHAMPION_VERSION,
    TAG_EVAL_KEY,
    TAG_EVAL_PREFIX,
    TAG_EVALUATION,
    TAG_EVALUATION_SHA256,
    TAG_MODEL,
    TAG_SEED,
    TAG_SNAPSHOTS,
    TAG_TASK,
    TAG_VAL_FRACTION,
    fetch_model,
)
from airflow_provider_llmops.core.model.registry import ModelRegistry, VersionInfo
from airflow_provider_llmops.core.model.train_job import SnapshotSel, load_rows
from airflow_provider_llmops.core.model.training import split_rows
from airflow_provider_llmops.errors import ConfigurationError

GROUP_COLUMNS = ("region", "language", "channel")


def read_golden(path: str | Path | None) -> list[dict[str, Any]]:
    if not path:
        return []
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(f"golden set {file} does not exist")
    rows = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"golden set {file} line {number} is not JSON: {exc}") from None
    return rows


def build_eval_set(
    store: DatasetStore, challenger: VersionInfo, golden_rows: Sequence[dict[str, Any]], text_column: str = "text"
) -> list[dict[str, Any]]:
    """Held-out rows of the challenger's training snapshots (`_part` = `heldout:<dataset>/<snapshot id[:12]>`)
    plus the golden rows (`_part` = `golden`)."""
    snapshots = [SnapshotSel.parse(s) for s in challenger.tags.get(TAG_SNAPSHOTS, "").split(",") if s]
    seed = int(challenger.tags.get(TAG_SEED, "42"))
    fraction = float(challenger.tags.get(TAG_VAL_FRACTION, "0.2"))
    rows: list[dict[str, Any]] = []
    for sel in snapshots:
        _, held_out = split_rows(load_rows(store, [sel]), seed, fraction)
        rows += [{**r, "_part": f"heldout:{sel.dataset}/{sel.snapshot_id[:12]}"} for r in held_out]
    rows += [{**r, "_part": "golden"} for r in golden_rows]
    rows = [r for r in rows if isinstance(r.get(text_column), str) and r[text_column].strip()]
    if not rows:
        raise ConfigurationError(
            f"empty evaluation set for {challenger.name}/{challenger.version}: no held-out rows and no golden set"
        )
    return rows


def eval_set_id(rows: Sequence[dict[str, Any]]) -> str:
    material = json.dumps(sorted(json.dumps(r, sort_keys=True, default=str) for r in rows))
    return hashlib.sha256(material.encode()).hexdigest()


def _table_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    table = pa.table({c: [None if row.get(c) is None else str(row.get(c)) for row in rows] for c in columns})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _score_classifier(
    model_dir: Path,
    rows: Sequence[dict[str, Any]],
    labels: list[str],
    text_column: str,
    label_column: str,
    latency_sample: int,
    min_group_size: int,
) -> dict[str, Any]:
    from airflow_provider_llmops.core.model.evaluation import (
        classification_metrics,
        group_gap,
        latency_summary,
        unmeasured_reason,
    )
    from airflow_provider_llmops.core.model.modeling import load_classifier

    model = load_classifier(model_dir)
    texts = [str(r[text_column]) for r in rows]
    own = model.predict_proba(texts)
    probs = np.zeros((len(rows), len(labels)))
    for j, label in enumerate(model.labels):
        probs[:, labels.index(label)] = own[:, j]
    y_pred = [labels[i] for i in probs.argmax(axis=1)]
    y_true = [str(r[label_column]) for r in rows]
    overall = classification_metrics(y_true, y_pred, probs, labels)
    parts = {}
    for part in sorted({r["_part"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["_part"] == part]
        parts[part] = classification_metrics([y_true[i] for i in idx], [y_pred[i] for i in idx], probs[idx], labels)
    groups = {
        c: [str(r.get(c)) if r.get(c) is not None else None for r in rows]
        for c in GROUP_COLUMNS
        if any(c in r for r in rows)
    }
    if groups:
        fairness = group_gap(y_true, y_pred, groups, labels, min_group_size=min_group_size)
    else:
        reason = unmeasured_reason({}, min_group_size)
        fairness = {"gap": None, "columns": {}, "worst_column": None, "measured": False, "reason": reason}
    step = max(1, len(texts) // max(latency_sample, 1))
    latency = latency_summary(model.latencies(texts[::step][:latency_sample]))
    flat = {
        "accuracy": overall["accuracy"],
        "macro_f1": overall["macro_f1"],
        "ece": overall["ece"],
        "fairness_gap": fairness["gap"],
        "fairness_measured": bool(fairness["measured"]),
        "latency_p50_ms": latency["p50_ms"],
        "latency_p95_ms": latency["p95_ms"],
    }
    if not fairness["measured"]:
        flat["fairness_reason"] = fairness["reason"]
    for part, metrics in parts.items():
        flat[f"{part}.macro_f1"] = metrics["macro_f1"]
        flat[f"{part}.accuracy"] = metrics["accuracy"]
    return {
        "metrics": flat,
        "overall": overall,
        "parts": parts,
        "fairness": fairness,
        "latency": latency,
        "model_labels": model.labels,
    }


def _score_causal_lm(
    model_dir: Path, rows: Sequence[dict[str, Any]], text_column: str, latency_sample: int
) -> dict[str, Any]:
    import math
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from airflow_provider_llmops.core.model.evaluation import latency_summary
    from airflow_provider_llmops.core.model.modeling import trained_max_length

    max_length = trained_max_length(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=False, use_safetensors=True).eval()
    total, tokens, timings = 0.0, 0, []
    with torch.inference_mode():
        for i, row in enumerate(rows):
            enc = tokenizer(str(row[text_column]), truncation=True, max_length=max_length, return_tensors="pt")
            if enc["input_ids"].shape[1] < 2:
                continue
            started = time.perf_counter()
            out = model(**enc, labels=enc["input_ids"])
            if i < latency_sample:
                timings.append(time.perf_counter() - started)
            n = int(enc["input_ids"].shape[1]) - 1
            total += float(out.loss) * n
            tokens += n
    loss = total / max(tokens, 1)
    latency = latency_summary(timings)
    return {
        "metrics": {
            "loss": loss,
            "perplexity": math.exp(min(loss, 50.0)),
            "latency_p50_ms": latency["p50_ms"],
            "latency_p95_ms": latency["p95_ms"],
        },
        "latency": latency,
    }


def evaluate(
    *,
    store: DatasetStore,
    registry: ModelRegistry,
    model_name: str,
    challenger_version: str | None,
    golden_path: str | Path | None,
    cache_dir: Path,
    text_column: str = "text",
    label_column: str = "label",
    latency_sample: int = 50,
    min_group_size: int = 30,
    log: Any = print,
) -> dict[str, Any]:
    """Score challenger and champion; commit the evaluation; log it to MLflow. Returns the XCom summary."""
    challenger_version = challenger_version or registry.alias(model_name, CHALLENGER)
    if not challenger_version:
        raise ConfigurationError(
            f"model {model_name!r} has no challenger to evaluate (no version given and no '{CHALLENGER}' alias)"
        )
    challenger = registry.get_version(model_name, challenger_version)
    champion_version = registry.alias(model_name, CHAMPION)
    champion = registry.get_version(model_name, champion_version) if champion_version else None
    task = challenger.tags.get(TAG_TASK, "sequence-classification")
    rows = build_eval_set(
        store, challenger, read_golden(golden_path) if task == "sequence-classification" else [], text_column
    )
    set_id = eval_set_id(rows)
    key = f"v{challenger.version}-vs-{'v' + champion.version if champion else 'none'}-{set_id[:12]}"
    existing = store.read_evaluation_bytes(model_name, key)
    if existing is not None:
        log(f"evaluation {key} already committed; reusing it")
        return _returned_summary(json.loads(existing)["summary"], existing)

    if champion is not None and champion.tags.get(TAG_SEED) != challenger.tags.get(TAG_SEED):
        log(
            f"warning: champion {champion.version} was split with seed {champion.tags.get(TAG_SEED)}, "
            f"challenger with {challenger.tags.get(TAG_SEED)}: held-out rows may overlap the champion's training data"
        )
    log(
        f"evaluating {model_name}: challenger v{challenger.version} vs champion "
        f"{('v' + champion.version) if champion else '(none)'} on {len(rows)} rows (eval set {set_id[:12]})"
    )
    models = {"challenger": challenger, **({"champion": champion} if champion else {})}
    results: dict[str, Any] = {}
    labels: list[str] = []
    if task == "sequence-classification":
        label_sets = [
            json.loads((fetch_model(registry, v, cache_dir) / LABEL_MAP_FILE).read_text())["labels"]
            for v in models.values()
        ]
        labels = sorted({str(r[label_column]) for r in rows} | {str(x) for ls in label_sets for x in ls})
    for role, version in models.items():
        model_dir = fetch_model(registry, version, cache_dir)
        if task == "sequence-classification":
            results[role] = _score_classifier(
                model_dir, rows, labels, text_column, label_column, latency_sample, min_group_size
            )
        else:
            results[role] = _score_causal_lm(model_dir, rows, text_column, latency_sample)
        shown = ", ".join(
            f"{k} {v:.4f}" for k, v in results[role]["metrics"].items() if isinstance(v, float) and "." not in k
        )
        log(f"{role} v{version.version}: {shown}")

    parts: dict[str, int] = {}
    for row in rows:
        parts[row["_part"]] = parts.get(row["_part"], 0) + 1
    summary = {
        "model_name": model_name,
        "task": task,
        "key": key,
        "challenger_version": challenger.version,
        "champion_version": champion.version if champion else None,
        "challenger": results["challenger"]["metrics"],
        "champion": results["champion"]["metrics"] if champion else None,
        "eval_set": {"id": set_id, "rows": len(rows), "parts": parts},
        "report_uri": store.evaluation_uri(model_name, key),
        "html_uri": store.evaluation_uri(model_name, key, EVALUATION_HTML),
    }
    run_id = _log_to_mlflow(registry, model_name, key, summary, results)
    summary["mlflow_run_id"] = run_id
    report = {"summary": summary, "labels": labels, "results": results}
    from airflow_provider_llmops.core.report_html import render_evaluation

    files = {
        "eval_set.parquet": _table_bytes(rows),
        EVALUATION_HTML: render_evaluation(report).encode(),
        EVALUATION_REPORT: json.dumps(report, indent=1, default=_jsonable, allow_nan=False).encode(),
    }
    store.commit_evaluation(model_name, key, files)
    stored = store.read_evaluation_bytes(model_name, key)  # another try may have committed first: hash what is stored
    if stored is None:
        where = store.evaluation_uri(model_name, key)
        raise ConfigurationError(f"evaluation {key} of {model_name!r} was committed but cannot be read from {where}")
    returned = _returned_summary(json.loads(stored)["summary"], stored)
    eval_tags = {
        f"{TAG_EVAL_PREFIX}{k}": v for k, v in returned["challenger"].items() if v is not None and "." not in k
    }
    eval_tags.update({TAG_EVALUATION: returned["report_uri"], TAG_EVALUATION_SHA256: returned["report_sha256"]})
    registry.tag_version(model_name, challenger.version, eval_tags)
    return returned


def report_sha256(data: bytes) -> str:
    """The hash that identifies a stored evaluation report: SHA-256 (hex) of its exact bytes."""
    return hashlib.sha256(data).hexdigest()


def _returned_summary(summary: dict[str, Any], stored: bytes) -> dict[str, Any]:
    """The XCom of an evaluation: its stored summary plus the hash of the stored report."""
    return {**summary, "report_sha256": report_sha256(stored)}


class EvaluationIntegrityError(ConfigurationError):
    """The evaluation a decision would judge is missing, elsewhere than the store says, or not what was hashed."""


def load_evaluation(store: DatasetStore, reference: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Read the evaluation a gate judges from where evaluate stored it and check it: `reference` is evaluate's
    XCom ({model_name, key, report_uri, report_sha256}). Reads `<store>/evaluations/<model>/<key>/evaluation.json`
    of the configured store, requires its URI to be `report_uri` and its SHA-256 to be `report_sha256`, and
    returns (the report's summary, the hash). Metrics passed along with the reference are never used."""
    missing = [k for k in ("model_name", "key", "report_uri", "report_sha256") if not reference.get(k)]
    if missing:
        raise EvaluationIntegrityError(
            f"the evaluation reference lacks {', '.join(missing)}: pass the output of EvaluateModelOperator "
            "(evaluate.output)"
        )
    model_name, key = str(reference["model_name"]), str(reference["key"])
    expected_uri = store.evaluation_uri(model_name, key)
    if str(reference["report_uri"]) != expected_uri:
        raise EvaluationIntegrityError(
            f"evaluation report {reference['report_uri']!r} is not where the configured store keeps evaluation {key!r} "
            f"of {model_name!r} ({expected_uri}); nothing was promoted"
        )
    raw = store.read_evaluation_bytes(model_name, key)
    if raw is None:
        raise EvaluationIntegrityError(f"evaluation {expected_uri} does not exist; re-run evaluate. Nothing changed")
    digest = report_sha256(raw)
    if digest != str(reference["report_sha256"]):
        raise EvaluationIntegrityError(
            f"evaluation {expected_uri} does not match its hash (stored sha256 {digest[:16]}..., evaluate recorded "
            f"{str(reference['report_sha256'])[:16]}...): it was changed after evaluation. Re-run the evaluate task. "
            "Nothing was promoted"
        )
    try:
        summary = json.loads(raw)["summary"]
    except (ValueError, KeyError, TypeError) as exc:
        problem = f"evaluation {expected_uri} is not an evaluation report ({exc}); nothing changed"
        raise EvaluationIntegrityError(problem) from None
    if summary.get("model_name") != model_name or summary.get("key") != key:
        about = f"{summary.get('model_name')!r}/{summary.get('key')!r}"
        wanted = f"{model_name!r}/{key!r}"
        raise EvaluationIntegrityError(f"evaluation {expected_uri} is about {about}, not {wanted}; nothing changed")
    return summary, digest


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _log_to_mlflow(
    registry: ModelRegistry, model_name: str, key: str, summary: dict[str, Any], results: dict[str, Any]
) -> str:
    client = registry.client
    experiment_id = registry.experiment_id(registry.experiment_name)
    found = registry.find_runs(experiment_id, {TAG_EVAL_KEY: key})
    if found and found[0].info.status == "FINISHED":
        return found[0].info.run_id
    run = client.create_run(
        experiment_id,
        run_name=f"evaluate-{model_name}-{key}",
        tags={
            TAG_EVAL_KEY: key,
            TAG_MODEL: model_name,
            TAG_CHALLENGER_VERSION: summary["challenger_version"],
            TAG_CHAMPION_VERSION: str(summary["champion_version"] or ""),
        },
    )
    run_id = run.info.run_id
    try:
        for role, result in results.items():
            for metric, value in result["metrics"].items():
                if isinstance(value, (int, float)) and value is not None:
                    client.log_metric(run_id, f"{role}.{metric}", float(value))
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / EVALUATION_REPORT).write_text(
                json.dumps({"summary": summary, "results": results}, indent=1, default=_jsonable)
            )
            client.log_artifact(run_id, str(Path(tmp) / EVALUATION_REPORT), EVALUATION_ARTIFACT)
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id
