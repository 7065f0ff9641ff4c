"""The tensor post-processing core (inference_core): rules, both box conventions, export path."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from fcos_core.config import cfg as default_cfg
from fcos_core.modeling.fcos.inference_core import (
    DetectionSettings,
    cap_detections,
    clip_boxes,
    level_candidates,
    select_detections,
    top_candidates,
)
from fcos_core.modeling.fcos.postprocess import FCOSPostProcessor, select_over_all_levels
from fcos_core.structures import BoxList


def _settings(**kw) -> DetectionSettings:
    args = dict(pre_nms_thresh=0.05, pre_nms_top_n=1000, nms_thresh=0.6, detections_per_img=100)
    return DetectionSettings(**{**args, **kw})


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_cap_keep_is_the_original_kthvalue_rule_and_cut_is_a_slice():
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        n = int(torch.randint(0, 30, (1,), generator=gen))
        scores = (torch.randint(0, 6, (n,), generator=gen).float() / 5).sort(descending=True)[0]
        k = int(torch.randint(1, 12, (1,), generator=gen))
        expected = torch.ones(n, dtype=torch.bool)
        if n > k:  # the original: kthvalue(scores, n - k + 1), keep scores >= it
            expected = scores >= torch.kthvalue(scores, n - k + 1).values
        assert torch.equal(cap_detections(scores, k, "keep"), expected)
        assert cap_detections(scores, k, "cut").tolist() == [i < k for i in range(n)]
    scores = torch.tensor([0.9, 0.8, 0.8, 0.8, 0.5])
    assert cap_detections(scores, 2, "keep").tolist() == [True] * 4 + [False]
    assert cap_detections(scores, 0, "cut").all()


@pytest.mark.parametrize(("convention", "edge"), [("plus_one", 47.0), ("continuous", 48.0)])
def test_clip_boxes(convention, edge):
    boxes = torch.tensor([[-4.0, 2.0, 60.0, 40.0]])
    assert clip_boxes(boxes, 32, 48, convention).tolist() == [[0.0, 2.0, edge, edge - 16]]


def test_top_candidates_keeps_the_k_best():
    scores = torch.tensor([0.1, 0.7, 0.3, 0.9, 0.5])
    assert top_candidates(scores, 5) is None
    assert sorted(top_candidates(scores, 2).tolist()) == [1, 3]


@pytest.mark.parametrize("convention", ["plus_one", "continuous"])
def test_level_candidates_hand_made(convention):
    """One location (20, 12), class 2 at 0.64 and centerness 0.25: score sqrt(0.16) = 0.4."""
    locations = torch.tensor([[20.0, 12.0], [4.0, 4.0]])
    logits = torch.full((2, 3), -20.0)
    logits[0, 1] = _logit(0.64)
    ctr = torch.tensor([_logit(0.25), 0.0])
    reg = torch.tensor([[4.0, 6.0, 40.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    settings = _settings(box_convention=convention)
    boxes, scores, labels = level_candidates(settings, locations, logits, reg, ctr, 32, 48)
    right = 47.0 if convention == "plus_one" else 48.0  # 20 + 40 leaves the image
    assert boxes.tolist() == [[16.0, 6.0, right, 14.0]]
    assert scores.tolist() == pytest.approx([0.4]) and labels.tolist() == [2]
    small = _settings(box_convention=convention, min_size=9.0)  # height 8 (+1 with plus_one)
    kept = len(level_candidates(small, locations, logits, reg, ctr, 32, 48)[0])
    assert kept == (1 if convention == "plus_one" else 0)


@pytest.mark.parametrize(("convention", "count"), [("plus_one", 2), ("continuous", 1)])
def test_select_detections_nms_tie_per_convention(convention, count):
    """Same label, IoU exactly 0.6 in both conventions' widths: kept by the original's float
    ml_nms rule (plus_one), removed by the double comparison (continuous)."""
    off = 1.0 if convention == "plus_one" else 0.0
    boxes = torch.tensor([[0.0, 0.0, 10.0 - off, 10.0 - off], [0.0, 0.0, 10.0 - off, 6.0 - off]])
    scores, labels = torch.tensor([0.9, 0.8]), torch.tensor([3, 3])
    out = select_detections(_settings(box_convention=convention), boxes, scores, labels)
    assert len(out[0]) == count
    assert out[1].tolist() == pytest.approx([0.9, 0.8][:count])
    mixed = select_detections(_settings(), boxes, scores, torch.tensor([1, 2]))
    assert len(mixed[0]) == 2  # different labels never suppress each other


def test_settings_check_values_and_read_the_config():
    with pytest.raises(ValueError, match="TEST.DETECTIONS_PER_IMG_TIES must be one of keep, cut"):
        _settings(detections_per_img_ties="all")
    with pytest.raises(ValueError, match="MODEL.BOX_CONVENTION must be one of"):
        _settings(box_convention="zero")
    with pytest.raises(ValueError, match="MODEL.FCOS.INFERENCE_TH_ON"):
        _settings(threshold_on="joint")
    cfg = default_cfg.clone()
    s = DetectionSettings.from_config(cfg)
    assert (s.box_convention, s.detections_per_img_ties) == ("plus_one", "keep")
    cfg.merge_from_list(
        ["MODEL.BOX_CONVENTION", "continuous", "TEST.DETECTIONS_PER_IMG_TIES", "cut"]
    )
    post = FCOSPostProcessor.from_config(cfg)
    assert post.settings == DetectionSettings.from_config(cfg)
    assert (post.box_convention, post.detections_per_img_ties) == ("continuous", "cut")


@pytest.mark.parametrize("convention", ["plus_one", "continuous"])
def test_postprocessor_boxlists_carry_the_convention(convention):
    cls = torch.full((1, 2, 2, 2), -20.0)
    cls[0, 0, 1, 1] = 3.0
    reg = torch.full((1, 4, 2, 2), 30.0)
    ctr = torch.zeros(1, 1, 2, 2)
    locations = [torch.tensor([[4.0, 4.0], [12.0, 4.0], [4.0, 12.0], [12.0, 12.0]])]
    post = FCOSPostProcessor(
        pre_nms_thresh=0.05,
        pre_nms_top_n=10,
        nms_thresh=0.6,
        detections_per_img=10,
        box_convention=convention,
    )
    (det,) = post(locations, [cls], [reg], [ctr], [(16, 20)])
    assert det.convention == convention
    edge = 1.0 if convention == "plus_one" else 0.0
    assert det.bbox.tolist() == [[0.0, 0.0, 20.0 - edge, 16.0 - edge]]


def test_select_over_all_levels_ties_switch():
    b = BoxList(torch.tensor([[0.0, 0, 4, 4], [10, 0, 14, 4], [20, 0, 24, 4]]), (30, 10))
    b.add_field("scores", torch.tensor([0.9, 0.5, 0.5]))
    b.add_field("labels", torch.tensor([1, 1, 1]))
    assert len(select_over_all_levels(b, 0.6, 2)) == 3  # "keep": both tied boxes stay
    assert len(select_over_all_levels(b, 0.6, 2, "cut")) == 2


class _Select(nn.Module):
    def __init__(self, settings: DetectionSettings) -> None:
        super().__init__()
        self.settings = settings

    def forward(self, boxes, scores, labels):
        return select_detections(self.settings, boxes, scores, labels)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("convention", ["plus_one", "continuous"])
def test_exported_selection_matches_eager(tmp_path, convention):
    """The core traced to ONNX (NonMaxSuppression with the +1 moved into the boxes) keeps the
    same detections as eager on integer boxes (exact IoU ties included)."""
    gen = torch.Generator().manual_seed(3)
    settings = _settings(box_convention=convention, nms_thresh=0.5, detections_per_img=20)
    path = str(tmp_path / "select.onnx")

    def sample(n):
        xy = torch.randint(0, 40, (n, 2), generator=gen).float()
        boxes = torch.cat((xy, xy + torch.randint(1, 20, (n, 2), generator=gen)), dim=1)
        scores = (torch.randperm(n, generator=gen).float() + 1) / (n + 1)
        return boxes, scores, torch.randint(1, 4, (n,), generator=gen)

    torch.onnx.export(
        _Select(settings),
        sample(30),
        path,
        dynamo=False,
        input_names=["boxes", "scores", "labels"],
        dynamic_axes={"boxes": {0: "k"}, "scores": {0: "k"}, "labels": {0: "k"}},
        opset_version=17,
    )
    session = ort.InferenceSession(path)
    for n in (0, 5, 80):
        boxes, scores, labels = sample(n)
        expected = select_detections(settings, boxes, scores, labels)
        feeds = {"boxes": boxes.numpy(), "scores": scores.numpy(), "labels": labels.numpy()}
        got = session.run(None, feeds)
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e.numpy())
