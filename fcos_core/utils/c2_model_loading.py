"""Convert Caffe2/Detectron and torchvision ImageNet ResNet weights to our parameter names.

Caffe2 names (Detectron ``ImageNetPretrained/MSRA/R-50.pkl`` etc., also R-101/R-152 and the FAIR
ResNeXt X-101-32x8d / X-101-64x4d files) and what they become::

    conv1_w                          -> stem.conv1.weight
    res_conv1_bn_{s,b}               -> stem.bn1.{weight,bias}   (GN files: conv1_gn_{s,b})
    res{2..5}_{i}_branch2{a,b,c}_w   -> layer{1..4}.{i}.conv{1,2,3}.weight
    res{2..5}_{i}_branch2{a,b,c}_bn_{s,b} -> layer{1..4}.{i}.bn{1,2,3}.{weight,bias}
    res{2..5}_{i}_branch1_w          -> layer{1..4}.{i}.downsample.0.weight
    res{2..5}_{i}_branch1_bn_{s,b}   -> layer{1..4}.{i}.downsample.1.{weight,bias}
    fc1000_*, *_momentum             -> dropped (classifier, optimizer state)

Caffe2 folds BN statistics into the scale ``s`` and bias ``b``; each BN therefore also gets
``running_mean = 0`` and ``running_var = 1`` (exact with FrozenBatchNorm2d's eps = 0).

``load_c2_format(cfg, f)`` (the original entry point) reads a ``.pkl`` with the allow-list
unpickler and converts it with the loader that ``C2_FORMAT_LOADER`` registers for
MODEL.BACKBONE.CONV_BODY (every ResNet/ResNeXt name, under the original's names too).
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict

import numpy as np
import torch
from yacs.config import CfgNode

from fcos_core.utils.registry import Registry, unknown_name_message
from fcos_core.utils.safe_io import CheckpointLoadError, load_pkl

logger = logging.getLogger(__name__)

_C2_STAGE_TO_LAYER = {"2": "layer1", "3": "layer2", "4": "layer3", "5": "layer4"}
_C2_BRANCH_TO_CONV = {"2a": "conv1", "2b": "conv2", "2c": "conv3", "1": "downsample.0"}
_C2_BRANCH_TO_NORM = {"2a": "bn1", "2b": "bn2", "2c": "bn3", "1": "downsample.1"}
_C2_NORM_SUFFIX = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
_C2_BLOCK = re.compile(r"^res(\d)_(\d+)_branch(1|2[abc])_(w|b|bn_\w+|gn_\w+)$")
_C2_STEM_NORM = re.compile(r"^(?:res_)?conv1_(?:bn|gn)_(s|b|rm|riv)$")
_C2_DROPPED = re.compile(r"^(fc1000_.*|pred_.*|.*_momentum)$")


def rename_c2_key(name: str) -> str | None:
    """Our name for one Caffe2 blob name, or None when the blob is dropped.

    Raises:
        KeyError: the name follows no known Caffe2 ResNet pattern.
    """
    if _C2_DROPPED.match(name):
        return None
    if name == "conv1_w":
        return "stem.conv1.weight"
    stem = _C2_STEM_NORM.match(name)
    if stem:
        return f"stem.bn1.{_C2_NORM_SUFFIX[stem.group(1)]}"
    block = _C2_BLOCK.match(name)
    if not block or block.group(1) not in _C2_STAGE_TO_LAYER:
        raise KeyError(f"unknown Caffe2 blob name {name!r}")
    stage, index, branch, kind = block.groups()
    prefix = f"{_C2_STAGE_TO_LAYER[stage]}.{index}"
    if kind == "w":
        return f"{prefix}.{_C2_BRANCH_TO_CONV[branch]}.weight"
    if kind == "b":
        return f"{prefix}.{_C2_BRANCH_TO_CONV[branch]}.bias"
    norm_kind = kind.split("_", 1)[1]
    if norm_kind not in _C2_NORM_SUFFIX:
        raise KeyError(f"unknown Caffe2 blob name {name!r}")
    return f"{prefix}.{_C2_BRANCH_TO_NORM[branch]}.{_C2_NORM_SUFFIX[norm_kind]}"


def _to_tensor(value: object, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"Caffe2 blob {name!r} is a {type(value).__name__}, expected an array")


def convert_c2_state_dict(blobs: dict[str, object]) -> OrderedDict[str, torch.Tensor]:
    """Convert a Caffe2 ResNet/ResNeXt blob dict (``{"blobs": ...}`` or flat) to our names.

    Returns:
        our name -> float tensor, with ``running_mean``/``running_var`` filled in for every BN.

    Raises:
        KeyError: a blob name is not a known Caffe2 ResNet name (the message lists it).
    """
    if "blobs" in blobs and isinstance(blobs["blobs"], dict):
        blobs = blobs["blobs"]
    converted: OrderedDict[str, torch.Tensor] = OrderedDict()
    dropped = []
    for name in sorted(blobs.keys()):
        new_name = rename_c2_key(name)
        if new_name is None:
            dropped.append(name)
            continue
        converted[new_name] = _to_tensor(blobs[name], name).float()
    for key in [k for k in converted if k.endswith(".weight") and _is_norm_key(k)]:
        base = key[: -len("weight")]
        channels = converted[key].shape[0]
        converted.setdefault(base + "running_mean", torch.zeros(channels))
        converted.setdefault(base + "running_var", torch.ones(channels))
    logger.info(
        "Converted %d Caffe2 blobs; dropped %d: %s",
        len(converted),
        len(dropped),
        ", ".join(dropped[:10]),
    )
    return converted


# MODEL.BACKBONE.CONV_BODY -> fn(cfg, path) -> {"model": state_dict} for Caffe2 .pkl weights.
C2_FORMAT_LOADER = Registry()


@C2_FORMAT_LOADER.register("R-50-C4")
@C2_FORMAT_LOADER.register("R-50-C5")
@C2_FORMAT_LOADER.register("R-101-C4")
@C2_FORMAT_LOADER.register("R-101-C5")
@C2_FORMAT_LOADER.register("R-50-FPN")
@C2_FORMAT_LOADER.register("R-101-FPN")
@C2_FORMAT_LOADER.register("R-152-FPN")
@C2_FORMAT_LOADER.register("R-50-FPN-RETINANET")
@C2_FORMAT_LOADER.register("R-101-FPN-RETINANET")
@C2_FORMAT_LOADER.register("R-152-FPN-RETINANET")
def load_resnet_c2_format(cfg: CfgNode, f: str) -> dict[str, OrderedDict[str, torch.Tensor]]:
    """A Detectron ResNet/ResNeXt ``.pkl`` as ``{"model": state_dict}`` in our names."""
    return {"model": convert_c2_state_dict(load_pkl(f))}


def load_c2_format(cfg: CfgNode, f: str) -> dict[str, OrderedDict[str, torch.Tensor]]:
    """Load the Caffe2 ``.pkl`` ``f`` for the backbone MODEL.BACKBONE.CONV_BODY.

    Raises:
        CheckpointLoadError: no Caffe2 loader for that backbone (the message lists them), or the
            file is unreadable or refused.
    """
    name = cfg.MODEL.BACKBONE.CONV_BODY
    if name not in C2_FORMAT_LOADER:
        raise CheckpointLoadError(
            f"cannot load Caffe2 weights {f}: "
            + unknown_name_message(C2_FORMAT_LOADER, name, "MODEL.BACKBONE.CONV_BODY")
        )
    return C2_FORMAT_LOADER[name](cfg, f)


def _is_norm_key(key: str) -> bool:
    module = key.rsplit(".", 2)[-2]
    return module.startswith("bn") or key.endswith("downsample.1.weight")


def rename_for_deformable(
    state_dict: dict[str, torch.Tensor], model_keys: list[str]
) -> OrderedDict[str, torch.Tensor]:
    """Move ``*.conv2.weight`` to ``*.conv2.conv.weight`` where the model's conv2 is a DCN.

    A modulated deformable conv keeps its weight in a ``conv`` submodule (and adds an ``offset``
    conv that stays at its initialisation), so ImageNet weights must be renamed to reach it.
    """
    model_suffixes = {k for mk in model_keys if ".conv." in mk for k in _suffixes(mk)}
    renamed: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        head, _, leaf = key.rpartition(".")
        dcn_key = f"{head}.conv.{leaf}"
        renamed[dcn_key if dcn_key in model_suffixes else key] = value
    return renamed


def _suffixes(key: str) -> list[str]:
    parts = key.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


_TORCHVISION_DROPPED = re.compile(r"^(fc\..*|.*num_batches_tracked)$")


def is_torchvision_resnet(state_dict: dict[str, object]) -> bool:
    """True for a torchvision ImageNet ResNet/ResNeXt state_dict (``conv1``, ``bn1``, ``fc``)."""
    return (
        "conv1.weight" in state_dict
        and "fc.weight" in state_dict
        and ("layer1.0.conv1.weight" in state_dict)
    )


def convert_torchvision_resnet(
    state_dict: dict[str, torch.Tensor],
) -> OrderedDict[str, torch.Tensor]:
    """Rename torchvision ResNet keys to ours: ``conv1``/``bn1`` move under ``stem``; ``fc`` is
    dropped. Layer names (``layerN.i.convK``, ``bnK``, ``downsample.{0,1}``) are already ours."""
    converted: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        if _TORCHVISION_DROPPED.match(key):
            continue
        if key.startswith(("conv1.", "bn1.")):
            key = "stem." + key
        converted[key] = value
    return converted
