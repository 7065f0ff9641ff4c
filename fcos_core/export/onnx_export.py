"""Export an fcos detector to ONNX, with dynamic image size.

Two graphs can be written (``mode``):

- ``"head"``: backbone + head. Input ``images`` float32 [N, 3, H, W], already normalised the way
  the model expects (INPUT.PIXEL_MEAN/STD, TO_BGR255) and padded (N, H and W are dynamic).
  Outputs, for each level l of P3..P7 (named ``p3``..``p7`` after log2 of the stride):
  ``cls_logits_pl`` [N, C, H_l, W_l], ``bbox_reg_pl`` [N, 4, H_l, W_l] (l, t, r, b distances in
  input pixels, as the model's head gives them in eval) and ``centerness_pl`` [N, 1, H_l, W_l].
- ``"detector"`` (default): the complete detector for one image. Input ``image`` uint8
  [1, 3, H, W]: an RGB image (0..255), already resized to the test size (H and W are dynamic),
  what the data pipeline ships. The graph normalises it with the model's own preprocessing
  (`fcos_core.modeling.preprocess.ImagePreprocessor`: INPUT.PIXEL_MEAN/STD, TO_BGR255), zero-pads
  to DATALOADER.SIZE_DIVISIBILITY, runs backbone and head, and the FCOS post-processing of
  `fcos_core.modeling.fcos.inference_core`, the same functions eager inference calls (threshold,
  top-k per level, decoding, clipping, class-aware NMS, best DETECTIONS_PER_IMG, all in
  MODEL.BOX_CONVENTION). Outputs ``boxes`` float32 [K, 4] (xyxy, in the
  pixels of the input image), ``scores`` float32 [K] (decreasing) and ``labels`` int64 [K]
  (contiguous labels 1..C).

The legacy TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) is used: it
handles the data-dependent sizes of post-processing (NonZero, TopK, NonMaxSuppression via
``torchvision.ops.nms``) without extra packages. Deformable convolutions (dcnv2 configs) become
ONNX ``DeformConv`` (opset 19; onnxruntime 1.31 runs it), so those configs are exported with
opset 19.

Dimension key: N images, L levels, C classes, R_l locations of level l, K detections.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from yacs.config import CfgNode

from fcos_core.config.checks import check_choice
from fcos_core.data.coco_classes import BACKGROUND_NAME, default_class_names
from fcos_core.modeling.fcos.inference_core import (
    DetectionSettings,
    level_candidates,
    select_detections,
)
from fcos_core.modeling.fcos.locations import compute_locations_per_level
from fcos_core.utils.extras import require

# ONNX opset written by default (onnxruntime >= 1.14 runs it).
DEFAULT_OPSET = 17
# First opset with DeformConv; the default for models with deformable convolutions.
DEFORM_CONV_OPSET = 19
# Graph kinds that can be exported.
EXPORT_MODES = ("detector", "head")
# Padding multiple used when DATALOADER.SIZE_DIVISIBILITY is 0 (the coarsest stride needs it
# only for exact equality with a padded batch; the FPN itself accepts any size).
DEFAULT_SIZE_DIVISIBILITY = 32
# Image size (H, W) traced when none is given.
DEFAULT_SAMPLE_SIZE = (256, 320)


def level_names(strides: Sequence[int]) -> list[str]:
    """["p3", "p4", ...]: one name per FPN stride (2 ** k -> "pk")."""
    return [f"p{round(math.log2(s))}" for s in strides]


def head_output_names(strides: Sequence[int]) -> list[str]:
    """Output names of the "head" graph: all cls_logits, then box_regression, then centerness."""
    names = level_names(strides)
    return [f"{kind}_{n}" for kind in ("cls_logits", "box_regression", "centerness") for n in names]


@dataclass(frozen=True)
class PostProcessSpec:
    """Post-processing settings: the FPN locations and the core's ``DetectionSettings``.

    Attributes:
        strides: FPN strides of P3..P7.
        location_offset: MODEL.FCOS.LOCATION_OFFSET.
        detection: what ``inference_core`` reads (thresholds, top-k, NMS, cap, box convention).
    """

    strides: tuple[int, ...]
    location_offset: str
    detection: DetectionSettings

    @classmethod
    def from_config(cls, cfg: CfgNode) -> PostProcessSpec:
        return cls(
            strides=tuple(cfg.MODEL.FCOS.FPN_STRIDES),
            location_offset=cfg.MODEL.FCOS.LOCATION_OFFSET,
            detection=DetectionSettings.from_config(cfg),
        )


@dataclass(frozen=True)
class PreprocessSpec:
    """Padding of the detector graph's input: DATALOADER.SIZE_DIVISIBILITY (the normalisation is
    the model's own `ImagePreprocessor`)."""

    size_divisibility: int

    @classmethod
    def from_config(cls, cfg: CfgNode) -> PreprocessSpec:
        return cls(
            size_divisibility=int(cfg.DATALOADER.SIZE_DIVISIBILITY) or DEFAULT_SIZE_DIVISIBILITY,
        )

    def pad(self, x: Tensor) -> Tensor:
        """Zero-pad bottom/right of Tensor[N, 3, H, W] to multiples of size_divisibility."""
        d = self.size_divisibility
        height, width = x.shape[-2:]
        pad_h = (d - height % d) % d
        pad_w = (d - width % d) % d
        return nn.functional.pad(x, [0, pad_w, 0, pad_h])


