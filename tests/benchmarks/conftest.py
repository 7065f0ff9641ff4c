"""``run_benchmark(script, *args, timeout=...)``: run ``benchmarks/<script>`` from the repository
root in a fresh interpreter, assert it exited 0, and return its stdout lines."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

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
