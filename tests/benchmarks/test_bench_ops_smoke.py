"""benchmarks/bench_ops.py runs end to end (tiny sizes) and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_bench_ops_quick_prints_the_table():
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_ops.py", "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("| op | size | device |") for line in lines)
    assert any(line.startswith("| nms | 200 boxes") and "| cpu |" in line for line in lines)
    focal = [line for line in lines if line.startswith("| focal fwd+bwd | 500 x 8 | cpu |")]
    assert len(focal) == 1
    assert focal[0].count("|") == 9
