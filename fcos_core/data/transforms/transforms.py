"""Transforms acting on an image and its target `BoxList` together.

Images enter as numpy arrays `uint8[H, W, 3]` in RGB order (what `datasets.image_io` returns) and
leave `ToUint8Tensor` as `uint8 Tensor[3, H, W]` RGB 0..255 (the default pipeline: the model
normalises on its device, see `fcos_core.modeling.preprocess`), or `ToTensor` as
`float32 Tensor[3, H, W]` in [0, 1], RGB, for `Normalize` (the original's pipeline, kept as the
reference the model's normalisation is tested against). Every transform is called as
`t(image, target, rng)`; random transforms draw only from `rng` (a `numpy.random.Generator`) and
never from global random state, so augmentation is reproducible from a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor
from yacs.config import CfgNode

from fcos_core.structures.bounding_box import FLIP_LEFT_RIGHT, BoxList

Image = Any  # numpy uint8[H, W, 3] before ToUint8Tensor / ToTensor, Tensor[3, H, W] after
# Largest value of a uint8 pixel: ToTensor divides by it, TO_BGR255 multiplies back by it.
PIXEL_RANGE = 255.0


def _require_rng(rng: np.random.Generator | None, name: str) -> np.random.Generator:
    if rng is None:
        raise ValueError(
            f"{name} is random and needs an explicit rng (numpy.random.Generator); "
            "the data pipeline never uses global random state"
        )
    return rng


class Compose:
    """Apply transforms in order, passing the same `rng` to each."""

    def __init__(self, transforms: Sequence[Any]) -> None:
        self.transforms = list(transforms)

    def __call__(
        self, image: Image, target: BoxList | None, rng: np.random.Generator | None = None
    ) -> tuple[Image, BoxList | None]:
        for t in self.transforms:
            image, target = t(image, target, rng)
        return image, target

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


def get_size(image_size: tuple[int, int], min_size: int, max_size: int | None) -> tuple[int, int]:
    """Output (height, width) for resizing the shorter side to `min_size`, longer side capped.

    The maskrcnn-benchmark rule: if scaling the shorter side to `min_size` would make the longer
    side exceed `max_size`, the shorter-side target becomes round(max_size * short / long).
    The longer side is then floor(target * long / short); an image already at the target size
    keeps its size.

    Args:
        image_size: (width, height) of the input.
        min_size: target length of the shorter side.
        max_size: cap on the longer side (None: no cap).
    """
    w, h = image_size
    short, long = float(min(w, h)), float(max(w, h))
    size = min_size
    if max_size is not None and long / short * size > max_size:
        size = int(round(max_size * short / long))
    if min(w, h) == size:
        return h, w
    if w < h:
        return max(int(size * h / w), 1), max(size, 1)
    return max(size, 1), max(int(size * w / h), 1)


class Resize:
    """Resize so the shorter side is one of `min_sizes` (drawn from rng) and the longer <= max_size.

    Args:
        min_sizes: candidate shorter-side lengths; with several, one is drawn per image.
        max_size: cap on the longer side.
    """

    def __init__(self, min_sizes: int | Sequence[int], max_size: int | None) -> None:
        self.min_sizes = (int(min_sizes),) if isinstance(min_sizes, int) else tuple(min_sizes)
        if not self.min_sizes:
            raise ValueError("Resize needs at least one min size")
        self.max_size = max_size

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool) -> Resize:
        """INPUT.MIN_SIZE_TRAIN (or the MIN_SIZE_RANGE_TRAIN range when set) / MIN_SIZE_TEST."""
        if not is_train:
            return cls(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
        lo, hi = cfg.INPUT.MIN_SIZE_RANGE_TRAIN
        if lo < 0:
            return cls(tuple(cfg.INPUT.MIN_SIZE_TRAIN), cfg.INPUT.MAX_SIZE_TRAIN)
        if hi < lo:
            raise ValueError(
                f"INPUT.MIN_SIZE_RANGE_TRAIN must be (lo, hi) with lo <= hi, got {(lo, hi)}"
            )
        return cls(tuple(range(lo, hi + 1)), cfg.INPUT.MAX_SIZE_TRAIN)

    def __call__(
        self, image: np.ndarray, target: BoxList | None, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, BoxList | None]:
        if len(self.min_sizes) == 1:
            min_size = self.min_sizes[0]
        else:
            min_size = self.min_sizes[
                int(_require_rng(rng, "Resize").integers(len(self.min_sizes)))
            ]
        h, w = image.shape[:2]
        out_h, out_w = get_size((w, h), min_size, self.max_size)
        if (out_h, out_w) != (h, w):
            image = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        if target is not None:
            target = target.resize((out_w, out_h))
        return image, target

    def __repr__(self) -> str:
        sizes = (
            self.min_sizes
            if len(self.min_sizes) <= 4
            else f"{self.min_sizes[0]}..{self.min_sizes[-1]}"
        )
        return f"Resize(min_sizes={sizes}, max_size={self.max_size})"


class RandomHorizontalFlip:
    """Mirror image and boxes left-right with probability `prob` (drawn from rng)."""

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"flip probability must be in [0, 1], got {prob}")
        self.prob = prob

    def __call__(
        self, image: np.ndarray, target: BoxList | None, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, BoxList | None]:
        if self.prob == 0.0:
            return image, target
        if self.prob < 1.0 and _require_rng(rng, "RandomHorizontalFlip").random() >= self.prob:
            return image, target
        image = cv2.flip(image, 1)  # 1: around the vertical axis (much faster than a numpy copy)
        if target is not None:
            target = target.transpose(FLIP_LEFT_RIGHT)
        return image, target

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(prob={self.prob})"


def _chw(image: np.ndarray, dtype: torch.dtype) -> Tensor:
    """[H, W, 3] array -> contiguous Tensor[3, H, W] of ``dtype`` (one allocation)."""
    hwc = torch.from_numpy(np.ascontiguousarray(image))
    tensor = torch.empty((3, *hwc.shape[:2]), dtype=dtype)
    return tensor.copy_(hwc.permute(2, 0, 1))  # (3, H, W)


class ToUint8Tensor:
    """uint8[H, W, 3] RGB array -> uint8 Tensor[3, H, W] RGB 0..255 (the default pipeline)."""

    def __call__(
        self, image: np.ndarray, target: BoxList | None, rng: np.random.Generator | None = None
    ) -> tuple[Tensor, BoxList | None]:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"ToUint8Tensor expects a uint8[H, W, 3] RGB image, got "
                f"{image.dtype}{list(image.shape)}"
            )
        return _chw(image, torch.uint8), target

    def __repr__(self) -> str:
        return "ToUint8Tensor()"


class ToTensor:
    """uint8[H, W, 3] RGB array -> float32 Tensor[3, H, W] RGB in [0, 1]."""

    def __call__(
        self, image: np.ndarray, target: BoxList | None, rng: np.random.Generator | None = None
    ) -> tuple[Tensor, BoxList | None]:
        return _chw(image, torch.float32).div_(PIXEL_RANGE), target

    def __repr__(self) -> str:
        return "ToTensor()"


def normalization_affine(
    mean: Sequence[float], std: Sequence[float], to_bgr255: bool
) -> tuple[Tensor, Tensor]:
    """(scale, shift), float32 Tensor[3, 1, 1] each: ``normalised = x * scale + shift`` for x the
    RGB [0, 1] image after the channel swap of ``to_bgr255``.

    The one definition of INPUT.PIXEL_MEAN / PIXEL_STD / TO_BGR255 arithmetic, shared by
    `Normalize` and the model's preprocessing (`fcos_core.modeling.preprocess`).

    Raises:
        ValueError: mean or std without 3 values, or a std value <= 0.
    """
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(
            f"INPUT.PIXEL_MEAN and INPUT.PIXEL_STD need 3 values, got {list(mean)} and {list(std)}"
        )
    if any(s <= 0 for s in std):
        raise ValueError(f"INPUT.PIXEL_STD values must be > 0, got {list(std)}")
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (PIXEL_RANGE if to_bgr255 else 1.0) / std_t, -mean_t / std_t


class Normalize:
    """(image - mean) / std, in the convention the backbone weights expect; in place.

    The default pipeline no longer uses it (the model normalises uint8 batches on its device);
    it is the original's public transform, for float pipelines and as the tests' reference.

    With `to_bgr255` (Caffe2/Detectron weights) the RGB [0, 1] tensor is first turned into BGR in
    [0, 255], and mean/std are in that space (e.g. mean [102.98, 115.95, 122.77], std 1). Without
    it (torchvision weights) the image stays RGB in [0, 1] (e.g. mean [0.485, 0.456, 0.406],
    std [0.229, 0.224, 0.225]).

    The input tensor (ToTensor's fresh output in the pipeline) is overwritten: large temporaries
    cost more than the arithmetic on CPU.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], to_bgr255: bool = True) -> None:
        # y = x * scale + shift, with x in the RGB [0, 1] input (after the channel swap)
        self.scale, self.shift = normalization_affine(mean, std, to_bgr255)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.to_bgr255 = to_bgr255

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Normalize:
        return cls(cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD, cfg.INPUT.TO_BGR255)

    def __call__(
        self, image: Tensor, target: BoxList | None, rng: np.random.Generator | None = None
    ) -> tuple[Tensor, BoxList | None]:
        if self.to_bgr255:  # RGB -> BGR: swap channels 0 and 2 in place
            red = image[0].clone()
            image[0].copy_(image[2])
            image[2].copy_(red)
        return image.mul_(self.scale).add_(self.shift), target

    def __repr__(self) -> str:
        mean, std = self.mean.flatten().tolist(), self.std.flatten().tolist()
        return f"Normalize(mean={mean}, std={std}, to_bgr255={self.to_bgr255})"
