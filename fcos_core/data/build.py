"""`make_data_loader(cfg, is_train, is_distributed, start_iter)`: datasets to batches.

Training returns ONE DataLoader that yields exactly `SOLVER.MAX_ITER - start_iter` batches
`(images: ImageList, targets: tuple[BoxList], ids: tuple[int])`. Its batch sampler is a
`SeededBatchSampler`: batch `it` holds `(dataset_index, aug_seed)` pairs with
`aug_seed = derive_seed(cfg.SEED, it, slot * world_size + rank)`, and the index order is a pure
function of cfg.SEED, so `make_data_loader(cfg, start_iter=k)` continues exactly where an
interrupted run stopped (same images, same augmentation). Testing returns a list of DataLoaders,
one per DATASETS.TEST entry, in dataset order.
"""

from __future__ import annotations

import bisect
import importlib
import importlib.util
import logging
from typing import Any

import cv2
import torch
from yacs.config import CfgNode

from fcos_core.data.collate_batch import BatchCollator, BBoxAugCollator
from fcos_core.data.datasets import COCODataset, ConcatDataset, PascalVOCDataset
from fcos_core.data.datasets.synthetic import ensure_split
from fcos_core.data.datasets.synthetic_render import SHAPE_CLASSES, ObjectSpec
from fcos_core.data.samplers import (
    DistributedSampler,
    GroupedBatchSampler,
    IterationBasedBatchSampler,
    SeededBatchSampler,
)
from fcos_core.data.transforms import build_transforms
from fcos_core.structures.box_convention import DEFAULT_BOX_CONVENTION
from fcos_core.utils.comm import get_world_and_rank
from fcos_core.utils.device_setup import pin_memory_for
from fcos_core.utils.preemption import ignore_stop_signals

logger = logging.getLogger(__name__)

DATASET_FACTORIES = {"COCODataset": COCODataset, "PascalVOCDataset": PascalVOCDataset}


def load_catalog(cfg: CfgNode) -> Any:
    """The cfg.PATHS_CATALOG module (name or .py file), after applying DATASETS.REGISTER."""
    name = cfg.PATHS_CATALOG
    if name.endswith(".py"):
        spec = importlib.util.spec_from_file_location("fcos_user_paths_catalog", name)
        if spec is None or spec.loader is None:
            raise FileNotFoundError(f"PATHS_CATALOG file not found: {name}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(name)
    if hasattr(module, "register_from_cfg"):
        module.register_from_cfg(cfg)
    return module


def dataset_entry(catalog: Any, name: str) -> dict[str, Any]:
    """``catalog.DatasetCatalog.get(name)``; a synthetic split is rendered to disk first (once:
    an identical split already there is reused) and its entry completed.

    Returns:
        dict(factory=<dataset class name>, args=<constructor kwargs>).
    """
    entry = dict(catalog.DatasetCatalog.get(name))
    spec = entry.pop("synthetic", None)
    if spec is None:
        return entry
    ensure_split(
        spec["fmt"],
        spec["out_dir"],
        spec["split"],
        spec["num_images"],
        spec["image_size"],
        spec["seed"],
        ObjectSpec(**(spec.get("objects") or {})),
    )
    if spec["fmt"] == "voc":
        entry["args"] = dict(entry["args"], classes=SHAPE_CLASSES)
    return entry


def build_dataset(
    dataset_names: tuple[str, ...] | list[str],
    transforms: Any,
    catalog: Any,
    is_train: bool = True,
    skip_bad_images: bool = False,
    box_convention: str = DEFAULT_BOX_CONVENTION,
    keep_empty_images: bool = False,
) -> list[Any]:
    """Datasets for `dataset_names` with targets in `box_convention` (MODEL.BOX_CONVENTION); in
    training they are concatenated into one.

    Training leaves out images without usable boxes unless ``keep_empty_images``
    (DATASETS.KEEP_EMPTY_IMAGES); testing keeps every image.

    Returns:
        [ConcatDataset or single dataset] in training, one dataset per name in testing.
    """
    if not isinstance(dataset_names, (list, tuple)) or not dataset_names:
        raise ValueError(
            f"DATASETS.{'TRAIN' if is_train else 'TEST'} must be a non-empty list of dataset "
            f"names, got {dataset_names!r}"
        )
    datasets = []
    for name in dataset_names:
        entry = dataset_entry(catalog, name)
        factory = DATASET_FACTORIES[entry["factory"]]
        args = dict(entry["args"], transforms=transforms, name=name)
        args["remove_images_without_annotations"] = is_train and not keep_empty_images
        if factory is not COCODataset:
            args["use_difficult"] = not is_train
        args["skip_bad_images"] = skip_bad_images and is_train
        args["box_convention"] = box_convention
        datasets.append(factory(**args))
    if not is_train:
        return datasets
    return [datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)]


def check_num_classes(cfg: CfgNode, dataset: Any) -> None:
    """MODEL.FCOS.NUM_CLASSES must be the dataset's category count + 1 (background)."""
    num_categories = len(dataset.class_names)
    if cfg.MODEL.FCOS.NUM_CLASSES != num_categories + 1:
        raise ValueError(
            f"MODEL.FCOS.NUM_CLASSES is {cfg.MODEL.FCOS.NUM_CLASSES} but dataset "
            f"{getattr(dataset, 'name', '?')!r} has {num_categories} categories; set "
            f"MODEL.FCOS.NUM_CLASSES {num_categories + 1} (categories + 1 for background)"
        )


