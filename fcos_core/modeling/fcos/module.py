"""`FCOSModule`: the FCOS head with its loss (training) and post-processing (inference).

Dimension key: N images, L levels, C foreground classes, H_l x W_l size of level l.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from yacs.config import CfgNode

from fcos_core.modeling.fcos.head import FCOSHead
from fcos_core.modeling.fcos.locations import check_location_offset, compute_locations
from fcos_core.modeling.fcos.loss import FCOSLossComputation
from fcos_core.modeling.fcos.postprocess import FCOSPostProcessor
from fcos_core.structures import BoxList, ImageList


class FCOSModule(nn.Module):
    """Head + loss + post-processor, called on the FPN features.

    Args:
        head: the FCOSHead (its strides define the locations).
        loss_evaluator: computes the loss dict in training.
        post_processor: turns head outputs into BoxLists in eval.
        location_offset: MODEL.FCOS.LOCATION_OFFSET, where the cells sit (see locations.py).
    """

    def __init__(
        self,
        *,
        head: FCOSHead,
        loss_evaluator: FCOSLossComputation,
        post_processor: FCOSPostProcessor,
        location_offset: str = "half_stride",
    ) -> None:
        super().__init__()
        check_location_offset(location_offset)
        self.location_offset = location_offset
        self.head = head
        self.loss_evaluator = loss_evaluator
        self.box_selector_test = post_processor
        self.fpn_strides = list(head.fpn_strides)

    @classmethod
    def from_config(cls, cfg: CfgNode, in_channels: int | None = None) -> FCOSModule:
        """Build head (``in_channels`` wide: the backbone's ``out_channels``), loss and
        post-processor from ``cfg``."""
        return cls(
            head=FCOSHead.from_config(cfg, in_channels),
            loss_evaluator=FCOSLossComputation.from_config(cfg),
            post_processor=FCOSPostProcessor.from_config(cfg),
            location_offset=cfg.MODEL.FCOS.LOCATION_OFFSET,
        )

    def forward(
        self,
        images: ImageList,
        features: Sequence[Tensor],
        targets: Sequence[BoxList] | None = None,
    ) -> tuple[list[BoxList] | None, dict[str, Tensor]]:
        """Run the head, then the loss (training) or the post-processor (eval).

        Args:
            images: the batch (its ``image_sizes`` bound the detections).
            features: L tensors Tensor[N, C_in, H_l, W_l] (P3..P7).
            targets: N BoxLists with "labels" in training; ignored in eval.

        Returns:
            (None, losses) in training; (detections, {}) in eval.
        """
        box_cls, box_regression, centerness = self.head(features)
        locations = compute_locations(features, self.fpn_strides, self.location_offset)
        if self.training:
            if targets is None:
                raise ValueError("FCOSModule: targets (list of BoxList) are required in training")
            losses = self.loss_evaluator(locations, box_cls, box_regression, centerness, targets)
            return None, losses
        boxes = self.box_selector_test(
            locations, box_cls, box_regression, centerness, images.image_sizes
        )
        return boxes, {}
