"""Our zoo-config models give the original FCOS's detections (see original_fcos.py).

Each family's model (built from its zoo config, seeded random weights in the official layout,
the head re-randomised; see oracle_models.py) runs end to end on a batch of three images, two of
them of sizes that are not multiples of 32 (boxes clip at the right and bottom borders). A hook
on the head replaces its outputs by planted ones, so that the post-processing meets what
matters: thousands of candidates per level (PRE_NMS_TOP_N cuts), boxes leaving the image, more
than DETECTIONS_PER_IMG survivors, near-tie scores of overlapping boxes, exact score ties at the
per-image cap, and pairs of boxes whose IoU is exactly the NMS threshold or on either side of it
depending on the box convention. The oracle gets the same head outputs; every detection must be
matched (same label, boxes within 0.01 px, scores within 1e-5). The head's own tail (Scale, exp
or ReLU * stride) is checked against the oracle's on the model's unplanted outputs.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from oracle_models import FAMILIES, zoo_model
from original_fcos import Params, head_tail, postprocess_image

# (height, width) of the images of the batch; padded to 96 x 128 (level 0: 12 x 16 cells).
IMAGE_SIZES = [(75, 110), (61, 93), (64, 96)]
BOX_TOL, SCORE_TOL = 0.01, 1e-5
# Classes (0-based channels) kept off by the random part of the plant, used for planted boxes.
PAIR_CLASS, NEAR_TIE_CLASS = 79, 78
NUM_TIES = 105  # identical scores in image 1, > DETECTIONS_PER_IMG: all must survive the cap


def _set(outputs, image, level, row, col, channel, logit, ctr_logit, ltrb) -> None:
    logits, reg, ctr = outputs
    logits[level][image, channel, row, col] = logit
    ctr[level][image, 0, row, col] = ctr_logit
    reg[level][image, :, row, col] = torch.tensor(ltrb, dtype=torch.float32)


def _plant_pairs(out, image: int) -> None:
    """Boxes 20 x 20 px (x2 - x1 = 19) at level 0 and copies shifted right by s px.

    s = 5: +1 IoU exactly 0.6 (kept: the original suppresses at IoU > NMS_TH only);
    s = 4.875: +1 IoU 0.608 (suppressed with plus_one), continuous IoU 0.592 (kept).
    Near tie: two 20 x 20 boxes 1 px apart whose logits differ by 1e-3; the later wins.
    """
    for col, shift in ((2, 5.0), (10, 4.875)):
        # Location of (row 2, col) is (8 col + 4, 20); box A = [X - 8, 12, X + 11, 31].
        _set(out, image, 0, 2, col, PAIR_CLASS, 6.0, 6.0, (8.0, 8.0, 11.0, 11.0))
        _set(out, image, 0, 2, col + 1, PAIR_CLASS, 5.5, 6.0, (16 - shift, 8.0, 3 + shift, 11.0))
    _set(out, image, 0, 6, 4, NEAR_TIE_CLASS, 5.0, 6.0, (10.0, 10.0, 10.0, 10.0))
    _set(out, image, 0, 6, 5, NEAR_TIE_CLASS, 5.001, 6.0, (17.0, 10.0, 3.0, 10.0))
    # A box leaving the image at the bottom-right corner of image 0 (75 x 110).
    _set(out, image, 0, 8, 12, PAIR_CLASS, 4.0, 4.0, (6.0, 7.0, 30.0, 30.0))


def _plant_ties(out, image: int, num_classes: int) -> None:
    """NUM_TIES 4 x 4 boxes on level 0 (8 px apart) with one identical score, never overlapping.

    Boxes of one class are NUM_CLASSES - 2 cells apart.
    """
    cells = [(row, col) for row in range(7) for col in range(16)][:NUM_TIES]
    for k, (row, col) in enumerate(cells):
        _set(out, image, 0, row, col, k % (num_classes - 2), 7.0, 7.0, (2.0, 2.0, 2.0, 2.0))


def plant(logits, reg, ctr, strides, seed: int = 1):
    """Random head outputs of the given shapes, with the planted cases in images 0 and 1."""
    generator = torch.Generator().manual_seed(seed)
    out = ([], [], [])
    for lo, stride in zip(logits, strides):
        n, c, h, w = lo.shape
        cls = torch.randn(n, c, h, w, generator=generator) * 0.8 - 4.0
        cls[:, [NEAR_TIE_CLASS, PAIR_CLASS]] = -10.0
        out[0].append(cls)
        dist = torch.randn(n, 4, h, w, generator=generator) * 0.7 + 0.3
        out[1].append(dist.exp() * stride)
        out[2].append(torch.randn(n, 1, h, w, generator=generator))
    _plant_pairs(out, image=0)
    _plant_ties(out, image=1, num_classes=logits[0].shape[1])
    return out


@functools.cache
def run_with_hooks(family: str):
    """Our detections, raw bbox_pred outputs, unplanted and planted head outputs (cached)."""
    model, cfg = zoo_model(family)
    head = model.rpn.head
    raw, seen = [], {}

    def keep_raw(module, args, output):
        raw.append(output.detach().clone())

    def replace(module, args, output):
        seen["head"] = [[t.detach().clone() for t in part] for part in output]
        seen["planted"] = plant(*output, cfg.MODEL.FCOS.FPN_STRIDES)
        return seen["planted"]

    hooks = [head.bbox_pred.register_forward_hook(keep_raw), head.register_forward_hook(replace)]
    generator = torch.Generator().manual_seed(7)
    images = [torch.randn(3, h, w, generator=generator) for h, w in IMAGE_SIZES]
    try:
        with torch.no_grad():
            detections = model(images)
    finally:
        for hook in hooks:
            hook.remove()
    return cfg, detections, raw, seen["head"], seen["planted"]


def oracle_params(cfg) -> Params:
    fcos = cfg.MODEL.FCOS
    return Params(
        pre_nms_thresh=fcos.INFERENCE_TH,
        pre_nms_top_n=fcos.PRE_NMS_TOP_N,
        nms_thresh=fcos.NMS_TH,
        detections_per_img=cfg.TEST.DETECTIONS_PER_IMG,
        convention=cfg.MODEL.BOX_CONVENTION,
    )


def match(ours, reference) -> tuple[float, float]:
    """Pair every reference detection with one of ours; returns (max box diff, max score diff).

    Args:
        ours, reference: (boxes (K, 4), scores (K,), labels (K,)) numpy arrays.
    """
    (ob, osc, ol), (rb, rsc, rl) = ours, reference
    assert len(ol) == len(rl), f"{len(ol)} detections, the original gives {len(rl)}"
    free = np.ones(len(ol), dtype=bool)
    box_diff = score_diff = 0.0
    for box, score, label in zip(rb, rsc, rl):
        diffs = np.abs(ob - box).max(axis=1)
        ok = free & (ol == label) & (diffs <= BOX_TOL) & (np.abs(osc - score) <= SCORE_TOL)
        assert ok.any(), f"the original's detection {box.tolist()} {score} {label} is missing"
        i = int(np.flatnonzero(ok)[np.argmin(diffs[ok])])
        free[i] = False
        box_diff = max(box_diff, float(diffs[i]))
        score_diff = max(score_diff, abs(float(osc[i]) - float(score)))
    return box_diff, score_diff


def compare_family(family: str) -> dict[str, float]:
    """Run ours and the oracle; returns the largest differences and the number compared."""
    cfg, detections, _, _, planted = run_with_hooks(family)
    params, strides = oracle_params(cfg), cfg.MODEL.FCOS.FPN_STRIDES
    stats = {"box": 0.0, "score": 0.0, "count": 0}
    for i, (det, (h, w)) in enumerate(zip(detections, IMAGE_SIZES)):
        assert det.size == (w, h)
        levels = [tuple(part[lvl][i].numpy() for part in planted) for lvl in range(len(strides))]
        reference = postprocess_image(levels, strides, (h, w), params)
        ours = (det.bbox.numpy(), det.get_field("scores").numpy(), det.get_field("labels").numpy())
        box_diff, score_diff = match(ours, reference)
        stats["box"] = max(stats["box"], box_diff)
        stats["score"] = max(stats["score"], score_diff)
        stats["count"] += len(reference[2])
    return stats


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_detections_match_the_original(family):
    stats = compare_family(family)
    assert stats["count"] > 300  # the three images are full (cap of 100, ties kept)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_head_tail_matches_the_original(family):
    cfg, _, raw, head, _ = run_with_hooks(family)
    model, _ = zoo_model(family)
    strides = cfg.MODEL.FCOS.FPN_STRIDES
    assert len(raw) == len(strides)
    for level, stride in enumerate(strides):
        scale = float(model.rpn.head.scales[level].scale.detach())
        expected = head_tail(raw[level].numpy(), scale, stride, cfg.MODEL.FCOS.NORM_REG_TARGETS)
        np.testing.assert_allclose(head[1][level].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_zoo_configs_use_the_original_box_convention():
    for family in FAMILIES:
        assert zoo_model(family)[1].MODEL.BOX_CONVENTION == "plus_one"


def test_planted_cases_decide_as_the_original():
    """The planted pairs, near tie and ties at the cap come out as the original's rules say."""
    _, detections, _, _, _ = run_with_hooks("imprv")
    first, second = detections[0], detections[1]
    labels = first.get_field("labels")
    pairs = first.bbox[labels == PAIR_CLASS + 1]
    # Pair s=5 (IoU exactly 0.6) keeps both, pair s=4.875 keeps one, plus the corner box.
    assert sorted(float(x) for x in pairs[:, 0]) == [12.0, 17.0, 76.0, 94.0]
    corner = pairs[pairs[:, 0] == 94.0]
    assert corner.tolist() == [[94.0, 61.0, 109.0, 74.0]]  # clipped to width - 1, height - 1
    near = first.bbox[labels == NEAR_TIE_CLASS + 1]
    assert near.tolist() == [[27.0, 42.0, 47.0, 62.0]]  # the later, higher-scored box
    scores = second.get_field("scores")
    assert int((scores == scores.max()).sum()) == NUM_TIES and len(second) == NUM_TIES
