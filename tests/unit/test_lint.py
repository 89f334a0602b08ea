"""The ruff rule that keeps heavy libraries out of what Airflow's DAG processor imports: banned at module level in
operators/, dags/, hooks/ and the thin DAG files, allowed in core/ (which the operators import inside execute)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
RUFF = str(Path(sys.executable).with_name("ruff"))
SOURCE = "from __future__ import annotations\n\nimport torch\n\n\ndef f() -> object:\n    return torch\n"


def _ruff(filename: str, source: str = SOURCE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUFF, "check", "--no-cache", "--stdin-filename", filename, "-"],
        input=source, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    "filename",
    [
        "airflow_provider_llmops/operators/x.py",
        "airflow_provider_llmops/dags/x.py",
        "airflow_provider_llmops/hooks/x.py",
        "dags/x.py",
    ],
)
def test_a_heavy_module_level_import_is_refused_where_airflow_parses(filename: str):
    done = _ruff(filename)
    assert done.returncode == 1 and "TID253" in done.stdout, done.stdout + done.stderr


def test_the_same_import_inside_a_function_or_in_core_is_fine():
    inside = "from __future__ import annotations\n\n\ndef f() -> object:\n    import torch\n\n    return torch\n"
    assert _ruff("airflow_provider_llmops/operators/x.py", inside).returncode == 0
    assert _ruff("airflow_provider_llmops/core/x.py").returncode == 0
