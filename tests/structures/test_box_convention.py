"""MODEL.BOX_CONVENTION: BoxList geometry, IoU and the config switch in both conventions.

Expected values are the original maskrcnn-benchmark BoxList's formulas ("plus_one") and plain
continuous geometry, worked out by hand.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch

from fcos_core.config.checks import ConfigError
from fcos_core.engine.defaults import load_config
from fcos_core.structures import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList
from fcos_core.structures.box_convention import (
    BOX_CONVENTIONS,
    box_offset,
    check_box_convention,
    from_pixel_edges,
    nms_rule,
)
from fcos_core.structures.boxlist_ops import (
    boxlist_iou,
    boxlist_ml_nms,
    cat_boxlist,
    remove_small_boxes,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOX = [[2.0, 3.0, 11.0, 7.0]]  # xyxy


def _boxes(convention: str, boxes=BOX, size=(20, 10)) -> BoxList:
    return BoxList(torch.tensor(boxes), size, convention=convention)


def test_offsets_and_bad_value():
    assert box_offset("plus_one") == 1.0 and box_offset("continuous") == 0.0
    with pytest.raises(ValueError, match=r"MODEL.BOX_CONVENTION must be one of plus_one, contin"):
        check_box_convention("plus1")
    with pytest.raises(ValueError, match="BoxList convention must be one of"):
        BoxList(torch.zeros(1, 4), (4, 4), convention="legacy")


@pytest.mark.parametrize(
    ("convention", "area", "wh"), [("plus_one", 50, 10), ("continuous", 36, 9)]
)
def test_area_and_xywh(convention, area, wh):
    b = _boxes(convention)
    assert b.area().tolist() == [area]
    xywh = b.convert("xywh")
    assert xywh.bbox.tolist() == [[2.0, 3.0, wh, wh - 5]]
    assert xywh.area().tolist() == [area]
    assert xywh.convert("xyxy").bbox.tolist() == BOX


def test_plus_one_xywh_narrower_than_a_pixel_ends_where_it_starts():
    b = BoxList(torch.tensor([[5.0, 5.0, 0.5, 3.0]]), (20, 20), "xywh", "plus_one")
    assert b.convert("xyxy").bbox.tolist() == [[5.0, 5.0, 5.0, 7.0]]


@pytest.mark.parametrize(
    ("convention", "right", "bottom"), [("plus_one", 19, 9), ("continuous", 20, 10)]
)
def test_clip_to_image(convention, right, bottom):
    b = _boxes(convention, [[-3.0, -1.0, 25.0, 12.0], [19.5, 2.0, 30.0, 8.0]])
    clipped = b.clip_to_image(remove_empty=False)
    assert clipped.bbox[0].tolist() == [0.0, 0.0, right, bottom]
    assert clipped.convention == convention
    # The second box starts past the last pixel for plus_one: x1 = x2 = 19, empty, removed.
    assert len(b.clip_to_image(remove_empty=True)) == (1 if convention == "plus_one" else 2)


@pytest.mark.parametrize(
    ("convention", "flipped"), [("plus_one", [8.0, 17.0]), ("continuous", [9.0, 18.0])]
)
def test_transpose(convention, flipped):
    b = _boxes(convention)
    lr = b.transpose(FLIP_LEFT_RIGHT)
    assert lr.bbox[0, [0, 2]].tolist() == flipped
    assert lr.transpose(FLIP_LEFT_RIGHT).bbox.tolist() == BOX
    assert lr.area().tolist() == b.area().tolist()
    # Top-bottom: no -1 in either convention (the original's, kept as it is).
    assert b.transpose(FLIP_TOP_BOTTOM).bbox[0, [1, 3]].tolist() == [3.0, 7.0]


@pytest.mark.parametrize("convention", BOX_CONVENTIONS)
def test_resize_crop_index_keep_the_convention(convention):
    b = _boxes(convention)
    b.add_field("labels", torch.tensor([1]))
    resized = b.resize((40, 30))
    assert resized.bbox.tolist() == [[4.0, 9.0, 22.0, 21.0]]  # coordinates scale in both
    for derived in (resized, b.crop((1, 1, 15, 9)), b[[0]], b.to("cpu"), b.copy_with_fields([])):
        assert derived.convention == convention
    assert f"convention={convention}" in repr(b)


def test_cat_boxlist_refuses_mixed_conventions():
    with pytest.raises(ValueError, match="convention"):
        cat_boxlist([_boxes("plus_one"), _boxes("continuous")])
    assert cat_boxlist([_boxes("plus_one"), _boxes("plus_one")]).convention == "plus_one"


def test_boxlist_iou_plus_one():
    # [0, 0, 9, 9] and [5, 0, 14, 9]: +1 areas 100 and 100, overlap 5 x 10 -> 50 / 150.
    a = _boxes("plus_one", [[0.0, 0.0, 9.0, 9.0]], (20, 20))
    b = _boxes("plus_one", [[5.0, 0.0, 14.0, 9.0]], (20, 20))
    assert boxlist_iou(a, b).item() == pytest.approx(1 / 3)
    c = _boxes("continuous", [[0.0, 0.0, 9.0, 9.0]], (20, 20))
    d = _boxes("continuous", [[5.0, 0.0, 14.0, 9.0]], (20, 20))
    assert boxlist_iou(c, d).item() == pytest.approx(36 / (81 + 81 - 36))
    with pytest.raises(ValueError, match="same box convention"):
        boxlist_iou(a, d)


def test_remove_small_boxes_uses_the_convention_width():
    boxes = [[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 3.0, 4.0]]
    assert len(remove_small_boxes(_boxes("plus_one", boxes), 5)) == 1  # widths 5 and 4
    assert len(remove_small_boxes(_boxes("continuous", boxes), 4)) == 1  # widths 4 and 3


def test_from_pixel_edges():
    edges = torch.tensor([[1.0, 2.0, 11.0, 7.0]])
    assert from_pixel_edges(edges, "continuous") is edges
    assert from_pixel_edges(edges, "plus_one").tolist() == [[1.0, 2.0, 10.0, 6.0]]


def test_nms_rule_rounds_the_plus_one_threshold_to_float32():
    assert nms_rule("plus_one", 0.6) == (float(np.float32(0.6)), 1.0)
    assert nms_rule("continuous", 0.6) == (0.6, 0.0)


def test_ml_nms_at_an_exact_tie_follows_each_convention():
    """IoU exactly 0.6 (60 / 100 px with +1): the original's float ml_nms keeps the box at
    NMS_TH 0.6; with the double comparison (continuous boxes of the same IoU) it is removed."""
    plus = _boxes("plus_one", [[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 5.0]], (20, 20))
    cont = _boxes("continuous", [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 6.0]], (20, 20))
    for b in (plus, cont):
        b.add_field("scores", torch.tensor([0.9, 0.8]))
        b.add_field("labels", torch.tensor([1, 1]))
    assert boxlist_iou(plus, plus)[0, 1].item() == np.float32(0.6)
    assert len(boxlist_ml_nms(plus, 0.6)) == 2
    assert len(boxlist_ml_nms(cont, 0.6)) == 1


def _config_files(pattern: str) -> list[str]:
    return sorted(glob.glob(os.path.join(REPO, "configs", pattern)))


def test_zoo_configs_use_plus_one_quickstart_and_torchvision_continuous():
    zoo = [f for f in _config_files("fcos/*.yaml") if "torchvision" not in f]
    zoo += _config_files("*.yaml")
    assert len(zoo) >= 19
    for path in zoo:
        assert load_config(path).MODEL.BOX_CONVENTION == "plus_one", path
    others = _config_files("quickstart/*.yaml") + _config_files("fcos/*torchvision*.yaml")
    assert others
    for path in others:
        assert load_config(path).MODEL.BOX_CONVENTION == "continuous", path
    tv = load_config(_config_files("fcos/*torchvision*.yaml")[0])
    assert tv.TEST.DETECTIONS_PER_IMG_TIES == "cut"


def test_config_rejects_unknown_values():
    path = _config_files("quickstart/*.yaml")[0]
    with pytest.raises(ConfigError, match=r"MODEL.BOX_CONVENTION must be one of plus_one, cont"):
        load_config(path, ["MODEL.BOX_CONVENTION", "plus-one"])
    with pytest.raises(ConfigError, match="TEST.DETECTIONS_PER_IMG_TIES must be one of keep, cut"):
        load_config(path, ["TEST.DETECTIONS_PER_IMG_TIES", "all"])
