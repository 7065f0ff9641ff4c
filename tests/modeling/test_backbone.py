"""Tests of the backbones (ResNet/ResNeXt, MobileNetV2, FPN) and the deformable conv layer.

They check meaning: output strides and shapes, which parameters are frozen, that FrozenBN computes
the analytic affine map, where the stride sits (STRIDE_IN_1X1), dilation, widths, and that the
deformable conv samples where its offsets say.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcos_core.config import cfg as default_cfg
from fcos_core.layers import FrozenBatchNorm2d
from fcos_core.layers.dcn import ModulatedDeformConv
from fcos_core.modeling.backbone import build_backbone, convert_sync_batchnorm_if_needed

FPN_STRIDES = [8, 16, 32, 64, 128]
HEIGHT, WIDTH = 64, 96
TINY_R18 = {
    "MODEL.BACKBONE.CONV_BODY": "R-18-FPN-RETINANET",
    "MODEL.RESNETS.TRANS_FUNC": "BasicBlockWithFixedBatchNorm",
    "MODEL.RESNETS.STEM_OUT_CHANNELS": 32,
    "MODEL.RESNETS.RES2_OUT_CHANNELS": 32,
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS": 32,
    "MODEL.RETINANET.USE_C5": False,
}


def make_cfg(overrides=None):
    """Default config with ``overrides`` ({"A.B.KEY": value}) merged in."""
    cfg = default_cfg.clone()
    cfg.merge_from_list([item for pair in (overrides or {}).items() for item in pair])
    return cfg


def tiny_r18(overrides=None):
    """Config of a 32-wide ResNet-18 FPN backbone, with extra overrides."""
    return make_cfg({**TINY_R18, **(overrides or {})})


BACKBONE_CASES = {
    "r18_frozen_bn": tiny_r18(),
    "r18_gn_dcn_fpn_gn_relu": tiny_r18(
        {
            "MODEL.RESNETS.TRANS_FUNC": "BasicBlockWithGN",
            "MODEL.RESNETS.STEM_FUNC": "StemWithGN",
            "MODEL.RESNETS.STAGE_WITH_DCN": (False, True, False, True),
            "MODEL.FPN.USE_GN": True,
            "MODEL.FPN.USE_RELU": True,
            "MODEL.BACKBONE.FREEZE_CONV_BODY_AT": 0,
        }
    ),
    "r18_p6_from_c5": tiny_r18({"MODEL.RETINANET.USE_C5": True}),
    "r34_bn": tiny_r18(
        {
            "MODEL.BACKBONE.CONV_BODY": "R-34-FPN-RETINANET",
            "MODEL.RESNETS.TRANS_FUNC": "BasicBlockWithBatchNorm",
            "MODEL.RESNETS.STEM_FUNC": "StemWithBatchNorm",
        }
    ),
    "x50_dcnv2_small": make_cfg(
        {
            "MODEL.BACKBONE.CONV_BODY": "R-50-FPN-RETINANET",
            "MODEL.RESNETS.NUM_GROUPS": 4,
            "MODEL.RESNETS.WIDTH_PER_GROUP": 4,
            "MODEL.RESNETS.STEM_OUT_CHANNELS": 16,
            "MODEL.RESNETS.RES2_OUT_CHANNELS": 32,
            "MODEL.RESNETS.STRIDE_IN_1X1": False,
            "MODEL.RESNETS.STAGE_WITH_DCN": (False, True, True, True),
            "MODEL.RESNETS.WITH_MODULATED_DCN": True,
            "MODEL.RESNETS.BACKBONE_OUT_CHANNELS": 32,
            "MODEL.RETINANET.USE_C5": False,
        }
    ),
    "mnv2": make_cfg(
        {
            "MODEL.BACKBONE.CONV_BODY": "MNV2-FPN-RETINANET",
            "MODEL.BACKBONE.FREEZE_CONV_BODY_AT": 0,
            "MODEL.RESNETS.BACKBONE_OUT_CHANNELS": 32,
            "MODEL.RETINANET.USE_C5": False,
        }
    ),
}


@pytest.mark.parametrize("case", sorted(BACKBONE_CASES))
def test_outputs_are_p3_to_p7_at_strides_8_to_128(case):
    torch.manual_seed(0)
    model = build_backbone(BACKBONE_CASES[case])
    features = model(torch.randn(2, 3, HEIGHT, WIDTH))
    assert model.out_channels == 32
    assert model.out_strides == FPN_STRIDES
    assert [tuple(f.shape) for f in features] == [
        (2, 32, -(-HEIGHT // s), -(-WIDTH // s)) for s in FPN_STRIDES
    ]
    assert all(torch.isfinite(f).all() for f in features)
    # Every trainable parameter receives a gradient.
    sum(f.square().mean() for f in features).backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, name


def test_input_not_divisible_by_32():
    model = build_backbone(tiny_r18())
    features = model(torch.randn(1, 3, 65, 97))
    assert [tuple(f.shape[-2:]) for f in features] == [(9, 13), (5, 7), (3, 4), (2, 2), (1, 1)]


def test_p6_reads_p5_or_c5():
    from_p5 = build_backbone(tiny_r18()).fpn.top_blocks
    from_c5 = build_backbone(tiny_r18({"MODEL.RETINANET.USE_C5": True})).fpn.top_blocks
    assert from_p5.use_p5 and from_p5.p6.in_channels == 32
    assert not from_c5.use_p5 and from_c5.p6.in_channels == 256  # C5 of the 32-wide R-18


@pytest.mark.parametrize("freeze_at", range(6))
def test_freeze_conv_body_at(freeze_at):
    cfg = tiny_r18(
        {
            "MODEL.RESNETS.TRANS_FUNC": "BasicBlockWithBatchNorm",
            "MODEL.RESNETS.STEM_FUNC": "StemWithBatchNorm",
            "MODEL.BACKBONE.FREEZE_CONV_BODY_AT": freeze_at,
        }
    )
    model = build_backbone(cfg)
    stages = ["stem", "layer1", "layer2", "layer3", "layer4"]
    for index, stage in enumerate(stages):
        grads = {p.requires_grad for p in getattr(model.body, stage).parameters()}
        assert grads == {index >= freeze_at}, (stage, freeze_at)
    assert all(p.requires_grad for p in model.fpn.parameters())


def test_frozen_stem_gets_no_gradient():
    model = build_backbone(tiny_r18({"MODEL.BACKBONE.FREEZE_CONV_BODY_AT": 2}))
    sum(f.sum() for f in model(torch.randn(1, 3, HEIGHT, WIDTH))).backward()
    assert model.body.stem.conv1.weight.grad is None
    assert model.body.layer1[0].conv1.weight.grad is None
    assert model.body.layer2[0].conv1.weight.grad is not None


def test_frozen_bn_stem_equals_analytic_affine_map():
    torch.manual_seed(0)
    stem = build_backbone(tiny_r18()).body.stem
    bn = stem.bn1
    assert isinstance(bn, FrozenBatchNorm2d)
    bn.weight.uniform_(0.5, 2.0)
    bn.bias.normal_()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    x = torch.randn(2, 3, HEIGHT, WIDTH)
    y_train = stem.train()(x)  # training mode must not change anything in FrozenBN
    y = stem.eval()(x)
    torch.testing.assert_close(y_train, y, rtol=0, atol=0)
    conv = F.conv2d(x, stem.conv1.weight, stride=2, padding=3)
    scale = bn.weight / bn.running_var.sqrt()
    expected = conv * scale[:, None, None] + (bn.bias - bn.running_mean * scale)[:, None, None]
    expected = F.max_pool2d(expected.relu(), 3, stride=2, padding=1)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    for key, value in bn.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not any(p.requires_grad for p in bn.parameters())


@pytest.mark.parametrize("stride_in_1x1", [True, False])
def test_stride_in_1x1_places_the_stride(stride_in_1x1):
    cfg = make_cfg(
        {
            "MODEL.BACKBONE.CONV_BODY": "R-50-FPN-RETINANET",
            "MODEL.RESNETS.STRIDE_IN_1X1": stride_in_1x1,
            "MODEL.RESNETS.NUM_GROUPS": 8,
            "MODEL.RESNETS.WIDTH_PER_GROUP": 4,
        }
    )
    body = build_backbone(cfg).body
    for name in ("layer2", "layer3", "layer4"):
        block = getattr(body, name)[0]
        expected = ((2, 2), (1, 1)) if stride_in_1x1 else ((1, 1), (2, 2))
        assert (block.conv1.stride, block.conv2.stride) == expected
        assert block.downsample[0].stride == (2, 2)
        assert block.conv2.groups == 8
    # ResNeXt widths: layer1's 3x3 is NUM_GROUPS x WIDTH_PER_GROUP wide, doubled per stage.
    assert body.layer1[0].conv2.weight.shape == (32, 4, 3, 3)
    assert body.layer4[0].conv2.weight.shape == (256, 32, 3, 3)


def test_res5_dilation_keeps_c5_at_stride_16():
    cfg = tiny_r18({"MODEL.RESNETS.RES5_DILATION": 2})
    body = build_backbone(cfg).body
    assert body.out_strides == [4, 8, 16, 16]
    c2, c3, c4, c5 = body(torch.randn(1, 3, HEIGHT, WIDTH))
    assert c5.shape[-2:] == c4.shape[-2:] == (4, 6)
    assert body.layer4[0].conv1.dilation == (2, 2)
    assert body.layer4[0].downsample[0].stride == (1, 1)


def test_width_scaling_flows_into_the_fpn():
    cfg = tiny_r18(
        {
            "MODEL.RESNETS.STEM_OUT_CHANNELS": 16,
            "MODEL.RESNETS.RES2_OUT_CHANNELS": 16,
            "MODEL.RESNETS.BACKBONE_OUT_CHANNELS": 24,
        }
    )
    model = build_backbone(cfg)
    assert model.body.out_channels == [16, 32, 64, 128]
    assert model.body.stem.conv1.weight.shape == (16, 3, 7, 7)
    inner = [getattr(model.fpn, f"fpn_inner{i}").weight.shape for i in (2, 3, 4)]
    assert inner == [(24, 32, 1, 1), (24, 64, 1, 1), (24, 128, 1, 1)]
    assert model.out_channels == 24


def test_mobilenet_v2_outputs():
    model = build_backbone(BACKBONE_CASES["mnv2"])
    body = model.body
    assert body.out_channels == [24, 32, 96, 320]
    assert body.out_strides == [4, 8, 16, 32]
    c2, c3, c4, c5 = body(torch.randn(1, 3, HEIGHT, WIDTH))
    assert [tuple(c.shape[1:]) for c in (c2, c3, c4, c5)] == [
        (24, 16, 24),
        (32, 8, 12),
        (96, 4, 6),
        (320, 2, 3),
    ]
    assert [getattr(model.fpn, f"fpn_inner{i}").in_channels for i in (2, 3, 4)] == [32, 96, 320]
    assert any(isinstance(m, nn.BatchNorm2d) for m in body.modules())


def test_mobilenet_v2_freeze_counts_feature_blocks():
    cfg = make_cfg({"MODEL.BACKBONE.CONV_BODY": "MNV2-FPN-RETINANET"})  # FREEZE_CONV_BODY_AT = 2
    features = build_backbone(cfg).body.features
    assert [all(not p.requires_grad for p in f.parameters()) for f in features[:3]] == [
        True,
        True,
        False,
    ]


def test_syncbn_conversion_is_skipped_on_a_single_cpu_process():
    cfg = BACKBONE_CASES["mnv2"].clone()
    cfg.MODEL.USE_SYNCBN = True
    model = build_backbone(cfg)
    assert convert_sync_batchnorm_if_needed(model, cfg) is model
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())


def test_weight_init():
    torch.manual_seed(0)
    cfg = make_cfg(
        {
            "MODEL.BACKBONE.CONV_BODY": "R-50-FPN-RETINANET",
            "MODEL.RESNETS.BACKBONE_OUT_CHANNELS": 256,
            "MODEL.RETINANET.USE_C5": False,
        }
    )
    model = build_backbone(cfg)
    conv = model.body.layer3[0].conv2.weight  # 3x3, 256 -> 256
    # kaiming_uniform(a=1) as the original ResNet: std = bound / sqrt(3) = 1 / sqrt(fan_in).
    torch.testing.assert_close(
        conv.std(), torch.tensor((1.0 / (256 * 9)) ** 0.5), rtol=0.05, atol=0
    )
    p6 = model.fpn.top_blocks.p6
    bound = (3.0 / (256 * 9)) ** 0.5  # kaiming_uniform(a=1): sqrt(6 / ((1 + a^2) fan_in))
    assert p6.weight.abs().max() <= bound and p6.weight.abs().max() > 0.9 * bound
    for name, param in model.fpn.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(param) == 0, name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"MODEL.BACKBONE.CONV_BODY": "R-50-C4"}, "MODEL.BACKBONE.CONV_BODY must be one of"),
        ({"MODEL.RESNETS.TRANS_FUNC": "BottleneckWithFixedBatchNorm"}, "uses basic blocks"),
        ({"MODEL.RESNETS.TRANS_FUNC": "Bottleneck"}, "MODEL.RESNETS.TRANS_FUNC must be one of"),
        ({"MODEL.RESNETS.STEM_FUNC": "StemWithSyncBN"}, "MODEL.RESNETS.STEM_FUNC must be one of"),
        (
            {"MODEL.RESNETS.STEM_FUNC": "StemWithGN", "MODEL.RESNETS.STEM_OUT_CHANNELS": 48},
            "not divisible by MODEL.GROUP_NORM.NUM_GROUPS=32",
        ),
        ({"MODEL.BACKBONE.FREEZE_CONV_BODY_AT": 6}, "FREEZE_CONV_BODY_AT must be in"),
    ],
)
def test_config_errors_name_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_backbone(tiny_r18(overrides))


def test_unknown_conv_body_lists_allowed_values():
    with pytest.raises(ValueError) as error:
        build_backbone(make_cfg({"MODEL.BACKBONE.CONV_BODY": "R-50-C4"}))
    assert "R-50-FPN-RETINANET" in str(error.value) and "MNV2-FPN-RETINANET" in str(error.value)


# ---------------------------------------------------------------------------------------------
# Deformable convolution
# ---------------------------------------------------------------------------------------------


def _dcn(modulated, groups=1, in_channels=4, out_channels=6):
    """A DCN whose offset conv is zero (it starts random, as the original's DFConv2d)."""
    torch.manual_seed(0)
    dcn = ModulatedDeformConv(
        in_channels, out_channels, kernel_size=3, groups=groups, modulated=modulated, bias=True
    )
    with torch.no_grad():
        dcn.offset.weight.zero_()
        dcn.conv.bias.normal_()  # the bias starts at zero: make it show in the outputs
    return dcn


@pytest.mark.parametrize(("modulated", "factor"), [(False, 1.0), (True, 0.5)])
@pytest.mark.parametrize("groups", [1, 2])
def test_dcn_with_zero_offsets_is_a_plain_conv(modulated, factor, groups):
    dcn = _dcn(modulated, groups)
    assert dcn.offset.out_channels == (27 if modulated else 18)
    x = torch.randn(2, 4, 7, 9)
    plain = F.conv2d(x, dcn.conv.weight, padding=1, groups=groups)  # bias added after the mask
    torch.testing.assert_close(dcn(x), factor * plain + dcn.conv.bias[:, None, None])


def test_dcn_offsets_are_interleaved_dy_dx():
    dcn = _dcn(modulated=True)
    with torch.no_grad():
        dcn.offset.bias[1:18:2] = 1.0  # dx = +1 for every sampling point, dy = 0
        dcn.offset.bias[18:] = 50.0  # mask sigmoid(50) = 1
    x = torch.randn(1, 4, 7, 9)
    # Each tap reads x(i + di, j + dj + 1): pad 1 row top/bottom, 0 columns left, 2 right.
    expected = F.conv2d(F.pad(x, (0, 2, 1, 1)), dcn.conv.weight, dcn.conv.bias)
    torch.testing.assert_close(dcn(x), expected, rtol=1e-5, atol=1e-5)


def test_dcn_gradients_reach_offsets():
    dcn = _dcn(modulated=True)
    x = torch.randn(1, 4, 7, 9, requires_grad=True)
    dcn(x).square().sum().backward()
    assert dcn.offset.weight.grad.abs().sum() > 0
    assert dcn.conv.weight.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0


def test_dcn_stride_and_dilation_output_size():
    dcn = ModulatedDeformConv(4, 8, kernel_size=3, stride=2, dilation=2, modulated=False)
    assert dcn(torch.randn(1, 4, 16, 12)).shape == (1, 8, 8, 6)


@pytest.mark.parametrize(("modulated", "groups", "channels"), [(True, 1, 27), (False, 2, 36)])
def test_backbone_dcn_settings(modulated, groups, channels):
    cfg = tiny_r18(
        {
            "MODEL.RESNETS.STAGE_WITH_DCN": (False, False, True, False),
            "MODEL.RESNETS.WITH_MODULATED_DCN": modulated,
            "MODEL.RESNETS.DEFORMABLE_GROUPS": groups,
        }
    )
    body = build_backbone(cfg).body
    assert isinstance(body.layer2[0].conv2, nn.Conv2d)
    for block in body.layer3:
        assert isinstance(block.conv2, ModulatedDeformConv)
        assert block.conv2.offset.out_channels == channels
    assert isinstance(body.layer4[0].conv2, nn.Conv2d)


@pytest.mark.cuda
def test_dcn_cuda_matches_cpu():
    dcn = _dcn(modulated=True, groups=2)
    with torch.no_grad():
        dcn.offset.weight.normal_(std=0.1)  # non-trivial, fractional offsets
    x = torch.randn(2, 4, 7, 9, requires_grad=True)
    x_cuda = x.detach().cuda().requires_grad_()
    dcn_cuda = _dcn(modulated=True, groups=2).cuda()
    dcn_cuda.load_state_dict(dcn.state_dict())
    y, y_cuda = dcn(x), dcn_cuda(x_cuda)
    torch.testing.assert_close(y_cuda.cpu(), y, rtol=1e-4, atol=1e-4)
    y.square().sum().backward()
    y_cuda.square().sum().backward()
    torch.testing.assert_close(x_cuda.grad.cpu(), x.grad, rtol=1e-4, atol=1e-4)
    grad = dcn_cuda.offset.weight.grad.cpu()
    torch.testing.assert_close(grad, dcn.offset.weight.grad, rtol=1e-3, atol=1e-3)
