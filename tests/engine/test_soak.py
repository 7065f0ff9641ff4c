"""Soak test (opt-in, long): the quickstart config for 2,000 iterations, killed and resumed again
and again, ends with the uninterrupted run's weights and AP; memory stays flat.

    FCOS_SOAK=1 .venv/bin/python -m pytest -m slow tests/engine/test_soak.py -s

FCOS_SOAK_ITERS changes the length (default 2000) and FCOS_SOAK_KILL_WINDOW="lo,hi" how long
(seconds) each run lives before its SIGKILL. Not run by default: it takes tens of minutes.
A short check: FCOS_SOAK=1 FCOS_SOAK_ITERS=200 FCOS_SOAK_KILL_WINDOW=15,35 (about 4 minutes).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fcos_core.engine.event_writer import read_metrics

REPO = Path(__file__).resolve().parents[2]
ITERS = int(os.environ.get("FCOS_SOAK_ITERS", "2000"))
MAX_RSS_GROWTH = 0.10
# Seconds a run lives before it is killed, drawn uniformly (FCOS_SOAK_KILL_WINDOW="lo,hi").
KILL_WINDOW_S = tuple(float(v) for v in os.environ.get("FCOS_SOAK_KILL_WINDOW", "30,90").split(","))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("FCOS_SOAK"), reason="set FCOS_SOAK=1 to run the soak test"
    ),
]


def _command(output_dir: Path) -> list[str]:
    return [
        sys.executable, str(REPO / "tools" / "train_net.py"),
        "--config-file", str(REPO / "configs" / "quickstart" / "fcos_quickstart.yaml"),
        "OUTPUT_DIR", str(output_dir), "SOLVER.MAX_MINUTES", "0", "SOLVER.MAX_ITER", str(ITERS),
        "SOLVER.STEPS", f"({ITERS * 3 // 4}, {ITERS * 11 // 12})",
        "SOLVER.CHECKPOINT_PERIOD", str(max(ITERS // 20, 1)),
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def _ap(output_dir: Path) -> dict[str, float]:
    path = output_dir / "inference" / "shapes_val" / "coco_results.json"
    return json.loads(path.read_text())["bbox"]


def _run_with_kills(output_dir: Path, rng: random.Random) -> int:
    """Kill the run at random moments until it finishes on its own; returns the kill count."""
    kills = 0
    while True:
        proc = subprocess.Popen(_command(output_dir), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            proc.wait(timeout=rng.uniform(*KILL_WINDOW_S))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0
        return kills


def test_soak_kill_resume(tmp_path):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    start = time.time()
    subprocess.run(_command(reference), env=_env(), check=True, capture_output=True)
    print(f"uninterrupted run: {time.time() - start:.0f} s")
    kills = _run_with_kills(interrupted, random.Random(0))
    print(f"interrupted run: {kills} kills")
    assert kills > 0

    a = torch.load(reference / "model_final.pth", weights_only=True)["model"]
    b = torch.load(interrupted / "model_final.pth", weights_only=True)["model"]
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    assert worst <= 1e-6, worst
    assert _ap(interrupted) == _ap(reference)

    rss = [(r["iteration"], r["rss_mb"]) for r in read_metrics(str(reference / "metrics.json"))
           if "rss_mb" in r]  # fmt: skip
    settled = [m for it, m in rss if it >= ITERS // 10]
    assert max(settled) <= (1 + MAX_RSS_GROWTH) * settled[0], rss
