"""`ConcatDataset`: several detection datasets used as one (coco_2014_train + valminusminival)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import torch

from fcos_core.data.datasets.base import split_item


class ConcatDataset(torch.utils.data.ConcatDataset):
    """Concatenation that forwards `(index, aug_seed)` items and `get_img_info`.

    All parts must have the same `class_names` (same labels mean the same classes).
    """

    def __init__(self, datasets: Sequence[Any]) -> None:
        super().__init__(datasets)
        names = [tuple(getattr(d, "class_names", ())) for d in self.datasets]
        if any(n != names[0] for n in names):
            described = ", ".join(
                f"{getattr(d, 'name', i)}: {list(n)}"
                for i, (d, n) in enumerate(zip(self.datasets, names))
            )
            raise ValueError(f"cannot concatenate datasets with different classes ({described})")
        self.class_names = names[0]
        self.name = "+".join(str(getattr(d, "name", "?")) for d in self.datasets)

    def get_idxs(self, idx: int) -> tuple[int, int]:
        """Global index -> (dataset number, index inside it)."""
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {self.name} of {len(self)}")
        dataset_idx = bisect.bisect_right(self.cumulative_sizes, idx)
        sample_idx = idx if dataset_idx == 0 else idx - self.cumulative_sizes[dataset_idx - 1]
        return dataset_idx, sample_idx

    def __getitem__(self, item: Any) -> tuple[Any, Any, int]:
        index, aug_seed = split_item(item)
        dataset_idx, sample_idx = self.get_idxs(index)
        key = sample_idx if aug_seed is None else (sample_idx, aug_seed)
        image, target, inner = self.datasets[dataset_idx][key]
        offset = 0 if dataset_idx == 0 else self.cumulative_sizes[dataset_idx - 1]
        return image, target, inner + offset

    def get_img_info(self, idx: int) -> dict[str, Any]:
        dataset_idx, sample_idx = self.get_idxs(idx)
        return self.datasets[dataset_idx].get_img_info(sample_idx)
