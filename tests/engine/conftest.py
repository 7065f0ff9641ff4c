"""Fixtures for the engine tests: the tiny FCOS config on tiny synthetic shapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "engine"
TINY_YAML = FIXTURES / "tiny_fcos.yaml"
TINY_REGISTER = FIXTURES / "tiny_shapes_register.py"


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> str:
    """Where the tiny shapes splits are generated (once per test session)."""
    path = str(tmp_path_factory.mktemp("tiny_shapes"))
    os.environ["FCOS_TINY_SHAPES_DIR"] = path
    return path


@pytest.fixture
def tiny_cfg(tiny_data_dir, tmp_path):
    """Factory: the tiny config with OUTPUT_DIR in tmp_path plus KEY VALUE overrides."""
    from fcos_core.engine.defaults import load_config

    def make(*opts: str, output_dir: str | None = None):
        base = [
            "DATASETS.REGISTER",
            f'("{TINY_REGISTER}",)',
            "OUTPUT_DIR",
            output_dir or str(tmp_path / "out"),
        ]
        return load_config(str(TINY_YAML), base + list(opts))

    return make
