"""Fixtures for the layer tests: each op under test as the compiled kernel (when built) and as
its pure-PyTorch reference, so both paths are exercised in every run."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from fcos_core.layers import _ops
from fcos_core.layers.nms import nms_reference
from fcos_core.layers.sigmoid_focal_loss import sigmoid_focal_loss_reference

needs_ext = pytest.mark.skipif(not _ops.HAS_EXT, reason="fcos_core._C not loaded")


def _ext_nms(boxes, scores, iou_threshold):
    return torch.ops.fcos.nms(boxes, scores, iou_threshold)


def _ext_focal(logits, targets, gamma, alpha):
    return torch.ops.fcos.sigmoid_focal_loss(logits, targets, gamma, alpha)


@pytest.fixture(
    params=[
        pytest.param(_ext_nms, id="extension", marks=needs_ext),
        pytest.param(nms_reference, id="reference"),
    ]
)
def nms_impl(request) -> Callable:
    """``(boxes, scores, iou_threshold) -> keep``: kernel or reference."""
    return request.param


@pytest.fixture(
    params=[
        pytest.param(_ext_focal, id="extension", marks=needs_ext),
        pytest.param(sigmoid_focal_loss_reference, id="reference"),
    ]
)
def focal_impl(request) -> Callable:
    """``(logits, targets, gamma, alpha) -> loss[R, C]``: kernel or reference."""
    return request.param
