"""Exact resume: a training run killed with SIGKILL and restarted with the same command ends with
the same weights as an uninterrupted run (max abs difference <= 1e-6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TINY_YAML = REPO / "tests" / "fixtures" / "engine" / "tiny_fcos.yaml"
TINY_REGISTER = REPO / "tests" / "fixtures" / "engine" / "tiny_shapes_register.py"
MAX_ITER = 16
KILL_TIMEOUT_S = 120


def _command(output_dir: Path) -> list[str]:
    return [
        sys.executable,
        str(REPO / "tools" / "train_net.py"),
        "--config-file",
        str(TINY_YAML),
        "--skip-test",
        "DATASETS.REGISTER",
        f'("{TINY_REGISTER}",)',
        "OUTPUT_DIR",
        str(output_dir),
        "SOLVER.MAX_ITER",
        str(MAX_ITER),
        "SOLVER.STEPS",
        "(8,)",
        "SOLVER.CHECKPOINT_PERIOD",
        "2",
        "SOLVER.BASE_LR",
        "0.02",
        "INPUT.HORIZONTAL_FLIP_PROB_TRAIN",
        "0.5",
    ]


def _env(data_dir: str) -> dict[str, str]:
    env = dict(os.environ, FCOS_TINY_SHAPES_DIR=data_dir, PYTHONPATH=str(REPO))
    env.pop("LOCAL_RANK", None)
    return env


def _run_to_end(output_dir: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        _command(output_dir), env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _wait_for(path: Path, proc: subprocess.Popen, deadline: float) -> float:
    while not path.exists():
        assert proc.poll() is None, f"training ended before {path.name} appeared"
        assert time.time() < deadline, f"{path.name} did not appear"
        time.sleep(0.005)
    return time.time()


def _kill_mid_run(output_dir: Path, env: dict[str, str], delay_factor: float) -> bool:
    """Start training, SIGKILL it a fraction of an iteration after its second checkpoint.

    Returns:
        True if the process was killed before finishing.
    """
    proc = subprocess.Popen(_command(output_dir), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + KILL_TIMEOUT_S
    try:
        t2 = _wait_for(output_dir / "model_0000002.pth", proc, deadline)
        t4 = _wait_for(output_dir / "model_0000004.pth", proc, deadline)
        time.sleep(delay_factor * (t4 - t2) / 2)  # somewhere in the next iterations
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    return proc.returncode == -signal.SIGKILL and not (output_dir / "model_final.pth").exists()


@pytest.mark.slow
def test_sigkill_then_same_command_gives_identical_weights(tiny_data_dir, tmp_path):
    env = _env(tiny_data_dir)
    reference = tmp_path / "reference"
    _run_to_end(reference, env)
    for attempt, factor in enumerate((0.5, 0.25, 0.0)):  # shorter delays if the run outpaced us
        interrupted = tmp_path / f"interrupted{attempt}"
        if _kill_mid_run(interrupted, env, factor):
            break
    else:
        raise AssertionError("could not kill the run before it finished")
    resumed_from = (interrupted / "last_checkpoint").read_text().strip()
    _run_to_end(interrupted, env)

    log = (interrupted / "log.txt").read_text()
    start_iter = int(resumed_from.removeprefix("model_").removesuffix(".pth"))
    assert 0 < start_iter < MAX_ITER
    assert f"Start training at iteration {start_iter} of {MAX_ITER}" in log

    a = torch.load(reference / "model_final.pth", weights_only=True)
    b = torch.load(interrupted / "model_final.pth", weights_only=True)
    assert a["iteration"] == b["iteration"] == MAX_ITER
    assert a["model"].keys() == b["model"].keys()
    worst = max(
        (a["model"][k].double() - b["model"][k].double()).abs().max().item() for k in a["model"]
    )
    assert worst <= 1e-6, worst
    momentum_a = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
    momentum_b = [s["momentum_buffer"] for s in b["optimizer"]["state"].values()]
    assert all(torch.allclose(x, y, rtol=0, atol=1e-6) for x, y in zip(momentum_a, momentum_b))
