"""Sigmoid focal loss: kernel and reference against torchvision's formula, gradients, dtypes,
ignored targets, bad inputs and op registration."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

from fcos_core.layers import SigmoidFocalLoss, _ops, sigmoid_focal_loss
from fcos_core.layers.sigmoid_focal_loss import sigmoid_focal_loss_reference

GAMMA, ALPHA = 2.0, 0.25


def make_inputs(rows: int, classes: int, seed: int = 0, scale: float = 4.0):
    """logits Tensor[R, C] float32 and targets Tensor[R] in {-1, 0, 1..C}."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, classes, generator=gen) * scale
    targets = torch.randint(-1, classes + 1, (rows,), generator=gen)
    return logits, targets


def torchvision_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float, alpha: float):
    """torchvision's per-element focal loss on one-hot targets; ignored rows zeroed."""
    one_hot = F.one_hot(targets.clamp(min=0), logits.shape[1] + 1)[:, 1:].to(logits.dtype)
    loss = torchvision.ops.sigmoid_focal_loss(logits, one_hot, alpha, gamma, reduction="none")
    return loss * (targets != -1)[:, None].to(logits.dtype)


@pytest.mark.parametrize("gamma,alpha", [(2.0, 0.25), (1.5, 0.25), (0.0, 0.5), (3.0, 0.75)])
def test_forward_matches_torchvision(focal_impl, gamma, alpha):
    logits, targets = make_inputs(300, 12)
    expected = torchvision_loss(logits, targets, gamma, alpha)
    loss = focal_impl(logits, targets, gamma, alpha)
    assert loss.shape == logits.shape and loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss.sum(), expected.sum(), rtol=1e-5, atol=1e-5)


def test_ignored_rows_contribute_nothing(focal_impl):
    logits, targets = make_inputs(50, 7)
    targets[::3] = -1
    loss = focal_impl(logits.requires_grad_(), targets, GAMMA, ALPHA)
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    assert torch.all(loss[targets == -1] == 0)
    assert torch.all(grad[targets == -1] == 0)
    assert torch.all(loss[targets != -1] > 0)


@pytest.mark.parametrize("gamma", [2.0, 1.5, 0.0])
def test_gradients_match_autograd_of_torchvision(focal_impl, gamma):
    logits, targets = make_inputs(200, 9, seed=1)
    weights = torch.rand(200, 9)  # a non-uniform incoming gradient
    x_ref = logits.clone().requires_grad_()
    (expected,) = torch.autograd.grad(
        (torchvision_loss(x_ref, targets, gamma, ALPHA) * weights).sum(), x_ref
    )
    x = logits.clone().requires_grad_()
    (grad,) = torch.autograd.grad((focal_impl(x, targets, gamma, ALPHA) * weights).sum(), x)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)


def test_extreme_logits_stay_finite(focal_impl):
    logits = torch.tensor([[-200.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 200.0]]).repeat(2, 1)
    targets = torch.tensor([3, 0])
    x = logits.clone().requires_grad_()
    loss = focal_impl(x, targets, GAMMA, ALPHA)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    expected = sigmoid_focal_loss_reference(logits.double(), targets, GAMMA, ALPHA)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)
    assert torch.isfinite(grad).all()


def test_gradcheck_float64(focal_impl):
    logits, targets = make_inputs(6, 5, seed=2, scale=2.0)
    x = logits.double().requires_grad_()
    for gamma in (2.0, 1.5):
        assert torch.autograd.gradcheck(focal_impl, (x, targets, gamma, ALPHA))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(focal_impl, dtype):
    logits, targets = make_inputs(64, 10, seed=3)
    low = logits.to(dtype).requires_grad_()
    loss = focal_impl(low, targets, GAMMA, ALPHA)
    (grad,) = torch.autograd.grad(loss.sum(), low)
    assert loss.dtype == dtype and grad.dtype == dtype
    x = low.detach().float().requires_grad_()
    expected = torchvision_loss(x, targets, GAMMA, ALPHA)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    tol = {"rtol": 2e-2, "atol": 1e-2}
    torch.testing.assert_close(loss.float(), expected.detach(), **tol)
    torch.testing.assert_close(grad.float(), expected_grad, **tol)


def test_int32_targets_and_empty_input(focal_impl):
    logits, targets = make_inputs(20, 4, seed=4)
    torch.testing.assert_close(
        focal_impl(logits, targets.int(), GAMMA, ALPHA), focal_impl(logits, targets, GAMMA, ALPHA)
    )
    empty = focal_impl(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), GAMMA, ALPHA)
    assert empty.shape == (0, 4)


