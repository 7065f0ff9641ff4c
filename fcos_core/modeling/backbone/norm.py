"""Normalisation layers for the backbones: frozen BatchNorm, BatchNorm and GroupNorm.

The kind is chosen by name ("FrozenBN", "BN", "GN"); the GroupNorm grouping follows the original
`MODEL.GROUP_NORM` keys (either a fixed number of groups or a fixed number of channels per group).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from yacs.config import CfgNode

from fcos_core.config.checks import ConfigError, one_of_message
from fcos_core.layers import FrozenBatchNorm2d

NORM_KINDS = ("FrozenBN", "BN", "GN")


@dataclass(frozen=True)
class GroupNormSpec:
    """How GroupNorm splits channels: exactly one of the two sizes is -1 (unused).

    Attributes:
        dim_per_group: channels per group, or -1 to use ``num_groups``.
        num_groups: number of groups, or -1 to use ``dim_per_group``.
        eps: GroupNorm epsilon.
    """

    dim_per_group: int = -1
    num_groups: int = 32
    eps: float = 1e-5

    @classmethod
    def from_config(cls, cfg: CfgNode) -> GroupNormSpec:
        """Read ``MODEL.GROUP_NORM.{DIM_PER_GP, NUM_GROUPS, EPSILON}``."""
        gn = cfg.MODEL.GROUP_NORM
        return cls(dim_per_group=gn.DIM_PER_GP, num_groups=gn.NUM_GROUPS, eps=gn.EPSILON)

    def groups_for(self, channels: int) -> int:
        """Number of GroupNorm groups for ``channels`` channels.

        Raises:
            ValueError: if both or neither sizes are set, or ``channels`` does not divide evenly.
        """
        if (self.dim_per_group == -1) == (self.num_groups == -1):
            raise ValueError(
                "MODEL.GROUP_NORM: exactly one of DIM_PER_GP and NUM_GROUPS must be -1, got "
                f"DIM_PER_GP={self.dim_per_group}, NUM_GROUPS={self.num_groups}"
            )
        if self.dim_per_group > 0:
            if channels % self.dim_per_group:
                raise ValueError(
                    f"GroupNorm: {channels} channels are not divisible by "
                    f"MODEL.GROUP_NORM.DIM_PER_GP={self.dim_per_group}"
                )
            return channels // self.dim_per_group
        if channels % self.num_groups:
            raise ValueError(
                f"GroupNorm: {channels} channels are not divisible by "
                f"MODEL.GROUP_NORM.NUM_GROUPS={self.num_groups}"
            )
        return self.num_groups


def make_norm(kind: str, channels: int, gn_spec: GroupNormSpec | None = None) -> nn.Module:
    """Build a normalisation layer over ``channels`` channels.

    Args:
        kind: "FrozenBN" (fixed affine, buffers only), "BN" (trainable BatchNorm2d) or "GN".
        channels: number of channels C of the Tensor[N, C, H, W] it normalises.
        gn_spec: GroupNorm grouping (default: 32 groups, eps 1e-5); only used for "GN".

    Raises:
        ValueError: for an unknown kind.
    """
    if kind == "FrozenBN":
        return FrozenBatchNorm2d(channels)
    if kind == "BN":
        return nn.BatchNorm2d(channels)
    if kind == "GN":
        spec = gn_spec or GroupNormSpec()
        return nn.GroupNorm(spec.groups_for(channels), channels, eps=spec.eps)
    raise ConfigError(one_of_message("norm kind", kind, NORM_KINDS))


__all__ = ["NORM_KINDS", "GroupNormSpec", "make_norm"]
