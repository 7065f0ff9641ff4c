"""tools/quickstart.py wiring on the tiny config: every promised output appears."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "engine"


def test_quickstart_writes_everything(tiny_env, tmp_path):
    out = tmp_path / "qs"
    register = f'("{FIXTURES / "tiny_shapes_register.py"}",)'
    cmd = [sys.executable, str(REPO / "tools" / "quickstart.py"),
           "--config-file", str(FIXTURES / "tiny_fcos.yaml"), "--output-dir", str(out),
           "--max-minutes", "5", "DATASETS.REGISTER", register,
           "SOLVER.MAX_ITER", "2", "MODEL.FCOS.INFERENCE_TH", "0.0"]  # fmt: skip
    proc = subprocess.run(cmd, env=tiny_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("log.txt", "metrics.json", "config.yml", "model_final.pth", "loss_curve.png"):
        assert (out / name).is_file(), name
    assert len(list((out / "val_predictions").glob("*.jpg"))) == 6
    assert (out / "inference" / "tiny_shapes_val" / "bbox.json").is_file()
    assert "COCO AP on the synthetic val split: AP " in proc.stdout
    assert f"Outputs in {out}/" in proc.stdout
