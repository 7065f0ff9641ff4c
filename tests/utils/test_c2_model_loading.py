"""Caffe2 .pkl and torchvision ResNet weights load into our backbone, every weight accounted for."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from fcos_core.config import cfg as global_cfg
from fcos_core.modeling.backbone.resnet import ResNet
from fcos_core.utils.c2_model_loading import rename_c2_key
from fcos_core.utils.checkpoint import DetectronCheckpointer

R50_BLOCKS = {2: 3, 3: 4, 4: 6, 5: 3}


def _c2_r50_blobs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every blob of Detectron's ImageNetPretrained/MSRA/R-50.pkl, with the right shapes."""
    blobs = {"conv1_w": rng.standard_normal((64, 3, 7, 7)).astype(np.float32)}
    blobs["res_conv1_bn_s"] = rng.standard_normal(64).astype(np.float32)
    blobs["res_conv1_bn_b"] = rng.standard_normal(64).astype(np.float32)
    in_ch = 64
    for stage, count in R50_BLOCKS.items():
        mid = 64 * 2 ** (stage - 2)
        out = mid * 4
        for i in range(count):
            shapes = {
                "branch2a": (mid, in_ch, 1, 1),
                "branch2b": (mid, mid, 3, 3),
                "branch2c": (out, mid, 1, 1),
            }
            if i == 0:
                shapes["branch1"] = (out, in_ch, 1, 1)
            for branch, shape in shapes.items():
                name = f"res{stage}_{i}_{branch}"
                blobs[name + "_w"] = rng.standard_normal(shape).astype(np.float32)
                blobs[name + "_bn_s"] = rng.standard_normal(shape[0]).astype(np.float32)
                blobs[name + "_bn_b"] = rng.standard_normal(shape[0]).astype(np.float32)
            in_ch = out
    blobs["fc1000_w"] = rng.standard_normal((1000, 2048)).astype(np.float32)
    blobs["fc1000_b"] = np.zeros(1000, np.float32)
    return blobs


class _Wrapped(nn.Module):
    """Our detector's key layout around a bare body: backbone.body.*"""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.backbone = nn.Sequential()
        self.backbone.add_module("body", body)


def _allow_pickle_cfg():
    cfg = global_cfg.clone()
    cfg.MODEL.WEIGHT_ALLOW_PICKLE = True
    return cfg


def test_rename_examples():
    assert rename_c2_key("res3_2_branch2b_bn_s") == "layer2.2.bn2.weight"
    assert rename_c2_key("res5_0_branch1_bn_b") == "layer4.0.downsample.1.bias"
    assert rename_c2_key("res4_22_branch2c_w") == "layer3.22.conv3.weight"
    assert rename_c2_key("res_conv1_bn_b") == "stem.bn1.bias"
    assert rename_c2_key("fc1000_w") is None
    with pytest.raises(KeyError, match="res6_0_branch2a_w"):
        rename_c2_key("res6_0_branch2a_w")


def test_c2_r50_pkl_loads_every_backbone_weight(tmp_path):
    blobs = _c2_r50_blobs(np.random.default_rng(0))
    with open(tmp_path / "R-50.pkl", "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    model = _Wrapped(ResNet(depth=50, block="bottleneck", freeze_at=0))
    ckpt = DetectronCheckpointer(_allow_pickle_cfg(), model)
    ckpt.load(str(tmp_path / "R-50.pkl"))
    report = ckpt.last_load_report
    assert report.missing == [] and report.unused == [] and report.mismatched == []
    assert len(report.loaded) == len(model.state_dict())
    body = model.backbone.body
    np.testing.assert_array_equal(body.stem.conv1.weight.detach().numpy(), blobs["conv1_w"])
    np.testing.assert_array_equal(body.layer3[5].bn3.bias.numpy(), blobs["res4_5_branch2c_bn_b"])
    np.testing.assert_array_equal(
        body.layer4[0].downsample[0].weight.detach().numpy(), blobs["res5_0_branch1_w"]
    )
    assert torch.all(body.layer2[1].bn2.running_var == 1) and torch.all(
        body.stem.bn1.running_mean == 0
    )


def test_torchvision_resnet18_weights_convert(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "resnet18.pth")
    model = _Wrapped(
        ResNet(
            depth=18,
            block="basic",
            res2_out_channels=64,
            stem_norm="BN",
            block_norm="BN",
            freeze_at=0,
        )
    )
    DetectronCheckpointer(global_cfg.clone(), model).load(str(tmp_path / "resnet18.pth"))
    body = model.backbone.body
    assert body.stem.conv1.weight.equal(tv.conv1.weight)
    assert body.stem.bn1.running_var.equal(tv.bn1.running_var)
    assert body.layer3[0].downsample[0].weight.equal(tv.layer3[0].downsample[0].weight)
    assert body.layer4[1].conv2.weight.equal(tv.layer4[1].conv2.weight)


def test_deformable_conv2_weights_are_renamed():
    from fcos_core.utils.c2_model_loading import rename_for_deformable

    converted = {"layer2.0.conv2.weight": torch.ones(1), "layer1.0.conv2.weight": torch.zeros(1)}
    body = "backbone.body."
    model_keys = [body + "layer2.0.conv2.conv.weight", body + "layer2.0.conv2.offset.weight",
                  body + "layer1.0.conv2.weight"]  # fmt: skip
    renamed = rename_for_deformable(converted, model_keys)
    assert set(renamed) == {"layer2.0.conv2.conv.weight", "layer1.0.conv2.weight"}


def test_load_c2_format_dispatches_on_conv_body(tmp_path):
    from fcos_core.utils.c2_model_loading import C2_FORMAT_LOADER, load_c2_format
    from fcos_core.utils.safe_io import CheckpointLoadError

    blobs = _c2_r50_blobs(np.random.default_rng(1))
    with open(tmp_path / "R-50.pkl", "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    cfg = global_cfg.clone()
    for name in ("R-50-C4", "R-50-FPN", "R-50-FPN-RETINANET"):  # the original's names
        cfg.MODEL.BACKBONE.CONV_BODY = name
        state = load_c2_format(cfg, str(tmp_path / "R-50.pkl"))["model"]
        assert torch.equal(state["stem.conv1.weight"], torch.from_numpy(blobs["conv1_w"]))
    cfg.MODEL.BACKBONE.CONV_BODY = "MNV2-FPN-RETINANET"
    with pytest.raises(CheckpointLoadError, match=r"R-50\.pkl: MODEL\.BACKBONE\.CONV_BODY must"):
        load_c2_format(cfg, str(tmp_path / "R-50.pkl"))
    assert "R-101-FPN-RETINANET" in C2_FORMAT_LOADER
