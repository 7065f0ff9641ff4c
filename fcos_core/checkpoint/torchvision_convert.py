"""Convert torchvision's ``fcos_resnet50_fpn`` weights into an fcos checkpoint.

The converted checkpoint, used with ``configs/fcos/fcos_torchvision_R_50_FPN.yaml``, reproduces
torchvision's FCOS in our model: same network outputs and, with that config's
``MODEL.FCOS.LOCATION_OFFSET "zero"`` and ``INFERENCE_TH_ON "score"``, the same detections.

What differs between the two and how it is handled here:

- Key names (torchvision left, ours right; ``i`` = 0, 1, 2 for C3..C5):
  ``backbone.body.conv1/bn1`` -> ``backbone.body.stem.conv1/bn1``;
  ``backbone.fpn.inner_blocks.i[.0]`` -> ``backbone.fpn.fpn_inner{i+2}``;
  ``backbone.fpn.layer_blocks.i[.0]`` -> ``backbone.fpn.fpn_layer{i+2}``;
  ``backbone.fpn.extra_blocks.p6/p7`` -> ``backbone.fpn.top_blocks.p6/p7``;
  ``head.classification_head.conv`` -> ``rpn.head.cls_tower`` (same indices);
  ``head.classification_head.cls_logits`` -> ``rpn.head.cls_logits``;
  ``head.regression_head.conv`` -> ``rpn.head.bbox_tower``;
  ``head.regression_head.bbox_reg`` -> ``rpn.head.bbox_pred``;
  ``head.regression_head.bbox_ctrness`` -> ``rpn.head.centerness``; ResNet ``layerK`` keys keep
  their names.
- Classes: torchvision's COCO head has 91 rows indexed by COCO category id (0 = background,
  10 unused ids); ours has 80 channels for the contiguous labels 1..80
  (`fcos_core.data.coco_classes`). The 80 used rows are picked in label order; the other 11
  rows are dropped (a model never predicts them after conversion).
- Frozen BatchNorm: torchvision adds eps = 1e-5 to the variance, our FrozenBatchNorm2d adds its own
  ``eps`` (0 by default, as maskrcnn-benchmark). The difference is folded into ``running_var``.
- ``num_batches_tracked`` counters (present when torchvision was built with plain BatchNorm2d) are
  dropped.
- Per-level ``Scale`` modules do not exist in torchvision: ``rpn.head.scales.*.scale`` = 1.0.
  torchvision regresses in units of the anchor size (= the stride), which our head does with
  ``NORM_REG_TARGETS: True`` (ReLU output times the stride at inference).
"""

from __future__ import annotations

import os
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fcos_core.config.checks import ConfigError, one_of_message
from fcos_core.data.coco_classes import NUM_COCO_ID_SLOTS, contiguous_to_coco_id
from fcos_core.utils.safe_io import CheckpointLoadError

# eps that torchvision's FrozenBatchNorm2d and nn.BatchNorm2d add to the variance.
TORCHVISION_BN_EPS = 1e-5
# eps of our FrozenBatchNorm2d when no model is given to read it from.
DEFAULT_TARGET_BN_EPS = 0.0
# Number of FPN levels (P3-P7), i.e. of per-level Scale modules written.
DEFAULT_NUM_LEVELS = 5
# Index in our FPN module names of the first lateral (C3 = output of layer2).
FIRST_FPN_INDEX = 2
# BatchNorm counter that our FrozenBatchNorm2d does not have.
_BN_COUNTER = "num_batches_tracked"

