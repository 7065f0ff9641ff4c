"""Fixtures for the tools tests: paths of the tiny config and its synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_env(tmp_path_factory) -> dict[str, str]:
    """Environment for tool subprocesses: tiny data dir, PYTHONPATH, no inherited rank vars."""
    env = dict(
        os.environ,
        FCOS_TINY_SHAPES_DIR=str(tmp_path_factory.mktemp("tiny_shapes")),
        PYTHONPATH=str(REPO),
        OMP_NUM_THREADS="1",
    )
    for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env
