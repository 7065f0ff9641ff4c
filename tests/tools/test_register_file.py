"""A custom backbone registered from a user file (``--register-file``) trains through
tools/train_net.py, as user code written against the original ``fcos_core.modeling.registry``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fcos_core.engine.defaults import launch_argument_parser
from fcos_core.modeling import registry

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "engine"

# The user's file: written against the original API only (registry decorator, cfg in, module out).
MY_BACKBONE = textwrap.dedent(
    """
    from torch import nn

    from fcos_core.modeling import registry


    class MyTinyFPN(nn.Module):
        # Five maps P3-P7 (strides 8, 16, 32, 64, 128), each `out_channels` wide.
        def __init__(self, out_channels):
            super().__init__()
            self.stem = nn.Conv2d(3, out_channels, 3, stride=8, padding=1)
            self.down = nn.ModuleList(
                nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1) for _ in range(4)
            )
            self.out_channels = out_channels

        def forward(self, x):
            features = [self.stem(x)]
            for conv in self.down:
                features.append(conv(features[-1].relu()))
            return features


    @registry.BACKBONES.register("{name}")
    def build_my_tiny_fpn(cfg):
        return MyTinyFPN(2 * cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS)
    """
)


def test_custom_backbone_trains_one_step_through_train_net(tiny_env, tmp_path):
    user_file = tmp_path / "my_backbone.py"
    user_file.write_text(MY_BACKBONE.format(name="MY-TINY-FPN"))
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(REPO / "tools" / "train_net.py"),
        "--config-file",
        str(FIXTURES / "tiny_fcos.yaml"),
        "--register-file",
        str(user_file),
        "--skip-test",
        "MODEL.BACKBONE.CONV_BODY",
        "MY-TINY-FPN",
        "DATASETS.REGISTER",
        f'("{FIXTURES / "tiny_shapes_register.py"}",)',
        "OUTPUT_DIR",
        str(out),
        "SOLVER.MAX_ITER",
        "1",
    ]
    proc = subprocess.run(command, env=tiny_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(out / "model_final.pth", weights_only=True)["model"]
    assert state["backbone.stem.weight"].shape == (64, 3, 3, 3)  # 2 * BACKBONE_OUT_CHANNELS (32)
    assert state["rpn.head.cls_logits.weight"].shape[1] == 64  # the head follows out_channels
    assert "iter: 1" in (out / "log.txt").read_text()


def test_unregistered_backbone_without_register_file_is_a_one_line_error(tiny_env, tmp_path):
    command = [
        sys.executable,
        str(REPO / "tools" / "train_net.py"),
        "--config-file",
        str(FIXTURES / "tiny_fcos.yaml"),
        "MODEL.BACKBONE.CONV_BODY",
        "MY-TINY-FPN",
        "OUTPUT_DIR",
        str(tmp_path),
    ]
    proc = subprocess.run(command, env=tiny_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "CONV_BODY must be one of" in proc.stderr and "'MY-TINY-FPN'" in proc.stderr


def test_register_file_is_imported_at_parse_time_and_once(tmp_path, monkeypatch):
    user_file = tmp_path / "parse_time_backbone.py"
    user_file.write_text(MY_BACKBONE.format(name="H2-PARSE-TIME-FPN"))
    monkeypatch.delitem(registry.BACKBONES, "H2-PARSE-TIME-FPN", raising=False)
    parser = launch_argument_parser("test")
    args = parser.parse_args(["--register-file", str(user_file), "--register-file", str(user_file)])
    try:
        assert args.register_files == [str(user_file)] * 2
        assert "H2-PARSE-TIME-FPN" in registry.BACKBONES  # a second import would have raised
        parser.parse_args(["--register-file", str(user_file)])  # a later parse: still once
    finally:
        registry.BACKBONES.pop("H2-PARSE-TIME-FPN", None)
    assert parser.parse_args([]).register_files == []


def test_missing_register_file_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        launch_argument_parser("test").parse_args(["--register-file", str(tmp_path / "no.py")])
    assert info.value.code == 2
    assert "--register-file: " in capsys.readouterr().err
