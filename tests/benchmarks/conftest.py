"""Fixtures for the benchmark scripts.

- ``run_benchmark(script, *args, timeout=...)``: run ``benchmarks/<script>`` from the repository
  root in a fresh interpreter, assert it exited 0, and return its stdout lines.
- ``benchmark_module(name)``: import ``benchmarks/<name>.py`` as a module (no sys.path edits).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_benchmark() -> Callable[..., list[str]]:
    def run(script: str, *args: str, timeout: float = 300) -> list[str]:
        result = subprocess.run(
            [sys.executable, f"benchmarks/{script}", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.splitlines()

    return run


@pytest.fixture
def benchmark_module() -> Callable[[str], ModuleType]:
    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    return load
