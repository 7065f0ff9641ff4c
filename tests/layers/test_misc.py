"""FrozenBatchNorm2d and Scale."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcos_core.layers import FrozenBatchNorm2d, Scale
from fcos_core.layers.misc import conv_then_norm

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


def _frozen_from(bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
    frozen = FrozenBatchNorm2d(bn.num_features, eps=EPS)
    frozen.load_state_dict(bn.state_dict())
    return frozen


@pytest.mark.parametrize("bias", [False, True])
def test_conv_then_frozen_norm_equals_the_two_steps_with_the_same_gradients(bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=bias)
    frozen = _frozen_from(random_batch_norm(6))
    x = torch.randn(2, 4, 9, 7, requires_grad=True)
    expected = frozen(conv(x))
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, *conv.parameters()])
    got = conv_then_norm(conv, frozen, x)
    got_grads = torch.autograd.grad(got.square().sum(), [x, *conv.parameters()])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for g, e in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)


def test_conv_then_norm_applies_other_norms_as_modules():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 4, 1), random_batch_norm(4)
    calls = []
    bn.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(conv_then_norm(conv, bn, x), bn(conv(x)))
    assert len(calls) == 2  # the BatchNorm module ran both times
    torch.testing.assert_close(conv_then_norm(conv, nn.Identity(), x), conv(x))
