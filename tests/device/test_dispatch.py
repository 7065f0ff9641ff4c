"""Per-device dispatch: an extension without a kernel for the input's device falls back to the
reference with exactly one warning per (op, device type); fake and meta inputs reach the op."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torch._subclasses.fake_tensor import FakeTensorMode

from fcos_core.layers import _ops
from fcos_core.layers.nms import nms, nms_reference
from fcos_core.layers.sigmoid_focal_loss import sigmoid_focal_loss, sigmoid_focal_loss_reference

needs_ext = pytest.mark.skipif(not _ops.HAS_EXT, reason="fcos_core._C not loaded")


@pytest.fixture
def no_cpu_kernels(monkeypatch):
    """The loaded extension as if it had been built without CPU kernels; warnings reset."""
    devices = {op: kinds - {"cpu"} for op, kinds in _ops.KERNEL_DEVICES.items()}
    monkeypatch.setattr(_ops, "KERNEL_DEVICES", devices)
    monkeypatch.setattr(_ops, "_WARNED", set())


def boxes_and_scores(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 100
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=gen) * 40 + 1], dim=1)
    return boxes, torch.randperm(n, generator=gen).float() / n  # distinct scores


def fallback_warnings(caught: list) -> list[str]:
    return [str(w.message) for w in caught if "has no cpu kernel" in str(w.message)]


@needs_ext
def test_nms_without_device_kernel_uses_torchvision_and_warns_once(no_cpu_kernels, monkeypatch):
    def must_not_run(*args):
        raise AssertionError("fcos::nms called without a kernel for the device")

    monkeypatch.setattr(torch.ops.fcos, "nms", must_not_run)
    boxes, scores = boxes_and_scores()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = nms(boxes, scores, 0.5)
        second = nms(boxes * 2, scores, 0.6)
    messages = fallback_warnings(caught)
    assert len(messages) == 1, messages
    assert "fcos::nms" in messages[0] and "torchvision.ops.nms" in messages[0]
    assert torch.equal(first, torchvision.ops.nms(boxes, scores, 0.5))
    assert torch.equal(first, nms_reference(boxes, scores, 0.5))
    assert torch.equal(second, nms_reference(boxes * 2, scores, 0.6))


@needs_ext
def test_nms_fallback_without_torchvision_kernel_is_the_reference(no_cpu_kernels, monkeypatch):
    monkeypatch.setattr(_ops, "torchvision_has_nms", lambda device_type: False)
    boxes, scores = boxes_and_scores(seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keep = nms(boxes, scores, 0.5)
    assert torch.equal(keep, nms_reference(boxes, scores, 0.5))
    (message,) = fallback_warnings(caught)
    assert "pure-PyTorch reference NMS" in message


@needs_ext
def test_focal_loss_without_device_kernel_is_the_reference_with_one_warning(no_cpu_kernels):
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(50, 4, generator=gen, requires_grad=True)
    targets = torch.randint(-1, 5, (50,), generator=gen)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = sigmoid_focal_loss(logits, targets, 2.0, 0.25)
        sigmoid_focal_loss(logits, targets, 2.0, 0.25)
    messages = fallback_warnings(caught)
    assert len(messages) == 1 and "fcos::sigmoid_focal_loss" in messages[0], messages
    torch.testing.assert_close(loss, sigmoid_focal_loss_reference(logits, targets, 2.0, 0.25))
    loss.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_cuda_fallback_warning_says_how_to_build(monkeypatch):
    monkeypatch.setattr(_ops, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match=r"no cuda kernel for fcos::nms.*FORCE_CUDA=1 pip"):
        _ops.warn_fallback("fcos::nms", "cuda", "torchvision.ops.nms")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call for the same pair stays silent
        _ops.warn_fallback("fcos::nms", "cuda", "torchvision.ops.nms")


@needs_ext
def test_present_kernel_is_used_without_warning():
    boxes, scores = boxes_and_scores(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        keep = nms(boxes, scores, 0.5)
    assert torch.equal(keep, torch.ops.fcos.nms(boxes, scores, 0.5))


@needs_ext
def test_fake_cuda_inputs_reach_the_fake_kernel_without_warning(monkeypatch):
    monkeypatch.setattr(_ops, "_WARNED", set())
    assert not _ops.has_kernel("fcos::sigmoid_focal_loss", "cuda") or torch.cuda.is_available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with FakeTensorMode():
            logits = torch.empty(30, 5, device="cuda")
            targets = torch.zeros(30, dtype=torch.long, device="cuda")
            loss = sigmoid_focal_loss(logits, targets, 2.0, 0.25)
    assert loss.device.type == "cuda" and loss.shape == (30, 5)


@needs_ext
def test_meta_inputs_use_the_op():
    logits = torch.empty(8, 3, device="meta")
    targets = torch.empty(8, dtype=torch.long, device="meta")
    assert _ops.use_kernel("fcos::sigmoid_focal_loss", logits)
    assert sigmoid_focal_loss(logits, targets, 2.0, 0.25).device.type == "meta"


def test_extension_summary_names_backends_and_fallbacks():
    summary = _ops.extension_summary()
    if not _ops.HAS_EXT:
        assert "pure-PyTorch reference" in summary
        return
    assert "kernels for CPU" in summary
    if not _ops.has_kernel("fcos::nms", "cuda"):
        assert "CUDA inputs fall back" in summary


@needs_ext
def test_dispatch_traces_in_one_graph():
    """The device check is a set lookup: torch.compile captures nms and the focal loss whole."""
    boxes, scores = boxes_and_scores(seed=4)
    logits = torch.randn(20, 3)
    targets = torch.randint(0, 4, (20,))

    def both(boxes, scores, logits, targets):
        return nms(boxes, scores, 0.5), sigmoid_focal_loss(logits, targets, 2.0, 0.25)

    torch._dynamo.reset()
    keep, loss = torch.compile(both, backend="eager", fullgraph=True)(
        boxes, scores, logits, targets
    )
    assert torch.equal(keep, nms_reference(boxes, scores, 0.5))
    torch.testing.assert_close(loss, sigmoid_focal_loss_reference(logits, targets, 2.0, 0.25))
