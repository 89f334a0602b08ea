"""A small PromQL parser for tests: checks that a query only names metrics the project exports and only uses labels
those metrics have.

`check(expr, catalog)` parses `expr` (the PromQL subset Prometheus rules and Grafana panels use: selectors, range
and subquery brackets, offset/@, functions, aggregations with by/without, binary operators with bool, on/ignoring
and group_left/group_right, number/string literals) and infers, for each sub-expression, the set of label names its
series can carry. It returns a list of problems:

* a metric name that is not in `catalog` (a mapping name -> label names);
* a label in a matcher, `by`, `without`, `on`, `ignoring`, `group_left`/`group_right` or `label_replace` source that
  the series at that place cannot carry;
* a one-to-one vector operation (other than `or`) without `on()` whose two sides carry different label sets
  outside `ignoring()` (it would never match anything);
* `histogram_quantile` over series without `le`;
* syntax this parser does not know (so a query it cannot check fails instead of passing unchecked).

Label inference follows Prometheus: aggregations keep their `by` labels (or drop their `without` labels), one-to-one
arithmetic with `on(l)` keeps `l`, with `ignoring(l)` drops `l`, `group_left(x)` adds `x` from the right side,
`or` unions both sides, `and`/`unless`/comparisons keep the left side, `histogram_quantile` drops `le`.
Grafana's `$__rate_interval`/`$__interval`/`$__range` are read as durations; `$var` inside strings is a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

AGGREGATIONS = {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile"}
AGGREGATIONS_WITH_PARAM = {"topk", "bottomk", "quantile", "count_values"}
SAME_LABELS = {
    "rate", "irate", "increase", "delta", "idelta", "deriv", "resets", "changes", "abs", "ceil", "floor", "round",
    "sqrt", "exp", "ln", "log2", "log10", "clamp", "clamp_min", "clamp_max", "sort", "sort_desc", "timestamp",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time",
    "stddev_over_time", "stdvar_over_time", "quantile_over_time", "predict_linear", "holt_winters",
}  # fmt: skip
SCALAR_FUNCTIONS = {"time", "scalar", "pi"}
COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
PRECEDENCE = {
    "or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, ">": 3, "<": 3, ">=": 3, "<=": 3,
    "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6,
}  # fmt: skip
GRAFANA_DURATIONS = re.compile(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}")

TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<range>\[[^\]]*\])
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<duration>\d+(?:ms|s|m|h|d|w|y)(?:\d+(?:ms|s|m|h|d|w|y))*(?![\w.]))
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=(){},@])
    """,
    re.VERBOSE,
)


class PromQLSyntaxError(ValueError):
    pass


@dataclass
class Value:
    """A sub-expression's type ('vector', 'matrix', 'scalar', 'string') and the label names its series can carry."""

    kind: str
    labels: frozenset[str] = frozenset()