# torchvision key pattern -> our key (a `re` template). Checked in this order; the first full
# match wins. ``{fpn}`` is replaced by the FPN index (torchvision's index + FIRST_FPN_INDEX).
KEY_RULES: dict[str, str] = {
    r"backbone\.body\.(conv1|bn1)\.(.+)": r"backbone.body.stem.\1.\2",
    r"backbone\.body\.(layer\d+\..+)": r"backbone.body.\1",
    r"backbone\.fpn\.inner_blocks\.(\d+)\.(?:0\.)?(weight|bias)": r"backbone.fpn.fpn_inner{fpn}.\2",
    r"backbone\.fpn\.layer_blocks\.(\d+)\.(?:0\.)?(weight|bias)": r"backbone.fpn.fpn_layer{fpn}.\2",
    r"backbone\.fpn\.extra_blocks\.(p6|p7)\.(weight|bias)": r"backbone.fpn.top_blocks.\1.\2",
    r"head\.classification_head\.conv\.(.+)": r"rpn.head.cls_tower.\1",
    r"head\.classification_head\.cls_logits\.(weight|bias)": r"rpn.head.cls_logits.\1",
    r"head\.regression_head\.conv\.(.+)": r"rpn.head.bbox_tower.\1",
    r"head\.regression_head\.bbox_reg\.(weight|bias)": r"rpn.head.bbox_pred.\1",
    r"head\.regression_head\.bbox_ctrness\.(weight|bias)": r"rpn.head.centerness.\1",
}
_COMPILED_RULES = [(re.compile(p), t) for p, t in KEY_RULES.items()]


class ConversionError(CheckpointLoadError):
    """The given weights are not a torchvision FCOS state dict that fits the target model."""


# Class-row selections (--class-map): name -> description. See `class_rows`.
CLASS_MAPS: dict[str, str] = {
    "coco": "91 rows indexed by COCO category id -> 80 contiguous COCO labels",
    "drop_background": "K rows with row 0 = background (unused) -> K - 1 labels",
    "identity": "keep every row as is",
}


def map_key(tv_key: str) -> str | None:
    """Our name for a torchvision FCOS state-dict key; None for a key that is dropped.

    Raises:
        ConversionError: for a key that no rule in KEY_RULES knows.
    """
    if tv_key.endswith("." + _BN_COUNTER):
        return None
    for pattern, template in _COMPILED_RULES:
        match = pattern.fullmatch(tv_key)
        if match is None:
            continue
        if "{fpn}" in template:
            template = template.replace("{fpn}", str(int(match.group(1)) + FIRST_FPN_INDEX))
        return match.expand(template)
    raise ConversionError(
        f"torchvision FCOS key {tv_key!r} matches no conversion rule (is this a torchvision "
        "fcos_resnet50_fpn state dict?)"
    )


def class_rows(class_map: str, num_rows: int) -> list[int]:
    """Rows of torchvision's class head that become our channels 0..C-1, in order.

    Args:
        class_map: one of CLASS_MAPS.
        num_rows: rows of torchvision's ``cls_logits`` (its ``num_classes``).
    """
    if class_map == "coco":
        if num_rows != NUM_COCO_ID_SLOTS:
            raise ConversionError(
                f"class map 'coco' needs a {NUM_COCO_ID_SLOTS}-row torchvision class head, got "
                f"{num_rows} rows; use 'drop_background' or 'identity' for other datasets"
            )
        return [contiguous_to_coco_id[label] for label in sorted(contiguous_to_coco_id)]
    if class_map == "drop_background":
        return list(range(1, num_rows))
    if class_map == "identity":
        return list(range(num_rows))
    raise ConfigError(one_of_message("class map", class_map, CLASS_MAPS))


def target_bn_eps(model: nn.Module) -> dict[str, float]:
    """Module name -> eps of every batch-norm-like module of ``model`` (keys without a dot end)."""
    return {
        name: float(module.eps)
        for name, module in model.named_modules()
        if hasattr(module, "running_var") and hasattr(module, "eps")
    }


def _bn_eps_for(key: str, bn_eps: float | Mapping[str, float]) -> float:
    """eps our model adds in the batch norm that owns ``key`` (a ``...running_var`` key)."""
    if not isinstance(bn_eps, Mapping):
        return float(bn_eps)
    module = key.rsplit(".", 1)[0]
    if module not in bn_eps:
        raise ConversionError(
            f"converted key {key!r} has no batch-norm module {module!r} in the model"
        )
    return bn_eps[module]


