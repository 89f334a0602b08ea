#!/usr/bin/env bash
# One command: set up the environment and the embedded Airflow, then run the pipeline on the sample data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/llmops demo "$@"
