"""Cluster jobs: two srun tasks train with gloo from SLURM's variables alone; SIGTERM mid-run
checkpoints at the next iteration and the rerun ends with the uninterrupted run's weights."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fcos_core.utils.slurm import PORT_BASE, PORT_SPAN
from tests.engine.test_resume import MAX_ITER, _command, _env, _run_to_end, _wait_for

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "engine"
TIMEOUT_S = 300


def _free_port_in_slurm_range() -> int:
    """A free port that MASTER_PORT = PORT_BASE + SLURM_JOB_ID % PORT_SPAN can name."""
    for port in random.Random(os.getpid()).sample(range(PORT_BASE, PORT_BASE + PORT_SPAN), 50):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port found")


def _srun_env(base: dict[str, str], rank: int, port: int) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK",
                                                      "MASTER_ADDR", "MASTER_PORT")}  # fmt: skip
    env.update(SLURM_PROCID=str(rank), SLURM_NTASKS="2", SLURM_LOCALID=str(rank),
               SLURM_NODELIST="127.0.0.1", SLURM_JOB_ID=str(port - PORT_BASE),
               OMP_NUM_THREADS="1")  # fmt: skip
    return env


@pytest.mark.slow
def test_two_srun_tasks_form_a_gloo_group(tiny_data_dir, tmp_path):
    port = _free_port_in_slurm_range()
    out = tmp_path / "srun"
    cmd = [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file",
           str(FIXTURES / "tiny_fcos.yaml"), "--skip-test", "DATASETS.REGISTER",
           f'("{FIXTURES / "tiny_shapes_register.py"}",)', "OUTPUT_DIR", str(out),
           "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "4"]  # fmt: skip
    base = _env(tiny_data_dir)
    procs = [subprocess.Popen(cmd, env=_srun_env(base, rank, port), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]  # fmt: skip
    outputs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    log = (out / "log.txt").read_text()
    assert "Using 2 process(es), gloo backend; device cpu" in log
    assert "Initialised gloo process group: rank 0 of 2" in log
    assert (out / "model_final.pth").exists()


def _sigterm_mid_run(output_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(_command(output_dir), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for(output_dir / "model_0000004.pth", proc, time.time() + TIMEOUT_S)
        proc.send_signal(signal.SIGTERM)
    finally:
        proc.wait(timeout=TIMEOUT_S)
    return proc


@pytest.mark.slow
def test_sigterm_checkpoints_and_the_rerun_matches_an_uninterrupted_run(tiny_data_dir, tmp_path):
    env = _env(tiny_data_dir)
    reference = tmp_path / "reference"
    _run_to_end(reference, env)
    interrupted = tmp_path / "interrupted"
    proc = _sigterm_mid_run(interrupted, env)
    assert proc.returncode == 128 + signal.SIGTERM
    assert not (interrupted / "model_final.pth").exists()
    stopped_at = (interrupted / "last_checkpoint").read_text().strip()
    iteration = int(stopped_at.removeprefix("model_").removesuffix(".pth"))
    assert 4 <= iteration < MAX_ITER
    log = (interrupted / "log.txt").read_text()
    assert f"Stopped by SIGTERM after iteration {iteration}" in log
    _run_to_end(interrupted, env)
    assert (
        f"Start training at iteration {iteration} of {MAX_ITER}"
        in (interrupted / "log.txt").read_text()
    )
    a = torch.load(reference / "model_final.pth", weights_only=True)
    b = torch.load(interrupted / "model_final.pth", weights_only=True)
    worst = max((a["model"][k].double() - b["model"][k].double()).abs().max().item()
                for k in a["model"])  # fmt: skip
    assert a["iteration"] == b["iteration"] == MAX_ITER and worst <= 1e-6, worst


def test_stop_request_restores_handlers():
    from fcos_core.utils.preemption import StopRequest

    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.agreed(torch.device("cpu")) == signal.SIGUSR1
    assert signal.getsignal(signal.SIGTERM) is before