def convert_state_dict(
    tv_state: Mapping[str, Tensor],
    *,
    class_map: str = "coco",
    bn_eps: float | Mapping[str, float] = DEFAULT_TARGET_BN_EPS,
    num_levels: int = DEFAULT_NUM_LEVELS,
) -> OrderedDict[str, Tensor]:
    """Rename, re-index and adjust a torchvision FCOS state dict for our model.

    Args:
        tv_state: torchvision ``FCOS.state_dict()`` (keys without a ``module.`` prefix).
        class_map: how class-head rows map to our channels (see CLASS_MAPS / `class_rows`).
        bn_eps: eps of our batch norms, one value or module name -> eps (`target_bn_eps`).
        num_levels: number of per-level Scale modules to write (value 1.0).

    Returns:
        Our state dict (float tensors, contiguous, detached).
    """
    out: OrderedDict[str, Tensor] = OrderedDict()
    for tv_key, value in tv_state.items():
        key = map_key(tv_key)
        if key is None:
            continue
        value = value.detach().clone()
        if key.endswith(".running_var"):
            value = value + (TORCHVISION_BN_EPS - _bn_eps_for(key, bn_eps))
        if key.startswith("rpn.head.cls_logits."):
            value = value[class_rows(class_map, value.shape[0])]
        out[key] = value.contiguous()
    for level in range(num_levels):
        out[f"rpn.head.scales.{level}.scale"] = torch.ones(1)
    return out


def load_torchvision_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a torchvision FCOS checkpoint file.

    Accepts a bare state dict (what ``download.pytorch.org`` serves) or a dict holding it under
    ``"model"`` (torchvision's reference training scripts); a ``module.`` prefix is removed.
    """
    if not os.path.isfile(path):
        raise ConversionError(f"torchvision FCOS checkpoint not found: {os.fspath(path)}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConversionError(
            f"cannot read {os.fspath(path)} as a torch checkpoint: {first_line}"
        ) from None
    if isinstance(data, Mapping) and "model" in data and isinstance(data["model"], Mapping):
        data = data["model"]
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor) for v in data.values()):
        raise ConversionError(f"{os.fspath(path)} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in data.items()}


def compare_with_model(state: Mapping[str, Tensor], model: nn.Module) -> list[str]:
    """Problems loading ``state`` strictly into ``model``: missing, unexpected, wrong shape."""
    expected = model.state_dict()
    problems = [f"missing: {k}" for k in expected if k not in state]
    problems += [f"unexpected: {k}" for k in state if k not in expected]
    problems += [
        f"shape of {k}: checkpoint {tuple(v.shape)}, model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    return problems


def convert_for_model(
    tv_state: Mapping[str, Tensor], model: nn.Module, *, class_map: str = "coco"
) -> OrderedDict[str, Tensor]:
    """`convert_state_dict` with eps and level count read from ``model``, checked against it.

    Raises:
        ConversionError: listing the keys the model would report missing, unexpected or
            mis-shaped.
    """
    num_levels = len(getattr(model.rpn.head, "scales", [])) or DEFAULT_NUM_LEVELS
    state = convert_state_dict(
        tv_state, class_map=class_map, bn_eps=target_bn_eps(model), num_levels=num_levels
    )
    problems = compare_with_model(state, model)
    if problems:
        shown = "\n  ".join(problems[:20])
        raise ConversionError(
            f"converted weights do not fit the model ({len(problems)} problems):\n  {shown}"
        )
    return state


def save_checkpoint(state: Mapping[str, Tensor], path: str | os.PathLike) -> None:
    """Write ``{"model": state}``, the layout DetectronCheckpointer loads (MODEL.WEIGHT)."""
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    torch.save({"model": OrderedDict(state)}, path)


__all__ = [
    "CLASS_MAPS",
    "KEY_RULES",
    "TORCHVISION_BN_EPS",
    "ConversionError",
    "class_rows",
    "compare_with_model",
    "convert_for_model",
    "convert_state_dict",
    "load_torchvision_state_dict",
    "map_key",
    "save_checkpoint",
    "target_bn_eps",
]
