"""Rule-based guardrails around the model: filters applied to a request before inference and to the answer after,
configured in YAML (`include/guardrails/default.yaml` documents every key). No Airflow, no FastAPI.

Rules, in the order they run:

* **Blocked terms** (input and generated text): a configured list of words or phrases, matched case-insensitively
  on whole words after Unicode NFKC normalisation and case folding. A multi-word term matches its words in order
  whatever punctuation or spacing separates them ("credit-card" and "Credit  card" both match "credit card").
  A match blocks: the request is refused (or the generated text withheld) with the configured reason; which term
  matched is never echoed back, so a client cannot probe the list.
* **PII redaction** (input and generated text), replacing each finding with a token:
  - `[EMAIL]`: local part (letters, digits, `._%+-`) `@` a domain with at least one dot;
  - `[CARD]`: a run of 13-19 digits, optionally grouped by single spaces or dashes, redacted only when the Luhn
    checksum passes. A run glued to other digit groups ("order 12 4111 1111 1111 1111") is searched for a
    Luhn-valid range of whole groups, so an adjacent number does not hide a card;
  - `[PHONE]`: digit groups separated by single spaces, dots or dashes, optionally led by `+` and with one group
    in parentheses ("+44 (0)20 7946 0958", "(555) 123-4567", "06 12 34 56 78", "0612345678"). Counted as a phone:
    8-15 digits after `+`, 10-17 after a `00` prefix, 9-12 otherwise. Not phones: fewer than 9 digits (years,
    short ids), IPv4 addresses, a number followed by `:`/`/` and a digit (a time or a fraction), a leading ISO
    date ("2024-01-15 ..."), two dot-separated groups (a decimal). A phone glued by single separators to more
    digit groups (more than 8 groups, or too many digits in all) is not recognised.
  Emails run first (their local part may hold digits), then cards, then phones. Redaction is idempotent: the
  tokens hold no digit and no `@`, so redacting a redacted text changes nothing.
* **Low confidence** (classifier answers): a top score below `low_confidence.threshold` (or not a number) gives
  the decision `route_to_human`: the answer is still returned, flagged, and, when `low_confidence.human_queue` is
  a path, appended to that JSON-lines file (one object per line: time, request id, client, label, confidence,
  threshold and, when `queue_text` is on, the redacted text; created with mode 0600).

Every regular expression is linear in the input: possessive quantifiers and look-behinds make each match start
only at the beginning of a run and never re-scan it, so a 100 KB adversarial text is handled in milliseconds.

A `Decision` is (rule, action, count, detail), JSON-safe, and never holds the redacted text or the matched term.
Rules: `blocked_term`, `pii_email`, `pii_card`, `pii_phone`, `low_confidence`; actions: `block`, `redact`,
`route_to_human`.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from airflow_provider_llmops.errors import ConfigurationError

EMAIL_TOKEN = "[EMAIL]"
PHONE_TOKEN = "[PHONE]"
CARD_TOKEN = "[CARD]"

MAX_BLOCKED_TERMS = 10_000
MAX_TERM_CHARS = 200
MAX_TERM_WORDS = 8
MAX_REASON_CHARS = 500
MAX_CONFIG_BYTES = 1_000_000
DEFAULT_BLOCK_REASON = "the text contains a term this service does not accept"

# local part, '@', a domain with at least one dot; the look-behind lets a match start only at the start of a run
_EMAIL = re.compile(r"(?<![\w.%+\-])[\w.%+\-]++@[\w\-]++(?:\.[\w\-]++)++")
# a maximal run of digits grouped by single spaces or dashes (checked by length and Luhn in Python)
_CARD_RUN = re.compile(r"(?<!\d)(?<!\d[ \-])\d(?:[ \-]?\d)*+")
_PHONE_GROUP = r"(?:\(\d{1,6}\)|\d++)"
_PHONE = re.compile(
    r"(?<![\w+)])"  # not inside a word
    r"(?:\+|(?<![\d)][ .\-]))"  # a '+' starts a number; a digit does not when it continues an earlier one
    rf"{_PHONE_GROUP}"
    rf"(?:(?:[ .\-]|(?<=\))|(?=\())"  # a single separator, or none next to a parenthesis
    rf"{_PHONE_GROUP}){{0,7}}+"
    r"(?!\w)(?![ .\-:/]\d)"  # not followed by more of a number (a ninth group, a time, a fraction)
)
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_ISO_DATE_LEAD = re.compile(r"\d{4}[\-./]\d{1,2}[\-./]\d{1,2}(?!\d)")
_DECIMAL = re.compile(r"\d++\.\d++")
_WORD = re.compile(r"\w+")


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) checksum of a string of decimal digits (any Unicode decimal digits)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


@dataclass(frozen=True)
class Decision:
    """One guardrail decision: which rule fired, what it did, how many times, and a detail safe to return."""

    rule: str
    action: str
    count: int = 1
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "action": self.action, "count": self.count, "detail": self.detail}


@dataclass(frozen=True)
class InputResult:
    """A request text after the input rules: the redacted text to give the model, and whether it is refused."""

    text: str
    blocked: bool
    decisions: list[Decision]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"blocked": self.blocked, "reason": self.reason, "decisions": [d.to_dict() for d in self.decisions]}


@dataclass(frozen=True)
class OutputResult:
    """An answer after the output rules. `text` is the label (classifiers) or the redacted generated text ("" when
    blocked); `route_to_human` flags a low-confidence answer, `queued` says it reached the human queue file."""

    text: str
    blocked: bool
    route_to_human: bool
    decisions: list[Decision]
    reason: str | None = None
    queued: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "blocked": self.blocked,
            "reason": self.reason,
            "route_to_human": self.route_to_human,
            "decisions": [d.to_dict() for d in self.decisions],
        }


# the YAML schema: section -> key -> (attribute, kind); the kinds are checked in _coerce
_SCHEMA: dict[str, dict[str, tuple[str, str]]] = {
    "pii": {
        "email": ("redact_email", "bool"),
        "phone": ("redact_phone", "bool"),
        "card": ("redact_card", "bool"),
        "input": ("redact_input", "bool"),
        "output": ("redact_output", "bool"),
    },
    "blocked_terms": {
        "terms": ("blocked_terms", "terms"),
        "input": ("block_input", "bool"),
        "output": ("block_output", "bool"),
        "reason": ("block_reason", "reason"),
    },
    "low_confidence": {
        "threshold": ("low_confidence_threshold", "threshold"),
        "human_queue": ("human_queue", "path"),
        "queue_text": ("human_queue_text", "bool"),
    },
}
_TOP_KEYS = ("version", *_SCHEMA)


@dataclass(frozen=True)
class GuardrailConfig:
    """Validated guardrail settings. `default()`: PII redaction on (input and output), no blocked terms, low
    confidence off (threshold 0.0), no human queue."""

    redact_email: bool = True
    redact_phone: bool = True
    redact_card: bool = True
    redact_input: bool = True
    redact_output: bool = True
    blocked_terms: tuple[str, ...] = ()
    block_input: bool = True
    block_output: bool = True
    block_reason: str = DEFAULT_BLOCK_REASON
    low_confidence_threshold: float = 0.0
    human_queue: Path | None = None
    human_queue_text: bool = True

    @classmethod
    def default(cls) -> GuardrailConfig:
        return cls()

    @classmethod
    def from_yaml(cls, source: str | Path) -> GuardrailConfig:
        """Parse and validate a config: YAML text, or a file (a `Path`, or a one-line string ending in .yaml/.yml).
        An empty document gives `default()`; a missing key keeps its default; an unknown key is refused."""
        origin = "guardrails config"
        if isinstance(source, Path) or (
            isinstance(source, str) and "\n" not in source and source.strip().lower().endswith((".yaml", ".yml"))
        ):
            path = Path(source).expanduser()
            origin = str(path)
            try:
                if path.stat().st_size > MAX_CONFIG_BYTES:
                    raise ConfigurationError(f"{origin}: larger than {MAX_CONFIG_BYTES} bytes")
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(f"{origin}: cannot be read ({type(exc).__name__}: {exc.strerror})") from None
        elif isinstance(source, str):
            text = source
            if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
                raise ConfigurationError(f"{origin}: larger than {MAX_CONFIG_BYTES} bytes")
        else:
            raise ConfigurationError(f"{origin}: expected YAML text or a path, got {type(source).__name__}")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{origin}: not valid YAML ({exc})") from None
        return cls.from_mapping(data if data is not None else {}, origin=origin)

    @classmethod
    def from_mapping(cls, data: Any, *, origin: str = "guardrails config") -> GuardrailConfig:
        """Validate an already-parsed mapping with the same schema as the YAML file."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{origin}: must be a mapping of sections {list(_SCHEMA)}, got {_kind(data)}")
        _refuse_unknown(origin, "", data, _TOP_KEYS)
        version = data.get("version", 1)
        if version != 1 or isinstance(version, bool):
            raise ConfigurationError(f"{origin}: 'version' must be 1, got {version!r}")
        values: dict[str, Any] = {}
        for section, keys in _SCHEMA.items():
            body = data.get(section)
            if body is None:
                continue
            if not isinstance(body, Mapping):
                raise ConfigurationError(f"{origin}: '{section}' must be a mapping of {list(keys)}, got {_kind(body)}")
            _refuse_unknown(origin, f"{section}.", body, tuple(keys))
            for key, (attribute, kind) in keys.items():
                if key in body:
                    values[attribute] = _coerce(origin, f"{section}.{key}", kind, body[key])
        return cls(**values)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _refuse_unknown(origin: str, prefix: str, body: Mapping[Any, Any], known: Iterable[str]) -> None:
    known = tuple(known)
    for key in body:
        if key not in known:
            where = f" under '{prefix[:-1]}'" if prefix else ""
            raise ConfigurationError(f"{origin}: unknown key '{prefix}{key!s:.80}'; the keys{where} are {list(known)}")


