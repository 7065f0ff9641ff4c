"""The inference fast path gives the detections of the plain model (tiny R-18, FrozenBN)."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from fcos_core.config import cfg as default_cfg
from fcos_core.export.fast_path import (
    FLOAT32_HEAD_LAYERS,
    FastInference,
    Float32,
    cast_conv_weights,
    fold_batchnorm,
    fold_into_conv,
    keep_predictors_float32,
    prepare_fast_inference,
)
from fcos_core.layers.dcn import ModulatedDeformConv
from fcos_core.layers.misc import FrozenBatchNorm2d
from fcos_core.modeling.detector import build_detection_model
from fcos_core.structures.boxlist_ops import boxlist_iou
from fcos_core.structures.image_list import to_image_list

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "tests", "fixtures", "engine", "tiny_fcos.yaml")
IMAGE_SIZES = [(64, 96), (96, 64)]  # (H, W)


def _random_frozen_bn(channels: int, generator: torch.Generator) -> FrozenBatchNorm2d:
    bn = FrozenBatchNorm2d(channels, eps=1e-5)
    bn.weight.uniform_(0.5, 1.5, generator=generator)
    bn.bias.normal_(0.0, 0.1, generator=generator)
    bn.running_mean.normal_(0.0, 0.1, generator=generator)
    bn.running_var.uniform_(0.5, 2.0, generator=generator)
    return bn


@pytest.mark.parametrize("bias", [False, True])
def test_fold_into_conv_matches_conv_then_bn(bias):
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=bias)
    bn = _random_frozen_bn(6, g)
    x = torch.randn(2, 4, 9, 7, generator=g)
    with torch.no_grad():
        expected = bn(conv(x))
        fold_into_conv(conv, bn)
        got = conv(x)
    assert conv.bias is not None
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("affine", [False, True])
def test_fold_batchnorm_uses_running_statistics(affine):
    g = torch.Generator().manual_seed(3)
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    block = nn.Sequential(conv, nn.BatchNorm2d(6, affine=affine))
    with torch.no_grad():
        block[1].running_mean.normal_(0.0, 0.5, generator=g)
        block[1].running_var.uniform_(0.5, 2.0, generator=g)
        if affine:
            block[1].weight.uniform_(0.5, 1.5, generator=g)
            block[1].bias.normal_(0.0, 0.5, generator=g)
    x = torch.randn(2, 4, 9, 7, generator=g)
    with torch.no_grad():
        expected = block.eval()(x)
        assert fold_batchnorm(block) == 1
        got = block(x)
    assert isinstance(block[1], nn.Identity)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_batchnorm_without_running_statistics_is_not_folded():
    block = nn.Sequential(nn.Conv2d(4, 6, 1), nn.BatchNorm2d(6, track_running_stats=False))
    assert fold_batchnorm(block) == 0
    assert isinstance(block[1], nn.BatchNorm2d)


def _tiny_detector(opts: list) -> nn.Module:
    """The tiny FrozenBN detector (config ``opts`` applied) with random norm statistics and head
    biases that detect things."""
    cfg = default_cfg.clone()
    cfg.merge_from_file(TINY)
    cfg.merge_from_list(opts)
    torch.manual_seed(0)
    model = build_detection_model(cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.load_state_dict(_random_frozen_bn(module.num_features, g).state_dict())
        for name, param in model.rpn.head.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.5, 0.5, generator=g)
    return model


@pytest.fixture(scope="module")
def model():
    return _tiny_detector(["TEST.DETECTIONS_PER_IMG", 50])


def _run(model, images, head):
    captured = {}
    hook = head.register_forward_hook(lambda m, i, o: captured.update(out=o))
    with torch.no_grad():
        detections = model(images)
    hook.remove()
    return captured["out"], detections


def test_fold_replaces_every_frozen_bn_in_a_copy(model):
    copy = prepare_fast_inference(model, autocast="float32")
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in copy.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())  # original untouched
    count = sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    assert count == 1 + 2 * 8 + 3  # stem, 2 per BasicBlock, 3 projection shortcuts
    assert fold_batchnorm(copy.model) == 0


def test_fast_path_gives_the_same_head_outputs_and_detections(model):
    g = torch.Generator().manual_seed(2)
    images = to_image_list([torch.randn(3, h, w, generator=g) for h, w in IMAGE_SIZES], 32)
    fast = prepare_fast_inference(model, autocast="float32")
    ours_out, ours_dets = _run(model, images, model.rpn.head)
    fast_out, fast_dets = _run(fast, images, fast.model.rpn.head)
    for ours_level, fast_level in zip(sum(ours_out, []), sum(fast_out, [])):
        torch.testing.assert_close(fast_level, ours_level, rtol=1e-4, atol=1e-4)
    assert sum(len(d) for d in ours_dets) > 0
    for ours, fast in zip(ours_dets, fast_dets):
        assert len(ours) == len(fast)
        torch.testing.assert_close(fast.bbox, ours.bbox, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(fast.get_field("scores"), ours.get_field("scores"),
                                   rtol=1e-4, atol=1e-4)  # fmt: skip
        assert torch.equal(fast.get_field("labels"), ours.get_field("labels"))


def test_fast_path_takes_uint8_batches_as_the_model_does(model):
    """uint8 RGB images go through the same preprocessing: the fast path on uint8 equals the
    fast path on the model's own normalisation of them (channels_last kept throughout)."""
    g = torch.Generator().manual_seed(3)
    images = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
              for h, w in IMAGE_SIZES]  # fmt: skip
    fast = prepare_fast_inference(model, autocast="float32")
    uint8_out, uint8_dets = _run(fast, images, fast.model.rpn.head)
    normalized = model.preprocess(to_image_list(images, 32))
    assert normalized.tensors.dtype == torch.float32
    float_out, float_dets = _run(fast, normalized, fast.model.rpn.head)
    for a, b in zip(sum(uint8_out, []), sum(float_out, [])):
        assert torch.equal(a, b)
    for a, b in zip(uint8_dets, float_dets, strict=True):
        assert torch.equal(a.bbox, b.bbox) and torch.equal(
            a.get_field("scores"), b.get_field("scores")
        )


