#!/usr/bin/env bash
# One command: set up the environment and run the whole test suite (slow end-to-end tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_system.sh  # Debian packages of the monitoring tests (promtool, amtool, pushgateway)
bash scripts/check_services.sh  # a missing service fails the run, it does not skip tests
# lint and format check (settings in pyproject.toml: [tool.ruff]) before the tests
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
