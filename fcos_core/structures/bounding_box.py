"""`BoxList`: the boxes of one image plus named per-box fields.

Conventions, stated once and kept everywhere (see docs/abstractions.md):
- `size` is `(width, height)` of the image the boxes live in.
- Boxes are float32, "xyxy" (x1, y1, x2, y2) or "xywh" (x, y, width, height).
- `convention` (see `box_convention.py`) says how wide a box is: "continuous" (width x2 - x1,
  torchvision; the default of a BoxList built without one) or "plus_one" (width x2 - x1 + 1, the
  original maskrcnn-benchmark / FCOS). Datasets and the post-processor set it from
  MODEL.BOX_CONVENTION; every BoxList made from another (indexing, resize, ...) keeps it.
- Fields are tensors whose first dimension is the number of boxes (e.g. "labels", "scores").

Dimension key: N boxes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fcos_core.config.checks import check_choice
from fcos_core.structures.box_convention import (
    DEFAULT_BOX_CONVENTION,
    box_offset,
    check_box_convention,
)

FLIP_LEFT_RIGHT = 0
FLIP_TOP_BOTTOM = 1

_MODES = ("xyxy", "xywh")


class BoxList:
    """A set of N boxes in one image with per-box fields.

    Args:
        bbox (Tensor[N, 4] | array-like): the boxes.
        image_size: (width, height) of the image.
        mode: "xyxy" or "xywh".
        convention: "continuous" or "plus_one" (MODEL.BOX_CONVENTION).
    """

    def __init__(
        self,
        bbox: Any,
        image_size: tuple[int, int],
        mode: str = "xyxy",
        convention: str = DEFAULT_BOX_CONVENTION,
    ) -> None:
        device = bbox.device if isinstance(bbox, Tensor) else torch.device("cpu")
        bbox = torch.as_tensor(bbox, dtype=torch.float32, device=device)
        if bbox.numel() == 0:
            bbox = bbox.reshape(0, 4)
        if bbox.ndim != 2 or bbox.shape[-1] != 4:
            raise ValueError(f"BoxList expects boxes of shape (N, 4), got {tuple(bbox.shape)}")
        check_choice("BoxList mode", mode, _MODES)
        self.bbox = bbox
        self.size = (int(image_size[0]), int(image_size[1]))
        self.mode = mode
        self.convention = check_box_convention(convention, key="BoxList convention")
        self.extra_fields: dict[str, Any] = {}

    def _new(self, bbox: Tensor, size: tuple[int, int] | None = None, mode: str = "") -> BoxList:
        """A BoxList of this image (or of ``size``) in this convention, without fields."""
        return BoxList(bbox, size or self.size, mode or self.mode, self.convention)

    @property
    def offset(self) -> float:
        """What this convention adds to x2 - x1 to get a width (1.0 or 0.0)."""
        return box_offset(self.convention)

    # ---------------------------------------------------------------- fields
    def add_field(self, field: str, field_data: Any) -> None:
        """Attach per-box data (first dimension N) under `field`."""
        self.extra_fields[field] = field_data

    def get_field(self, field: str) -> Any:
        """Return the data stored under `field` (KeyError naming the known fields if absent)."""
        if field not in self.extra_fields:
            raise KeyError(f"BoxList has no field {field!r}; fields are {self.fields()}")
        return self.extra_fields[field]

    def has_field(self, field: str) -> bool:
        return field in self.extra_fields

    def fields(self) -> list[str]:
        return list(self.extra_fields.keys())

    def _copy_extra_fields(self, other: BoxList) -> None:
        for k, v in other.extra_fields.items():
            self.extra_fields[k] = v

    # ----------------------------------------------------------------- modes
    def convert(self, mode: str) -> BoxList:
        """Return the same boxes in `mode` ("xyxy" or "xywh"), fields shared."""
        check_choice("BoxList mode", mode, _MODES)
        if mode == self.mode:
            return self
        x1, y1, a, b = self.bbox.unbind(dim=-1)
        off = self.offset
        if mode == "xyxy" and off:
            # As the original: a box narrower than one pixel ends where it starts.
            a, b = (a - off).clamp(min=0), (b - off).clamp(min=0)
        if mode == "xyxy":
            bbox = torch.stack((x1, y1, x1 + a, y1 + b), dim=-1)
        else:
            bbox = torch.stack((x1, y1, a - x1 + off, b - y1 + off), dim=-1)
        out = self._new(bbox, mode=mode)
        out._copy_extra_fields(self)
        return out

    def _split_into_xyxy(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.convert("xyxy").bbox.unbind(dim=-1)

    # ------------------------------------------------------------ geometry
    def resize(self, size: tuple[int, int]) -> BoxList:
        """Rescale the boxes to an image of `size` = (width, height)."""
        sx = float(size[0]) / float(self.size[0])
        sy = float(size[1]) / float(self.size[1])
        scale = self.bbox.new_tensor([sx, sy, sx, sy])
        out = self._new(self.bbox * scale, size)
        out._copy_extra_fields(self)
        return out

    def transpose(self, method: int) -> BoxList:
        """Flip the boxes: FLIP_LEFT_RIGHT (x -> width - x) or FLIP_TOP_BOTTOM (y -> height - y).

        With "plus_one", a left-right flip maps pixel x to width - 1 - x, as the original; its
        top-bottom flip has no -1 (the original's, kept as it is; FCOS never flips vertically).
        """
        if method not in (FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM):
            raise ValueError(
                f"transpose method must be FLIP_LEFT_RIGHT (0) or FLIP_TOP_BOTTOM (1), got {method}"
            )
        w, h = self.size
        x1, y1, x2, y2 = self._split_into_xyxy()
        if method == FLIP_LEFT_RIGHT:
            right = w - self.offset
            bbox = torch.stack((right - x2, y1, right - x1, y2), dim=-1)
        else:
            bbox = torch.stack((x1, h - y2, x2, h - y1), dim=-1)
        out = self._new(bbox, mode="xyxy")
        out._copy_extra_fields(self)
        return out.convert(self.mode)

    def crop(self, box: tuple[float, float, float, float]) -> BoxList:
        """Crop to `box` = (x1, y1, x2, y2); boxes are shifted and clamped to the crop."""
        cx1, cy1, cx2, cy2 = (float(v) for v in box)
        w, h = cx2 - cx1, cy2 - cy1
        x1, y1, x2, y2 = self._split_into_xyxy()
        bbox = torch.stack(
            (
                (x1 - cx1).clamp(0, w),
                (y1 - cy1).clamp(0, h),
                (x2 - cx1).clamp(0, w),
                (y2 - cy1).clamp(0, h),
            ),
            dim=-1,
        )
        out = self._new(bbox, (int(round(w)), int(round(h))), mode="xyxy")
        out._copy_extra_fields(self)
        return out.convert(self.mode)

    def clip_to_image(self, remove_empty: bool = True) -> BoxList:
        """Clamp boxes to the image; with `remove_empty`, drop boxes with x2 <= x1 or y2 <= y1.

        The image spans [0, width] ("continuous") or the pixels 0..width - 1 ("plus_one").
        """
        w, h = self.size[0] - self.offset, self.size[1] - self.offset
        xyxy = self.convert("xyxy")
        b = xyxy.bbox
        bbox = torch.stack(
            (b[:, 0].clamp(0, w), b[:, 1].clamp(0, h), b[:, 2].clamp(0, w), b[:, 3].clamp(0, h)),
            dim=-1,
        )
        out = self._new(bbox, mode="xyxy")
        out._copy_extra_fields(self)
        if remove_empty:
            keep = (bbox[:, 2] > bbox[:, 0]) & (bbox[:, 3] > bbox[:, 1])
            out = out[keep]
        return out.convert(self.mode)

    def area(self) -> Tensor:
        """Tensor[N]: box areas, width * height in this convention."""
        if self.mode == "xywh":
            return self.bbox[:, 2] * self.bbox[:, 3]
        b, off = self.bbox, self.offset
        return (b[:, 2] - b[:, 0] + off) * (b[:, 3] - b[:, 1] + off)

    # ----------------------------------------------------------- container
    def to(self, device: torch.device | str, non_blocking: bool = False) -> BoxList:
        out = self._new(self.bbox.to(device, non_blocking=non_blocking))
        for k, v in self.extra_fields.items():
            out.add_field(k, v.to(device, non_blocking=non_blocking) if hasattr(v, "to") else v)
        return out

    def pin_memory(self) -> BoxList:
        """Page-locked copy (the DataLoader's pin_memory=True calls this)."""
        out = self._new(self.bbox.pin_memory())
        for k, v in self.extra_fields.items():
            out.add_field(k, v.pin_memory() if isinstance(v, torch.Tensor) else v)
        return out

    def __getitem__(self, item: Any) -> BoxList:
        out = self._new(self.bbox[item])
        for k, v in self.extra_fields.items():
            out.add_field(k, v[item])
        return out

    def __len__(self) -> int:
        return self.bbox.shape[0]

    def copy_with_fields(self, fields: str | list[str], skip_missing: bool = False) -> BoxList:
        """A new BoxList with the same boxes and only `fields`."""
        out = self._new(self.bbox)
        for field in [fields] if isinstance(fields, str) else fields:
            if self.has_field(field):
                out.add_field(field, self.get_field(field))
            elif not skip_missing:
                raise KeyError(f"BoxList has no field {field!r}; fields are {self.fields()}")
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_boxes={len(self)}, image_width={self.size[0]}, "
            f"image_height={self.size[1]}, mode={self.mode}, convention={self.convention})"
        )
