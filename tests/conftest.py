"""Shared pytest set-up: markers `slow` and `cuda`, the CUDA skip, and ``tiny_env`` (the
environment for subprocesses that run the tools and benchmarks on the tiny synthetic set)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)


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