@dataclass
class _Parser:
    tokens: list[tuple[str, str]]
    catalog: Mapping[str, frozenset[str]]
    problems: list[str] = field(default_factory=list)
    metrics: set[str] = field(default_factory=set)
    pos: int = 0

    # -- tokens ---------------------------------------------------------------------------------------------------
    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("eof", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.pos += 1
        return token

    def expect(self, text: str) -> None:
        kind, value = self.take()
        if value != text:
            raise PromQLSyntaxError(f"expected {text!r}, found {value or kind!r}")

    def label_list(self) -> list[str]:
        self.expect("(")
        names: list[str] = []
        while self.peek()[1] != ")":
            kind, value = self.take()
            if kind != "ident":
                raise PromQLSyntaxError(f"expected a label name, found {value!r}")
            names.append(value)
            if self.peek()[1] == ",":
                self.take()
        self.expect(")")
        return names

    def need(self, labels: list[str], have: frozenset[str], where: str) -> None:
        for label in labels:
            if label not in have:
                self.problems.append(f"{where}: label {label!r} is not one of {sorted(have)}")

    # -- grammar --------------------------------------------------------------------------------------------------
    def expression(self, min_precedence: int = 1) -> Value:
        left = self.unary()
        while True:
            kind, op = self.peek()
            if op not in PRECEDENCE or kind not in ("op", "ident") or PRECEDENCE[op] < min_precedence:
                return left
            self.take()
            returns_bool = False
            if self.peek() == ("ident", "bool"):
                self.take()
                returns_bool = True
            on = ignoring = group_left = group_right = None
            if self.peek() == ("ident", "on"):
                self.take()
                on = self.label_list()
            elif self.peek() == ("ident", "ignoring"):
                self.take()
                ignoring = self.label_list()
            if self.peek() in (("ident", "group_left"), ("ident", "group_right")):
                side = self.take()[1]
                extra = self.label_list() if self.peek()[1] == "(" else []
                group_left, group_right = (extra, None) if side == "group_left" else (None, extra)
            next_min = PRECEDENCE[op] if op == "^" else PRECEDENCE[op] + 1
            right = self.expression(next_min)
            left = self.binary(op, left, right, returns_bool, on, ignoring, group_left, group_right)

    def binary(self, op, left, right, returns_bool, on, ignoring, group_left, group_right) -> Value:  # noqa: PLR0913
        if left.kind == "scalar" and right.kind == "scalar":
            return Value("scalar")
        if left.kind == "scalar" or right.kind == "scalar":
            vector = right if left.kind == "scalar" else left
            if vector.kind != "vector":
                raise PromQLSyntaxError(f"operator {op} on a {vector.kind}")
            return Value("vector", vector.labels)
        if left.kind != "vector" or right.kind != "vector":
            raise PromQLSyntaxError(f"operator {op} between {left.kind} and {right.kind}")
        where = f"operator {op!r}"
        if on is not None:
            self.need(on, left.labels, f"{where} on() left side")
            self.need(on, right.labels, f"{where} on() right side")
        if ignoring is not None:
            self.need(ignoring, left.labels | right.labels, f"{where} ignoring()")
        if group_left is not None:
            self.need(group_left, right.labels, f"{where} group_left() (from the right side)")
        if group_right is not None:
            self.need(group_right, left.labels, f"{where} group_right() (from the left side)")
        if op == "or":
            return Value("vector", left.labels | right.labels)
        ignored = frozenset(ignoring or ())
        grouped = group_left is not None or group_right is not None
        if on is None and not grouped and left.labels - ignored != right.labels - ignored:
            self.problems.append(
                f"{where} matches series with labels {sorted(left.labels - ignored)} against "
                f"{sorted(right.labels - ignored)} (all labels but ignoring()): no series would ever match"
            )
        if op in ("and", "unless"):
            return Value("vector", left.labels)
        if group_left is not None:
            return Value("vector", left.labels | frozenset(group_left))
        if group_right is not None:
            return Value("vector", right.labels | frozenset(group_right))
        if op in COMPARISONS and not returns_bool:
            return Value("vector", left.labels)
        if on is not None:
            return Value("vector", frozenset(on))
        if ignoring is not None:
            return Value("vector", left.labels - frozenset(ignoring))
        return Value("vector", left.labels)

    def unary(self) -> Value:
        if self.peek() in (("op", "-"), ("op", "+")):
            self.take()
            return self.unary()
        return self.postfix(self.primary())

    def postfix(self, value: Value) -> Value:
        while True:
            kind, text = self.peek()
            if kind == "range":
                self.take()
                if value.kind != "vector":
                    raise PromQLSyntaxError(f"a range {text} after a {value.kind}")
                value = Value("matrix", value.labels)
            elif (kind, text) == ("ident", "offset"):
                self.take()
                if self.peek()[1] == "-":
                    self.take()
                if self.take()[0] != "duration":
                    raise PromQLSyntaxError("offset needs a duration")
            elif (kind, text) == ("op", "@"):
                self.take()
                self.take()
                if self.peek()[1] == "(":
                    self.take()
                    self.expect(")")
            else:
                return value

    def primary(self) -> Value:
        kind, text = self.peek()
        if kind == "number":
            self.take()
            return Value("scalar")
        if kind == "string":
            self.take()
            return Value("string")
        if text == "(":
            self.take()
            value = self.expression()
            self.expect(")")
            return value
        if text == "{":
            return self.selector(None)
        if kind == "ident":
            if text in ("Inf", "NaN", "inf", "nan"):
                self.take()
                return Value("scalar")
            if text in AGGREGATIONS or text == "count_values":
                if self.peek(1)[1] in ("(", "by", "without"):
                    return self.aggregation()
            if self.peek(1)[1] == "(":
                return self.function()
            return self.selector(text)
        raise PromQLSyntaxError(f"unexpected {text or kind!r}")

    def selector(self, name: str | None) -> Value:
        if name is not None:
            self.take()
        matchers: list[tuple[str, str, str]] = []
        if self.peek()[1] == "{":
            self.take()
            while self.peek()[1] != "}":
                label_kind, label = self.take()
                if label_kind != "ident":
                    raise PromQLSyntaxError(f"expected a label name in a selector, found {label!r}")
                op = self.take()[1]
                if op not in ("=", "!=", "=~", "!~"):
                    raise PromQLSyntaxError(f"expected a matcher operator after {label}, found {op!r}")
                value_kind, value = self.take()
                if value_kind != "string":
                    raise PromQLSyntaxError(f"expected a string after {label}{op}, found {value!r}")
                matchers.append((label, op, value[1:-1]))
                if self.peek()[1] == ",":
                    self.take()
            self.expect("}")
        if name is None:
            names = [v for (label, op, v) in matchers if label == "__name__" and op == "="]
            if not names:
                raise PromQLSyntaxError("a selector without a metric name")
            name = names[0]
        self.metrics.add(name)
        if name not in self.catalog:
            self.problems.append(f"metric {name!r} is not exported by the project (nor a recording rule)")
            return Value("vector", frozenset(label for label, *_ in matchers))
        labels = self.catalog[name]
        self.need([m[0] for m in matchers if m[0] != "__name__"], labels, f"selector {name}")
        return Value("vector", labels)

    def aggregation(self) -> Value:
        op = self.take()[1]
        by = without = None
        if self.peek()[1] in ("by", "without"):
            clause = self.take()[1]
            by, without = (self.label_list(), None) if clause == "by" else (None, self.label_list())
        self.expect("(")
        first = self.peek()
        args = [self.expression()]
        while self.peek()[1] == ",":
            self.take()
            args.append(self.expression())
        self.expect(")")
        if by is None and without is None and self.peek()[1] in ("by", "without"):
            clause = self.take()[1]
            by, without = (self.label_list(), None) if clause == "by" else (None, self.label_list())
        inner = args[-1]
        expected_args = 2 if op in AGGREGATIONS_WITH_PARAM else 1
        if len(args) != expected_args or inner.kind != "vector":
            raise PromQLSyntaxError(f"{op}() takes {expected_args} argument(s), the last an instant vector")
        where = f"{op}()"
        if by is not None:
            self.need(by, inner.labels, f"{where} by")
        if without is not None:
            self.need(without, inner.labels, f"{where} without")
        if op in ("topk", "bottomk"):
            return Value("vector", inner.labels)
        if by is not None:
            result = frozenset(by)
        elif without is not None:
            result = inner.labels - frozenset(without)
        else:
            result = frozenset()
        if op == "count_values":
            if first[0] != "string":
                raise PromQLSyntaxError("count_values() needs a label name string first")
            return Value("vector", result | {first[1][1:-1]})
        return Value("vector", result)

    def function(self) -> Value:
        name = self.take()[1]
        self.expect("(")
        args: list[Value] = []
        raw: list[str] = []
        while self.peek()[1] != ")":
            start = self.pos
            args.append(self.expression())
            raw.append(self.tokens[start][1] if self.pos == start + 1 else "")
            if self.peek()[1] == ",":
                self.take()
        self.expect(")")
        if name in SCALAR_FUNCTIONS:
            return Value("scalar")
        if name == "vector":
            return Value("vector")
        if name in ("absent", "absent_over_time"):
            return Value("vector")  # the equality matchers' labels at most; nothing a query can rely on
        if name in SAME_LABELS:
            series = [a for a in args if a.kind in ("vector", "matrix")]
            if len(series) != 1:
                raise PromQLSyntaxError(f"{name}() takes one range or instant vector")
            return Value("vector", series[0].labels)
        if name == "histogram_quantile":
            if len(args) != 2 or args[1].kind != "vector":
                raise PromQLSyntaxError("histogram_quantile(q, instant vector of buckets)")
            if "le" not in args[1].labels:
                self.problems.append(f"histogram_quantile() over series without 'le' (labels {sorted(args[1].labels)})")
            return Value("vector", args[1].labels - {"le"})
        if name in ("label_replace", "label_join"):
            strings = [text[1:-1] for text in raw[1:]]
            if not args or args[0].kind != "vector" or len(strings) < 3:
                raise PromQLSyntaxError(f"{name}(vector, dst, ...) with string arguments")
            sources = [strings[2]] if name == "label_replace" else strings[2:]
            self.need([s for s in sources if s], args[0].labels, f"{name}() source")
            return Value("vector", args[0].labels | {strings[0]})
        raise PromQLSyntaxError(f"function {name}() is not known to this checker; add it to tests/promql.py")


def tokenize(expr: str) -> list[tuple[str, str]]:
    text = GRAFANA_DURATIONS.sub("5m", expr)
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if match is None:
            raise PromQLSyntaxError(f"cannot read {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, match.group()))
        pos = match.end()
    return tokens


def analyse(expr: str, catalog: Mapping[str, frozenset[str]]) -> tuple[Value, list[str], set[str]]:
    """(the expression's value, problems, metric names used). Syntax this parser does not know is a problem."""
    try:
        parser = _Parser(tokenize(expr), catalog)
        value = parser.expression()
        if parser.pos != len(parser.tokens):
            raise PromQLSyntaxError(f"unexpected {parser.peek()[1]!r} after the expression")
    except PromQLSyntaxError as exc:
        return Value("vector"), [f"cannot parse: {exc}"], set()
    return value, parser.problems, parser.metrics


def check(expr: str, catalog: Mapping[str, frozenset[str]]) -> list[str]:
    return analyse(expr, catalog)[1]