class HeadGraph(nn.Module):
    """Backbone + head of a detector; forward returns the 3 * L head maps as a flat tuple."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.rpn.head

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        """images Tensor[N, 3, H, W] -> (cls_logits_l..., bbox_reg_l..., centerness_l...)."""
        logits, box_regression, centerness = self.head(self.backbone(images))
        return (*logits, *box_regression, *centerness)


class DetectorGraph(nn.Module):
    """Pre-processing + backbone + head + FCOS post-processing for one uint8 RGB image.

    Args:
        model: a built detector (``.preprocess``, ``.backbone``, ``.rpn.head``), in eval mode.
        preprocess: padding of the batch (the normalisation is ``model.preprocess``).
        postprocess: settings of the post-processor.
    """

    def __init__(
        self, model: nn.Module, *, preprocess: PreprocessSpec, postprocess: PostProcessSpec
    ) -> None:
        super().__init__()
        if getattr(model, "preprocess", None) is None:
            raise ValueError(
                "the detector graph needs a model with its input preprocessing (model.preprocess, "
                "built by build_detection_model)"
            )
        self.preprocess = model.preprocess
        self.net = HeadGraph(model)
        self.pre = preprocess
        self.post = postprocess

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """image uint8 Tensor[1, 3, H, W] (RGB) -> boxes [K, 4], scores [K], labels [K].

        Normalised, then zero-padded: the padding is 0 after normalisation, as in eager mode.
        """
        height, width = image.shape[-2:]
        outputs = self.net(self.pre.pad(self.preprocess.normalize(image)))
        num_levels = len(self.post.strides)
        per_level = [
            self._level_candidates(
                outputs[i], outputs[num_levels + i], outputs[2 * num_levels + i], i, height, width
            )
            for i in range(num_levels)
        ]
        boxes, scores, labels = (torch.cat(parts, dim=0) for parts in zip(*per_level))
        return select_detections(self.post.detection, boxes, scores, labels)

    def _level_candidates(
        self,
        logits: Tensor,
        box_regression: Tensor,
        ctr: Tensor,
        level: int,
        height: int,
        width: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Best candidates of one level: clipped boxes [K_l, 4], scores [K_l], labels [K_l].

        Args:
            logits: Tensor[1, C, H_l, W_l]. box_regression: Tensor[1, 4, H_l, W_l] pixel distances.
            ctr: Tensor[1, 1, H_l, W_l]. level: index into the strides. height, width: the
            un-padded image size the boxes are clipped to.
        """
        num_classes = logits.shape[1]
        locations = compute_locations_per_level(
            logits.shape[-2], logits.shape[-1], self.post.strides[level],
            offset=self.post.location_offset,
        )  # fmt: skip  # (R_l, 2)
        return level_candidates(
            self.post.detection,
            locations,
            logits[0].permute(1, 2, 0).reshape(-1, num_classes),  # (R_l, C)
            box_regression[0].permute(1, 2, 0).reshape(-1, 4),  # (R_l, 4)
            ctr[0].permute(1, 2, 0).reshape(-1),  # (R_l,)
            height,
            width,
        )