def test_non_contiguous_logits(focal_impl):
    logits, _ = make_inputs(8, 30, seed=8)
    transposed = logits.t()  # (30, 8) view with strides (1, 30)
    targets = torch.randint(-1, 9, (30,), generator=torch.Generator().manual_seed(8))
    expected = torchvision_loss(transposed.contiguous(), targets, GAMMA, ALPHA)
    loss = focal_impl(transposed, targets, GAMMA, ALPHA)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)


def test_module_sums_and_wrapper_uses_active_path():
    logits, targets = make_inputs(100, 6, seed=5)
    expected = torchvision_loss(logits, targets, GAMMA, ALPHA)
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, GAMMA, ALPHA), expected)
    loss = SigmoidFocalLoss(GAMMA, ALPHA)(logits, targets)
    assert loss.dim() == 0
    torch.testing.assert_close(loss, expected.sum())


BAD_INPUTS = [
    (torch.zeros(5), torch.zeros(5, dtype=torch.long), ValueError, r"\[5\]"),
    (torch.zeros(5, 3), torch.zeros(5, 1, dtype=torch.long), ValueError, r"\[5, 1\]"),
    (torch.zeros(5, 3), torch.zeros(4, dtype=torch.long), ValueError, r"\[5, 3\].*\[4\]"),
    (torch.zeros(5, 3, dtype=torch.long), torch.zeros(5, dtype=torch.long), TypeError, "int64"),
    (torch.zeros(5, 3), torch.zeros(5), TypeError, "float32"),
]


@pytest.mark.parametrize("logits,targets,error,pattern", BAD_INPUTS)
def test_bad_inputs_raise_clear_errors(logits, targets, error, pattern):
    with pytest.raises(error, match=pattern):
        sigmoid_focal_loss(logits, targets, GAMMA, ALPHA)


@pytest.mark.skipif(not _ops.HAS_EXT, reason="fcos_core._C not loaded")
@pytest.mark.parametrize("logits,targets,error,pattern", BAD_INPUTS)
def test_bad_inputs_to_the_op_raise_clear_errors(logits, targets, error, pattern):
    pattern = pattern.replace("int64", "Long").replace("float32", "Float")
    with pytest.raises(RuntimeError, match=pattern):
        torch.ops.fcos.sigmoid_focal_loss(logits, targets, GAMMA, ALPHA)


@pytest.mark.skipif(not _ops.HAS_EXT, reason="fcos_core._C not loaded")
def test_op_rejects_negative_gamma_and_mismatched_grad():
    logits, targets = make_inputs(4, 3)
    with pytest.raises(RuntimeError, match="gamma must be >= 0, got -1"):
        torch.ops.fcos.sigmoid_focal_loss(logits, targets, -1.0, ALPHA)
    with pytest.raises(RuntimeError, match=r"grad_loss \[4, 2\]"):
        torch.ops.fcos._sigmoid_focal_loss_backward(logits, targets, torch.ones(4, 2), 2.0, 0.25)


@pytest.mark.skipif(not _ops.HAS_EXT, reason="fcos_core._C not loaded")
def test_opcheck():
    logits, targets = make_inputs(16, 5, seed=6)
    args = (logits.requires_grad_(), targets, GAMMA, ALPHA)
    torch.library.opcheck(torch.ops.fcos.sigmoid_focal_loss.default, args)
    grad_args = (logits.detach(), targets, torch.rand(16, 5), GAMMA, ALPHA)
    torch.library.opcheck(torch.ops.fcos._sigmoid_focal_loss_backward.default, grad_args)


@pytest.mark.cuda
@pytest.mark.skipif(not (_ops.HAS_EXT and torch.cuda.is_available()), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_cuda_matches_cpu(dtype):
    logits, targets = make_inputs(500, 20, seed=7)
    logits = logits.to(dtype)
    x_cpu, x_gpu = logits.clone().requires_grad_(), logits.cuda().requires_grad_()
    loss_cpu = torch.ops.fcos.sigmoid_focal_loss(x_cpu, targets, GAMMA, ALPHA)
    loss_gpu = torch.ops.fcos.sigmoid_focal_loss(x_gpu, targets.cuda(), GAMMA, ALPHA)
    (g_cpu,) = torch.autograd.grad(loss_cpu.sum(), x_cpu)
    (g_gpu,) = torch.autograd.grad(loss_gpu.sum(), x_gpu)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype in (torch.float32, torch.float64) else None
    torch.testing.assert_close(loss_gpu.cpu(), loss_cpu, **(tol or {}))
    torch.testing.assert_close(g_gpu.cpu(), g_cpu, **(tol or {}))
    args = (x_gpu.detach().requires_grad_(), targets.cuda(), GAMMA, ALPHA)
    torch.library.opcheck(torch.ops.fcos.sigmoid_focal_loss.default, args)
