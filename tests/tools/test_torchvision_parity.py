"""torchvision's FCOS, converted with tools/convert_torchvision_fcos.py, runs identically in fcos.

A randomly initialised torchvision ``fcos_resnet50_fpn`` (with non-trivial norm statistics) is
converted with the tool, loaded with DetectronCheckpointer into the model of
configs/fcos/fcos_torchvision_R_50_FPN.yaml, and both models run on the same batch of two images
of different sizes (multiples of 128). torchvision's transform is set so it does not resize.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch
import torchvision
from torch import nn

from fcos_core.checkpoint.torchvision_convert import (
    TORCHVISION_BN_EPS,
    ConversionError,
    class_rows,
    convert_state_dict,
    map_key,
)
from fcos_core.config import cfg as default_cfg
from fcos_core.data.coco_classes import (
    COCO_CLASS_NAMES,
    UNUSED_COCO_ID_SLOTS,
    contiguous_to_coco_id,
)
from fcos_core.modeling.detector import build_detection_model
from fcos_core.modeling.fcos.locations import compute_locations_per_level
from fcos_core.modeling.fcos.postprocess import FCOSPostProcessor
from fcos_core.structures.image_list import to_image_list
from fcos_core.utils.checkpoint import DetectronCheckpointer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "fcos", "fcos_torchvision_R_50_FPN.yaml")
TOOL = os.path.join(ROOT, "tools", "convert_torchvision_fcos.py")
IMAGE_SIZES = [(128, 256), (256, 128)]  # (H, W), multiples of 128, different per image
# Logit given to the 11 rows of torchvision's head that have no fcos class.
UNUSED_ROW_LOGIT = -1e4


def _load_tool():
    spec = importlib.util.spec_from_file_location("convert_torchvision_fcos", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@torch.no_grad()
def _randomize(tv_model: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial norm statistics/affines, class and box biases that give many detections."""
    for module in tv_model.modules():
        if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            module.weight.uniform_(0.5, 1.5, generator=generator)
            module.bias.normal_(0.0, 0.1, generator=generator)
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0.0, 0.1, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
    cls_head = tv_model.head.classification_head
    cls_head.cls_logits.weight.normal_(0.0, 0.02, generator=generator)
    cls_head.cls_logits.bias.normal_(-1.5, 0.5, generator=generator)
    unused = list(UNUSED_COCO_ID_SLOTS)
    cls_head.cls_logits.weight[unused] = 0.0
    cls_head.cls_logits.bias[unused] = UNUSED_ROW_LOGIT
    reg_head = tv_model.head.regression_head
    reg_head.bbox_reg.bias.uniform_(0.5, 3.0, generator=generator)
    reg_head.bbox_ctrness.bias.normal_(0.5, 0.5, generator=generator)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(torchvision model, our model with the converted weights, config), both in eval."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    tv_model = torchvision.models.detection.fcos_resnet50_fpn(weights=None, weights_backbone=None)
    _randomize(tv_model, generator)
    tv_model.eval()
    tv_model.transform.min_size = (min(min(s) for s in IMAGE_SIZES),)
    tv_model.transform.max_size = max(max(s) for s in IMAGE_SIZES)
    folder = tmp_path_factory.mktemp("tv_convert")
    tv_file, ours_file = folder / "tv_fcos.pth", folder / "converted.pth"
    torch.save(tv_model.state_dict(), tv_file)
    _load_tool().main(
        ["--input", str(tv_file), "--output", str(ours_file), "--config-file", CONFIG]
    )

    cfg = default_cfg.clone()
    cfg.merge_from_file(CONFIG)
    cfg.MODEL.DEVICE = "cpu"
    model = build_detection_model(cfg)
    DetectronCheckpointer(cfg, model, save_dir="").load(str(ours_file), use_latest=False)
    return tv_model, model.eval(), cfg


