"""Shared fixtures: paths and small configs."""

from __future__ import annotations

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
