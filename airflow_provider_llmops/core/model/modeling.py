"""Loading a trained model for inference: safetensors only, `trust_remote_code=False`, no network.

* `load_classifier(model_dir)` -> `TextClassifier` (torch): `predict(texts)` labels, `predict_proba(texts)` class
  probabilities (softmax of the logits) in `labels` order. `onnx_runtime.OnnxClassifier` has the same interface.
* `load_generator(model_dir)` -> `TextGenerator` for versions trained with task `causal-lm`: `generate(prompts)`
  the continuation of each prompt (greedy unless told to sample), at most `max_new_tokens` new tokens, which is
  bounded by `MAX_NEW_TOKENS_LIMIT` and by the model's context (the prompt is cut from the left to fit);
  `stream(prompt)` yields the same continuation piece by piece.
* `model_task(model_dir)`: which of the two a model folder holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from airflow_provider_llmops.core.model.contract import CONFIG_FILE, LABEL_MAP_FILE, TRAINING_FILE
from airflow_provider_llmops.errors import ConfigurationError

if TYPE_CHECKING:
    from airflow_provider_llmops.core.drift.profile import ReferenceProfile

DEFAULT_MAX_LENGTH = 128
DEFAULT_MAX_NEW_TOKENS = 64
MAX_NEW_TOKENS_LIMIT = 1024
CLASSIFIER_TASK = "sequence-classification"
GENERATOR_TASK = "causal-lm"


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


def model_task(model_dir: str | Path) -> str:
    """`sequence-classification` or `causal-lm`: the task of the training record, else guessed from the files (a
    label map or a `...ForSequenceClassification` architecture make a classifier; a `...ForCausalLM` one a
    generator); a classifier when nothing tells."""
    directory = Path(model_dir)
    try:
        task = json.loads((directory / TRAINING_FILE).read_text())["config"]["task"]
    except (OSError, ValueError, KeyError, TypeError):
        task = None
    if task in (CLASSIFIER_TASK, GENERATOR_TASK):
        return str(task)
    if (directory / LABEL_MAP_FILE).is_file():
        return CLASSIFIER_TASK
    try:
        architectures = json.loads((directory / CONFIG_FILE).read_text()).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        architectures = []
    if any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return GENERATOR_TASK
    return CLASSIFIER_TASK


def classifier_labels(model_dir: str | Path, id2label: dict[Any, Any] | None = None) -> list[str]:
    """The class labels in output order: `label_map.json`, else the model config's `id2label`."""
    directory = Path(model_dir)
    label_file = directory / LABEL_MAP_FILE
    if label_file.is_file():
        return [str(x) for x in json.loads(label_file.read_text())["labels"]]
    if id2label is None:
        id2label = json.loads((directory / CONFIG_FILE).read_text()).get("id2label") or {}
    by_index = {int(k): str(v) for k, v in id2label.items()}
    return [by_index[i] for i in range(len(by_index))]


