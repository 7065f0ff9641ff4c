"""The stride-4 level P2 (MODEL.FCOS.FPN_STRIDES starting at 4): targets, backbones, detector,
state dicts of P3-P7 models unchanged."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.config.checks import ConfigError
from fcos_core.modeling.backbone import build_backbone
from fcos_core.modeling.detector import build_detection_model
from fcos_core.modeling.fcos.locations import compute_locations
from fcos_core.modeling.fcos.targets import object_size_ranges, prepare_targets
from fcos_core.structures import BoxList

ROOT = Path(__file__).resolve().parents[2]
P3_P7 = [8, 16, 32, 64, 128]
P2_P7 = [4, 8, 16, 32, 64, 128]
SIZES = [64, 128, 256, 512]
P2_SIZES = [32, 64, 128, 256, 512]
P2_OVERRIDES = ["MODEL.FCOS.FPN_STRIDES", P2_P7, "MODEL.FCOS.SIZES_OF_INTEREST", P2_SIZES]
IMAGE = 256
# The keys a P2 model adds to its P3-P7 model: P2's lateral and output convs, and its Scale.
P2_KEYS = {
    "backbone.fpn.fpn_inner1.weight",
    "backbone.fpn.fpn_inner1.bias",
    "backbone.fpn.fpn_layer1.weight",
    "backbone.fpn.fpn_layer1.bias",
    "rpn.head.scales.5.scale",
}


def _targets(strides, sizes, boxes, radius=0.0):
    """Labels of every location (level-major), split per level: L tensors Tensor[R_l]."""
    feats = [torch.zeros(1, 1, math.ceil(IMAGE / s), math.ceil(IMAGE / s)) for s in strides]
    locations = compute_locations(feats, strides)
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels, _ = prepare_targets(
        locations,
        [boxes],
        [torch.arange(1, len(boxes) + 1)],
        strides=strides,
        size_ranges=object_size_ranges(sizes, len(strides)),
        center_sampling_radius=radius,
    )
    return list(labels[0].split([loc.shape[0] for loc in locations]))


def _positive_levels(per_level) -> list[int]:
    return [level for level, labels in enumerate(per_level) if (labels > 0).any()]


@pytest.mark.parametrize("radius", [0.0, 1.5])
def test_small_boxes_go_to_p2_and_the_rest_as_before(radius):
    small = [[20.0, 30.0, 44.0, 50.0]]  # 24 x 20 px: max(l, t, r, b) <= 24 everywhere inside
    assert _positive_levels(_targets(P2_P7, P2_SIZES, small, radius)) == [0]  # P2 only
    assert _positive_levels(_targets(P3_P7, SIZES, small, radius)) == [0]  # P3 without P2
    # Boxes whose inside points all have max(l, t, r, b) > 64: P3-P7 labels as without P2.
    torch.manual_seed(0)
    xy = torch.rand(6, 2) * 100
    large = torch.cat((xy, xy + 130 + torch.rand(6, 2) * 100), dim=1).clamp(max=IMAGE).tolist()
    with_p2 = _targets(P2_P7, P2_SIZES, large, radius)
    without = _targets(P3_P7, SIZES, large, radius)
    assert not (with_p2[0] > 0).any()
    for level, (a, b) in enumerate(zip(with_p2[1:], without, strict=True)):
        assert torch.equal(a, b), f"P{level + 3}"
    assert sum(int((t > 0).sum()) for t in without) > 0


def test_mid_sized_box_splits_between_p2_and_p3_at_32():
    # 60 x 60 box from (10, 10): max(l, t, r, b) ranges 30..60 over the inside points.
    per_level = _targets(P2_P7, P2_SIZES, [[10.0, 10.0, 70.0, 70.0]])
    assert _positive_levels(per_level) == [0, 1]
    feats = [torch.zeros(1, 1, IMAGE // s, IMAGE // s) for s in P2_P7[:2]]
    for level, locations in enumerate(compute_locations(feats, P2_P7[:2])):
        inside = (locations > 10).all(dim=1) & (locations < 70).all(dim=1)
        far = torch.maximum(locations - 10, 70 - locations).max(dim=1).values
        lo, hi = [(-1, 32), (32, 64)][level]
        expected = inside & (far >= lo) & (far <= hi)
        assert torch.equal(per_level[level] > 0, expected), f"P{level + 2}"


def test_a_4px_object_has_positives_only_with_p2():
    box = [[5.0, 5.0, 9.0, 9.0]]  # no stride-8 location strictly inside; (6, 6) at stride 4
    assert _positive_levels(_targets(P3_P7, SIZES, box, 1.5)) == []
    p2 = _targets(P2_P7, P2_SIZES, box, 1.5)
    assert _positive_levels(p2) == [0] and int((p2[0] > 0).sum()) == 1


def _cfg(config: str, overrides=()) -> default_cfg.__class__:
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(ROOT / "configs" / config))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.WEIGHT", "", *overrides])
    return cfg


TINY_R50 = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 16,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 32,
    "MODEL.RESNETS.WIDTH_PER_GROUP", 8,
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", 64,
    "MODEL.FCOS.NUM_CONVS", 1,
]  # fmt: skip
TINY_MNV2 = ["MODEL.RESNETS.BACKBONE_OUT_CHANNELS", 64, "MODEL.FCOS.NUM_CONVS", 1]
MODELS = {
    "R-50": ("fcos/fcos_imprv_R_50_FPN_1x.yaml", TINY_R50),
    "MNV2": ("fcos/fcos_bn_bs16_MNV2_FPN_1x.yaml", TINY_MNV2),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_backbone_outputs_p2_to_p7(name):
    config, tiny = MODELS[name]
    backbone = build_backbone(_cfg(config, [*tiny, *P2_OVERRIDES]))
    assert backbone.out_strides == P2_P7
    features = backbone(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape) for f in features] == [
        (1, 64, math.ceil(64 / s), math.ceil(96 / s)) for s in P2_P7
    ]


def _tiny_batch():
    g = torch.Generator().manual_seed(0)
    images = [torch.randn(3, 64, 96, generator=g) * 50 for _ in range(2)]
    targets = []
    for boxes in ([[4.0, 6.0, 14.0, 18.0], [30.0, 10.0, 80.0, 60.0]], [[50.0, 40.0, 58.0, 46.0]]):
        target = BoxList(torch.tensor(boxes), (96, 64))
        target.add_field("labels", torch.ones(len(boxes), dtype=torch.long))
        targets.append(target)
    return images, targets


@pytest.mark.parametrize("name", sorted(MODELS))
def test_detector_with_p2_trains_and_infers(name):
    config, tiny = MODELS[name]
    cfg = _cfg(config, [*tiny, *P2_OVERRIDES])
    torch.manual_seed(0)
    model = build_detection_model(cfg)
    assert len(model.rpn.head.scales) == 6
    images, targets = _tiny_batch()
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_reg"] > 0  # positives exist (the 10 px and 8 px boxes at P2)
    sum(losses.values()).backward()
    fpn = model.backbone.fpn
    for param in (fpn.fpn_inner1.weight, fpn.fpn_layer1.weight, model.rpn.head.scales[0].scale):
        assert param.grad is not None and param.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        (detections,) = model(images[:1])
    assert detections.size == (96, 64) and detections.has_field("scores")


@pytest.mark.parametrize(
    "config", ["fcos/fcos_imprv_R_50_FPN_1x.yaml", "fcos/fcos_bn_bs16_MNV2_FPN_1x.yaml"]
)
def test_p2_adds_keys_and_keeps_every_p3_p7_key_and_shape(config):
    with torch.device("meta"):
        plain = build_detection_model(_cfg(config)).state_dict()
        with_p2 = build_detection_model(_cfg(config, P2_OVERRIDES)).state_dict()
    assert set(with_p2) - set(plain) == P2_KEYS and set(plain) <= set(with_p2)
    assert all(with_p2[k].shape == v.shape for k, v in plain.items())
    assert (
        with_p2["backbone.fpn.fpn_layer1.weight"].shape
        == plain["backbone.fpn.fpn_layer2.weight"].shape
    )


def test_unsupported_strides_name_the_key():
    message = r"MODEL.FCOS.FPN_STRIDES must be \[8, 16, 32, 64, 128\] or \[4, 8, 16, 32, 64, 128\]"
    with pytest.raises(ConfigError, match=message):
        build_backbone(
            _cfg("fcos/fcos_imprv_R_50_FPN_1x.yaml", ["MODEL.FCOS.FPN_STRIDES", P3_P7[:4]])
        )


def test_p2_without_its_size_boundary_says_what_to_set():
    cfg = _cfg("fcos/fcos_imprv_R_50_FPN_1x.yaml", ["MODEL.FCOS.FPN_STRIDES", P2_P7])
    with pytest.raises(ValueError, match=r"5 increasing values, got \[64, 128, 256, 512\]") as e:
        build_detection_model(cfg)
    assert "with the stride-4 level P2: [32, 64, 128, 256, 512]" in str(e.value)


def test_data_report_names_the_levels_from_the_strides():
    from fcos_core.data.analysis import level_names

    assert level_names(_cfg("fcos/fcos_imprv_R_50_FPN_1x.yaml")) == ["P3", "P4", "P5", "P6", "P7"]
    p2 = _cfg("fcos/fcos_imprv_R_50_FPN_1x.yaml", P2_OVERRIDES)
    assert level_names(p2) == ["P2", "P3", "P4", "P5", "P6", "P7"]
