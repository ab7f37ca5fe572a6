#!/usr/bin/env bash
# One command for a new user: install batchenv into .venv (CPU-only PyTorch), then evaluate the
# baselines on the default scenario and print the table. Extra arguments go to evaluate.py.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[dev]"
python evaluate.py --quick "$@"
