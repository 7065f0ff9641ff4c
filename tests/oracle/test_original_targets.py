"""Our training targets equal the original FCOS's on hand-made ground truth (original_fcos.py).

Boxes of several sizes (levels 0 to 2), nested boxes (minimal-area rule), two overlapping boxes
whose areas tie without the +1 and differ with it (the tie-break the box convention decides),
and boxes touching every border. Checked per family: plain and MobileNetV2 (no centre sampling,
pixel targets) and imprv (centre sampling radius 1.5, targets divided by the stride).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from oracle_models import FAMILIES, zoo_cfg
from original_fcos import targets

from fcos_core.modeling.fcos.locations import compute_locations
from fcos_core.modeling.fcos.loss import FCOSLossComputation
from fcos_core.modeling.fcos.targets import compute_centerness_targets
from fcos_core.structures import BoxList

HEIGHT, WIDTH = 200, 300  # the network input; features of the 224 x 320 padded batch
PADDED = (224, 320)
GT = [
    ([30, 40, 59, 69], 1),  # 30 px (+1 width): level 0
    ([100, 20, 199, 119], 2),  # 100 px: level 1
    ([10, 10, 209, 189], 5),  # contains the two above: the smaller box wins where both fit
    ([220, 120, 260, 130], 3),  # area 400 continuous, 451 with +1 ...
    ([230, 115, 250, 135], 4),  # ... area 400 continuous, 441 with +1: wins only with +1
    ([0, 0, 49, 79], 6),  # touches the left and top borders
    ([250, 150, 299, 199], 7),  # touches the right and bottom borders (x2 = width - 1)
]
# Locations (x, y) of level 0 inside both tie boxes.
TIE_LOCATIONS = [(236.0, 124.0), (244.0, 124.0)]


def level_shapes(strides) -> list[tuple[int, int]]:
    return [(math.ceil(PADDED[0] / s), math.ceil(PADDED[1] / s)) for s in strides]


def ours(cfg):
    strides = cfg.MODEL.FCOS.FPN_STRIDES
    features = [torch.zeros(1, 1, h, w) for h, w in level_shapes(strides)]
    locations = compute_locations(features, strides)
    # In the convention of the config, as the datasets build ground truth.
    boxes = torch.tensor([b for b, _ in GT], dtype=torch.float32)
    target = BoxList(boxes, (WIDTH, HEIGHT), convention=cfg.MODEL.BOX_CONVENTION)
    target.add_field("labels", torch.tensor([lab for _, lab in GT]))
    labels, reg = FCOSLossComputation.from_config(cfg).prepare_targets(locations, [target])
    return torch.cat(locations).numpy(), labels[0].numpy(), reg[0]


def reference(cfg, convention: str):
    fcos = cfg.MODEL.FCOS
    return targets(
        level_shapes(fcos.FPN_STRIDES),
        fcos.FPN_STRIDES,
        [b for b, _ in GT],
        [lab for _, lab in GT],
        radius=fcos.CENTER_SAMPLING_RADIUS,
        norm_reg_targets=fcos.NORM_REG_TARGETS,
        convention=convention,
    )


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_targets_match_the_original(family):
    cfg = zoo_cfg(FAMILIES[family])
    _, labels, reg = ours(cfg)
    ref_labels, ref_reg, ref_ctr = reference(cfg, cfg.MODEL.BOX_CONVENTION)
    np.testing.assert_array_equal(labels, ref_labels)
    positive = ref_labels > 0
    assert len(set(ref_labels[positive])) >= len(GT) - 1  # (one tie box may get none)
    np.testing.assert_allclose(reg.numpy()[positive], ref_reg[positive], rtol=1e-6, atol=1e-4)
    # Centerness is scale-free: from normalised targets as from pixels (the original's order).
    centerness = compute_centerness_targets(reg[torch.from_numpy(positive)]).numpy()
    np.testing.assert_allclose(centerness, ref_ctr[positive], rtol=1e-5, atol=1e-6)


def test_the_tie_case_depends_on_the_convention():
    """The planted tie really is decided by the +1 areas (else the test above proves little)."""
    cfg = zoo_cfg(FAMILIES["plain"])
    locations, _, _ = ours(cfg)
    index = [int(np.flatnonzero((locations == p).all(axis=1))[0]) for p in TIE_LOCATIONS]
    assert reference(cfg, "plus_one")[0][index].tolist() == [4, 4]
    assert reference(cfg, "continuous")[0][index].tolist() == [3, 3]
