#!/usr/bin/env bash
# One command for a new user: install batchenv into .venv, then the demo (about 3 minutes on 2 busy
# cores the first time, 20 s once its hindsight bounds are cached):
# the tuned baselines, the exact optimum, the proposed scheduler and a shipped PPO agent on a bursty
# load, a production trace and a high steady load, with what the tables show and where the results,
# plots and report went. Extra arguments go to evaluate.py (e.g. --n-seeds 10).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# PyTorch's CPU build first (PyPI's Linux wheels bundle CUDA), at the version pyproject.toml pins;
# its dependencies come from the usual index with the next line
python -m pip install --quiet --no-deps --extra-index-url https://download.pytorch.org/whl/cpu \
  "$(grep -o 'torch==[^"]*' pyproject.toml)"
python -m pip install --quiet -e ".[dev]"
python evaluate.py --demo "$@"
