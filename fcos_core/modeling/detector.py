"""The detector: backbone (body + FPN) and the FCOS module, maskrcnn-benchmark's GeneralizedRCNN.

Dimension key: N images, H x W padded input size, L levels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from yacs.config import CfgNode

from fcos_core.config.checks import check_choice
from fcos_core.modeling.backbone import build_backbone
from fcos_core.modeling.fcos import FCOSModule
from fcos_core.modeling.preprocess import ImagePreprocessor
from fcos_core.structures import BoxList, ImageList, to_image_list


class GeneralizedRCNN(nn.Module):
    """Preprocessing + backbone + FCOS. State-dict keys: ``backbone.body.*``, ``backbone.fpn.*``,
    ``rpn.head.*`` (the preprocessing constants are non-persistent buffers).

    Args:
        backbone: maps Tensor[N, 3, H, W] to L feature maps (P3..P7).
        rpn: the FCOS module (head, loss, post-processor).
        preprocess: normalises uint8 batches on the model's device (None: a batch must come
            normalised, as floats).
        size_divisibility: padding multiple used when images come as a list of tensors.
        channels_last: run on torch.channels_last inputs (call ``.to(memory_format=...)`` on the
            model too; `build_detection_model` does).
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        rpn: FCOSModule,
        preprocess: ImagePreprocessor | None = None,
        size_divisibility: int = 0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.backbone = backbone
        self.rpn = rpn
        self.size_divisibility = size_divisibility
        self.channels_last = channels_last

    @classmethod
    def from_config(cls, cfg: CfgNode) -> GeneralizedRCNN:
        """Build backbone and FCOS module (as wide as the backbone's ``out_channels``); checks
        that their strides agree."""
        backbone = build_backbone(cfg)
        strides = list(getattr(backbone, "out_strides", cfg.MODEL.FCOS.FPN_STRIDES))
        if strides != list(cfg.MODEL.FCOS.FPN_STRIDES):
            raise ValueError(
                f"MODEL.FCOS.FPN_STRIDES {list(cfg.MODEL.FCOS.FPN_STRIDES)} do not match the "
                f"strides of the backbone {cfg.MODEL.BACKBONE.CONV_BODY}: {strides}"
            )
        return cls(
            backbone=backbone,
            rpn=FCOSModule.from_config(cfg, getattr(backbone, "out_channels", None)),
            preprocess=ImagePreprocessor.from_config(cfg),
            size_divisibility=cfg.DATALOADER.SIZE_DIVISIBILITY,
            channels_last=cfg.MODEL.CHANNELS_LAST,
        )

    def forward(
        self,
        images: ImageList | Sequence[Tensor] | Tensor,
        targets: Sequence[BoxList] | None = None,
    ) -> dict[str, Tensor] | list[BoxList]:
        """Losses in training, detections in eval.

        Args:
            images: an ImageList, or Tensor[3, H_i, W_i] images (batched with padding to
                ``size_divisibility``): uint8 RGB 0..255, normalised here (`preprocess`), or
                floating point, already normalised (used as they are).
            targets: N BoxLists (xyxy, field "labels" in 1..C) in the input frame; required in
                training.

        Returns:
            Training: {"loss_cls", "loss_reg", "loss_centerness"} scalar tensors.
            Eval: N BoxLists with "scores" and "labels", in the frame of each un-padded input.
        """
        if self.training and targets is None:
            raise ValueError("GeneralizedRCNN: targets (list of BoxList) are required in training")
        images = to_image_list(images, self.size_divisibility)
        if self.channels_last:  # before normalising: the uint8 copy is the cheap one
            tensors = images.tensors.contiguous(memory_format=torch.channels_last)
            images = ImageList(tensors, images.image_sizes)
        images = self._preprocessed(images)
        features = self.backbone(images.tensors)
        detections, losses = self.rpn(images, features, targets)
        if self.training:
            return losses
        return detections

    def _preprocessed(self, images: ImageList) -> ImageList:
        """The normalised batch; float input passes as it is, uint8 needs ``preprocess``."""
        if self.preprocess is not None:
            return self.preprocess(images)
        if not images.tensors.is_floating_point():
            raise TypeError(
                f"GeneralizedRCNN built without preprocess takes normalised floating-point "
                f"images, got {images.tensors.dtype}"
            )
        return images


# MODEL.META_ARCHITECTURE -> detector class.
META_ARCHITECTURES: dict[str, type[GeneralizedRCNN]] = {"GeneralizedRCNN": GeneralizedRCNN}


def build_detection_model(cfg: CfgNode) -> GeneralizedRCNN:
    """Build the detector described by ``cfg`` (on the CPU; move it with ``.to(device)``)."""
    name = cfg.MODEL.META_ARCHITECTURE
    check_choice("MODEL.META_ARCHITECTURE", name, META_ARCHITECTURES)
    if not cfg.MODEL.FCOS_ON or cfg.MODEL.RETINANET_ON:
        raise ValueError(
            "fcos builds FCOS detectors only: need MODEL.FCOS_ON True and MODEL.RETINANET_ON "
            f"False, got {cfg.MODEL.FCOS_ON} and {cfg.MODEL.RETINANET_ON}"
        )
    model = META_ARCHITECTURES[name].from_config(cfg)
    if cfg.MODEL.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)
    return model
