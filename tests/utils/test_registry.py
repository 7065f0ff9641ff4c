"""The original public API: Registry, fcos_core.modeling.registry, utils.env, utils.imports."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from fcos_core.config import cfg as default_cfg
from fcos_core.modeling import build_detection_model, registry
from fcos_core.modeling.backbone import build_backbone
from fcos_core.utils import env
from fcos_core.utils.imports import import_file, import_user_files
from fcos_core.utils.registry import Registry


def test_register_as_call_and_as_stacked_decorators():
    reg = Registry({"default": len})

    def foo() -> str:
        return "foo"

    assert reg.register("foo_module", foo) is foo

    @reg.register("bar_module")
    @reg.register("bar_nickname")
    def bar() -> str:
        return "bar"

    assert bar() == "bar"  # the decorator returns the function itself
    assert isinstance(reg, dict) and reg["default"] is len
    assert reg["foo_module"] is foo and reg["bar_module"] is bar and reg["bar_nickname"] is bar


def test_a_name_is_registered_once():
    reg = Registry()
    reg.register("x", len)
    with pytest.raises(KeyError, match=r"'x' is already registered \(to builtins\.len\)"):
        reg.register("x", max)
    with pytest.raises(KeyError, match="already registered"):
        reg.register("x")(max)
    assert reg["x"] is len


def test_modeling_registry_has_the_original_registries_and_our_backbones():
    for name in (
        "BACKBONES",
        "RPN_HEADS",
        "ROI_BOX_FEATURE_EXTRACTORS",
        "ROI_BOX_PREDICTOR",
        "ROI_KEYPOINT_FEATURE_EXTRACTORS",
        "ROI_KEYPOINT_PREDICTOR",
        "ROI_MASK_FEATURE_EXTRACTORS",
        "ROI_MASK_PREDICTOR",
    ):
        assert isinstance(getattr(registry, name), Registry)
    assert {"R-50-FPN-RETINANET", "R-101-FPN-RETINANET", "MNV2-FPN-RETINANET"} <= set(
        registry.BACKBONES
    )


class _TinyP3P7(nn.Module):
    """Five maps at strides 8..128 (the FCOS head's P3-P7)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, stride=8, padding=1)
        self.down = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(4)
        )
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [self.stem(x)]
        for conv in self.down:
            features.append(conv(features[-1].relu()))
        return features


@pytest.fixture
def tiny_backbone_name(monkeypatch):
    name = "TEST-TINY-P3P7"
    monkeypatch.setitem(registry.BACKBONES, name, lambda cfg: _TinyP3P7(64))
    return name


def test_user_registered_backbone_builds_a_working_detector(tiny_backbone_name):
    cfg = default_cfg.clone()
    cfg.merge_from_list(["MODEL.BACKBONE.CONV_BODY", tiny_backbone_name, "MODEL.FCOS_ON", True])
    model = build_detection_model(cfg)
    assert isinstance(model.backbone, _TinyP3P7)
    # the head is as wide as the backbone says, not MODEL.RESNETS.BACKBONE_OUT_CHANNELS (256)
    assert model.rpn.head.cls_logits.in_channels == 64
    model.eval()
    with torch.no_grad():
        detections = model([torch.rand(3, 64, 96)])
    assert len(detections) == 1 and detections[0].size == (96, 64)


def test_unknown_backbone_lists_the_registered_names_closest_first():
    cfg = default_cfg.clone()
    cfg.MODEL.BACKBONE.CONV_BODY = "R-50-FPN-RETINANT"
    with pytest.raises(ValueError) as info:
        build_backbone(cfg)
    message = str(info.value)
    assert "MODEL.BACKBONE.CONV_BODY must be one of R-18-FPN-RETINANET" in message
    assert "got 'R-50-FPN-RETINANT'. Did you mean R-50-FPN-RETINANET?" in message
    assert "--register-file" in message


def test_import_file_and_make_importable(tmp_path):
    path = tmp_path / "my_module.py"
    path.write_text("VALUE = 41 + 1\n")
    module = import_file("h2_test_module", str(path))
    assert module.VALUE == 42 and module.__name__ == "h2_test_module"
    assert "h2_test_module" not in sys.modules
    try:
        import_file("h2_test_module", str(path), make_importable=True)
        import h2_test_module  # noqa: F401  (importable by name now)
    finally:
        sys.modules.pop("h2_test_module", None)
    with pytest.raises(FileNotFoundError, match="nope.py"):
        import_file("x", str(tmp_path / "nope.py"))


def test_user_files_are_imported_once_per_process(tmp_path):
    path = tmp_path / "register_once.py"
    path.write_text(
        "from fcos_core.utils.registry import Registry\n"
        "import fcos_core.utils.registry as r\n"
        "r.H2_COUNT = getattr(r, 'H2_COUNT', 0) + 1\n"
    )
    import fcos_core.utils.registry as r

    first = import_user_files([str(path)])
    again = import_user_files([str(tmp_path / "." / "register_once.py")])
    assert first[0] is again[0] and r.H2_COUNT == 1
    del r.H2_COUNT


def test_setup_environment_runs_the_custom_module(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    custom = tmp_path / "site_env.py"
    custom.write_text(f"def setup_environment():\n    open({str(marker)!r}, 'w').close()\n")
    monkeypatch.delenv(env.ENV_MODULE_VARIABLE, raising=False)
    env.setup_environment()  # no variable: nothing happens
    assert not marker.exists()
    monkeypatch.setenv(env.ENV_MODULE_VARIABLE, str(custom))
    env.setup_environment()
    assert marker.exists()


def test_custom_environment_without_setup_function_is_a_clear_error(tmp_path):
    custom = tmp_path / "empty_env.py"
    custom.write_text("X = 1\n")
    with pytest.raises(AttributeError, match=r"empty_env\.py .*no callable setup_environment"):
        env.setup_custom_environment(str(custom))
