"""The shape of the package, checked from its source: `core/` is grouped by stage and imports only point down the
stages; every imported name comes from the module that defines it (no re-exports to keep old paths alive); the
README's layout section names every module of `core/`."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

import airflow_provider_llmops

PACKAGE = Path(airflow_provider_llmops.__file__).parent
ROOT = PACKAGE.parent
CORE = PACKAGE / "core"
PREFIX = "airflow_provider_llmops."
# lowest first: a module may import its own stage and the stages before it, never a later one
STAGES = ["", "data", "drift", "model", "governance"]


def _stage(module: str) -> int:
    """Stage index of a dotted module under core/ ('' = the shared leaf modules at core/'s top)."""
    parts = module.split(".")
    assert parts[:2] == ["airflow_provider_llmops", "core"], module
    group = parts[2] if len(parts) > 2 and (CORE / parts[2]).is_dir() else ""
    assert group in STAGES, f"{module}: core/{group}/ is not a stage; add it to STAGES in order"
    return STAGES.index(group)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name) for every import in the file, inside functions and TYPE_CHECKING blocks too."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return found


def _core_modules() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py") if p.name != "__init__.py")


def test_core_is_grouped_by_stage():
    groups = sorted(p.name for p in CORE.iterdir() if p.is_dir() and not p.name.startswith("__"))
    assert groups == sorted(STAGES[1:])
    top = sorted(p.name for p in CORE.glob("*.py") if p.name != "__init__.py")
    assert top == ["metrics.py", "report_html.py", "runs.py"], "new core modules belong in a stage folder"


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(CORE)))
def test_core_imports_only_point_down_the_stages(path: Path):
    own = _stage(_module_name(path))
    upward = []
    for line, module, name in _imports(path):
        if not module.startswith(PREFIX + "core"):
            assert not module.startswith(PREFIX) or module in (PREFIX + "errors", PREFIX + "resources"), (
                f"{path.name}:{line}: core imports {module}; core must not depend on Airflow-side modules"
            )
            continue
        target = f"{module}.{name}" if name and _source_of(f"{module}.{name}") else module
        if _stage(target) > own:
            upward.append(f"{path.name}:{line} imports {target}")
    assert upward == []


def test_the_stage_check_catches_an_upward_import(tmp_path: Path):
    """A data-stage module importing the registry would be reported."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from airflow_provider_llmops.core.model.registry import ModelRegistry\n")
    (line, module, name), *_ = _imports(probe)
    assert (line, module, name) == (2, "airflow_provider_llmops.core.model.registry", "ModelRegistry")
    assert _stage(module) > _stage("airflow_provider_llmops.core.data.store")


@functools.cache
def _defined_names(path: Path) -> frozenset[str]:
    """Names a module defines itself at top level (functions, classes, assignments), not names it imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return frozenset(names)


@functools.cache
def _public_reexports(path: Path) -> frozenset[str]:
    """A package's `__init__` may re-export its public API, listed in `__all__`."""
    if path.name != "__init__.py":
        return set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return frozenset(elt.value for elt in node.value.elts if isinstance(elt, ast.Constant))  # type: ignore[attr-defined]
    return frozenset()


@functools.cache
def _source_of(module: str) -> Path | None:
    rel = Path(*module.split("."))
    for candidate in (ROOT / rel.with_suffix(".py"), ROOT / rel / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


SCANNED = sorted(
    p
    for base in ("airflow_provider_llmops", "tests", "benchmarks", "scripts", "dags")
    if (ROOT / base).exists()
    for p in (ROOT / base).rglob("*.py")
)


def test_every_imported_project_name_comes_from_its_owner():
    wrong = []
    for path in SCANNED:
        for line, module, name in _imports(path):
            if name is None or not module.startswith(PREFIX) or name == "*":
                continue
            source = _source_of(module)
            assert source is not None, f"{path.relative_to(ROOT)}:{line}: no module {module}"
            if _source_of(f"{module}.{name}") is not None:
                continue  # a submodule
            if name not in _defined_names(source) | _public_reexports(source):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {name} is not defined in {module}")
    assert wrong == [], "import each name from the module that defines it:\n" + "\n".join(wrong)


def _layout_entries(readme: str) -> dict[str, str]:
    """The README layout block's entries under core/: {"data": "sources, parsing, ...", "": "runs.py ..."}."""
    section = readme[readme.index("## Layout") :].split("```")[1]
    lines = section[section.index("  core/") :].splitlines()
    entries: dict[str, str] = {}
    current = None
    for line in lines[1:]:
        match = re.match(r"^    (\w+)/\s+(.*)$", line)
        if match:
            current = match.group(1)
            entries[current] = match.group(2)
        elif re.match(r"^    \S", line):
            current = ""
            entries[""] = entries.get("", "") + line
        elif line.startswith(" " * 17) and current is not None:
            entries[current] += " " + line.strip()
        else:
            break
    return entries


def test_the_readme_layout_names_every_core_module():
    entries = _layout_entries((ROOT / "README.md").read_text(encoding="utf-8"))
    assert sorted(entries) == sorted(STAGES), entries
    missing = [
        str(path.relative_to(CORE))
        for path in _core_modules()
        if not re.search(rf"\b{path.stem}\b", entries["" if path.parent == CORE else path.parent.name])
    ]
    assert missing == [], f"the README's layout section does not name: {missing}"
