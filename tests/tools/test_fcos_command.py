"""The ``fcos`` command: subcommands, their --help, and the tools/ scripts as thin wrappers."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fcos_core.engine import cli
from fcos_core.engine.commands import MODULES, command_module

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "engine"
REGISTER = ["DATASETS.REGISTER", f'("{FIXTURES / "tiny_shapes_register.py"}",)']
# >= 2x2 cells at P7 for the tiny head (see test_demo.py)
TEST_SIZE = ["INPUT.MIN_SIZE_TEST", "160", "INPUT.MAX_SIZE_TEST", "256"]
TOOLS = {"train": "train_net", "test": "test_net", "export": "export_onnx",
         "convert-torchvision": "convert_torchvision_fcos", "quickstart": "quickstart"}  # fmt: skip


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fcos_help_lists_every_subcommand(tiny_env):
    proc = subprocess.run([sys.executable, "-m", "fcos_core", "--help"], env=tiny_env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = ["train", "test", "detect", "export", "convert-torchvision", "quickstart",
                "analyze-data"]  # fmt: skip
    listed = [name for name in expected if f"\n    {name}" in proc.stdout]
    assert listed == expected == list(MODULES), proc.stdout


@pytest.mark.parametrize("name", list(MODULES))
def test_each_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([name, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fcos {name}")
    assert command_module(name).DESCRIPTION.splitlines()[0] in out


def test_pyproject_declares_the_console_script():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["fcos"].split(":")
    assert getattr(importlib.import_module(module), function) is cli.main


@pytest.mark.parametrize("name", list(TOOLS))
def test_tool_script_and_fcos_subcommand_reach_the_same_function(name, monkeypatch):
    calls = []
    monkeypatch.setattr(command_module(name), "run", lambda args: calls.append(vars(args)))
    argv = ["--config-file", "a.yaml", "--output", "x"] if name in ("export",) else []
    argv = ["--input", "x.pth", "--output", "y.pth"] if name == "convert-torchvision" else argv
    argv = argv or ["--config-file", "a.yaml"]
    _tool(TOOLS[name]).main(argv + ["SOLVER.MAX_ITER", "5"])
    assert cli.main([name, *argv, "SOLVER.MAX_ITER", "5"]) == 0  # the console script's status
    assert len(calls) == 2 and calls[0] == {
        k: v for k, v in calls[1].items() if k not in ("run", "command")
    }
    assert calls[0]["opts"] == ["SOLVER.MAX_ITER", "5"]


def test_bare_image_means_detect(monkeypatch):
    calls = []
    monkeypatch.setattr(command_module("detect"), "run", lambda args: calls.append(args))
    cli.main(["street.jpg", "--output", "o", "MODEL.DEVICE", "cpu"])
    assert calls[0].command == "detect" and calls[0].output == "o"
    assert calls[0].inputs == ["street.jpg", "MODEL.DEVICE", "cpu"]
    from fcos_core.engine.commands.detect import split_overrides

    assert split_overrides(calls[0].inputs) == (["street.jpg"], ["MODEL.DEVICE", "cpu"])


def test_unknown_argument_is_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--config-file", "a.yaml", "--no-such-flag"])
    assert info.value.code == 2


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """A checkpoint of the tiny model with fixed (seeded) weights."""
    from fcos_core.engine.defaults import load_config
    from fcos_core.modeling.detector import build_detection_model

    cfg = load_config(str(FIXTURES / "tiny_fcos.yaml"), REGISTER)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    torch.save({"model": build_detection_model(cfg).state_dict()}, path)
    return path


def test_fcos_detect_on_a_folder(tiny_env, tiny_weights, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in (("a.png", (48, 80)), ("b.jpg", (96, 64))):
        cv2.imwrite(str(images / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    cmd = [sys.executable, "-m", "fcos_core", "detect", str(images), "--output",
           str(tmp_path / "out"), "--config-file", str(FIXTURES / "tiny_fcos.yaml"),
           "--weights", str(tiny_weights), "--threshold", "0", "--batch-size", "2",
           *REGISTER, "MODEL.FCOS.INFERENCE_TH", "0.0", *TEST_SIZE]  # fmt: skip
    proc = subprocess.run(cmd, env=tiny_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert [Path(r["file"]).name for r in records] == ["a.png", "b.jpg"]
    assert [(r["height"], r["width"]) for r in records] == [(48, 80), (96, 64)]
    for record in records:
        assert record["detections"], record["file"]
        for det in record["detections"]:
            x1, y1, x2, y2 = det["box"]
            assert 0 <= x1 <= x2 <= record["width"] and 0 <= y1 <= y2 <= record["height"]
            assert det["class_name"] == f"class_{det['label']}" and 0 <= det["score"] <= 1
    for stem, shape in (("a", (48, 80, 3)), ("b", (96, 64, 3))):
        assert cv2.imread(str(tmp_path / "out" / f"{stem}.jpg")).shape == shape
    assert f"in 2 image(s); wrote {tmp_path / 'out'}/detections.json" in proc.stdout


def test_fcos_detect_refuses_untrained_weights(tiny_env, tmp_path):
    cmd = [sys.executable, "-m", "fcos_core", "detect", str(REPO / "tests"), "--config-file",
           str(FIXTURES / "tiny_fcos.yaml"), "--output", str(tmp_path / "o"),
           *REGISTER]  # fmt: skip
    proc = subprocess.run(cmd, env=tiny_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("error: no weights given (MODEL.WEIGHT is empty): pass trained weights")
    )


def test_config_paths_resolve_from_any_folder(tmp_path, monkeypatch):
    from fcos_core.config.checks import find_config_file
    from fcos_core.engine.defaults import load_config

    monkeypatch.chdir(tmp_path)
    found = find_config_file("configs/quickstart/fcos_quickstart.yaml")
    assert Path(found) == REPO / "configs" / "quickstart" / "fcos_quickstart.yaml"
    assert load_config("configs/quickstart/fcos_quickstart.yaml").OUTPUT_DIR == "output/quickstart"
    assert find_config_file("nope.yaml") == "nope.yaml"
