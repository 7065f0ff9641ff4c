"""demo/fcos_demo.py: a folder of images in, annotated images of the same size out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from fcos_core.engine.defaults import load_config
from fcos_core.modeling.detector import build_detection_model

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "engine"


def test_demo_writes_annotated_images(tiny_env, tmp_path):
    os.environ["FCOS_TINY_SHAPES_DIR"] = tiny_env["FCOS_TINY_SHAPES_DIR"]
    cfg = load_config(
        str(FIXTURES / "tiny_fcos.yaml"),
        ["DATASETS.REGISTER", f'("{FIXTURES / "tiny_shapes_register.py"}",)'],
    )
    torch.manual_seed(0)
    torch.save({"model": build_detection_model(cfg).state_dict()}, tmp_path / "w.pth")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in (("a.png", (48, 80)), ("b.jpg", (96, 64))):
        cv2.imwrite(str(images / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    (images / "notes.txt").write_text("not an image")
    cmd = [
        sys.executable,
        str(REPO / "demo" / "fcos_demo.py"),
        "--config-file",
        str(FIXTURES / "tiny_fcos.yaml"),
        "--weights",
        str(tmp_path / "w.pth"),
        "--input",
        str(images),
        "--output",
        str(tmp_path / "out"),
        "--class-thresholds",
        "0,0,0,0,0",
        "--dataset",
        "tiny_shapes_val",
        "DATASETS.REGISTER",
        f'("{FIXTURES / "tiny_shapes_register.py"}",)',
        "MODEL.FCOS.INFERENCE_TH",
        "0.0",
        # >= 2x2 cells at P7: the tiny head has one channel per GroupNorm group
        "INPUT.MIN_SIZE_TEST",
        "160",
        "INPUT.MAX_SIZE_TEST",
        "256",
    ]
    proc = subprocess.run(cmd, env=tiny_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote 2 annotated image(s)" in proc.stdout
    out_a, src_a = cv2.imread(str(tmp_path / "out" / "a.jpg")), cv2.imread(str(images / "a.png"))
    assert out_a.shape == src_a.shape and cv2.imread(str(tmp_path / "out" / "b.jpg")).shape == (
        96,
        64,
        3,
    )
    assert np.abs(out_a.astype(int) - src_a.astype(int)).mean() > 1  # boxes were drawn

    bad = (
        cmd[: cmd.index("--class-thresholds") + 1]
        + ["0.5,0.5"]
        + cmd[cmd.index("--class-thresholds") + 2 :]
    )
    proc = subprocess.run(bad, env=tiny_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("error: need one threshold per class (5), got 2")
    )


def _load_demo_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fcos_demo_cli", REPO / "demo" / "fcos_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_threshold_options():
    import pytest

    from fcos_core.config.checks import ConfigError
    from fcos_core.data.coco_classes import FCOS_COCO_CLASS_THRESHOLDS, NUM_COCO_CLASSES

    demo = _load_demo_module()
    base = ["--config-file", "x.yaml", "--input", "i", "--output", "o"]
    assert demo._thresholds(demo.parse_args(base + ["--threshold", "0.3"])) == 0.3
    coco = demo._thresholds(demo.parse_args(base + ["--class-thresholds", "coco"]))
    assert len(coco) == NUM_COCO_CLASSES == len(FCOS_COCO_CLASS_THRESHOLDS)
    assert coco[0] == pytest.approx(0.2386, abs=1e-4) and all(0.1 < t < 0.4 for t in coco)
    assert demo._thresholds(demo.parse_args(base + ["--class-thresholds", "0.5,0.25"])) == [
        0.5,
        0.25,
    ]
    with pytest.raises(ConfigError, match="0.5,x"):
        demo._thresholds(demo.parse_args(base + ["--class-thresholds", "0.5,x"]))