@torch.onnx.symbolic_helper.parse_args(
    "v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "b"
)
def _deform_conv2d_symbolic(
    g, x, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
    weight_groups, offset_groups, use_mask,
):  # fmt: skip
    """torchvision::deform_conv2d -> ONNX DeformConv (same offset and mask layout)."""
    kernel = torch.onnx.symbolic_helper._get_tensor_sizes(weight)[-2:]
    inputs = [x, weight, offset, bias] + ([mask] if use_mask else [])
    return g.op(
        "DeformConv",
        *inputs,
        dilations_i=[dil_h, dil_w],
        group_i=weight_groups,
        kernel_shape_i=kernel,
        offset_group_i=offset_groups,
        pads_i=[pad_h, pad_w, pad_h, pad_w],
        strides_i=[stride_h, stride_w],
    )


def choose_opset(model: nn.Module, opset: int | None) -> int:
    """``opset``, or the default for ``model`` when None (DEFORM_CONV_OPSET if it has DCNs).

    Raises:
        ValueError: when the model has deformable convolutions and ``opset`` < 19.
    """
    from fcos_core.layers.dcn import ModulatedDeformConv

    has_dcn = any(isinstance(m, ModulatedDeformConv) for m in model.modules())
    if opset is None:
        return DEFORM_CONV_OPSET if has_dcn else DEFAULT_OPSET
    if has_dcn and opset < DEFORM_CONV_OPSET:
        raise ValueError(
            f"the model has deformable convolutions, which need ONNX opset >= {DEFORM_CONV_OPSET} "
            f"(DeformConv); got opset {opset}"
        )
    return opset


def build_export_module(model: nn.Module, cfg: CfgNode, mode: str = "detector") -> nn.Module:
    """The module traced for ``mode`` ("detector" or "head"), wrapping ``model`` (eval, CPU)."""
    check_choice("ONNX export mode", mode, EXPORT_MODES)
    model = model.eval().cpu()
    if mode == "head":
        return HeadGraph(model).eval()
    return DetectorGraph(
        model,
        preprocess=PreprocessSpec.from_config(cfg),
        postprocess=PostProcessSpec.from_config(cfg),
    ).eval()


def _io_spec(cfg: CfgNode, mode: str) -> tuple[list[str], list[str], dict[str, dict[int, str]]]:
    """(input names, output names, dynamic axes) of the graph."""
    if mode == "head":
        outputs = head_output_names(cfg.MODEL.FCOS.FPN_STRIDES)
        dynamic = {"images": {0: "batch", 2: "height", 3: "width"}}
        for name in outputs:
            dynamic[name] = {0: "batch", 2: f"{name}_height", 3: f"{name}_width"}
        return ["images"], outputs, dynamic
    outputs = ["boxes", "scores", "labels"]
    dynamic = {"image": {2: "height", 3: "width"}}
    dynamic.update({name: {0: "detections"} for name in outputs})
    return ["image"], outputs, dynamic


