"""Tools' command lines: one-line errors with exit status 2; test_net; remove_solver_states."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fcos_core.config.checks import ConfigError
from fcos_core.engine.defaults import load_config, run_cli

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "engine"
VALID = ["MODEL.BACKBONE.CONV_BODY", "R-18-FPN-RETINANET"]


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "opts, message",
    [
        (
            ["SOLVER.BASE_LRR", "0.1"],
            "unknown config key SOLVER.BASE_LRR. Did you mean SOLVER.BASE_LR?",
        ),
        (["SOLVER.MAX_ITER", "many"], "SOLVER.MAX_ITER must be of type int"),
        (
            ["MODEL.FCOS.IOU_LOSS_TYPE", "gio"],
            "IOU_LOSS_TYPE must be one of iou, linear_iou, giou, got 'gio'",
        ),
        (["MODEL.BACKBONE.CONV_BODY", "R-50-C4"], "CONV_BODY must be one of R-18-FPN-RETINANET"),
        (["SOLVER.NONFINITE_LOSS", "ignore"], "NONFINITE_LOSS must be one of stop, skip"),
        (["DATASETS.TRAIN", '("coco_2017_trian",)'], "Did you mean coco_2017_train? Known: "),
        (["SOLVER.STEPS"], "must be KEY VALUE pairs"),
    ],
)
def test_config_errors_are_one_line(opts, message, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: load_config(None, VALID + opts))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_config_file_unknown_key_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("SOLVER:\n  WARMUP_ITER: 10\n")
    with pytest.raises(
        ConfigError,
        match=r"bad\.yaml: unknown config key SOLVER\.WARMUP_ITER\. "
        r"Did you mean SOLVER\.WARMUP_ITERS\?",
    ):
        load_config(str(bad))


def test_train_net_missing_config_exits_2_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "train_net.py"),
            "--config-file",
            str(tmp_path / "nope.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    # the last line is the error; only the extension-fallback warning may come before it
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: config file not found: {tmp_path / 'nope.yaml'}"
    )
    assert "Traceback" not in proc.stderr


def test_train_net_argument_forms():
    parse = _tool("train_net").parse_args
    args = parse(
        ["--config-file", "a.yaml", "--local-rank=3", "--skip-test", "SOLVER.MAX_ITER", "5"]
    )
    assert (args.config_file, args.local_rank, args.skip_test, args.opts) == (
        "a.yaml",
        3,
        True,
        ["SOLVER.MAX_ITER", "5"],
    )
    assert parse(["--local_rank", "1"]).local_rank == 1
    assert parse([]).local_rank is None


def test_test_net_evaluates_a_checkpoint(tiny_env, tmp_path):
    train = [
        sys.executable,
        str(REPO / "tools" / "train_net.py"),
        "--config-file",
        str(FIXTURES / "tiny_fcos.yaml"),
        "--skip-test",
        "DATASETS.REGISTER",
        f'("{FIXTURES / "tiny_shapes_register.py"}",)',
        "OUTPUT_DIR",
        str(tmp_path / "out"),
        "SOLVER.MAX_ITER",
        "1",
    ]
    assert subprocess.run(train, env=tiny_env, capture_output=True, timeout=300).returncode == 0
    test = (
        [sys.executable, str(REPO / "tools" / "test_net.py")]
        + train[2:4]
        + [
            "DATASETS.REGISTER",
            f'("{FIXTURES / "tiny_shapes_register.py"}",)',
            "OUTPUT_DIR",
            str(tmp_path / "out"),
            "MODEL.FCOS.INFERENCE_TH",
            "0.0",
        ]
    )
    proc = subprocess.run(test, env=tiny_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "out" / "inference" / "tiny_shapes_val"
    assert (folder / "bbox.json").stat().st_size > 2 and (folder / "predictions.pth").exists()
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "Resuming from" in log and "model_final.pth" in log
    assert "Total run time: " in log and "s / img per device, on 1 devices)" in log
    assert "Model inference time: " in log and "COCO results: " in log


def test_remove_solver_states(tmp_path, monkeypatch, capsys):
    src, dst = tmp_path / "model_final.pth", tmp_path / "weights.pth"
    torch.save({"model": {"w": torch.ones(2)}, "optimizer": {}, "iteration": 9}, src)
    monkeypatch.setattr(sys, "argv", ["remove_solver_states.py", str(src), str(dst)])
    _tool("remove_solver_states").main()
    assert torch.load(dst, weights_only=True).keys() == {"model"}
    assert "dropped: iteration, optimizer" in capsys.readouterr().out


def test_int_for_float_key_is_accepted(tmp_path):
    cfg = load_config(None, VALID + ["SOLVER.BASE_LR", "1", "SOLVER.MAX_MINUTES", "0"])
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.MAX_MINUTES, float)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("SOLVER:\n  BASE_LR: 2\n  MAX_ITER: 10\n")
    cfg = load_config(str(yaml_file), VALID)
    assert cfg.SOLVER.BASE_LR == 2.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    with pytest.raises(ConfigError, match="SOLVER.MAX_ITER must be of type int"):
        load_config(None, VALID + ["SOLVER.MAX_ITER", "2.5"])
