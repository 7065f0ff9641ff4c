"""torchrun --nproc_per_node=2 (gloo, CPU) matches one process with the same global batch."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fcos_core.engine.event_writer import read_metrics
from fcos_core.engine.inference import load_predictions

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "engine"
ITERS = 3


def _train_args(
    output_dir: Path, register: Path = FIXTURES / "tiny_shapes_register.py"
) -> list[str]:
    return [
        str(REPO / "tools" / "train_net.py"),
        "--config-file",
        str(FIXTURES / "tiny_fcos.yaml"),
        "DATASETS.REGISTER",
        f'("{register}",)',
        "OUTPUT_DIR",
        str(output_dir),
        "SOLVER.MAX_ITER",
        str(ITERS),
        "SOLVER.IMS_PER_BATCH",
        "4",
        "SOLVER.CHECKPOINT_PERIOD",
        "100",
        "MODEL.FCOS.INFERENCE_TH",
        "0.0",  # detections even from a barely trained model
    ]


def _run(cmd: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def _torchrun(nproc: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
    ]


def test_two_processes_match_one(tiny_env, tmp_path):
    single = _run([sys.executable] + _train_args(tmp_path / "one"), tiny_env)
    assert single.returncode == 0, single.stderr[-3000:]
    double = _run(_torchrun(2) + _train_args(tmp_path / "two"), tiny_env)
    assert double.returncode == 0, double.stdout[-3000:] + double.stderr[-3000:]

    one = read_metrics(str(tmp_path / "one" / "metrics.json"))
    two = read_metrics(str(tmp_path / "two" / "metrics.json"))
    assert [r["iteration"] for r in two] == list(range(1, ITERS + 1))  # rank 0 only: no duplicates
    for a, b in zip(one, two):
        for key in ("loss", "loss_cls", "loss_reg", "loss_centerness"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (a["iteration"], key)
    log = (tmp_path / "two" / "log.txt").read_text()
    assert "Using 2 process(es), gloo backend; device cpu" in log
    # inference: both processes' detections gathered on rank 0, in dataset order
    preds_one = load_predictions(
        str(tmp_path / "one" / "inference" / "tiny_shapes_val" / "predictions.pth")
    )
    preds_two = load_predictions(
        str(tmp_path / "two" / "inference" / "tiny_shapes_val" / "predictions.pth")
    )
    assert len(preds_one) == len(preds_two) == 8
    for p, q in zip(preds_one, preds_two):
        assert len(p) > 0 and p.size == q.size
        top_p = p.get_field("scores").sort(descending=True).values[:10]
        top_q = q.get_field("scores").sort(descending=True).values[:10]
        torch.testing.assert_close(top_p, top_q, rtol=0, atol=1e-3)


def test_a_failing_rank_ends_the_job(tiny_env, tmp_path):
    register = tmp_path / "fail_on_rank1.py"
    register.write_text(
        "import os\n"
        f"exec(open({str(FIXTURES / 'tiny_shapes_register.py')!r}).read())\n"
        "if os.environ.get('RANK') == '1':\n"
        "    raise SystemExit(3)\n"
    )
    proc = _run(_torchrun(2) + _train_args(tmp_path / "out", register), tiny_env, timeout=240)
    assert proc.returncode != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torch_distributed_launch_passes_local_rank(tiny_env, tmp_path):
    launch = [sys.executable, "-m", "torch.distributed.launch", "--nproc_per_node=2",
              f"--master_port={_free_port()}"]  # fmt: skip
    args = _train_args(tmp_path / "out")
    args[args.index("SOLVER.MAX_ITER") + 1] = "1"
    proc = _run(launch + args, tiny_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Using 2 process(es), gloo backend" in (tmp_path / "out" / "log.txt").read_text()
