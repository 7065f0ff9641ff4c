from __future__ import annotations

import pytest
import torch

from fcos_core.structures import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList
from fcos_core.structures.boxlist_ops import (
    boxlist_iou,
    boxlist_ml_nms,
    cat_boxlist,
    remove_small_boxes,
)


def _boxes() -> BoxList:
    b = BoxList([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 6.0, 6.0]], (100, 50))
    b.add_field("labels", torch.tensor([1, 2]))
    return b


def test_area_uses_no_plus_one():
    assert _boxes().area().tolist() == [200.0, 1.0]


def test_convert_roundtrip():
    b = _boxes()
    xywh = b.convert("xywh")
    assert xywh.bbox[0].tolist() == [0.0, 0.0, 10.0, 20.0]
    assert xywh.bbox[1].tolist() == [5.0, 5.0, 1.0, 1.0]
    assert torch.equal(xywh.convert("xyxy").bbox, b.bbox)
    assert torch.equal(xywh.area(), b.area())


def test_flip_moves_boxes_with_image():
    b = _boxes()
    lr = b.transpose(FLIP_LEFT_RIGHT)
    assert lr.bbox[0].tolist() == [90.0, 0.0, 100.0, 20.0]
    tb = b.transpose(FLIP_TOP_BOTTOM)
    assert tb.bbox[0].tolist() == [0.0, 30.0, 10.0, 50.0]
    assert torch.equal(lr.transpose(FLIP_LEFT_RIGHT).bbox, b.bbox)
    assert lr.get_field("labels").tolist() == [1, 2]


def test_resize_scales_each_axis():
    r = _boxes().resize((200, 25))
    assert r.size == (200, 25)
    assert r.bbox[0].tolist() == [0.0, 0.0, 20.0, 10.0]


def test_crop_and_clip():
    b = BoxList([[-5.0, -5.0, 30.0, 30.0], [60.0, 10.0, 90.0, 20.0]], (50, 40))
    clipped = b.clip_to_image(remove_empty=True)
    assert len(clipped) == 1
    assert clipped.bbox[0].tolist() == [0.0, 0.0, 30.0, 30.0]
    c = b.crop((10, 10, 40, 30))
    assert c.size == (30, 20)
    assert c.bbox[0].tolist() == [0.0, 0.0, 20.0, 20.0]


def test_indexing_keeps_fields_and_errors_name_field():
    b = _boxes()
    sub = b[torch.tensor([False, True])]
    assert len(sub) == 1 and sub.get_field("labels").tolist() == [2]
    with pytest.raises(KeyError, match="scores"):
        b.get_field("scores")
    with pytest.raises(ValueError, match=r"\(3,\)"):
        BoxList(torch.zeros(3), (10, 10))


def test_iou_and_cat():
    a = BoxList([[0.0, 0.0, 10.0, 10.0]], (20, 20))
    b = BoxList([[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0]], (20, 20))
    iou = boxlist_iou(a, b)
    assert iou.shape == (1, 2)
    assert iou[0, 0].item() == pytest.approx(50.0 / 150.0)
    assert iou[0, 1].item() == 0.0
    assert len(cat_boxlist([a, b])) == 3


def test_ml_nms_keeps_other_classes_and_small_box_removal():
    b = BoxList([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.5], [0.0, 0.0, 10.0, 10.0]], (20, 20))
    b.add_field("scores", torch.tensor([0.9, 0.8, 0.7]))
    b.add_field("labels", torch.tensor([1, 1, 2]))
    kept = boxlist_ml_nms(b, 0.5)
    assert sorted(kept.get_field("labels").tolist()) == [1, 2]
    assert len(remove_small_boxes(BoxList([[0.0, 0.0, 1.0, 5.0]], (9, 9)), 2.0)) == 0
