"""FCOS post-processing on hand-made head outputs (test-time augmentation: tests/engine)."""

from __future__ import annotations

import math

import pytest
import torch

from fcos_core.modeling.fcos.locations import compute_locations
from fcos_core.modeling.fcos.postprocess import FCOSPostProcessor

STRIDES = [8, 16]
HEIGHT, WIDTH = 32, 48
NUM_CLASSES = 3
OFF = -20.0  # logit of a class that is off


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _blank(batch: int = 1):
    """Head outputs with every class off: levels of 4x6 (stride 8) and 2x3 (stride 16)."""
    shapes = [(HEIGHT // s, WIDTH // s) for s in STRIDES]
    cls = [torch.full((batch, NUM_CLASSES, h, w), OFF) for h, w in shapes]
    reg = [torch.ones(batch, 4, h, w) for h, w in shapes]
    ctr = [torch.zeros(batch, 1, h, w) for h, w in shapes]
    return cls, reg, ctr


def _set(outputs, level, row, col, channel, prob, ctr_prob, ltrb, image=0):
    cls, reg, ctr = outputs
    cls[level][image, channel, row, col] = _logit(prob)
    ctr[level][image, 0, row, col] = _logit(ctr_prob)
    reg[level][image, :, row, col] = torch.tensor(ltrb, dtype=torch.float32)


def _post(**kwargs) -> FCOSPostProcessor:
    args = dict(pre_nms_thresh=0.05, pre_nms_top_n=1000, nms_thresh=0.6, detections_per_img=100)
    args.update(kwargs)
    return FCOSPostProcessor(**args)


def _run(post, outputs, sizes=((HEIGHT, WIDTH),)):
    cls, reg, ctr = outputs
    return post(compute_locations(cls, STRIDES), cls, reg, ctr, list(sizes))


def test_hand_made_outputs_give_expected_boxes_scores_labels():
    out = _blank()
    # Level 0, cell (1, 2) -> location (20, 12); channel 1 -> label 2.
    _set(out, 0, 1, 2, 1, prob=0.64, ctr_prob=0.25, ltrb=(4, 6, 8, 2))
    # Level 1, cell (0, 1) -> location (24, 8); channel 0 -> label 1; box leaves the image.
    _set(out, 1, 0, 1, 0, prob=0.9, ctr_prob=0.9, ltrb=(30, 4, 4, 4))
    (det,) = _run(_post(), out)
    assert det.size == (WIDTH, HEIGHT) and det.mode == "xyxy"
    assert det.get_field("labels").tolist() == [1, 2]
    torch.testing.assert_close(det.get_field("scores"), torch.tensor([0.9, 0.4]))
    torch.testing.assert_close(det.bbox, torch.tensor([[0.0, 4, 28, 12], [16, 6, 28, 14]]))


def test_threshold_is_on_class_probability_before_centerness():
    out = _blank()
    _set(out, 0, 0, 0, 0, prob=0.06, ctr_prob=0.01, ltrb=(2, 2, 2, 2))  # kept
    _set(out, 0, 3, 5, 0, prob=0.04, ctr_prob=0.99, ltrb=(2, 2, 2, 2))  # dropped
    (det,) = _run(_post(), out)
    assert len(det) == 1
    torch.testing.assert_close(det.bbox, torch.tensor([[2.0, 2, 6, 6]]))
    assert det.get_field("scores").item() == pytest.approx(math.sqrt(0.06 * 0.01), rel=1e-4)


def test_classes_never_suppress_each_other_but_same_class_does():
    out = _blank()
    # One location, two classes, the same box: both survive.
    _set(out, 0, 1, 1, 0, prob=0.9, ctr_prob=0.9, ltrb=(4, 4, 4, 4))
    _set(out, 0, 1, 1, 2, prob=0.8, ctr_prob=0.9, ltrb=(4, 4, 4, 4))
    # Level 1 location (8, 8), class 0, box (7.5, 8, 16, 16) (IoU 0.94): suppressed by the first.
    _set(out, 1, 0, 0, 0, prob=0.7, ctr_prob=0.9, ltrb=(0.5, 0, 8, 8))
    (det,) = _run(_post(), out)
    assert sorted(det.get_field("labels").tolist()) == [1, 3]
    assert (det.bbox == torch.tensor([8.0, 8, 16, 16])).all(dim=1).all()


def test_pre_nms_top_n_is_per_level_and_detections_per_image_caps():
    out = _blank()
    probs = [0.5, 0.6, 0.7, 0.8, 0.9]
    for col, p in enumerate(probs):  # five disjoint boxes on level 0
        _set(out, 0, 0, col, 0, prob=p, ctr_prob=0.5, ltrb=(3, 3, 3, 3))
    _set(out, 1, 1, 2, 1, prob=0.2, ctr_prob=0.5, ltrb=(3, 3, 3, 3))  # level 1
    (det,) = _run(_post(pre_nms_top_n=2), out)
    expected = sorted([math.sqrt(p * 0.5) for p in (0.8, 0.9, 0.2)], reverse=True)
    torch.testing.assert_close(det.get_field("scores"), torch.tensor(expected))
    (det,) = _run(_post(detections_per_img=3), out)
    expected = [math.sqrt(p * 0.5) for p in (0.9, 0.8, 0.7)]
    torch.testing.assert_close(det.get_field("scores"), torch.tensor(expected))


def test_bbox_aug_mode_skips_nms_and_batches_use_their_own_sizes():
    out = _blank(batch=2)
    for image in (0, 1):
        _set(out, 0, 1, 1, 0, prob=0.9, ctr_prob=0.9, ltrb=(4, 4, 40, 4), image=image)
        _set(out, 0, 1, 2, 0, prob=0.8, ctr_prob=0.9, ltrb=(12, 4, 32, 4), image=image)
    sizes = [(HEIGHT, WIDTH), (24, 30)]
    dets = _run(_post(bbox_aug_enabled=True), out, sizes)
    assert [len(d) for d in dets] == [2, 2]
    dets = _run(_post(), out, sizes)
    assert [len(d) for d in dets] == [1, 1]
    assert dets[1].size == (30, 24)
    torch.testing.assert_close(dets[0].bbox, torch.tensor([[8.0, 8, 48, 16]]))
    torch.testing.assert_close(dets[1].bbox, torch.tensor([[8.0, 8, 30, 16]]))  # clipped to w=30


def test_no_candidates_gives_empty_boxlists():
    (det,) = _run(_post(), _blank())
    assert len(det) == 0 and det.bbox.shape == (0, 4)
    assert set(det.fields()) == {"scores", "labels"}
