"""The MLflow contract: the one module that names what the provider writes to and reads from MLflow.

Every alias, `llmops.*` tag and artifact path that a job, the CLI or an operator relies on is named here and only
here; the other modules import the names. Plain Python, no Airflow and no MLflow at import time (the fetch
helpers import MLflow when called), so loading a champion's profile does not import the jobs.

Registered-model aliases (moved only by `ModelRegistry.compare_and_swap`):

* `champion` (`CHAMPION`): the version that serves. Set by promote (and by rollback to the version rolled back to).
* `challenger` (`CHALLENGER`): the version under evaluation. Set by train on the version it registers; cleared by
  promote when the challenger becomes champion.
* `canary` (`CANARY`): a version taking partial traffic (its share: the model tag `llmops.canary_share`). Set by
  deploy (deploy_job.start_canary), removed when its canary completes or is rolled back.
* `candidate` (`CANDIDATE`): a version that passed the gate while a service is configured and waits for its
  canary. Set by promote, removed by deploy.
* `previous-champion` (`PREVIOUS`): the champion before the last promotion; the default rollback target. Set by
  promote, cleared by rollback.

Registered-model tags:

* `llmops.managed` (`TAG_MANAGED`): "true" on every registered model the provider created (registry).
* `llmops.alias_epoch` (`TAG_ALIAS_EPOCH`), `llmops.alias_claim` (`TAG_ALIAS_CLAIM`): the compare-and-swap
  counter and the writer in progress (registry; see its docstring).
* `llmops.audit_head` (`TAG_AUDIT_HEAD`): `<seq>:<hash>` of the newest audit record of the model (the audit
  anchor written by operators, checked by `llmops audit verify`).

Model-version tags:

* train (train_job), on the version and on its training run: `llmops.train_key` (`TAG_TRAIN_KEY`: what makes a
  retry reuse the version), `llmops.snapshots` (`TAG_SNAPSHOTS`, `dataset/snapshot_id`, comma separated),
  `llmops.dag_id` (`TAG_DAG_ID`), `llmops.dag_run_id` (`TAG_DAG_RUN`), `llmops.provider_version` (`TAG_PROVIDER`),
  `llmops.base_model` (`TAG_BASE_MODEL`), `llmops.task` (`TAG_TASK`), `llmops.split_seed` (`TAG_SEED`) and
  `llmops.validation_fraction` (`TAG_VAL_FRACTION`) (from which evaluate recomputes the held-out split) and
  `llmops.profile_id` (`TAG_PROFILE`: the drift profile's id). On the version only: `llmops.train.<metric>`
  (`TAG_TRAIN_METRIC_PREFIX`: the final training metrics). On the run only: `llmops.stopped_by`
  (`TAG_STOPPED_BY`: why training stopped). The ONNX export, on the version and the run: `llmops.onnx`
  (`TAG_ONNX`: `exported` or `skipped`), `llmops.onnx_reason` (`TAG_ONNX_REASON`: why it was skipped),
  `llmops.onnx_max_abs_diff` (`TAG_ONNX_MAX_ABS_DIFF`: the largest |score(onnx) - score(torch)| over the held-out
  rows), `llmops.onnx_label_agreement` (`TAG_ONNX_LABEL_AGREEMENT`: the share of those rows with the same label),
  `llmops.onnx_parity_rows` (`TAG_ONNX_PARITY_ROWS`) and `llmops.onnx_tolerance` (`TAG_ONNX_TOLERANCE`: the bound
  on the score difference). The run also gets the metrics `onnx_max_abs_diff`, `onnx_label_agreement` and
  `onnx_export_seconds` (`METRIC_ONNX_*`).
* evaluate (evaluate_job), on the challenger: `llmops.eval.<metric>` (`TAG_EVAL_PREFIX`: its overall metrics on
  the frozen set), `llmops.evaluation` (`TAG_EVALUATION`: the stored `evaluation.json`'s URI) and
  `llmops.evaluation_sha256` (`TAG_EVALUATION_SHA256`: its hash, which promote checks before the gate trusts
  the report). On the evaluation run: `llmops.eval_key` (`TAG_EVAL_KEY`, what makes a retry reuse the run),
  `llmops.model` (`TAG_MODEL`), `llmops.challenger_version` (`TAG_CHALLENGER_VERSION`) and
  `llmops.champion_version` (`TAG_CHAMPION_VERSION`, empty without a champion).
* promote (promote_job): `llmops.gate` (`TAG_GATE`: passed or rejected), `llmops.gate_reasons`
  (`TAG_GATE_REASONS`: JSON list), `llmops.gate_dag_run` (`TAG_GATE_DAG_RUN`), `llmops.promotion_id`
  (`TAG_PROMOTION_ID`: the intent, the decision that makes this version champion), `llmops.promoted_at`
  (`TAG_PROMOTED_AT`: it was champion, the mark rollback accepts) and `llmops.promoted_by` (`TAG_PROMOTED_BY`:
  the decision whose tags were written).
* promote with a service configured (promote_job): `llmops.candidate_id` (`TAG_CANDIDATE_ID`: the intent, the
  decision that makes this version candidate), `llmops.candidate_at` (`TAG_CANDIDATE_AT`) and `llmops.candidate_by`
  (`TAG_CANDIDATE_BY`: the decision whose tags were written).
* deploy (deploy_job): `llmops.deploy_id` (`TAG_DEPLOY_ID`: JSON intent: the deployment id, the champion before, the
  run), `llmops.canary_rejected` (`TAG_CANARY_REJECTED`: JSON: when, deployment id, reason, failing checks); a
  version deployed through its canary gets `llmops.promoted_at` / `llmops.promoted_by` (= deployment id) too.
* rollback (promote_job): `llmops.rollback_intent` (`TAG_ROLLBACK_INTENT`: JSON intent on the target) and, on the
  version rolled back from, `llmops.rolled_back` (`TAG_ROLLED_BACK`: when) and `llmops.rolled_back_by`
  (`TAG_ROLLED_BACK_BY`: the rollback's id).

Artifacts of a version's training run (train_job writes them; evaluate and drift read them):

* `model/` (`MODEL_ARTIFACT`, the registered version's source): the fine-tuned model as `training.train` writes it:
  `config.json` (`CONFIG_FILE`, whose presence marks a complete download), `model.safetensors`, `tokenizer.json`
  (`TOKENIZER_FILE`), `label_map.json` (`LABEL_MAP_FILE`: the labels, for a classifier) and `training.json`
  (`TRAINING_FILE`: the training record, with the `max_length` inference truncates at). Beside them the same
  folder is an MLflow Model (`mlflow_model.write_mlflow_model`): `MLmodel` (`MLMODEL_FILE`: a `python_function`
  flavor whose loader module wraps these safetensors files, no pickled code), `requirements.txt`,
  `python_env.yaml`, `conda.yaml` and the input example, so `mlflow.pyfunc.load_model("models:/<name>@champion")`
  works. Versions registered before this have no `MLmodel`; their weights are in the same place.
* `onnx/model.onnx` (`ONNX_ARTIFACT`, `ONNX_FILE`): the classifier exported to ONNX, only when its parity with
  torch held on the held-out split (`onnx_export.export_classifier`).
* `profile/` (`PROFILE_ARTIFACT`): the drift reference profile (`ReferenceProfile.save`), built on the training
  rows with the model's tokenizer and predictions.
* `split/split.json` (`SPLIT_ARTIFACT`, `SPLIT_FILE`): the train/validation split.
* `plots/` (`PLOTS_ARTIFACT`): the training plots.

Artifacts of an evaluation run: `evaluation/evaluation.json` (`EVALUATION_ARTIFACT`, `EVALUATION_REPORT`), a copy
of the report committed to the store with `evaluation.html` (`EVALUATION_HTML`).

Fetch helpers: `fetch_model`, `fetch_onnx`, `fetch_profile` and `fetch_artifact_dir` download a version's files
once into a local cache (versions and runs are immutable, so the cache never goes stale).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_llmops.core.model.registry import ModelRegistry, VersionInfo

# --- registered-model aliases ---------------------------------------------------------------------------------
CHAMPION = "champion"
CHALLENGER = "challenger"
CANARY = "canary"
PREVIOUS = "previous-champion"
CANDIDATE = "candidate"  # passed the gate, waits for its canary (only with a service configured)
FALLBACK = "fallback"  # optional: serves champion traffic while the champion's queue is too deep
ALIASES = (CHAMPION, CHALLENGER, CANARY, PREVIOUS, CANDIDATE, FALLBACK)

# --- tags -----------------------------------------------------------------------------------------------------
TAG_PREFIX = "llmops."

# registered model
TAG_MANAGED = "llmops.managed"
TAG_ALIAS_EPOCH = "llmops.alias_epoch"
TAG_ALIAS_CLAIM = "llmops.alias_claim"
TAG_AUDIT_HEAD = "llmops.audit_head"
TAG_CANARY_SHARE = "llmops.canary_share"  # registered model: the canary's traffic share, 0..1, read by the service

# train: version (and run)
TAG_TRAIN_KEY = "llmops.train_key"
TAG_SNAPSHOTS = "llmops.snapshots"  # dataset/snapshot_id, comma separated
TAG_DAG_ID = "llmops.dag_id"
TAG_DAG_RUN = "llmops.dag_run_id"
TAG_PROVIDER = "llmops.provider_version"
TAG_BASE_MODEL = "llmops.base_model"
TAG_TASK = "llmops.task"
TAG_SEED = "llmops.split_seed"
TAG_VAL_FRACTION = "llmops.validation_fraction"
TAG_PROFILE = "llmops.profile_id"
TAG_TRAIN_METRIC_PREFIX = "llmops.train."  # + metric name
TAG_STOPPED_BY = "llmops.stopped_by"  # run only
# train: the ONNX export (version and run)
TAG_ONNX = "llmops.onnx"  # ONNX_EXPORTED | ONNX_SKIPPED
TAG_ONNX_REASON = "llmops.onnx_reason"
TAG_ONNX_MAX_ABS_DIFF = "llmops.onnx_max_abs_diff"
TAG_ONNX_LABEL_AGREEMENT = "llmops.onnx_label_agreement"
TAG_ONNX_PARITY_ROWS = "llmops.onnx_parity_rows"
TAG_ONNX_TOLERANCE = "llmops.onnx_tolerance"
ONNX_EXPORTED = "exported"
ONNX_SKIPPED = "skipped"
METRIC_ONNX_MAX_ABS_DIFF = "onnx_max_abs_diff"
METRIC_ONNX_LABEL_AGREEMENT = "onnx_label_agreement"
METRIC_ONNX_EXPORT_SECONDS = "onnx_export_seconds"

# evaluate: challenger version
TAG_EVAL_PREFIX = "llmops.eval."  # + metric name
TAG_EVALUATION = "llmops.evaluation"
TAG_EVALUATION_SHA256 = "llmops.evaluation_sha256"
# evaluate: evaluation run
TAG_EVAL_KEY = "llmops.eval_key"
TAG_MODEL = "llmops.model"
TAG_CHALLENGER_VERSION = "llmops.challenger_version"
TAG_CHAMPION_VERSION = "llmops.champion_version"

# promote and rollback: version
TAG_GATE = "llmops.gate"
TAG_GATE_REASONS = "llmops.gate_reasons"
TAG_GATE_DAG_RUN = "llmops.gate_dag_run"
TAG_PROMOTED_AT = "llmops.promoted_at"
TAG_PROMOTION_ID = "llmops.promotion_id"  # intent: the decision that makes (made) this version champion
TAG_PROMOTED_BY = "llmops.promoted_by"  # the decision whose tags were written
TAG_ROLLED_BACK = "llmops.rolled_back"
TAG_ROLLED_BACK_BY = "llmops.rolled_back_by"
TAG_ROLLBACK_INTENT = "llmops.rollback_intent"
# promote with a service configured (the challenger becomes the candidate): version
TAG_CANDIDATE_ID = "llmops.candidate_id"  # intent: the promotion decision that makes (made) this version candidate
TAG_CANDIDATE_AT = "llmops.candidate_at"  # when it became candidate
TAG_CANDIDATE_BY = "llmops.candidate_by"  # the decision whose tags were written
# deploy (deploy_job): version
TAG_DEPLOY_ID = "llmops.deploy_id"  # intent: the deployment (canary rollout) that moves this version's aliases
TAG_CANARY_REJECTED = "llmops.canary_rejected"  # JSON: when, the deployment id and the failing checks

# --- artifacts ------------------------------------------------------------------------------------------------
MODEL_ARTIFACT = "model"
PROFILE_ARTIFACT = "profile"
PLOTS_ARTIFACT = "plots"
SPLIT_ARTIFACT = "split"
SPLIT_FILE = "split.json"
EVALUATION_ARTIFACT = "evaluation"
EVALUATION_REPORT = "evaluation.json"
EVALUATION_HTML = "evaluation.html"
ONNX_ARTIFACT = "onnx"
ONNX_FILE = "model.onnx"

# files inside `model/`
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
LABEL_MAP_FILE = "label_map.json"
TRAINING_FILE = "training.json"
MLMODEL_FILE = "MLmodel"  # present in versions registered as MLflow Models


# --- fetch helpers --------------------------------------------------------------------------------------------
def _cached_download(target: Path, complete: Any, **download: Any) -> Path:
    """Download MLflow artifacts into `target` once: into a staging folder beside it, then one rename. `complete`
    tells whether a target already holds a finished copy (another task may have won the rename)."""
    from mlflow.artifacts import download_artifacts

    if complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        local = download_artifacts(dst_path=str(staging), **download)
        try:
            Path(local).rename(target)
        except OSError:
            if not complete(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch_model(registry: ModelRegistry, version: VersionInfo, cache_dir: Path) -> Path:
    """A local copy of a version's model files (versions are immutable, so the cache never goes stale).

    The folder holds the safetensors weights, config and tokenizer (what `load_classifier`/`load_generator` read)
    both for versions registered as MLflow Models (with `MLmodel` beside the weights) and for older ones without."""
    target = cache_dir / "models" / version.name / version.version
    where = (
        {"run_id": version.run_id, "artifact_path": MODEL_ARTIFACT}
        if version.run_id
        else {"artifact_uri": version.source}
    )
    return _cached_download(target, lambda t: (t / CONFIG_FILE).is_file(), tracking_uri=registry.tracking_uri, **where)


def fetch_artifact_dir(registry: ModelRegistry, run_id: str, artifact: str, cache_dir: Path) -> Path:
    """A local copy of one artifact folder of a run (e.g. the drift profile of a model version)."""
    target = cache_dir / "runs" / run_id / artifact
    return _cached_download(
        target,
        lambda t: t.is_dir() and any(t.iterdir()),
        tracking_uri=registry.tracking_uri,
        run_id=run_id,
        artifact_path=artifact,
    )


def fetch_onnx(registry: ModelRegistry, version: VersionInfo, cache_dir: Path) -> Path | None:
    """A local copy of a version's ONNX export (`onnx/model.onnx`); None for a version without one (not a
    classifier, parity failed, registered before the export existed or from elsewhere: `TAG_ONNX_REASON` says)."""
    if not version.run_id or version.tags.get(TAG_ONNX) != ONNX_EXPORTED:
        return None
    path = fetch_artifact_dir(registry, version.run_id, ONNX_ARTIFACT, cache_dir) / ONNX_FILE
    return path if path.is_file() else None


def is_mlflow_model(model_dir: Path) -> bool:
    """Whether a fetched model folder is an MLflow Model (has `MLmodel`), as versions registered now are."""
    return (Path(model_dir) / MLMODEL_FILE).is_file()


def fetch_profile(registry: ModelRegistry, version: VersionInfo, cache_dir: Path) -> Path | None:
    """A local copy of the drift profile stored with a version (`profile/` of its run); None for a version that
    has no run (registered from elsewhere), which carries no profile."""
    if not version.run_id:
        return None
    return fetch_artifact_dir(registry, version.run_id, PROFILE_ARTIFACT, cache_dir)


def tag_names() -> dict[str, str]:
    """Every tag constant of the contract (`TAG_*`, prefixes included) by name."""
    return {name: value for name, value in globals().items() if name.startswith("TAG_") and isinstance(value, str)}