def _coerce(origin: str, key: str, kind: str, value: Any) -> Any:
    where = f"{origin}: '{key}'"
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigurationError(f"{where} must be true or false, got {_kind(value)}")
        return value
    if kind == "threshold":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
            raise ConfigurationError(f"{where} must be a number in [0, 1] (0 turns the rule off), got {value!r:.80}")
        return float(value)
    if kind == "reason":
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_REASON_CHARS:
            raise ConfigurationError(f"{where} must be a non-empty string of at most {MAX_REASON_CHARS} characters")
        return value.strip()
    if kind == "path":
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            raise ConfigurationError(f"{where} must be a file path (a JSON-lines file) or null, got {_kind(value)}")
        return Path(value).expanduser()
    if kind == "terms":
        if value is None:
            return ()
        if not isinstance(value, list):
            raise ConfigurationError(f"{where} must be a list of strings, got {_kind(value)}")
        if len(value) > MAX_BLOCKED_TERMS:
            raise ConfigurationError(f"{where} holds {len(value)} terms; at most {MAX_BLOCKED_TERMS} are allowed")
        terms: list[str] = []
        for index, term in enumerate(value):
            if not isinstance(term, str):
                raise ConfigurationError(f"{where}[{index}] must be a string, got {_kind(term)}")
            words = _words(term)
            if not words:
                raise ConfigurationError(f"{where}[{index}] must contain a letter or a digit, got {term!r:.80}")
            if len(term) > MAX_TERM_CHARS or len(words) > MAX_TERM_WORDS:
                raise ConfigurationError(
                    f"{where}[{index}] is too long: at most {MAX_TERM_CHARS} characters and {MAX_TERM_WORDS} words"
                )
            terms.append(term)
        return tuple(terms)
    raise AssertionError(kind)  # pragma: no cover - the schema only uses the kinds above


