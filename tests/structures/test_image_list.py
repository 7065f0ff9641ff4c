from __future__ import annotations

import pytest
import torch

from fcos_core.structures import to_image_list


def test_pads_to_divisible_and_keeps_sizes():
    a = torch.ones(3, 10, 20)
    b = torch.full((3, 15, 5), 2.0)
    il = to_image_list([a, b], size_divisible=32)
    assert il.tensors.shape == (2, 3, 32, 32)
    assert il.image_sizes == [(10, 20), (15, 5)]
    assert il.tensors[0, :, :10, :20].eq(1).all() and il.tensors[0, :, 10:].eq(0).all()
    assert il.tensors[1, :, :15, :5].eq(2).all() and il.tensors[1, :, :, 5:].eq(0).all()


def test_batched_tensor_and_errors():
    il = to_image_list(torch.zeros(2, 3, 8, 8))
    assert il.image_sizes == [(8, 8), (8, 8)]
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        to_image_list([torch.zeros(8, 8)])
