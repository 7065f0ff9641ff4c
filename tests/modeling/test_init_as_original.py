"""Initialisation as the original FCOS / maskrcnn-benchmark, module by module.

The original's rules (fcos_core/modeling/backbone/{resnet,fpn,mobilenet}.py, make_layers.py,
layers/misc.py DFConv2d, layers/dcn/deform_conv_module.py, modeling/rpn/fcos/fcos.py):

- ResNet stem, block and shortcut convs: kaiming_uniform_(a=1), bound sqrt(3 / fan_in);
  a deformable conv2 keeps DFConv2d's init instead.
- DFConv2d: offset conv kaiming_uniform_(a=1) with bias 0; deformable kernel uniform in
  +-1/sqrt(C_in * k * k) (C_in not divided by the groups), bias 0.
- FrozenBatchNorm2d: weight 1, bias 0, running mean 0, running var 1.
- FPN and P6/P7 convs: kaiming_uniform_(a=1), bias 0.
- MobileNetV2: convs normal(0, sqrt(2 / (k * k * C_out))), BatchNorm weight 1 and bias 0.
- FCOS head: every Conv2d of the towers and predictors (the DFConv2d offset conv included)
  normal(0, 0.01) with bias 0; cls_logits bias -log((1 - p) / p); Scales 1.0; GroupNorm 1 / 0.

Distribution checks use tensors of 2048 values or more: the maximum must lie within (0.95, 1]
of the uniform bound, the standard deviation within 5 % of its expected value.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from fcos_core.config import cfg as default_cfg
from fcos_core.layers import FrozenBatchNorm2d
from fcos_core.layers.dcn import ModulatedDeformConv
from fcos_core.modeling.detector import build_detection_model

ZOO = Path(__file__).resolve().parents[2] / "configs" / "fcos"


@functools.cache
def zoo_model(name: str) -> nn.Module:
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(ZOO / f"{name}.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(0)
    return build_detection_model(cfg)


def fan_in(weight: torch.Tensor) -> int:
    return weight.shape[1] * weight[0, 0].numel()


def assert_uniform(weight: torch.Tensor, bound: float, name: str) -> None:
    peak = weight.abs().max().item()
    assert 0.95 * bound < peak <= bound * (1 + 1e-6), f"{name}: max {peak}, bound {bound}"
    if weight.numel() >= 4096:
        expected = bound / math.sqrt(3.0)
        assert weight.std().item() == pytest.approx(expected, rel=0.05), name


def assert_normal(weight: torch.Tensor, std: float, name: str) -> None:
    assert weight.numel() >= 2048, name  # the sample std is then within ~1.6 % (1 sigma)
    assert weight.std().item() == pytest.approx(std, rel=0.05), name
    assert abs(weight.mean().item()) < 0.05 * std, name


def resnet_convs(body: nn.Module):
    """(name, conv) of the plain convs of a ResNet body."""
    return [
        (name, m)
        for name, m in body.named_modules()
        if type(m) is nn.Conv2d and ".offset" not in name and not name.endswith(".conv2.conv")
    ]


@pytest.mark.parametrize("name", ["fcos_R_50_FPN_1x", "fcos_imprv_dcnv2_R_50_FPN_1x"])
def test_resnet_convs_are_kaiming_uniform_a1(name):
    body = zoo_model(name).backbone.body
    convs = resnet_convs(body)
    # Stem + 16 blocks x 3 + 4 shortcuts, less the deformable conv2 of stages 3 to 5 (13).
    assert len(convs) == (40 if "dcn" in name else 53)
    for conv_name, conv in convs:
        assert_uniform(conv.weight, math.sqrt(3.0 / fan_in(conv.weight)), conv_name)
    for norm_name, norm in body.named_modules():
        if isinstance(norm, FrozenBatchNorm2d):
            assert torch.equal(norm.weight, torch.ones_like(norm.weight)), norm_name
            assert not norm.bias.any() and not norm.running_mean.any(), norm_name
            assert torch.equal(norm.running_var, torch.ones_like(norm.running_var)), norm_name


def test_backbone_dcn_layers_keep_the_original_dfconv2d_init():
    body = zoo_model("fcos_imprv_dcnv2_R_50_FPN_1x").backbone.body
    dcns = [(n, m) for n, m in body.named_modules() if isinstance(m, ModulatedDeformConv)]
    assert len(dcns) == 13  # stages 3 to 5 of R-50: 4 + 6 + 3 blocks
    for name, dcn in dcns:
        channels = dcn.offset.weight.shape[1]
        assert_uniform(dcn.offset.weight, math.sqrt(3.0 / (channels * 9)), f"{name}.offset")
        assert not dcn.offset.bias.any(), name
        assert_uniform(dcn.conv.weight, 1.0 / math.sqrt(channels * 9), f"{name}.conv")
        assert dcn.conv.bias is None


def test_grouped_dcn_kernel_bound_uses_all_input_channels():
    torch.manual_seed(0)
    dcn = ModulatedDeformConv(256, 256, kernel_size=3, groups=32, bias=True)
    assert_uniform(dcn.conv.weight, 1.0 / math.sqrt(256 * 9), "grouped kernel")
    assert not dcn.conv.bias.any() and not dcn.offset.bias.any()
    assert_uniform(dcn.offset.weight, math.sqrt(3.0 / (256 * 9)), "grouped offset")


@pytest.mark.parametrize("name", ["fcos_R_50_FPN_1x", "fcos_syncbn_bs32_c128_MNV2_FPN_1x"])
def test_fpn_convs_are_kaiming_uniform_a1_with_zero_bias(name):
    fpn = zoo_model(name).backbone.fpn
    convs = [(n, m) for n, m in fpn.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8  # 3 inner, 3 layer, P6, P7
    for conv_name, conv in convs:
        assert_uniform(conv.weight, math.sqrt(3.0 / fan_in(conv.weight)), conv_name)
        assert not conv.bias.any(), conv_name


def test_mobilenet_v2_init():
    body = zoo_model("fcos_syncbn_bs32_c128_MNV2_FPN_1x").backbone.body
    checked = 0
    for name, module in body.named_modules():
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            if module.weight.numel() >= 4096:
                assert_normal(module.weight, math.sqrt(2.0 / (k * module.out_channels)), name)
                checked += 1
            assert module.bias is None
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            assert torch.equal(module.weight, torch.ones_like(module.weight)), name
            assert not module.bias.any(), name
    assert checked > 20


@pytest.mark.parametrize("name", ["fcos_R_50_FPN_1x", "fcos_imprv_dcnv2_R_50_FPN_1x"])
def test_head_init(name):
    head = zoo_model(name).rpn.head
    for tower in (head.cls_tower, head.bbox_tower):
        kernels = {d.conv for d in _dcns(tower)}
        assert len(kernels) == (1 if "dcn" in name else 0)
        for conv in tower.modules():  # DCN offset convs included, as in the original
            if isinstance(conv, nn.Conv2d) and conv not in kernels:
                assert_normal(conv.weight, 0.01, "tower conv")
                assert not conv.bias.any()
        for norm in tower.modules():
            if isinstance(norm, nn.GroupNorm):
                assert torch.equal(norm.weight, torch.ones_like(norm.weight))
                assert not norm.bias.any()
        for kernel in kernels:
            assert_uniform(kernel.weight, 1.0 / math.sqrt(256 * 9), "tower DCN kernel")
            assert not kernel.bias.any()
    assert_normal(head.cls_logits.weight, 0.01, "cls_logits")
    assert_normal(head.bbox_pred.weight, 0.01, "bbox_pred")
    assert_normal(head.centerness.weight, 0.01, "centerness")
    prior = -math.log((1 - 0.01) / 0.01)
    assert torch.equal(head.cls_logits.bias, torch.full_like(head.cls_logits.bias, prior))
    assert not head.bbox_pred.bias.any() and not head.centerness.bias.any()
    assert [s.scale.item() for s in head.scales] == [1.0] * 5


def _dcns(module: nn.Module) -> list[ModulatedDeformConv]:
    return [m for m in module.modules() if isinstance(m, ModulatedDeformConv)]


def test_basic_block_resnets_keep_torchvision_init():
    """R-18/34 exist only in torchvision: their convs keep its init (kaiming_normal, fan_out)."""
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(ZOO.parent / "quickstart" / "fcos_quickstart.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(0)
    body = build_detection_model(cfg).backbone.body
    checked = 0
    for name, conv in body.named_modules():
        if isinstance(conv, nn.Conv2d) and conv.weight.numel() >= 4096:
            fan_out = conv.out_channels * conv.weight[0, 0].numel()
            assert_normal(conv.weight, math.sqrt(2.0 / fan_out), name)
            checked += 1
    assert checked >= 10