def _words(text: str) -> tuple[str, ...]:
    """The words of a text as the blocked-term rule compares them: NFKC-normalised, case-folded."""
    return tuple(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


class Guardrails:
    """Applies a `GuardrailConfig`. Thread-safe: the only shared state is the human queue file, written under a
    lock with one `write` per record."""

    def __init__(self, config: GuardrailConfig | None = None) -> None:
        self.config = config or GuardrailConfig.default()
        self._terms_by_length: dict[int, frozenset[tuple[str, ...]]] = {}
        for term in self.config.blocked_terms:
            words = _words(term)
            self._terms_by_length[len(words)] = self._terms_by_length.get(len(words), frozenset()) | {words}
        self._queue_lock = threading.Lock()

    # -- the rules -------------------------------------------------------------------------------------------
    def blocked_term_count(self, text: str) -> int:
        """How many blocked-term occurrences the text holds (0 when the list is empty). O(len(text) × the most
        words in a term)."""
        if not self._terms_by_length:
            return 0
        words = _words(text)
        found = 0
        for length, terms in self._terms_by_length.items():
            for start in range(len(words) - length + 1):
                if words[start : start + length] in terms:
                    found += 1
        return found

    def redact(self, text: str) -> tuple[str, list[Decision]]:
        """The text with the enabled PII kinds replaced by their tokens, and one decision per kind found."""
        config = self.config
        decisions: list[Decision] = []
        steps: list[tuple[str, bool, Callable[[str], tuple[str, int]]]] = [
            ("pii_email", config.redact_email, _redact_emails),
            ("pii_card", config.redact_card, _redact_cards),
            ("pii_phone", config.redact_phone, _redact_phones),
        ]
        for rule, enabled, step in steps:
            if enabled:
                text, count = step(text)
                if count:
                    decisions.append(Decision(rule, "redact", count))
        return text, decisions

    # -- entry points ----------------------------------------------------------------------------------------
    def check_input(self, text: str) -> InputResult:
        """Rules for a request text or prompt: blocked terms (refuses) then PII redaction. The returned text is
        redacted even when the request is blocked, so it is safe to log."""
        decisions: list[Decision] = []
        reason = None
        if self.config.block_input:
            hits = self.blocked_term_count(text)
            if hits:
                decisions.append(Decision("blocked_term", "block", hits, self.config.block_reason))
                reason = self.config.block_reason
        if self.config.redact_input:
            text, found = self.redact(text)
            decisions += found
        return InputResult(text=text, blocked=reason is not None, decisions=decisions, reason=reason)

    def check_output_text(self, text: str) -> OutputResult:
        """Rules for generated text: blocked terms withhold it (text ""), PII is redacted."""
        decisions: list[Decision] = []
        if self.config.block_output:
            hits = self.blocked_term_count(text)
            if hits:
                decisions.append(Decision("blocked_term", "block", hits, self.config.block_reason))
                return OutputResult("", True, False, decisions, reason=self.config.block_reason)
        if self.config.redact_output:
            text, found = self.redact(text)
            decisions += found
        return OutputResult(text, False, False, decisions)

    def check_output_label(
        self,
        label: str,
        confidence: float,
        *,
        text: str | None = None,
        request_id: str | None = None,
        client: str | None = None,
    ) -> OutputResult:
        """Rules for a classifier answer: a top score below the threshold (or not a finite number) is routed to a
        human. `text` (the request text, redacted again here), `request_id` and `client` only go to the queue."""
        threshold = self.config.low_confidence_threshold
        if threshold <= 0.0:
            return OutputResult(label, False, False, [])
        score = float(confidence) if isinstance(confidence, numbers.Real) else math.nan
        if math.isfinite(score) and score >= threshold:
            return OutputResult(label, False, False, [])
        queued = False
        detail = f"top score {score:.4f} below threshold {threshold:.4f}"
        if self.config.human_queue is not None:
            queued = self._enqueue(label, score, text, request_id, client)
            detail += "; queued for review" if queued else "; the human queue could not be written"
        return OutputResult(
            label, False, True, [Decision("low_confidence", "route_to_human", 1, detail)], queued=queued
        )

    def _enqueue(self, label: str, score: float, text: str | None, request_id: str | None, client: str | None) -> bool:
        record: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "client": client,
            "label": label,
            "confidence": score if math.isfinite(score) else None,
            "threshold": self.config.low_confidence_threshold,
        }
        if self.config.human_queue_text and text is not None:
            record["text"] = self.redact(text)[0]
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        path = self.config.human_queue
        assert path is not None
        try:
            with self._queue_lock:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
        except OSError:
            return False
        return True


