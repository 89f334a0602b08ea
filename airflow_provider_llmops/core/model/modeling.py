"""Loading a trained model for inference: safetensors only, `trust_remote_code=False`, no network."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from airflow_provider_llmops.core.model.contract import LABEL_MAP_FILE, TRAINING_FILE
from airflow_provider_llmops.errors import ConfigurationError

if TYPE_CHECKING:
    from airflow_provider_llmops.core.drift.profile import ReferenceProfile

DEFAULT_MAX_LENGTH = 128


def trained_max_length(model_dir: str | Path, default: int = DEFAULT_MAX_LENGTH) -> int:
    """The `max_length` a model was fine-tuned with (its `training.json`), so inference truncates the way training
    did; `default` for a model without a training record (a base checkpoint)."""
    record = Path(model_dir) / TRAINING_FILE
    try:
        value = json.loads(record.read_text())["config"]["max_length"]
    except (OSError, ValueError, KeyError, TypeError):
        return default
    return int(value) if isinstance(value, int) and value > 0 else default


def _check_safe(model_dir: Path) -> None:
    if not model_dir.is_dir():
        raise ConfigurationError(f"model directory {model_dir} does not exist")
    if not list(model_dir.glob("*.safetensors")):
        pickles = [p.name for p in model_dir.glob("*.bin")] + [p.name for p in model_dir.glob("*.pt")]
        raise ConfigurationError(
            f"{model_dir} has no safetensors weights"
            f"{' (refusing pickle files ' + str(pickles) + ')' if pickles else ''}"
        )


class TextClassifier:
    """A fine-tuned sequence classifier with its tokenizer and label map."""

    def __init__(self, model_dir: str | Path, device: str = "auto", max_length: int | None = None) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from airflow_provider_llmops.core.model.training import pick_device

        self.model_dir = Path(model_dir)
        _check_safe(self.model_dir)
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, trust_remote_code=False)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            self.model_dir, trust_remote_code=False, use_safetensors=True
        )
        self.model.to(self.device).eval()
        label_file = self.model_dir / LABEL_MAP_FILE
        if label_file.is_file():
            self.labels = [str(x) for x in json.loads(label_file.read_text())["labels"]]
        else:
            id2label = self.model.config.id2label
            self.labels = [str(id2label[i]) for i in range(len(id2label))]
        # truncate as training did, unless told otherwise
        self.max_length = max_length if max_length is not None else trained_max_length(self.model_dir)
        self._torch = torch

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities in `self.labels` order; texts are batched by length for speed, order is kept."""
        torch = self._torch
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in idx],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits.float()
                out[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
        return out

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        probs = self.predict_proba(texts, batch_size)
        return [self.labels[i] for i in probs.argmax(axis=1)] if len(texts) else []

    def latencies(self, texts: Sequence[str], warmup: int = 3) -> list[float]:
        """Seconds per example, one request at a time (what a caller of the inference service sees)."""
        for text in texts[:warmup]:
            self.predict_proba([text], batch_size=1)
        timings = []
        for text in texts:
            started = time.perf_counter()
            self.predict_proba([text], batch_size=1)
            timings.append(time.perf_counter() - started)
        return timings


def load_classifier(model_dir: str | Path, **kwargs: Any) -> TextClassifier:
    return TextClassifier(model_dir, **kwargs)


def champion_predictor(profile: ReferenceProfile, model_dir: str | Path, loader: Any = None) -> Any:
    """The classifier's `predict` for the `predicted_label` feature, truncating at the `max_length` the profile's
    reference predictions were made at (so reference and batch are predicted alike); None when the profile has no
    predicted-label reference. `loader` defaults to `load_classifier`."""
    if not profile.predicted_labels:
        return None
    loader = loader or load_classifier
    max_length = profile.predictor_max_length
    return loader(model_dir, **({"max_length": max_length} if max_length is not None else {})).predict
