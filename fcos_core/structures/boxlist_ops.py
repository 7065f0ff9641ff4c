"""Operations on `BoxList`s: IoU, concatenation, NMS, small-box removal.

Dimension key: N, M boxes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fcos_core.structures.bounding_box import BoxList
from fcos_core.structures.box_convention import nms_rule


def boxlist_iou(boxlist1: BoxList, boxlist2: BoxList) -> Tensor:
    """Pairwise IoU of two BoxLists of the same image, in their (common) box convention.

    Returns:
        Tensor[N, M]: IoU of every box of `boxlist1` with every box of `boxlist2`.
    """
    if boxlist1.size != boxlist2.size:
        raise ValueError(
            f"boxlist_iou needs BoxLists of the same image, got sizes {boxlist1.size} and "
            f"{boxlist2.size}"
        )
    if boxlist1.convention != boxlist2.convention:
        raise ValueError(
            f"boxlist_iou needs BoxLists of the same box convention, got {boxlist1.convention!r} "
            f"and {boxlist2.convention!r}"
        )
    b1 = boxlist1.convert("xyxy").bbox
    b2 = boxlist2.convert("xyxy").bbox
    area1 = boxlist1.convert("xyxy").area()
    area2 = boxlist2.convert("xyxy").area()
    lt = torch.max(b1[:, None, :2], b2[None, :, :2])  # (N, M, 2)
    rb = torch.min(b1[:, None, 2:], b2[None, :, 2:])  # (N, M, 2)
    wh = (rb - lt + boxlist1.offset).clamp(min=0)  # (N, M, 2)
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    union = area1[:, None] + area2[None, :] - inter
    return inter / union.clamp(min=torch.finfo(inter.dtype).tiny)


def cat_boxlist(bboxes: Sequence[BoxList]) -> BoxList:
    """Concatenate BoxLists of the same image size, mode, convention and fields."""
    if not bboxes:
        raise ValueError("cat_boxlist needs at least one BoxList")
    size, mode, convention = bboxes[0].size, bboxes[0].mode, bboxes[0].convention
    fields = set(bboxes[0].fields())
    for i, b in enumerate(bboxes):
        if (b.size, b.mode, b.convention, set(b.fields())) != (size, mode, convention, fields):
            raise ValueError(
                f"cat_boxlist: BoxList {i} has size {b.size}, mode {b.mode}, convention "
                f"{b.convention}, fields {sorted(b.fields())}; expected {size}, {mode}, "
                f"{convention}, {sorted(fields)}"
            )
    out = BoxList(torch.cat([b.bbox for b in bboxes], dim=0), size, mode, convention)
    for field in bboxes[0].fields():
        out.add_field(field, torch.cat([b.get_field(field) for b in bboxes], dim=0))
    return out


def boxlist_nms(
    boxlist: BoxList, nms_thresh: float, max_proposals: int = -1, score_field: str = "scores"
) -> BoxList:
    """Class-agnostic NMS on a BoxList (in its box convention), at most `max_proposals` kept."""
    from fcos_core.layers import nms

    if nms_thresh <= 0:
        return boxlist
    mode = boxlist.mode
    xyxy = boxlist.convert("xyxy")
    threshold, offset = nms_rule(boxlist.convention, nms_thresh)
    keep = nms(xyxy.bbox, xyxy.get_field(score_field), threshold, offset=offset)
    if max_proposals > 0:
        keep = keep[:max_proposals]
    return xyxy[keep].convert(mode)


def boxlist_ml_nms(
    boxlist: BoxList,
    nms_thresh: float,
    max_proposals: int = -1,
    score_field: str = "scores",
    label_field: str = "labels",
) -> BoxList:
    """Class-aware (multi-label) NMS: boxes of different labels never suppress each other.

    In the BoxList's box convention; for "plus_one" this is the original's CUDA ``ml_nms``
    (+1 widths, suppression at IoU > the float32 threshold).
    """
    from fcos_core.layers import ml_nms

    if nms_thresh <= 0:
        return boxlist
    mode = boxlist.mode
    xyxy = boxlist.convert("xyxy")
    threshold, offset = nms_rule(boxlist.convention, nms_thresh)
    scores, labels = xyxy.get_field(score_field), xyxy.get_field(label_field)
    keep = ml_nms(xyxy.bbox, scores, labels, threshold, offset=offset)
    if max_proposals > 0:
        keep = keep[:max_proposals]
    return xyxy[keep].convert(mode)


def remove_small_boxes(boxlist: BoxList, min_size: float) -> BoxList:
    """Keep boxes whose width and height (in the BoxList's convention) are both >= `min_size`."""
    ws, hs = boxlist.convert("xywh").bbox[:, 2:].unbind(dim=1)
    keep = ((ws >= min_size) & (hs >= min_size)).nonzero().squeeze(1)
    return boxlist[keep]
