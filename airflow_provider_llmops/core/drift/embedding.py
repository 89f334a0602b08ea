"""Embedding drift on bounded samples: centroid cosine distance, MMD with a permutation p-value, and the AUC of a
classifier that tries to tell reference from current (a second opinion).

Samples are capped: at most `embedding_sample` texts are embedded (default 1,000; the centroid uses all of them)
and MMD and the classifier use at most `max_rows` per side (default 2,000), so the kernel matrix is at most
4,000^2 and memory does not grow with the batch. The RBF bandwidth is the median pairwise distance of the
reference sample, fixed in the profile. The encoder is the model's own (mean-pooled, L2-normalised),
all-MiniLM-L6-v2 by default.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class Encoder:
    """Sentence embeddings from a local transformers checkpoint (safetensors, no remote code, offline)."""

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 32, max_length: int = 128) -> None:
        from airflow_provider_llmops.core.drift.features import default_model_dir

        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        self.batch_size = batch_size
        self.max_length = max_length
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def name(self) -> str:
        from airflow_provider_llmops.core.drift.features import model_name

        return model_name(self.model_dir)

    def _load(self) -> None:
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()

            self._tokenizer = AutoTokenizer.from_pretrained(
                self.model_dir, local_files_only=True, trust_remote_code=False
            )
            self._model = AutoModel.from_pretrained(
                self.model_dir, local_files_only=True, trust_remote_code=False, use_safetensors=True
            )
            self._model.eval()

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        self._load()
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths per batch: little padding
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch_texts = [texts[i] for i in order[start : start + self.batch_size]]
                batch = self._tokenizer(
                    batch_texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                )
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = np.empty((len(texts), out[0].shape[1]), dtype=np.float32)
        vectors[order] = np.concatenate(out)
        return vectors


class Reservoir:
    """A seeded, fixed-size uniform sample of a stream (Algorithm R): the same stream gives the same sample."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.items: list[str] = []
        self.seen = 0
        self.rng = np.random.default_rng(seed)

    def add(self, items: list[str]) -> None:
        for item in items:
            if len(self.items) < self.size:
                self.items.append(item)
            else:
                j = int(self.rng.integers(0, self.seen + 1))
                if j < self.size:
                    self.items[j] = item
            self.seen += 1


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aa = np.einsum("ij,ij->i", a, a)[:, None]
    bb = np.einsum("ij,ij->i", b, b)[None, :]
    return np.maximum(aa + bb - 2.0 * a @ b.T, 0.0)


def median_bandwidth(sample: np.ndarray, limit: int = 1000) -> float:
    x = sample[:limit].astype(np.float64)
    d = _sq_dists(x, x)
    upper = d[np.triu_indices(len(x), k=1)]
    median = float(np.median(np.sqrt(upper))) if upper.size else 1.0
    return median if median > 0 else 1.0


def mmd_permutation_test(
    x: np.ndarray, y: np.ndarray, bandwidth: float, permutations: int = 200, seed: int = 0
) -> tuple[float, float]:
    """Unbiased MMD^2 with an RBF kernel, and its permutation p-value ((1 + #perm >= observed) / (1 + B))."""
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        return 0.0, 1.0
    pooled = np.concatenate([x, y]).astype(np.float64)
    kernel = np.exp(-_sq_dists(pooled, pooled) / (2.0 * bandwidth**2))
    np.fill_diagonal(kernel, 0.0)

    # Columns of `membership` mark the x-side of the observed split and of each permutation; all MMD^2 values
    # come from one kernel-matrix product, so the test costs O((n + m)^2 * B) flops and O((n + m)^2) memory.
    rng = np.random.default_rng(seed)
    membership = np.zeros((n + m, permutations + 1))
    membership[:n, 0] = 1.0
    for b in range(1, permutations + 1):
        membership[rng.permutation(n + m)[:n], b] = 1.0
    other = 1.0 - membership
    k_member = kernel @ membership
    kxx = np.einsum("ib,ib->b", membership, k_member) / (n * (n - 1))
    kxy = np.einsum("ib,ib->b", other, k_member) / (n * m)
    kyy = np.einsum("ib,ib->b", other, kernel @ other) / (m * (m - 1))
    values = kxx + kyy - 2.0 * kxy
    observed = float(values[0])
    exceed = int(np.sum(values[1:] >= observed))
    return observed, (1 + exceed) / (1 + permutations)


def domain_classifier_auc(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated ROC AUC of a logistic regression separating reference (x) from current (y); 0.5 = alike."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    if min(len(x), len(y)) < folds:
        return 0.5
    features = np.concatenate([x, y])
    target = np.r_[np.zeros(len(x)), np.ones(len(y))]
    scores = np.zeros(len(target))
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(features, target):
        model = LogisticRegression(max_iter=500, C=1.0)
        model.fit(features[train], target[train])
        scores[test] = model.predict_proba(features[test])[:, 1]
    return float(roc_auc_score(target, scores))


@dataclass(frozen=True)
class EmbeddingRules:
    alpha: float = 0.01  # MMD permutation p-value below this ...
    auc: float = 0.65  # ... and a domain classifier at least this good: drift
    permutations: int = 200
    max_rows: int = 2000  # MMD and the classifier use at most this many rows per side (memory O(max_rows^2))


def embedding_drift(
    reference: np.ndarray, current: np.ndarray, bandwidth: float, rules: EmbeddingRules
) -> dict[str, Any]:
    seed = int.from_bytes(hashlib.sha256(current.tobytes()[:4096]).digest()[:4], "little")
    if len(current) == 0:
        return {
            "drift": False,
            "rows": 0,
            "centroid_cosine_distance": 0.0,
            "mmd2": 0.0,
            "mmd_pvalue": 1.0,
            "domain_auc": 0.5,
            "rule": "no current rows",
        }
    ref_c, cur_c = reference.mean(0), current.mean(0)
    cosine = 1.0 - float(ref_c @ cur_c / (np.linalg.norm(ref_c) * np.linalg.norm(cur_c) + 1e-12))
    rng = np.random.default_rng(seed)
    ref_s = (
        reference
        if len(reference) <= rules.max_rows
        else reference[rng.choice(len(reference), rules.max_rows, replace=False)]
    )
    cur_s = (
        current if len(current) <= rules.max_rows else current[rng.choice(len(current), rules.max_rows, replace=False)]
    )
    mmd2, pvalue = mmd_permutation_test(ref_s, cur_s, bandwidth, rules.permutations, seed)
    auc = domain_classifier_auc(ref_s, cur_s)
    drift = pvalue < rules.alpha and auc >= rules.auc
    rule = (
        f"MMD p={pvalue:.3g} {'<' if pvalue < rules.alpha else '>='} {rules.alpha:g} "
        f"and domain AUC={auc:.3f} {'>=' if auc >= rules.auc else '<'} {rules.auc:g}"
    )
    return {
        "drift": bool(drift),
        "rows": int(len(current)),
        "centroid_cosine_distance": max(cosine, 0.0),
        "mmd2": mmd2,
        "mmd_pvalue": pvalue,
        "domain_auc": auc,
        "rule": rule,
    }
