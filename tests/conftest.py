"""Shared fixtures: paths and small configs."""

from __future__ import annotations

import os

# numpy's BLAS threads oversubscribe 2 cores under pytest -n 2 (small solves got 20x slower)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path

import pytest

from batchenv.config import SystemConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_TRACE = REPO.parent / "shared" / "traces" / "azure_llm_conv_2023.csv"


@pytest.fixture
def default_config() -> SystemConfig:
    return SystemConfig()


@pytest.fixture
def shared_trace() -> Path:
    if not SHARED_TRACE.is_file():
        pytest.skip(f"shared trace not present at {SHARED_TRACE}")
    return SHARED_TRACE
