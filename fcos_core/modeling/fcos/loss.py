"""FCOS losses: sigmoid focal classification, IoU box regression and centerness BCE.

Dimension key: N images, L levels, C foreground classes, H_l x W_l size of level l,
R locations of all levels of one image, P positive locations of the batch.

Normalisation (as the original FCOS), with the normalisers all-reduced (averaged) over processes:
- loss_cls = focal sum / max(mean num_pos, 1);
- loss_reg = sum(IoU loss * centerness target) / mean sum of centerness targets;
- loss_centerness = BCE-with-logits sum / max(mean num_pos, 1).
With no positive location loss_reg and loss_centerness are sums over empty selections: exactly 0,
still connected to the graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from yacs.config import CfgNode

from fcos_core.layers import IOULoss, SigmoidFocalLoss
from fcos_core.modeling.fcos.targets import (
    compute_centerness_targets,
    object_size_ranges,
    prepare_targets,
)
from fcos_core.structures import BoxList
from fcos_core.utils.comm import all_reduce_mean


def flatten_levels(per_level: Sequence[Tensor]) -> Tensor:
    """Concatenate head outputs of all levels location-major.

    Args:
        per_level: L tensors Tensor[N, K, H_l, W_l].

    Returns:
        Tensor[N * R, K], image-major then level-major then row-major, the order of
        ``prepare_targets``.
    """
    n, k = per_level[0].shape[:2]
    flat = [x.permute(0, 2, 3, 1).reshape(n, -1, k) for x in per_level]  # (N, R_l, K) each
    return torch.cat(flat, dim=1).reshape(-1, k)  # (N * R, K)


class FCOSLossComputation:
    """Computes the FCOS loss dict from head outputs and ground truth.

    Args:
        fpn_strides: L strides.
        sizes_of_interest: L - 1 object-size range boundaries.
        center_sampling_radius: > 0 enables centre sampling.
        iou_loss_type: "iou", "linear_iou" or "giou".
        norm_reg_targets: regression targets divided by the stride (head predicts them so).
        focal_gamma, focal_alpha: sigmoid focal loss parameters.
    """

    def __init__(
        self,
        *,
        fpn_strides: Sequence[int],
        sizes_of_interest: Sequence[float],
        center_sampling_radius: float,
        iou_loss_type: str,
        norm_reg_targets: bool,
        focal_gamma: float,
        focal_alpha: float,
    ) -> None:
        self.fpn_strides = list(fpn_strides)
        self.size_ranges = object_size_ranges(sizes_of_interest, len(self.fpn_strides))
        self.center_sampling_radius = float(center_sampling_radius)
        self.norm_reg_targets = norm_reg_targets
        self.cls_loss_func = SigmoidFocalLoss(focal_gamma, focal_alpha)
        self.box_reg_loss_func = IOULoss(iou_loss_type)
        self.centerness_loss_func = nn.BCEWithLogitsLoss(reduction="sum")

    @classmethod
    def from_config(cls, cfg: CfgNode) -> FCOSLossComputation:
        """Read MODEL.FCOS.{FPN_STRIDES, SIZES_OF_INTEREST, CENTER_SAMPLING_RADIUS, ...}."""
        f = cfg.MODEL.FCOS
        return cls(
            fpn_strides=f.FPN_STRIDES,
            sizes_of_interest=f.SIZES_OF_INTEREST,
            center_sampling_radius=f.CENTER_SAMPLING_RADIUS,
            iou_loss_type=f.IOU_LOSS_TYPE,
            norm_reg_targets=f.NORM_REG_TARGETS,
            focal_gamma=f.LOSS_GAMMA,
            focal_alpha=f.LOSS_ALPHA,
        )

    def prepare_targets(
        self, locations: Sequence[Tensor], targets: Sequence[BoxList]
    ) -> tuple[Tensor, Tensor]:
        """Labels Tensor[N, R] and regression targets Tensor[N, R, 4] of a batch.

        The targets' box convention enters through their areas (``BoxList.area()``).
        """
        xyxy = [t.convert("xyxy") for t in targets]
        labels = [t.get_field("labels") for t in targets]
        return prepare_targets(
            locations,
            [t.bbox for t in xyxy],
            labels,
            gt_areas=[t.area() for t in xyxy],
            strides=self.fpn_strides,
            size_ranges=self.size_ranges,
            center_sampling_radius=self.center_sampling_radius,
            norm_reg_targets=self.norm_reg_targets,
        )

    def __call__(
        self,
        locations: Sequence[Tensor],
        box_cls: Sequence[Tensor],
        box_regression: Sequence[Tensor],
        centerness: Sequence[Tensor],
        targets: Sequence[BoxList],
    ) -> dict[str, Tensor]:
        """Compute the losses.

        Args:
            locations: L tensors Tensor[R_l, 2].
            box_cls: L tensors Tensor[N, C, H_l, W_l] logits.
            box_regression: L tensors Tensor[N, 4, H_l, W_l] (l, t, r, b), >= 0.
            centerness: L tensors Tensor[N, 1, H_l, W_l] logits.
            targets: N BoxLists with field "labels" (int64, 1..C).

        Returns:
            dict with scalar tensors "loss_cls", "loss_reg", "loss_centerness".
        """
        if len(targets) != box_cls[0].shape[0]:
            raise ValueError(
                f"FCOS loss: got {len(targets)} target BoxLists for a batch of "
                f"{box_cls[0].shape[0]} images"
            )
        # Targets and losses in float32 under AMP too: autocast off here, `losses` casts the head
        # outputs up.
        with torch.autocast(box_cls[0].device.type, enabled=False):
            labels, reg_targets = self.prepare_targets(locations, targets)
            return self.losses(
                flatten_levels(box_cls),
                flatten_levels(box_regression),
                flatten_levels(centerness).reshape(-1),
                labels.reshape(-1),
                reg_targets.reshape(-1, 4),
            )

    def losses(
        self,
        cls_logits: Tensor,
        box_regression: Tensor,
        ctr_logits: Tensor,
        labels: Tensor,
        reg_targets: Tensor,
    ) -> dict[str, Tensor]:
        """Losses from flattened predictions and targets.

        Args:
            cls_logits: Tensor[N * R, C]. box_regression: Tensor[N * R, 4].
            ctr_logits: Tensor[N * R].
            labels: Tensor[N * R] int64, 0 = background. reg_targets: Tensor[N * R, 4].

        Returns:
            dict with "loss_cls", "loss_reg", "loss_centerness".
        """
        pos_inds = torch.nonzero(labels > 0).squeeze(1)  # (P,)
        box_regression, reg_targets = box_regression[pos_inds], reg_targets[pos_inds]  # (P, 4)
        ctr_logits = ctr_logits[pos_inds]  # (P,)
        ctr_targets = compute_centerness_targets(reg_targets)  # (P,)
        stats = all_reduce_mean(
            torch.stack(
                (
                    torch.full(
                        (), float(pos_inds.numel()), device=labels.device
                    ),  # a fill, no copy
                    ctr_targets.sum().float(),
                )
            )  # fmt: skip
        )
        num_pos = stats[0].clamp(min=1.0)
        # With no positive anywhere the numerator is an empty sum (0); divide by 1 instead of 0.
        ctr_sum = torch.where(stats[1] > 0, stats[1], torch.ones_like(stats[1]))
        # Losses are summed in float32 even when the head ran in float16/bfloat16 (AMP).
        loss_cls = self.cls_loss_func(cls_logits.float(), labels.int()) / num_pos
        loss_reg = (
            self.box_reg_loss_func(box_regression.float(), reg_targets, ctr_targets) / ctr_sum
        )
        loss_ctr = self.centerness_loss_func(ctr_logits.float(), ctr_targets) / num_pos
        return {"loss_cls": loss_cls, "loss_reg": loss_reg, "loss_centerness": loss_ctr}
