"""Inference fast path: the same detections, less work per image.

`prepare_fast_inference` returns a copy of a detector that

- folds every `FrozenBatchNorm2d`, and every BatchNorm2d by its running statistics, into the
  conv that feeds it (``y = conv(x) * s + t`` becomes a conv with weight ``W * s`` and bias
  ``b * s + t``): exact up to float rounding, and one pass over each feature map fewer;
- keeps weights and inputs in ``torch.channels_last`` (the layout oneDNN / cuDNN convs prefer);
- runs under ``torch.inference_mode`` (no autograd bookkeeping at all);
- optionally runs under autocast (TEST.FAST_PATH_AUTOCAST, `fcos_core.utils.precision`:
  "bfloat16" on CPUs with AVX512-BF16 / AMX-BF16 or on CUDA, "float16" on CUDA), except the
  head's three predictor convs, which stay in float32: they are ~2% of the FLOPs, and their
  rounding is what moves scores across the NMS and threshold decisions (on the quickstart
  checkpoint, 97.9% of the float32 detections kept with bfloat16 predictors, 99.2% without);
  detections are returned in float32 either way;
- stores the weights and biases of the convs that run under autocast in its dtype, once
  (`cast_conv_weights`), instead of letting autocast cast every weight on every call (~1% of
  the bf16 time of an R-50 at 800x1216: 51 copies of each 256x256x3x3 weight per image);
- optionally compiles the backbone and the head with `torch.compile`. On 2 CPU cores this gave
  the same detections and no measurable speed-up over the eager fast path (R-50, 800x1216),
  for 5-25 s of compiling per new input size; it is there for GPUs, where it is unmeasured.

Folding only touches the pairs the backbone's forward applies back to back: ``convK`` -> ``bnK``
siblings (ResNet stem and blocks) and ``Sequential(conv, bn)`` (projection shortcuts). Deformable
convs and GroupNorm (its statistics depend on the input) are left as they are.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import torch
from torch import Tensor, nn
from yacs.config import CfgNode

from fcos_core.layers.dcn import ModulatedDeformConv
from fcos_core.layers.misc import FrozenBatchNorm2d
from fcos_core.structures.bounding_box import BoxList
from fcos_core.structures.image_list import ImageList, to_image_list
from fcos_core.utils.precision import autocast_dtype, check_precision

_BN_NAME = re.compile(r"^bn(\d+)$")
# Head convs that stay in float32 under autocast (they produce the logits, boxes, centerness).
FLOAT32_HEAD_LAYERS = ("cls_logits", "bbox_pred", "centerness")


def norm_scale_shift(bn: nn.Module) -> tuple[Tensor, Tensor]:
    """(scale, shift), Tensor[C] each, of a frozen norm or a BatchNorm2d's running statistics."""
    if isinstance(bn, FrozenBatchNorm2d):
        return bn.scale_shift()
    scale = (bn.running_var + bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    return scale, shift if bn.bias is None else shift + bn.bias


@torch.no_grad()
def fold_into_conv(conv: nn.Conv2d, bn: nn.Module) -> None:
    """Make ``conv`` compute ``bn(conv(x))`` as ``bn`` does in eval; ``conv`` gains a bias.

    Args:
        conv: conv with weight Tensor[C_out, C_in / groups, kH, kW].
        bn: FrozenBatchNorm2d, or BatchNorm2d with running statistics, over the C_out channels.
    """
    scale, shift = norm_scale_shift(bn)  # (C_out,) each
    bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    conv.weight.mul_(scale.to(conv.weight.dtype).reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter(bias * scale + shift, requires_grad=conv.weight.requires_grad)


def _foldable(conv: Any, bn: Any) -> bool:
    if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros":
        return False
    if isinstance(bn, FrozenBatchNorm2d):
        return True
    return type(bn) is nn.BatchNorm2d and bn.running_mean is not None


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every ``convK -> bnK`` / ``Sequential(conv, bn)`` pair in place.

    The norm is a FrozenBatchNorm2d or a BatchNorm2d with running statistics (what it computes
    in eval mode; the folded model is for inference only). Each folded norm is replaced by
    ``nn.Identity`` (the module names stay, the buffers go).

    Returns:
        the number of norms folded.
    """
    folded = 0
    for parent in list(model.modules()):
        children = dict(parent.named_children())
        for name, child in children.items():
            if isinstance(parent, nn.Sequential) and name.isdigit() and int(name) > 0:
                conv = children.get(str(int(name) - 1))
            else:
                match = _BN_NAME.match(name)
                conv = children.get(f"conv{match.group(1)}") if match else None
            if _foldable(conv, child):
                fold_into_conv(conv, child)
                setattr(parent, name, nn.Identity())
                folded += 1
    return folded


class Float32(nn.Module):
    """Runs ``module`` in float32 with autocast off, whatever dtype its input comes in."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.module(x.float())


def keep_predictors_float32(model: nn.Module) -> int:
    """Wrap the FCOS head's predictor convs (`FLOAT32_HEAD_LAYERS`) in `Float32`, in place.

    Returns:
        the number of layers wrapped (0 for a model without ``rpn.head``).
    """
    head = getattr(getattr(model, "rpn", None), "head", None)
    wrapped = 0
    for name in FLOAT32_HEAD_LAYERS:
        layer = getattr(head, name, None)
        if isinstance(layer, nn.Module) and not isinstance(layer, Float32):
            setattr(head, name, Float32(layer))
            wrapped += 1
    return wrapped


@torch.no_grad()
def cast_conv_weights(model: nn.Module, dtype: torch.dtype) -> int:
    """Store the weight and bias of every plain nn.Conv2d in ``dtype``, in place.

    Left as they are: the convs inside `Float32` wrappers (they run in float32) and the kernel
    holder ``conv`` of a `ModulatedDeformConv` (its op reads the weight itself). Under autocast
    to ``dtype`` a conv then gets its weight as autocast would have cast it (same rounding), once
    instead of on every call. The layout (channels_last) is kept.

    Returns:
        the number of convs cast.
    """
    skip = {id(m) for w in model.modules() if isinstance(w, Float32) for m in w.modules()}
    skip |= {id(m.conv) for m in model.modules() if isinstance(m, ModulatedDeformConv)}
    cast = 0
    for module in model.modules():
        if type(module) is not nn.Conv2d or id(module) in skip:
            continue
        for name in ("weight", "bias"):
            param = getattr(module, name)
            if param is not None and param.dtype != dtype:
                layout = _memory_format(param)
                value = param.detach().to(dtype).contiguous(memory_format=layout)
                setattr(module, name, nn.Parameter(value, requires_grad=False))
        cast += 1
    return cast


def _memory_format(t: Tensor) -> torch.memory_format:
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


class FastInference(nn.Module):
    """Wraps a folded detector: channels_last inputs, inference_mode, optional autocast.

    Args:
        model: the detector (eval mode; its forward takes an ImageList or image tensors).
        autocast_dtype: torch.bfloat16 / torch.float16 to run under autocast, None for float32.
    """

    def __init__(self, model: nn.Module, *, autocast_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.model = model
        self.autocast_dtype = autocast_dtype

    def forward(self, images: ImageList | list[Tensor] | Tensor) -> list[BoxList]:
        """Detections (float32 boxes and scores) for ``images``, as the wrapped model's."""
        if self.training:
            raise RuntimeError("FastInference is for inference only; call .eval()")
        size_divisible = getattr(self.model, "size_divisibility", 0)
        images = to_image_list(images, size_divisible)
        tensors = images.tensors.contiguous(memory_format=torch.channels_last)
        images = ImageList(tensors, images.image_sizes)
        device_type = tensors.device.type
        with (
            torch.inference_mode(),
            torch.autocast(
                device_type,
                dtype=self.autocast_dtype or torch.float32,
                enabled=self.autocast_dtype is not None,
            ),
        ):
            detections = self.model(images)
        return [_to_float(d) for d in detections]


def _to_float(boxlist: BoxList) -> BoxList:
    """``boxlist`` with floating fields (bbox, scores) in float32, as ordinary tensors.

    Cloned outside inference mode, so callers may update them in place.
    """
    out = BoxList(
        boxlist.bbox.float().clone(), boxlist.size, boxlist.mode, convention=boxlist.convention
    )
    for field in boxlist.fields():
        value = boxlist.get_field(field)
        out.add_field(field, (value.float() if value.is_floating_point() else value).clone())
    return out


def prepare_fast_inference(
    model: nn.Module,
    cfg: CfgNode | None = None,
    *,
    autocast: str | None = None,
    compiled: bool | None = None,
    inplace: bool = False,
) -> FastInference:
    """A fast-inference version of ``model`` (see the module docstring).

    Args:
        model: the detector; left untouched unless ``inplace``.
        cfg: read for TEST.FAST_PATH_AUTOCAST / TEST.FAST_PATH_COMPILE where the arguments are
            None.
        autocast: "float32", "bfloat16", "float16" or "auto" (`fcos_core.utils.precision`);
            overrides the cfg.
        compiled: `torch.compile` the backbone and the head; overrides the cfg.
        inplace: fold ``model`` itself instead of a deep copy.

    Returns:
        FastInference wrapping the folded, channels_last, eval-mode model.
    """
    if autocast is None:
        autocast = cfg.TEST.FAST_PATH_AUTOCAST if cfg is not None else "float32"
    if compiled is None:
        compiled = bool(cfg.TEST.FAST_PATH_COMPILE) if cfg is not None else False
    check_precision("TEST.FAST_PATH_AUTOCAST", autocast)
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    if isinstance(model, FastInference):
        return model
    device_type = next(model.parameters(), torch.empty(0)).device.type
    dtype = autocast_dtype("TEST.FAST_PATH_AUTOCAST", autocast, device_type)
    target = model if inplace else copy.deepcopy(model)
    target.eval()
    fold_batchnorm(target)
    target.to(memory_format=torch.channels_last)
    if dtype is not None:
        keep_predictors_float32(target)
        cast_conv_weights(target, dtype)
    if compiled:
        _compile_parts(target)
    return FastInference(target, autocast_dtype=dtype).eval()


def _compile_parts(model: nn.Module) -> None:
    """`torch.compile` the backbone and the head in place (post-processing stays eager: its
    shapes depend on the data)."""
    for owner, name in ((model, "backbone"), (getattr(model, "rpn", None), "head")):
        part = getattr(owner, name, None)
        if isinstance(part, nn.Module):
            setattr(owner, name, torch.compile(part))


__all__ = [
    "FLOAT32_HEAD_LAYERS",
    "FastInference",
    "cast_conv_weights",
    "Float32",
    "fold_batchnorm",
    "fold_into_conv",
    "keep_predictors_float32",
    "norm_scale_shift",
    "prepare_fast_inference",
]