def sample_input(cfg: CfgNode, mode: str, size: tuple[int, int] = DEFAULT_SAMPLE_SIZE) -> Tensor:
    """A random input of the graph's kind at (H, W) ``size`` (used for tracing)."""
    generator = torch.Generator().manual_seed(0)
    if mode == "head":
        return torch.randn((1, 3, *size), generator=generator)
    return torch.randint(0, 256, (1, 3, *size), generator=generator, dtype=torch.uint8)


def export_onnx(
    model: nn.Module,
    cfg: CfgNode,
    path: str | os.PathLike,
    *,
    mode: str = "detector",
    sample_size: tuple[int, int] = DEFAULT_SAMPLE_SIZE,
    opset: int | None = None,
    class_names: Sequence[str] | None = None,
) -> str:
    """Trace ``model`` and write the ONNX graph of ``mode`` to ``path``.

    Args:
        model: a built detector with its weights loaded.
        cfg: the config it was built from (input normalisation, post-processing settings).
        path: output ``.onnx`` file (folders are created).
        mode: "detector" (complete, one image) or "head" (backbone + head, any batch).
        sample_size: (H, W) of the traced input; the graph accepts other sizes.
        opset: ONNX opset version (None: `choose_opset`).
        class_names: names of labels 0..C, stored in the model metadata (default: COCO names
            for an 81-class config, else "class_k").

    Returns:
        the written path.
    """
    opset = choose_opset(model, opset)
    module = build_export_module(model, cfg, mode)
    inputs, outputs, dynamic = _io_spec(cfg, mode)
    path = os.fspath(path)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.register_custom_op_symbolic(
            "torchvision::deform_conv2d", _deform_conv2d_symbolic, DEFORM_CONV_OPSET
        )
        torch.onnx.export(
            module,
            (sample_input(cfg, mode, sample_size),),
            path,
            dynamo=False,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=opset,
        )
    _write_metadata(path, export_metadata(cfg, mode, class_names))
    return path


def export_metadata(
    cfg: CfgNode, mode: str, class_names: Sequence[str] | None = None
) -> dict[str, str]:
    """Strings stored in the ONNX file's metadata, read by ``demo/onnx_demo.py``.

    Keys: ``fcos_mode``, ``min_size_test``, ``max_size_test``, ``size_divisibility``,
    ``class_names`` (JSON list, index = label) and ``levels`` (JSON list, "head" outputs).
    """
    num_labels = cfg.MODEL.FCOS.NUM_CLASSES  # background + C classes
    names = (
        list(class_names)
        if class_names
        else [BACKGROUND_NAME, *default_class_names(num_labels - 1)]
    )
    if len(names) != cfg.MODEL.FCOS.NUM_CLASSES:
        raise ValueError(
            f"class_names must list MODEL.FCOS.NUM_CLASSES = {cfg.MODEL.FCOS.NUM_CLASSES} names "
            f"(background first), got {len(names)}"
        )
    return {
        "fcos_mode": mode,
        "min_size_test": str(cfg.INPUT.MIN_SIZE_TEST),
        "max_size_test": str(cfg.INPUT.MAX_SIZE_TEST),
        "size_divisibility": str(PreprocessSpec.from_config(cfg).size_divisibility),
        "class_names": json.dumps(names),
        "levels": json.dumps(level_names(cfg.MODEL.FCOS.FPN_STRIDES)),
    }


def _write_metadata(path: str, metadata: dict[str, str]) -> None:
    """Add ``metadata`` to the ``metadata_props`` of the ONNX file at ``path`` (in place)."""
    onnx = require("onnx", "ONNX export")
    proto = onnx.load(path, load_external_data=False)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, path)


__all__ = [
    "DEFAULT_OPSET",
    "DEFAULT_SAMPLE_SIZE",
    "DEFORM_CONV_OPSET",
    "EXPORT_MODES",
    "DetectorGraph",
    "HeadGraph",
    "PostProcessSpec",
    "PreprocessSpec",
    "build_export_module",
    "choose_opset",
    "export_metadata",
    "export_onnx",
    "head_output_names",
    "level_names",
    "sample_input",
]
