"""Fine-tuning with transformers, as plain Python: no Airflow, no MLflow.

Two tasks: `sequence-classification` (the ticket router; default base model the packaged all-MiniLM-L6-v2) and
`causal-lm` (any local checkpoint). The loop is a plain PyTorch loop over pre-tokenised, dynamically padded
batches: deterministic for a seed, CPU or GPU automatically, stopped cleanly by a budget (`max_steps`,
`max_train_minutes`), logging loss, samples/s and ETA. Models are read and written as safetensors only, with
`trust_remote_code=False`.

The train/validation split is a function of (seed, record id) alone, so it does not depend on row order and can
be recomputed by the evaluation step: `split_of(record_id, seed, fraction)`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from airflow_provider_llmops.core.model.contract import LABEL_MAP_FILE, TRAINING_FILE
from airflow_provider_llmops.errors import ConfigurationError

TASKS = ("sequence-classification", "causal-lm")

Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (recorded with the model)."""

    task: str = "sequence-classification"
    base_model: str | None = None  # local checkpoint directory; None: the packaged all-MiniLM-L6-v2
    text_column: str = "text"
    label_column: str = "label"
    labels: tuple[str, ...] | None = None  # None: the sorted labels found in the training rows
    validation_fraction: float = 0.2
    seed: int = 42
    epochs: float = 2.0
    batch_size: int = 16
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    max_steps: int | None = None
    max_train_minutes: float | None = None
    max_train_rows: int | None = None  # a seeded sample of the training split when it is larger
    log_every_steps: int = 20
    device: str = "auto"  # auto | cpu | cuda

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigurationError(f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigurationError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.epochs <= 0 or self.batch_size <= 0 or self.max_length <= 1:
            raise ConfigurationError("epochs, batch_size and max_length must be positive")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ConfigurationError(f"max_steps must be positive, got {self.max_steps}")
        if self.max_train_minutes is not None and self.max_train_minutes <= 0:
            raise ConfigurationError(f"max_train_minutes must be positive, got {self.max_train_minutes}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigurationError(f"unknown training settings {unknown}; known: {sorted(known)}")
        values = dict(values)
        if values.get("labels") is not None:
            values["labels"] = tuple(values["labels"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["labels"] = list(self.labels) if self.labels is not None else None
        return out


def split_of(record_id: str, seed: int, fraction: float) -> str:
    """'validation' or 'train' for a record, from (seed, id) alone."""
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    return "validation" if int.from_bytes(digest[:8], "big") / 2**64 < fraction else "train"


def split_rows(
    rows: Sequence[dict[str, Any]], seed: int, fraction: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train, validation = [], []
    for row in rows:
        (validation if split_of(str(row["id"]), seed, fraction) == "validation" else train).append(row)
    return train, validation


def ids_digest(rows: Sequence[dict[str, Any]]) -> str:
    """sha256 of the sorted record ids: recorded so anyone can check which rows a split held."""
    return hashlib.sha256("\n".join(sorted(str(r["id"]) for r in rows)).encode()).hexdigest()


def pick_device(preference: str = "auto") -> str:
    import torch

    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preference == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError("device 'cuda' requested but no CUDA device is available")
    return preference


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_base_model() -> str:
    from airflow_provider_llmops.core.drift.features import default_model_dir

    return str(default_model_dir())


@dataclass
class TrainResult:
    """What a run produced. `model_dir` holds model.safetensors, config, tokenizer, label_map.json, training.json."""

    model_dir: Path
    config: dict[str, Any]
    labels: list[str]
    split: dict[str, Any]
    steps: int
    planned_steps: int
    samples: int
    train_seconds: float
    samples_per_second: float
    stopped_by: str  # completed | max_steps | max_train_minutes
    history: list[dict[str, float]] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)  # y_true/y_pred/probs (classification) or loss

    def summary(self) -> dict[str, Any]:
        last = self.epochs[-1] if self.epochs else {}
        return {
            "task": self.config["task"],
            "steps": self.steps,
            "planned_steps": self.planned_steps,
            "samples": self.samples,
            "train_seconds": round(self.train_seconds, 3),
            "samples_per_second": round(self.samples_per_second, 3),
            "stopped_by": self.stopped_by,
            "final_train_loss": self.history[-1]["loss"] if self.history else None,
            **{f"val_{k}": v for k, v in last.items() if k not in ("epoch", "step")},
        }


class _Encoded:
    """Pre-tokenised examples; batches are padded to their own longest row."""

    def __init__(self, input_ids: list[list[int]], targets: list[int] | None, pad_id: int) -> None:
        self.input_ids = input_ids
        self.targets = targets
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, indices: Sequence[int], causal: bool) -> dict[str, Any]:
        import torch

        width = max(len(self.input_ids[i]) for i in indices)
        ids = torch.full((len(indices), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(indices), width), dtype=torch.long)
        for row, i in enumerate(indices):
            seq = self.input_ids[i]
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        out: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if causal:
            out["labels"] = ids.masked_fill(mask == 0, -100)
        elif self.targets is not None:
            out["labels"] = torch.tensor([self.targets[i] for i in indices], dtype=torch.long)
        return out


def load_for_training(config: TrainConfig, labels: list[str]) -> tuple[Any, Any]:
    """(tokenizer, model) from a local checkpoint: safetensors only, no remote code, no network."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    base = config.base_model or default_base_model()
    if not Path(base).is_dir():
        raise ConfigurationError(
            f"base model {base!r} is not a local directory; models are never downloaded at run time"
        )
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=False)
    common = {"trust_remote_code": False, "use_safetensors": True}
    if config.task == "causal-lm":
        model = AutoModelForCausalLM.from_pretrained(base, **common)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            base,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,
            **common,
        )
    return tokenizer, model


def _encode(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    return tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)["input_ids"]


def _order(n: int, seed: int, epoch: int) -> list[int]:
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(n))
    rng.shuffle(order)
    return order


def train(rows: Sequence[dict[str, Any]], config: TrainConfig, output_dir: str | Path, log: Log = print) -> TrainResult:
    """Fine-tune on `rows` (canonical records); write the model to `output_dir` and return what happened."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    output = Path(output_dir)
    causal = config.task == "causal-lm"
    texts_ok = [r for r in rows if isinstance(r.get(config.text_column), str) and r[config.text_column].strip()]
    if not causal:
        texts_ok = [r for r in texts_ok if r.get(config.label_column) not in (None, "")]
    train_rows, val_rows = split_rows(texts_ok, config.seed, config.validation_fraction)
    if config.max_train_rows is not None and len(train_rows) > config.max_train_rows:
        train_rows = random.Random(config.seed).sample(train_rows, config.max_train_rows)
    if len(train_rows) < 2 or not val_rows:
        raise ConfigurationError(
            f"too few rows to train: {len(train_rows)} train / {len(val_rows)} validation "
            f"after the split of {len(rows)} rows"
        )
    labels = [] if causal else list(config.labels or sorted({str(r[config.label_column]) for r in train_rows}))
    if not causal:
        unknown = sorted({str(r[config.label_column]) for r in train_rows + val_rows} - set(labels))
        if unknown:
            raise ConfigurationError(f"rows carry labels outside the label set {labels}: {unknown}")
    split = {
        "seed": config.seed,
        "validation_fraction": config.validation_fraction,
        "rule": "sha256(f'{seed}:{id}') < fraction -> validation",
        "train_rows": len(train_rows),
        "validation_rows": len(val_rows),
        "train_ids_sha256": ids_digest(train_rows),
        "validation_ids_sha256": ids_digest(val_rows),
    }

    seed_everything(config.seed)
    device = pick_device(config.device)
    tokenizer, model = load_for_training(config, labels)
    model.to(device)
    label_index = {label: i for i, label in enumerate(labels)}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def encoded(part: list[dict[str, Any]]) -> _Encoded:
        ids = _encode(tokenizer, [r[config.text_column] for r in part], config.max_length)
        targets = None if causal else [label_index[str(r[config.label_column])] for r in part]
        return _Encoded(ids, targets, pad_id)

    train_set, val_set = encoded(train_rows), encoded(val_rows)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    planned = math.ceil(steps_per_epoch * config.epochs)
    if config.max_steps is not None:
        planned = min(planned, config.max_steps)
    decay: list[Any] = []
    no_decay: list[Any] = []  # biases and norm weights are not decayed
    for name, parameter in model.named_parameters():
        (no_decay if any(k in name for k in ("bias", "LayerNorm", "layer_norm", "ln_")) else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, int(planned * config.warmup_ratio), planned)
    log(
        f"training {config.task} on {device}: {len(train_set)} train / {len(val_set)} validation rows, "
        f"{len(labels) or 'no'} labels, batch {config.batch_size}, {planned} steps planned"
        + (f", budget {config.max_train_minutes} min" if config.max_train_minutes else "")
    )

    history: list[dict[str, float]] = []
    epochs: list[dict[str, float]] = []
    step, samples, stopped_by = 0, 0, "completed"
    deadline = time.monotonic() + config.max_train_minutes * 60 if config.max_train_minutes else None
    started = time.perf_counter()
    running, running_n = 0.0, 0
    epoch, last_validated, val_seconds = 0, -1, 0.0
    final: dict[str, Any] = {}
    while step < planned:
        model.train()
        order = _order(len(train_set), config.seed, epoch)
        partial = False
        for start in range(0, len(order), config.batch_size):
            if step >= planned:
                partial = True
                break
            if deadline is not None and time.monotonic() >= deadline:
                stopped_by = "max_train_minutes"
                break
            batch = {
                k: v.to(device) for k, v in train_set.batch(order[start : start + config.batch_size], causal).items()
            }
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            size = int(batch["input_ids"].shape[0])
            samples += size
            value = float(loss.detach())
            running, running_n = running + value * size, running_n + size
            history.append({"step": step, "epoch": epoch + start / len(order), "loss": value})
            if step % config.log_every_steps == 0 or step == planned:
                elapsed = time.perf_counter() - started
                rate = samples / elapsed if elapsed > 0 else 0.0
                eta = (planned - step) * ((elapsed - val_seconds) / step)
                log(
                    f"step {step}/{planned} epoch {epoch + 1} loss {running / running_n:.4f} "
                    f"{rate:.1f} samples/s ETA {eta:.0f}s"
                )
                running, running_n = 0.0, 0
        if stopped_by != "completed" or partial:
            break
        epoch += 1
        val_started = time.perf_counter()
        final = _validate(model, val_set, causal, config.batch_size, device, keep_predictions=not causal)
        val_seconds += time.perf_counter() - val_started
        last_validated = step
        epochs.append(_epoch_record(float(epoch), step, final))
        log(
            f"epoch {epoch} done at step {step}: "
            + " ".join(f"val_{k} {v:.4f}" for k, v in epochs[-1].items() if k not in ("epoch", "step"))
        )
    train_seconds = time.perf_counter() - started - val_seconds  # the optimisation loop alone
    if stopped_by == "completed" and config.max_steps is not None and step < math.ceil(steps_per_epoch * config.epochs):
        stopped_by = "max_steps"
    if last_validated != step:  # a budget or max_steps ended the run inside an epoch
        final = _validate(model, val_set, causal, config.batch_size, device, keep_predictions=not causal)
        epochs.append(_epoch_record(round(epoch + (step - epoch * steps_per_epoch) / steps_per_epoch, 4), step, final))
    log(
        f"training stopped by {stopped_by} after {step} steps, {samples} samples in {train_seconds:.1f}s "
        f"({samples / max(train_seconds, 1e-9):.1f} samples/s)"
    )

    result = TrainResult(
        model_dir=output,
        config=config.to_dict(),
        labels=labels,
        split=split,
        steps=step,
        planned_steps=planned,
        samples=samples,
        train_seconds=train_seconds,
        samples_per_second=samples / train_seconds if train_seconds > 0 else 0.0,
        stopped_by=stopped_by,
        history=history,
        epochs=epochs,
        validation=final,
    )
    save_model(model, tokenizer, labels, result, output)
    return result


def _epoch_record(epoch: float, step: int, metrics: dict[str, Any]) -> dict[str, float]:
    return {"epoch": epoch, "step": float(step), **{k: v for k, v in metrics.items() if isinstance(v, float)}}


def _validate(
    model: Any, data: _Encoded, causal: bool, batch_size: int, device: str, keep_predictions: bool = False
) -> dict[str, Any]:
    import torch

    model.eval()
    total_loss, total_n, correct = 0.0, 0, 0
    probs: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            indices = list(range(start, min(start + batch_size, len(data))))
            batch = {k: v.to(device) for k, v in data.batch(indices, causal).items()}
            out = model(**batch)
            if causal:
                tokens = int((batch["labels"][:, 1:] != -100).sum())
                total_loss += float(out.loss) * tokens
                total_n += tokens
            else:
                total_loss += float(out.loss) * len(indices)
                total_n += len(indices)
                p = torch.softmax(out.logits.float(), dim=-1).cpu().numpy()
                correct += int((p.argmax(axis=1) == batch["labels"].cpu().numpy()).sum())
                probs.append(p)
    loss = total_loss / max(total_n, 1)
    if causal:
        return {"loss": loss, "perplexity": float(math.exp(min(loss, 50.0)))}
    result: dict[str, Any] = {"loss": loss, "accuracy": correct / max(len(data), 1)}
    if keep_predictions:
        stacked = np.concatenate(probs) if probs else np.zeros((0, 0))
        result["probs"] = stacked
        result["y_true"] = list(data.targets or [])
        result["y_pred"] = stacked.argmax(axis=1).tolist() if stacked.size else []
    return result


def save_model(model: Any, tokenizer: Any, labels: list[str], result: TrainResult, output: Path) -> None:
    """safetensors weights, config, tokenizer, label map and the training record."""
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    if labels:
        (output / LABEL_MAP_FILE).write_text(
            json.dumps({"labels": labels, "id2label": dict(enumerate(labels))}, indent=1)
        )
    record = {k: v for k, v in asdict(result).items() if k not in ("model_dir", "validation", "history")}
    record["final_train_loss"] = result.history[-1]["loss"] if result.history else None
    (output / TRAINING_FILE).write_text(json.dumps(record, indent=1, default=str))
    if list(output.glob("*.bin")):
        raise RuntimeError(f"pickle weights found in {output}; only safetensors may be written")