def _redact_emails(text: str) -> tuple[str, int]:
    return _EMAIL.subn(EMAIL_TOKEN, text)


def _redact_cards(text: str) -> tuple[str, int]:
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        run = match.group()
        digits = "".join(c for c in run if c != " " and c != "-")
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            count += 1
            return CARD_TOKEN
        if len(digits) < 13 or len(digits) == len(run):
            return run
        parts = re.split(r"([ \-])", run)  # digits, separator, digits, ...
        groups, separators = parts[0::2], parts[1::2]
        ranges = _luhn_group_ranges(groups)
        if not ranges:
            return run
        out: list[str] = []
        i = 0
        for first, last in ranges:
            out += [x for k in range(i, first) for x in (groups[k], separators[k])]
            out.append(CARD_TOKEN)
            if last < len(separators):
                out.append(separators[last])
            i = last + 1
        out += [x for k in range(i, len(groups)) for x in (groups[k], separators[k] if k < len(separators) else "")]
        count += len(ranges)
        return "".join(out)

    return _CARD_RUN.sub(replace, text), count


def _luhn_group_ranges(groups: list[str]) -> list[tuple[int, int]]:
    """Non-overlapping ranges (first, last) of whole digit groups holding 13-19 digits that pass Luhn, left to
    right, the longest at each start. Linear: prefix sums give each range's checksum in O(1)."""
    values = [int(c) for group in groups for c in group]
    # plain[p][k] / doubled[p][k]: sum over digit positions m < k with m % 2 == p of d_m / of Luhn-doubled d_m
    plain = [[0], [0]]
    doubled = [[0], [0]]
    for m, value in enumerate(values):
        for parity in (0, 1):
            hit = m % 2 == parity
            plain[parity].append(plain[parity][-1] + (value if hit else 0))
            doubled[parity].append(doubled[parity][-1] + ((value * 2 - 9 if value > 4 else value * 2) if hit else 0))
    starts = [0]
    for group in groups:
        starts.append(starts[-1] + len(group))
    ranges: list[tuple[int, int]] = []
    i = 0
    while i < len(groups):
        best = None
        for j in range(i, len(groups)):
            a, b = starts[i], starts[j + 1]
            if b - a > 19:
                break
            if b - a >= 13:
                q = (b - 1) % 2  # digits with the parity of the last one are not doubled
                total = plain[q][b] - plain[q][a] + doubled[1 - q][b] - doubled[1 - q][a]
                if total % 10 == 0:
                    best = j
        if best is None:
            i += 1
        else:
            ranges.append((i, best))
            i = best + 1
    return ranges


def _is_phone(candidate: str) -> bool:
    digits = sum(c.isdigit() for c in candidate)
    if candidate.startswith("+"):
        ok = 8 <= digits <= 15
    elif candidate.startswith("00"):
        ok = 10 <= digits <= 17
    else:
        ok = 9 <= digits <= 12
    if not ok:
        return False
    return not (_IPV4.fullmatch(candidate) or _ISO_DATE_LEAD.match(candidate) or _DECIMAL.fullmatch(candidate))


def _redact_phones(text: str) -> tuple[str, int]:
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        if _is_phone(match.group()):
            count += 1
            return PHONE_TOKEN
        return match.group()

    return _PHONE.sub(replace, text), count
