"""Where the files shipped with the provider live: in a wheel and in a source checkout alike."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"none of {[str(c) for c in candidates]} exists; is the package installed completely?")


def include_dir() -> Path:
    """`include/` (GX suites, sample data): inside the wheel, or at the root of a source checkout."""
    return _first_existing(_PACKAGE_DIR / "include", _PACKAGE_DIR.parent / "include")


def dag_files_dir() -> Path:
    """The thin DAG files that call the factories (`dags/` of the repository)."""
    return _first_existing(_PACKAGE_DIR / "dag_files", _PACKAGE_DIR.parent / "dags")


def sample_data_dir() -> Path:
    return include_dir() / "data"


def expectations_dir() -> Path:
    return include_dir() / "expectations"
