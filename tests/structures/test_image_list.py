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


def test_uint8_images_pad_with_uint8_zeros_and_dtypes_must_agree():
    a = torch.full((3, 4, 6), 255, dtype=torch.uint8)
    il = to_image_list([a, torch.ones(3, 7, 2, dtype=torch.uint8)], size_divisible=8)
    assert il.tensors.dtype == torch.uint8 and il.tensors.shape == (2, 3, 8, 8)
    assert il.tensors[0, :, :4, :6].eq(255).all() and il.tensors[0, :, 4:].eq(0).all()
    assert il.tensors[0, :, :, 6:].eq(0).all()
    with pytest.raises(TypeError, match=r"image 0 is torch.uint8 and image 1 is torch.float32"):
        to_image_list([a, torch.zeros(3, 4, 6)], 8)
