"""FCOSHead: layout (checkpoint keys), initialisation, output modes and gradient flow."""

from __future__ import annotations

import math

import pytest
import torch

from fcos_core.layers.dcn import ModulatedDeformConv
from fcos_core.modeling.fcos.head import FCOSHead
from fcos_core.modeling.fcos.locations import compute_locations
from fcos_core.modeling.fcos.loss import FCOSLossComputation
from fcos_core.modeling.fcos.targets import object_size_ranges, prepare_targets
from fcos_core.structures import BoxList

STRIDES = [8, 16, 32, 64, 128]
WIDTH = 64  # 2 channels per GroupNorm group: a 1x1 P7 map is fine with batch 1


def _head(**kwargs) -> FCOSHead:
    args = dict(in_channels=WIDTH, num_classes=3, fpn_strides=STRIDES, num_convs=2)
    args.update(kwargs)
    return FCOSHead(**args)


def _features(batch: int = 2, image: int = 128) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(batch, WIDTH, image // s, image // s, generator=g) for s in STRIDES]


def test_state_dict_keys_follow_the_original_layout():
    keys = set(_head(num_convs=4, use_dcn_in_tower=True).state_dict())
    for tower in ("cls_tower", "bbox_tower"):
        for i in (0, 3, 6):
            assert {f"{tower}.{i}.weight", f"{tower}.{i}.bias"} <= keys
            assert {f"{tower}.{i + 1}.weight", f"{tower}.{i + 1}.bias"} <= keys  # GroupNorm
        assert {
            f"{tower}.9.offset.weight",
            f"{tower}.9.conv.weight",
            f"{tower}.9.conv.bias",
        } <= keys
        assert f"{tower}.9.weight" not in keys
    assert {f"scales.{i}.scale" for i in range(5)} <= keys
    sd = _head().state_dict()
    assert sd["cls_logits.weight"].shape == (3, WIDTH, 3, 3)
    assert sd["bbox_pred.weight"].shape == (4, WIDTH, 3, 3)
    assert sd["centerness.weight"].shape == (1, WIDTH, 3, 3)
    assert sd["scales.0.scale"].shape == (1,)


def test_initialisation():
    torch.manual_seed(0)
    head = _head(num_convs=4, prior_prob=0.01, use_dcn_in_tower=True)
    assert torch.allclose(head.cls_logits.bias, torch.full((3,), -math.log(99.0)))
    for conv in (head.cls_tower[0], head.bbox_tower[3], head.bbox_pred, head.centerness):
        assert conv.weight.std().item() == pytest.approx(0.01, rel=0.1)
        assert (conv.bias == 0).all()
    dcn = head.cls_tower[9]
    assert isinstance(dcn, ModulatedDeformConv)
    assert dcn.offset.weight.std().item() == pytest.approx(0.01, rel=0.1)
    fan_in = WIDTH * 9
    assert dcn.conv.weight.abs().max() <= 1 / math.sqrt(fan_in)
    assert dcn.conv.weight.std() > 0.018  # kept the uniform init, not N(0, 0.01)
    assert (dcn.conv.bias == 0).all()
    assert all(s.scale.item() == 1.0 for s in head.scales)


def test_output_shapes_and_exp_mode():
    head = _head().eval()
    feats = _features()
    logits, reg, ctr = head(feats)
    for f, lo, r, c in zip(feats, logits, reg, ctr):
        h, w = f.shape[-2:]
        assert lo.shape == (2, 3, h, w) and r.shape == (2, 4, h, w) and c.shape == (2, 1, h, w)
        assert (r > 0).all()
    head.train()
    assert torch.equal(head(feats)[1][2], reg[2])  # exp mode: same in training and eval


def test_norm_reg_targets_multiplies_by_stride_only_at_inference():
    head = _head(norm_reg_targets=True)
    with torch.no_grad():
        head.scales[1].scale.fill_(-1.0)
    feats = _features()
    head.train()
    _, reg_train, _ = head(feats)
    head.eval()
    _, reg_eval, _ = head(feats)
    for stride, rt, re in zip(STRIDES, reg_train, reg_eval):
        assert (rt >= 0).all()
        torch.testing.assert_close(re, rt * stride)
    raw = head.bbox_pred(head.bbox_tower(feats[1]))
    torch.testing.assert_close(reg_train[1], torch.relu(-raw))


@pytest.mark.parametrize("on_reg", [False, True])
def test_centerness_reads_the_configured_tower(on_reg):
    head = _head(centerness_on_reg=on_reg).eval()
    feats = _features(batch=1)
    ctr_before = head(feats)[2][0].clone()
    with torch.no_grad():
        head.cls_tower[0].weight.add_(0.5)
    ctr_after = head(feats)[2][0]
    assert torch.equal(ctr_before, ctr_after) == on_reg


def test_wrong_width_or_levels_are_reported():
    with pytest.raises(ValueError, match="divisible by 32"):
        _head(in_channels=48)
    with pytest.raises(ValueError, match="feature levels"):
        _head()(_features()[:3])


def _targets_on_every_level() -> list[BoxList]:
    # With size ranges [-1,4],[4,8],[8,16],[16,32],[32,inf] each box is matched on one level.
    boxes = torch.tensor(
        [
            [99.0, 99.0, 102.0, 102.0],
            [70, 70, 78, 78],
            [6, 6, 26, 26],
            [10, 10, 50, 50],
            [0, 0, 128, 128],
        ]
    )
    target = BoxList(boxes, (128, 128))
    target.add_field("labels", torch.tensor([1, 2, 3, 1, 2]))
    return [target, target]


@pytest.mark.parametrize(
    "options", [{}, {"norm_reg_targets": True, "centerness_on_reg": True, "use_dcn_in_tower": True}]
)
def test_gradients_reach_every_parameter_after_one_step(options):
    torch.manual_seed(0)
    head = _head(**options).train()
    norm = options.get("norm_reg_targets", False)
    loss_fn = FCOSLossComputation(
        fpn_strides=STRIDES,
        sizes_of_interest=[4, 8, 16, 32],
        center_sampling_radius=0.0,
        iou_loss_type="giou",
        norm_reg_targets=norm,
        focal_gamma=2.0,
        focal_alpha=0.25,
    )
    feats = _features()
    targets = _targets_on_every_level()
    locations = compute_locations(feats, STRIDES)
    labels, _ = prepare_targets(
        locations,
        [t.bbox for t in targets],
        [t.get_field("labels") for t in targets],
        strides=STRIDES,
        size_ranges=object_size_ranges([4, 8, 16, 32], 5),
    )
    counts = [loc.shape[0] for loc in locations]
    assert all((lv > 0).any() for lv in labels[0].split(counts)), "positives on every level"
    losses = loss_fn(locations, *head(feats), targets)
    sum(losses.values()).backward()
    for name, p in head.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
