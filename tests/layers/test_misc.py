"""FrozenBatchNorm2d and Scale."""

from __future__ import annotations

import torch
from torch import nn

from fcos_core.layers import FrozenBatchNorm2d, Scale

EPS = 1e-5


def random_batch_norm(channels: int) -> nn.BatchNorm2d:
    gen = torch.Generator().manual_seed(0)
    bn = nn.BatchNorm2d(channels, eps=EPS)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(channels, generator=gen))
        bn.bias.copy_(torch.randn(channels, generator=gen))
        bn.running_mean.copy_(torch.randn(channels, generator=gen))
        bn.running_var.copy_(torch.rand(channels, generator=gen) + 0.1)
    return bn.eval()


def test_frozen_batch_norm_equals_eval_batch_norm_after_loading_its_state_dict():
    bn = random_batch_norm(6)
    frozen = FrozenBatchNorm2d(6, eps=EPS)
    frozen.load_state_dict(bn.state_dict())  # num_batches_tracked is dropped, not an error
    x = torch.randn(2, 6, 5, 7)
    torch.testing.assert_close(frozen(x), bn(x))


def test_frozen_batch_norm_has_no_parameters_and_only_the_four_buffers():
    frozen = FrozenBatchNorm2d(4)
    assert list(frozen.parameters()) == []
    assert sorted(frozen.state_dict()) == ["bias", "running_mean", "running_var", "weight"]
    assert frozen.eps == 0.0
    x = torch.randn(1, 4, 3, 3)
    torch.testing.assert_close(frozen(x), x)  # identity statistics


def test_frozen_batch_norm_keeps_input_dtype():
    frozen = FrozenBatchNorm2d(3)
    assert frozen(torch.randn(1, 3, 2, 2, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_scale_is_one_learnable_scalar():
    scale = Scale(2.5)
    assert [name for name, _ in scale.named_parameters()] == ["scale"]
    assert scale.scale.shape == (1,)
    x = torch.randn(2, 3)
    torch.testing.assert_close(scale(x), 2.5 * x)
    scale(x).sum().backward()
    torch.testing.assert_close(scale.scale.grad, x.sum().reshape(1))
    assert Scale().scale.item() == 1.0
