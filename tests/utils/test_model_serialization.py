"""load_state_dict: DDP prefix, suffix matching, shape mismatches, ambiguity."""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch
from torch import nn

from fcos_core.utils.model_serialization import load_state_dict, match_keys


class _Head(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.cls_logits = nn.Conv2d(8, num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(8, 4, 3, padding=1)


class _Detector(nn.Module):
    def __init__(self, num_classes: int = 80) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            OrderedDict(body=nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)))
        )
        self.rpn = nn.Module()
        self.rpn.head = _Head(num_classes)


def _filled(model: nn.Module, value: float) -> OrderedDict:
    return OrderedDict((k, torch.full_like(v, value)) for k, v in model.state_dict().items())


def test_module_prefix_is_stripped():
    src = _filled(_Detector(), 0.5)
    ddp_style = OrderedDict(("module." + k, v) for k, v in src.items())
    model = _Detector()
    report = load_state_dict(model, ddp_style)
    assert not report.missing and not report.unused and not report.mismatched
    assert all(torch.all(v == 0.5) for v in model.state_dict().values() if v.is_floating_point())


def test_suffix_matching_loads_backbone_only_weights():
    body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    loaded = _filled(body, 2.0)  # keys "0.weight", "1.running_mean", ...
    loaded = OrderedDict(("body." + k, v) for k, v in loaded.items())
    model = _Detector()
    head_before = model.rpn.head.cls_logits.weight.clone()
    report = load_state_dict(model, loaded)
    assert sorted(report.loaded) == sorted("backbone." + k for k in loaded)
    assert report.unused == []
    assert torch.all(model.backbone.body[0].weight == 2.0)
    assert model.rpn.head.cls_logits.weight.equal(head_before)
    assert set(report.missing) == {k for k in model.state_dict() if k.startswith("rpn.")}


def test_class_count_mismatch_is_skipped_with_warning(caplog):
    coco = _filled(_Detector(num_classes=80), 1.0)
    model = _Detector(num_classes=3)
    init_cls = model.rpn.head.cls_logits.weight.clone()
    with caplog.at_level(logging.WARNING):
        report = load_state_dict(model, coco)
    assert {m for m, _, _ in report.mismatched} == {
        "rpn.head.cls_logits.weight",
        "rpn.head.cls_logits.bias",
    }
    assert model.rpn.head.cls_logits.weight.equal(init_cls)
    assert torch.all(model.rpn.head.bbox_pred.weight == 1.0)
    assert "rpn.head.cls_logits.weight" in caplog.text and "(80, 8, 3, 3)" in caplog.text


def test_longest_suffix_wins_and_ambiguous_keys_are_skipped():
    model_keys = ["a.layer1.0.conv1.weight", "a.stem.conv1.weight", "b.conv1.weight"]
    loaded_keys = ["layer1.0.conv1.weight", "conv1.weight", "stem.conv1.weight"]
    matches, ambiguous = match_keys(model_keys, loaded_keys)
    assert matches == {
        "a.layer1.0.conv1.weight": "layer1.0.conv1.weight",
        "a.stem.conv1.weight": "stem.conv1.weight",
        "b.conv1.weight": "conv1.weight",
    }
    assert ambiguous == []
    matches, ambiguous = match_keys(["x.conv1.weight", "y.conv1.weight"], ["conv1.weight"])
    assert matches == {} and ambiguous == ["conv1.weight"]


def test_partial_name_is_not_a_suffix_match():
    matches, _ = match_keys(["head.myconv1.weight"], ["conv1.weight"])
    assert matches == {}
