#!/usr/bin/env bash
# Builds the isolated Python environment that benchmarks/evidently_runner.py runs in.
#
# Evidently is only a benchmark reference, never a runtime dependency of the project, and
# evidently 0.7.23 does not import under pandas 3, so it lives in its own venv
# (benchmarks/.venv-evidently, git-ignored) with pandas<3. Idempotent: a stamp file records
# the pinned requirements, and the install is skipped while they are unchanged.
# Evidently 0.7.23 does not depend on torch, so none is installed.
#
#   bash benchmarks/evidently_env.sh     # last stdout line: the venv's python
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-evidently"
python="${PYTHON:-python3}"
reqs=(evidently==0.7.23 "pandas<3" pyarrow)
stamp="$venv/.installed"
want="${reqs[*]}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${reqs[@]}" >&2
    "$venv/bin/python" -c 'import evidently, pandas, pyarrow; from evidently.presets import DataDriftPreset' >&2
    printf '%s' "$want" >"$stamp"
fi
echo "$venv/bin/python"