def aspect_ratio_groups(dataset: Any) -> list[int]:
    """Per image: 0 if landscape (height / width < 1), 1 otherwise (from annotation sizes)."""
    groups = []
    for i in range(len(dataset)):
        info = dataset.get_img_info(i)
        groups.append(bisect.bisect_right([1.0], float(info["height"]) / float(info["width"])))
    return groups


def make_batch_sampler(
    dataset: Any,
    sampler: Any,
    aspect_grouping: bool,
    images_per_batch: int,
    num_iters: int | None = None,
    start_iter: int = 0,
) -> Any:
    """Batch `sampler`'s indices (grouped by aspect ratio or not); iteration-based if num_iters."""
    if aspect_grouping:
        batch_sampler: Any = GroupedBatchSampler(
            sampler, aspect_ratio_groups(dataset), images_per_batch
        )
    else:
        batch_sampler = torch.utils.data.BatchSampler(sampler, images_per_batch, drop_last=False)
    if num_iters is not None:
        batch_sampler = IterationBasedBatchSampler(batch_sampler, num_iters, start_iter)
    return batch_sampler


def _worker_init(worker_id: int) -> None:
    """One compute thread per loader worker; the workers themselves are the parallelism."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    ignore_stop_signals()  # SIGTERM / SIGUSR1: the main process checkpoints and ends the run


def _images_per_process(total: int, key: str, world_size: int) -> int:
    if total <= 0 or total % world_size != 0:
        raise ValueError(
            f"{key} ({total}) must be a positive multiple of the number of processes ({world_size})"
        )
    return total // world_size


def _test_time_augmented(cfg: CfgNode, is_train: bool) -> bool:
    """Test loaders hand over untransformed images when TEST.BBOX_AUG.ENABLED."""
    return not is_train and cfg.TEST.BBOX_AUG.ENABLED


def _loader_for(
    cfg: CfgNode, dataset: Any, is_train: bool, world: tuple[int, int], start_iter: int
) -> torch.utils.data.DataLoader:
    """One DataLoader over `dataset` for this process (`world` = (world_size, rank))."""
    world_size, rank = world
    key = "SOLVER.IMS_PER_BATCH" if is_train else "TEST.IMS_PER_BATCH"
    total = cfg.SOLVER.IMS_PER_BATCH if is_train else cfg.TEST.IMS_PER_BATCH
    sampler = DistributedSampler(dataset, world_size, rank, shuffle=is_train, seed=cfg.SEED)
    batch_sampler = make_batch_sampler(
        dataset,
        sampler,
        cfg.DATALOADER.ASPECT_RATIO_GROUPING,
        _images_per_process(total, key, world_size),
        cfg.SOLVER.MAX_ITER if is_train else None,
        start_iter,
    )
    if is_train:
        batch_sampler = SeededBatchSampler(batch_sampler, cfg.SEED, rank, world_size)
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        collate_fn=(
            BBoxAugCollator()
            if _test_time_augmented(cfg, is_train)
            else BatchCollator(cfg.DATALOADER.SIZE_DIVISIBILITY)
        ),
        worker_init_fn=_worker_init,
        pin_memory=pin_memory_for(cfg.MODEL.DEVICE),  # ImageList / BoxList.pin_memory
    )


def make_data_loader(
    cfg: CfgNode, is_train: bool = True, is_distributed: bool = False, start_iter: int = 0
) -> Any:
    """Training: one DataLoader over DATASETS.TRAIN; testing: a list, one per DATASETS.TEST.

    Args:
        cfg: the config.
        is_train: training (seeded shuffle, augmentation, SOLVER.MAX_ITER batches) or testing.
        is_distributed: split the data across the processes of the default process group.
        start_iter: first iteration (resume); training yields batches start_iter..MAX_ITER-1.

    Returns:
        Training: a DataLoader whose `batch_sampler` is a `SeededBatchSampler` (`len()` is
        SOLVER.MAX_ITER). Testing: list of DataLoaders (plain indices, no shuffling; with several
        processes each gets an interleaved share, padded by repeating the first indices).
    """
    world = get_world_and_rank() if is_distributed else (1, 0)
    names = cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST
    # TEST.BBOX_AUG transforms each original image once per pass itself (as the original).
    transforms = None if _test_time_augmented(cfg, is_train) else build_transforms(cfg, is_train)
    skip = cfg.DATALOADER.SKIP_BAD_IMAGES
    datasets = build_dataset(
        names,
        transforms,
        load_catalog(cfg),
        is_train,
        skip_bad_images=skip,
        box_convention=cfg.MODEL.BOX_CONVENTION,
        keep_empty_images=cfg.DATASETS.KEEP_EMPTY_IMAGES,
    )
    loaders = []
    for dataset in datasets:
        check_num_classes(cfg, dataset)
        loaders.append(_loader_for(cfg, dataset, is_train, world, start_iter))
    return loaders[0] if is_train else loaders