@pytest.fixture(scope="module")
def outputs(models):
    """Head outputs and detections of both models on the same two-image batch."""
    tv_model, model, cfg = models
    generator = torch.Generator().manual_seed(1)
    images = [torch.rand(3, h, w, generator=generator) for h, w in IMAGE_SIZES]
    mean = torch.tensor(cfg.INPUT.PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(cfg.INPUT.PIXEL_STD).view(3, 1, 1)
    captured = {}
    hooks = [
        tv_model.head.register_forward_hook(lambda m, i, o: captured.update(tv=(i[0], o))),
        model.rpn.head.register_forward_hook(lambda m, i, o: captured.update(ours=o)),
    ]
    with torch.no_grad():
        tv_dets = tv_model(images)
        batch = to_image_list([(x - mean) / std for x in images], cfg.DATALOADER.SIZE_DIVISIBILITY)
        our_dets = model(batch)
    for hook in hooks:
        hook.remove()
    return captured, tv_dets, our_dets


def _per_level(tv_outputs, features):
    """Split torchvision's concatenated (N, sum R_l, K) head outputs per level."""
    sizes = [f.shape[-2] * f.shape[-1] for f in features]
    return {k: v.split(sizes, dim=1) for k, v in tv_outputs.items()}


def _flat(x):
    """Tensor[N, K, H, W] -> Tensor[N, H * W, K], torchvision's layout."""
    return x.flatten(2).transpose(1, 2)


def test_head_outputs_match(outputs, models):
    captured, _, _ = outputs
    cfg = models[2]
    features, tv_out = captured["tv"]
    logits, bbox_reg, centerness = captured["ours"]
    tv_levels = _per_level(tv_out, features)
    rows = class_rows("coco", tv_out["cls_logits"].shape[-1])
    for level, stride in enumerate(cfg.MODEL.FCOS.FPN_STRIDES):
        tv_logits = tv_levels["cls_logits"][level][:, :, rows]
        torch.testing.assert_close(_flat(logits[level]), tv_logits, atol=1e-4, rtol=0)
        # torchvision regresses in units of the anchor size (= stride); ours in pixels in eval.
        torch.testing.assert_close(
            _flat(bbox_reg[level]) / stride, tv_levels["bbox_regression"][level], atol=1e-4, rtol=0
        )
        torch.testing.assert_close(
            _flat(centerness[level]), tv_levels["bbox_ctrness"][level], atol=1e-4, rtol=0
        )


def _sorted_detections(boxes, scores, labels):
    order = torch.argsort(scores, descending=True)
    return boxes[order], scores[order], labels[order]


def test_detections_match(outputs):
    _, tv_dets, our_dets = outputs
    for image_index, (tv_det, ours) in enumerate(zip(tv_dets, our_dets)):
        assert len(ours) > 0, "the random model should detect something"
        assert len(ours) == len(tv_det["boxes"]), f"image {image_index}: different counts"
        assert ours.size == (IMAGE_SIZES[image_index][1], IMAGE_SIZES[image_index][0])
        coco_ids = torch.tensor([contiguous_to_coco_id[int(k)] for k in ours.get_field("labels")])
        b1, s1, l1 = _sorted_detections(ours.bbox, ours.get_field("scores"), coco_ids)
        b2, s2, l2 = _sorted_detections(tv_det["boxes"], tv_det["scores"], tv_det["labels"])
        torch.testing.assert_close(s1, s2, atol=1e-5, rtol=0)
        torch.testing.assert_close(b1, b2, atol=1e-3, rtol=0)
        assert torch.equal(l1, l2)


def test_detections_exercise_limits(outputs, models):
    """P3 has more candidates than PRE_NMS_TOP_N and an image reaches DETECTIONS_PER_IMG, so
    both caps take part in the comparison above."""
    captured, _, our_dets = outputs
    cfg = models[2]
    logits, _, centerness = captured["ours"]
    scores = (logits[0].sigmoid() * centerness[0].sigmoid()).sqrt()  # (N, C, H_3, W_3)
    candidates = (scores > cfg.MODEL.FCOS.INFERENCE_TH).flatten(1).sum(dim=1)
    assert candidates.min() > cfg.MODEL.FCOS.PRE_NMS_TOP_N
    assert max(len(d) for d in our_dets) == cfg.TEST.DETECTIONS_PER_IMG


def test_key_mapping_and_errors():
    assert map_key("backbone.body.conv1.weight") == "backbone.body.stem.conv1.weight"
    assert (
        map_key("backbone.body.layer3.5.bn2.running_var")
        == "backbone.body.layer3.5.bn2.running_var"
    )
    assert map_key("backbone.fpn.inner_blocks.0.0.weight") == "backbone.fpn.fpn_inner2.weight"
    assert (
        map_key("backbone.fpn.inner_blocks.2.bias") == "backbone.fpn.fpn_inner4.bias"
    )  # old layout
    assert map_key("backbone.fpn.layer_blocks.1.0.bias") == "backbone.fpn.fpn_layer3.bias"
    assert map_key("backbone.fpn.extra_blocks.p7.weight") == "backbone.fpn.top_blocks.p7.weight"
    assert map_key("head.classification_head.conv.4.weight") == "rpn.head.cls_tower.4.weight"
    assert map_key("head.regression_head.bbox_ctrness.bias") == "rpn.head.centerness.bias"
    assert map_key("backbone.body.bn1.num_batches_tracked") is None
    with pytest.raises(ConversionError, match="roi_heads"):
        map_key("roi_heads.box_predictor.cls_score.weight")
    with pytest.raises(ConversionError, match="91-row"):
        class_rows("coco", 81)
    with pytest.raises(ValueError, match="class map must be one of"):
        class_rows("nope", 91)
    assert class_rows("drop_background", 4) == [1, 2, 3]


def test_class_rows_and_bn_eps_folding():
    """Row k of our class head is torchvision's row of COCO id(k + 1); eps goes into the var."""
    tv_state = {
        "head.classification_head.cls_logits.weight": torch.arange(91.0).view(91, 1, 1, 1),
        "head.classification_head.cls_logits.bias": torch.arange(91.0),
        "backbone.body.bn1.running_var": torch.tensor([0.5, 2.0]),
    }
    ours = convert_state_dict(tv_state, bn_eps=0.0, num_levels=3)
    expected = torch.tensor([float(contiguous_to_coco_id[k]) for k in range(1, 81)])
    assert torch.equal(ours["rpn.head.cls_logits.bias"], expected)
    assert torch.equal(ours["rpn.head.cls_logits.weight"].flatten(), expected)
    var = ours["backbone.body.stem.bn1.running_var"]
    torch.testing.assert_close(var, torch.tensor([0.5, 2.0]) + TORCHVISION_BN_EPS)
    assert [ours[f"rpn.head.scales.{i}.scale"].item() for i in range(3)] == [1.0, 1.0, 1.0]
    same_eps = convert_state_dict(tv_state, bn_eps={"backbone.body.stem.bn1": TORCHVISION_BN_EPS})
    assert torch.equal(same_eps["backbone.body.stem.bn1.running_var"], torch.tensor([0.5, 2.0]))


def test_coco_names_agree_with_torchvision():
    categories = torchvision.models.detection.FCOS_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
    for label in range(1, len(COCO_CLASS_NAMES)):
        assert categories[contiguous_to_coco_id[label]] == COCO_CLASS_NAMES[label]
    assert all(categories[i] in ("__background__", "N/A") for i in UNUSED_COCO_ID_SLOTS)


def test_location_offset_switch():
    half = compute_locations_per_level(2, 3, 8)
    zero = compute_locations_per_level(2, 3, 8, offset="zero")
    assert zero.tolist() == [[0, 0], [8, 0], [16, 0], [0, 8], [8, 8], [16, 8]]
    assert torch.equal(half, zero + 4)
    with pytest.raises(ValueError, match="LOCATION_OFFSET"):
        compute_locations_per_level(2, 3, 8, offset="centre")


def test_threshold_on_switch():
    """cls prob 0.3 and centerness 0.1: score sqrt(0.03) ~ 0.17 passes "cls" 0.2, not "score"."""
    logit = torch.logit(torch.tensor(0.3)).view(1, 1, 1, 1)
    ctr = torch.logit(torch.tensor(0.1)).view(1, 1, 1, 1)
    reg = torch.full((1, 4, 1, 1), 2.0)
    locations = [torch.tensor([[4.0, 4.0]])]
    kept = {}
    for mode in ("cls", "score"):
        post = FCOSPostProcessor(
            pre_nms_thresh=0.2,
            pre_nms_top_n=10,
            nms_thresh=0.6,
            detections_per_img=10,
            threshold_on=mode,
        )
        kept[mode] = len(post(locations, [logit], [reg], [ctr], [(8, 8)])[0])
    assert kept == {"cls": 1, "score": 0}
    with pytest.raises(ValueError, match="INFERENCE_TH_ON"):
        FCOSPostProcessor(
            pre_nms_thresh=0.2,
            pre_nms_top_n=10,
            nms_thresh=0.6,
            detections_per_img=10,
            threshold_on="joint",
        )
