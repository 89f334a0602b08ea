"""The MLflow contract has one owner: `core/model/contract.py` names every alias, `llmops.*` tag and artifact."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_llmops
from airflow_provider_llmops.core.model import contract

PACKAGE = Path(airflow_provider_llmops.__file__).parent
SCANNED = sorted((PACKAGE / "core").rglob("*.py")) + [PACKAGE / "cli.py"]


def test_every_tag_starts_with_the_prefix():
    tags = contract.tag_names()
    assert len(tags) > 20
    assert all(value.startswith(contract.TAG_PREFIX) for value in tags.values()), tags
    assert contract.TAG_PREFIX == "llmops."


def test_tag_values_are_unique():
    values = [value for name, value in contract.tag_names().items() if name != "TAG_PREFIX"]
    assert len(values) == len(set(values))


def test_aliases_and_artifacts_are_unique():
    assert contract.ALIASES == ("champion", "challenger", "canary", "previous-champion", "candidate", "fallback")
    assert len(set(contract.ALIASES)) == len(contract.ALIASES)
    artifacts = [contract.MODEL_ARTIFACT, contract.PROFILE_ARTIFACT, contract.PLOTS_ARTIFACT, contract.SPLIT_ARTIFACT]
    assert len(set(artifacts)) == len(artifacts)


def _docstring_nodes(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _tag_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = _docstring_nodes(tree)
    return [
        f"{path.name}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and node.value.startswith(contract.TAG_PREFIX)
    ]


@pytest.mark.parametrize("path", [p for p in SCANNED if p.name != "contract.py"], ids=lambda p: p.name)
def test_no_tag_literal_outside_the_contract(path: Path):
    assert _tag_literals(path) == [], f"name the tag in core/model/contract.py and import it: {_tag_literals(path)}"


def test_the_scan_finds_tag_literals():
    """The scan sees the contract's own literals (f-string parts included elsewhere), not its docstring."""
    found = _tag_literals(PACKAGE / "core" / "model" / "contract.py")
    assert len(found) == len(contract.tag_names())


def test_loading_the_contract_imports_no_job_module():
    """Fetching a champion's profile needs only the contract (and the registry): no training or evaluation job."""
    code = (
        "import sys\n"
        "import airflow_provider_llmops.core.model.contract\n"
        "jobs = [m for m in sys.modules if m.endswith('_job') or m == 'mlflow' or m.startswith('mlflow.')]\n"
        "assert not jobs, jobs\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