def test_bf16_autocast_returns_float32_detections(model):
    fast = prepare_fast_inference(model, autocast="bfloat16")
    detections = fast([torch.randn(3, 256, 192)])
    assert detections[0].bbox.dtype == torch.float32
    assert detections[0].get_field("scores").dtype == torch.float32
    assert not detections[0].bbox.is_inference()  # callers may clip / resize in place
    detections[0].bbox.add_(1.0)


def test_bad_autocast_and_training_mode_are_rejected(model):
    with pytest.raises(ValueError, match="TEST.FAST_PATH_AUTOCAST"):
        prepare_fast_inference(model, autocast="int8")
    fast = prepare_fast_inference(model, autocast="float32")
    assert isinstance(fast, FastInference)
    fast.train()
    with pytest.raises(RuntimeError, match="inference only"):
        fast([torch.randn(3, 64, 64)])


def test_cfg_selects_the_autocast_dtype(model):
    cfg = default_cfg.clone()
    cfg.TEST.FAST_PATH_AUTOCAST = "bfloat16"
    assert prepare_fast_inference(model, cfg).autocast_dtype == torch.bfloat16


def test_predictor_convs_stay_float32_under_autocast(model):
    fast = prepare_fast_inference(model, autocast="bfloat16")
    head = fast.model.rpn.head
    assert all(isinstance(getattr(head, name), Float32) for name in FLOAT32_HEAD_LAYERS)
    assert keep_predictors_float32(fast.model) == 0  # already wrapped
    outputs, _ = _run(fast, [torch.randn(3, 128, 160)], head)
    logits, reg, centerness = outputs
    assert {t.dtype for t in logits + reg + centerness} == {torch.float32}
    towers = [m for m in head.cls_tower.modules() if isinstance(m, nn.Conv2d)]
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the towers themselves do run in bf16
        assert towers[0](torch.randn(1, towers[0].in_channels, 8, 8)).dtype == torch.bfloat16
    plain_head = prepare_fast_inference(model, autocast="float32").model.rpn.head
    assert isinstance(plain_head.cls_logits, nn.Conv2d)  # nothing wrapped without autocast


