"""Reference docs stay true to the code: every operator documents each `__init__` argument (its own and the base's)
as `:param name:` in its class docstring (or the base's), documents nothing that is not an argument, and marks an
argument "(templated)" exactly when it is in `template_fields`. The CLI's module docstring names every subcommand
its parser defines."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Sequence
from typing import Any

import pytest

import airflow_provider_llmops.operators as operators_package
from airflow_provider_llmops.operators.base import LLMOpsBaseOperator

PARAM = re.compile(r"^\s*:param\s+(\w+):\s*(.*)$")
FIELD = re.compile(r"^\s*:\w[^:]*:")  # any reST field (:param x:, :return:, :raises E:, ...) ends an entry
TEMPLATED = "(templated)"
# the operators this provider ships today; discovery must find at least these (a new one is checked as well)
KNOWN = {
    "IngestBatchOperator",
    "ValidateBatchOperator",
    "DriftScoreOperator",
    "FineTuneOperator",
    "EvaluateModelOperator",
    "PromoteModelOperator",
    "RollbackModelOperator",
}


def operator_classes() -> list[type[LLMOpsBaseOperator]]:
    """Every subclass of LLMOpsBaseOperator defined in a module of the operators package."""
    found: dict[str, type[LLMOpsBaseOperator]] = {}
    for info in pkgutil.iter_modules(operators_package.__path__):
        module = importlib.import_module(f"{operators_package.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, LLMOpsBaseOperator)
                and cls is not LLMOpsBaseOperator
                and cls.__module__ == module.__name__
            ):
                found[cls.__qualname__] = cls
    return [found[name] for name in sorted(found)]


def documented_params(doc: str | None) -> dict[str, str]:
    """`:param name: text` entries of a docstring (continuation lines joined); a name documented twice is an
    error, reported as such by the caller through the returned key `!duplicate:<name>`."""
    entries: dict[str, str] = {}
    current: str | None = None
    for line in inspect.cleandoc(doc or "").splitlines():
        match = PARAM.match(line)
        if match:
            current = match.group(1)
            if current in entries:
                entries[f"!duplicate:{current}"] = ""
            entries[current] = match.group(2).strip()
        elif current is not None and line.strip() and not FIELD.match(line):
            entries[current] = f"{entries[current]} {line.strip()}".strip()
        else:
            current = None
    return entries


def init_arguments(cls: type) -> set[str]:
    """Named arguments of `cls.__init__` (keyword or positional, not *args/**kwargs, not self)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name for p in params if p.kind in kinds and p.name != "self"}


def doc_problems(cls: type[LLMOpsBaseOperator]) -> list[str]:
    """Everything wrong with the reference docs of operator `cls` (empty: the docs match the code)."""
    base = LLMOpsBaseOperator
    arguments = init_arguments(cls) | init_arguments(base)
    own, inherited = documented_params(cls.__doc__), documented_params(base.__doc__)
    problems = [f"{k.split(':', 1)[1]} is documented twice" for k in own if k.startswith("!duplicate:")]
    docs = {**inherited, **{k: v for k, v in own.items() if not k.startswith("!")}}
    templated: Sequence[str] = cls.template_fields
    for name in sorted(arguments - set(docs)):
        problems.append(f"argument {name} is not documented (:param {name}: ...)")
    for name in sorted(set(docs) - arguments):
        problems.append(f":param {name}: documents no argument of __init__")
    for name in sorted(set(templated) - arguments):
        problems.append(f"template field {name} is not an argument of __init__")
    for name in sorted(set(docs) & arguments):
        text = docs[name]
        if not text.replace(TEMPLATED, "").strip():
            problems.append(f":param {name}: says nothing")
        marked = TEMPLATED in text
        if name in templated and not text.endswith(TEMPLATED):
            problems.append(f":param {name}: is a template field but its entry does not end with {TEMPLATED}")
        elif name not in templated and marked:
            problems.append(f":param {name}: is marked {TEMPLATED} but is not in template_fields")
    return problems


def test_discovery_finds_every_operator():
    names = {cls.__name__ for cls in operator_classes()}
    assert KNOWN <= names, sorted(KNOWN - names)


@pytest.mark.parametrize("cls", operator_classes(), ids=lambda c: c.__name__)
def test_every_argument_is_documented_and_the_templated_marks_match(cls: type[LLMOpsBaseOperator]):
    assert doc_problems(cls) == []


def test_the_base_documents_its_own_arguments_as_templated():
    docs = documented_params(LLMOpsBaseOperator.__doc__)
    assert set(docs) == init_arguments(LLMOpsBaseOperator) == set(LLMOpsBaseOperator.base_template_fields)
    assert all(text.endswith(TEMPLATED) for text in docs.values())


class _Sloppy(LLMOpsBaseOperator):
    """An operator with every kind of documentation mistake.

    :param documented: a template field whose entry is not marked.
    :param marked: not a template field, but marked. (templated)
    :param ghost: not an argument at all.
    :param twice: documented once,
    :param twice: and twice.
    """

    template_fields: Sequence[str] = (*LLMOpsBaseOperator.base_template_fields, "documented", "phantom")

    def __init__(self, *, documented: str = "", marked: str = "", twice: str = "", missing: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.documented, self.marked, self.twice, self.missing = documented, marked, twice, missing


def test_the_check_reports_each_kind_of_mistake():
    assert doc_problems(_Sloppy) == [
        "twice is documented twice",
        "argument missing is not documented (:param missing: ...)",
        ":param ghost: documents no argument of __init__",
        "template field phantom is not an argument of __init__",
        ":param documented: is a template field but its entry does not end with (templated)",
        ":param marked: is marked (templated) but is not in template_fields",
    ]


def test_continuation_lines_belong_to_their_entry_until_a_blank_line_or_the_next_field():
    doc = """Summary.

    :param a: first line
        second line. (templated)
    :param b: one line.

    Trailing text that is no parameter's.
    :return: nothing
    """
    assert documented_params(doc) == {"a": "first line second line. (templated)", "b": "one line."}


# ----------------------------------------------------------------------------------------------------- the CLI


def _subcommands(parser: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf command path of an argparse parser, e.g. ("audit", "verify")."""
    import argparse

    paths: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _subcommands(sub, (*prefix, name)) or [(*prefix, name)]
    return paths


def test_the_cli_docstring_names_every_subcommand():
    from airflow_provider_llmops import cli

    paths = _subcommands(cli.build_parser())
    assert {"drift", "ingest", "validate"} <= {p[0] for p in paths}
    assert ("audit", "verify") in paths and ("suite", "init") in paths
    doc = cli.__doc__ or ""
    missing = [" ".join(p) for p in paths if not re.search(rf"^llmops {re.escape(' '.join(p))}(\s|$)", doc, re.M)]
    assert missing == [], f"the module docstring of cli.py does not show: {missing}"