class BatchedClassifier:
    """What every classifier runtime shares: `labels`, `max_length`, length-sorted batching that keeps the order,
    `predict`, `predict_proba`, `latencies`. Subclasses implement `_probabilities(texts)` for one batch."""

    labels: list[str]
    max_length: int
    runtime = "base"

    def _probabilities(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities in `self.labels` order; texts are batched by length for speed, order is kept."""
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._probabilities([texts[i] for i in idx])
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


class TextClassifier(BatchedClassifier):
    """A fine-tuned sequence classifier with its tokenizer and label map (torch)."""

    runtime = "torch"

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
        self.labels = classifier_labels(self.model_dir, self.model.config.id2label)
        # truncate as training did, unless told otherwise
        self.max_length = max_length if max_length is not None else trained_max_length(self.model_dir)
        self._torch = torch

    def _probabilities(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
            logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits.float()
            return torch.softmax(logits, dim=-1).cpu().numpy()


def load_classifier(model_dir: str | Path, **kwargs: Any) -> TextClassifier:
    return TextClassifier(model_dir, **kwargs)


class TextGenerator:
    """A fine-tuned causal LM with its tokenizer: bounded, greedy-by-default generation."""

    runtime = "torch"

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "auto",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        max_length: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from airflow_provider_llmops.core.model.training import pick_device

        self.model_dir = Path(model_dir)
        _check_safe(self.model_dir)
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, trust_remote_code=False)
        self.tokenizer.padding_side = "left"  # generation continues at the right end of every row
        self.tokenizer.truncation_side = "left"  # a long prompt keeps its end
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, trust_remote_code=False, use_safetensors=True)
        self.model.to(self.device).eval()
        config = self.model.config
        self.context = int(
            getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 1024
        )
        self.max_new_tokens = self._bounded(max_new_tokens)
        self.max_length = max_length if max_length is not None else trained_max_length(self.model_dir)
        self._torch = torch

    def _bounded(self, value: Any) -> int:
        integer = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if not integer or not 1 <= value <= MAX_NEW_TOKENS_LIMIT:
            raise ConfigurationError(f"max_new_tokens must be an integer in [1, {MAX_NEW_TOKENS_LIMIT}], got {value!r}")
        return min(int(value), self.context - 1)

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        batch_size: int = 8,
    ) -> list[str]:
        """The continuation of each prompt (without the prompt), at most `max_new_tokens` new tokens (default the
        generator's), greedy unless `do_sample`. The prompt is truncated from the left to the trained `max_length`
        and to what the context leaves after the new tokens."""
        ids = self.generate_tokens(prompts, max_new_tokens, do_sample, temperature, top_p, seed, batch_size)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True) if ids else []

    def generate_tokens(
        self,
        prompts: Sequence[str],
        max_new_tokens: int | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        batch_size: int = 8,
    ) -> list[list[int]]:
        """`generate`'s new token ids per prompt (padding after an early end of sequence included)."""
        torch = self._torch
        new_tokens = self._bounded(max_new_tokens) if max_new_tokens is not None else self.max_new_tokens
        prompt_room = max(1, min(self.max_length, self.context - new_tokens))
        if seed is not None:
            torch.manual_seed(seed)
        sampling: dict[str, Any] = {"do_sample": bool(do_sample)}
        if do_sample:
            sampling.update(temperature=temperature, top_p=top_p)
        out: list[list[int]] = []
        with torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                batch = [str(p) for p in prompts[start : start + batch_size]]
                enc = self.tokenizer(batch, truncation=True, max_length=prompt_room, padding=True, return_tensors="pt")
                generated = self.model.generate(
                    **{k: v.to(self.device) for k, v in enc.items()},
                    max_new_tokens=new_tokens,
                    min_new_tokens=0,
                    pad_token_id=self.tokenizer.pad_token_id,
                    **sampling,
                )
                out.extend(generated[:, enc["input_ids"].shape[1] :].tolist())
        return out

    def stream(self, prompt: str, max_new_tokens: int | None = None, timeout_s: float = 60.0) -> Iterator[str]:
        """The greedy continuation of one prompt as it is generated, piece by piece (joined: what `generate`
        returns); generation runs in a worker thread, and a piece that takes longer than `timeout_s` ends it with
        `TimeoutError`."""
        import threading

        from transformers import TextIteratorStreamer

        new_tokens = self._bounded(max_new_tokens) if max_new_tokens is not None else self.max_new_tokens
        prompt_room = max(1, min(self.max_length, self.context - new_tokens))
        enc = self.tokenizer([str(prompt)], truncation=True, max_length=prompt_room, return_tensors="pt")
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout_s)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with self._torch.inference_mode():
                    self.model.generate(
                        **{k: v.to(self.device) for k, v in enc.items()},
                        max_new_tokens=new_tokens,
                        min_new_tokens=0,
                        do_sample=False,
                        pad_token_id=self.tokenizer.pad_token_id,
                        streamer=streamer,
                    )
            except BaseException as exc:  # handed to the consumer below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="llmops-generate", daemon=True)
        worker.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        except Exception as exc:  # queue.Empty from the streamer's timeout
            raise TimeoutError(f"no generated text within {timeout_s}s") from exc
        finally:
            worker.join(timeout=timeout_s)
        if failure:
            raise failure[0]

    def predict(self, prompts: Sequence[str], **kwargs: Any) -> list[str]:
        return self.generate(prompts, **kwargs)


def load_generator(model_dir: str | Path, **kwargs: Any) -> TextGenerator:
    """A causal LM for generation (`TextGenerator`); `max_new_tokens` (default 64) bounds each continuation."""
    return TextGenerator(model_dir, **kwargs)


def champion_predictor(profile: ReferenceProfile, model_dir: str | Path, loader: Any = None) -> Any:
    """The classifier's `predict` for the `predicted_label` feature, truncating at the `max_length` the profile's
    reference predictions were made at (so reference and batch are predicted alike); None when the profile has no
    predicted-label reference. `loader` defaults to `load_classifier`."""
    if not profile.predicted_labels:
        return None
    loader = loader or load_classifier
    max_length = profile.predictor_max_length
    return loader(model_dir, **({"max_length": max_length} if max_length is not None else {})).predict