def test_compiled_fast_path_gives_the_same_detections(model):
    images = [torch.randn(3, 128, 160, generator=torch.Generator().manual_seed(4))]
    eager = prepare_fast_inference(model, autocast="float32")(images)
    compiled = prepare_fast_inference(model, autocast="float32", compiled=True)
    assert "OptimizedModule" in type(compiled.model.backbone).__name__
    got = compiled(images)
    assert len(got[0]) == len(eager[0]) > 0
    torch.testing.assert_close(got[0].bbox, eager[0].bbox, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(got[0].get_field("scores"), eager[0].get_field("scores"),
                               rtol=1e-4, atol=1e-4)  # fmt: skip


def _without_weight_casts(model: nn.Module) -> FastInference:
    """The bf16 fast path as it was before `cast_conv_weights`: autocast casts every weight."""
    target = prepare_fast_inference(model, autocast="float32").model
    keep_predictors_float32(target)
    return FastInference(target, autocast_dtype=torch.bfloat16).eval()


def test_pre_cast_weights_give_what_autocast_gives_exactly(model):
    fast = prepare_fast_inference(model, autocast="bfloat16")
    convs = [m for m in fast.model.modules() if type(m) is nn.Conv2d]
    head = fast.model.rpn.head
    predictors = {id(getattr(head, name).module) for name in FLOAT32_HEAD_LAYERS}
    assert all(c.weight.dtype == torch.bfloat16 for c in convs if id(c) not in predictors)
    assert all(getattr(head, n).module.weight.dtype == torch.float32 for n in FLOAT32_HEAD_LAYERS)
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    reference = _without_weight_casts(model)
    images = to_image_list([torch.randn(3, 128, 160, generator=torch.Generator().manual_seed(6))])
    got_out, got = _run(fast, images, fast.model.rpn.head)
    ref_out, ref = _run(reference, images, reference.model.rpn.head)
    for got_level, ref_level in zip(sum(got_out, []), sum(ref_out, [])):
        assert torch.equal(got_level, ref_level)
    assert len(got[0]) > 0 and torch.equal(got[0].bbox, ref[0].bbox)
    assert torch.equal(got[0].get_field("scores"), ref[0].get_field("scores"))


def test_cast_conv_weights_leaves_float32_wrappers_and_deformable_kernels():
    dcn = ModulatedDeformConv(4, 4, kernel_size=3, bias=True)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), dcn, Float32(nn.Conv2d(4, 2, 1)))
    assert cast_conv_weights(model, torch.bfloat16) == 2  # the first conv and dcn.offset
    assert model[0].weight.dtype == model[0].bias.dtype == torch.bfloat16
    assert dcn.offset.weight.dtype == torch.bfloat16
    assert dcn.conv.weight.dtype == model[2].module.weight.dtype == torch.float32


def test_bf16_fast_path_reproduces_99_percent_of_the_eager_detections():
    """No per-image or pre-NMS cap: random weights give near-equal scores (0.62-0.66 here), and
    which of those survive a top-k cap is decided by bf16 rounding, not by the model; without
    caps every decision left is a threshold or an NMS overlap."""
    uncapped = 100000
    model = _tiny_detector(
        ["TEST.DETECTIONS_PER_IMG", uncapped, "MODEL.FCOS.PRE_NMS_TOP_N", uncapped]
    )
    g = torch.Generator().manual_seed(5)
    images = [torch.randn(3, 256, 192, generator=g) for _ in range(2)]
    with torch.no_grad():
        eager = model(to_image_list(images, 32))
    fast = prepare_fast_inference(model, autocast="bfloat16")(images)
    total = sum(len(d) for d in eager)
    matched = sum(_matched(e, f) for e, f in zip(eager, fast))
    assert total > 1000
    assert matched >= 0.99 * total, f"{matched}/{total}"


def _matched(reference, other, iou: float = 0.9) -> int:
    """``reference`` boxes with a same-label box in ``other`` at IoU >= ``iou``."""
    overlap = boxlist_iou(reference, other)  # (N_ref, N_other)
    same = reference.get_field("labels")[:, None] == other.get_field("labels")[None, :]
    return int(((overlap >= iou) & same).any(dim=1).sum())
