"""Where datasets and pretrained weights live: `DatasetCatalog` and `ModelCatalog`.

Datasets are looked up by name (`DATASETS.TRAIN ("coco_2017_train",)`). Built-in names resolve
under `DatasetCatalog.DATA_DIR`: "datasets" by default, or the `FCOS_DATA_DIR` environment variable
when set at import time; code may also assign `DatasetCatalog.DATA_DIR` directly.

Custom COCO-json data (see docs/custom_datasets.md) is registered by name, without editing this
file, in any of three ways:
- python: `DatasetCatalog.register_coco("mydata_train", "data/my/images", "data/my/train.json")`;
- config: `DATASETS.REGISTER (("mydata_train", "data/my/images", "data/my/train.json"),)`;
- a python file listed in DATASETS.REGISTER (or passed to the tools' `--register-file`) whose
  code calls `DatasetCatalog.register_coco(...)`.
Relative paths given to `register_*` resolve against the current working directory.

The synthetic shapes dataset (`shapes_train`, `shapes_val`, `shapes_voc_train`, `shapes_voc_test`)
is generated under DATA_DIR the first time a dataset is built from its name. Its small-object
variant: `shapes_small_train` / `shapes_small_val` (256 px images, 8-32 objects of 4-40 px each,
nearly all COCO "small") and `shapes_large_val` (1024 px images, 30-90 objects of 8-40 px, for
sliced inference).
"""

from __future__ import annotations

import difflib
import logging
import os
import runpy
from collections.abc import Sequence
from typing import Any

from yacs.config import CfgNode

logger = logging.getLogger(__name__)

# Synthetic shapes defaults (image side in px, seed); counts are per catalog name below.
SHAPES_IMAGE_SIZE = 256
SHAPES_SEED = 0
# Objects of the small-object splits, as keyword arguments of
# fcos_core.data.datasets.synthetic_render.ObjectSpec (sides in px, objects tried per image).
SHAPES_SMALL_OBJECTS = {"min_side": 4, "max_side": 40, "min_objects": 8, "max_objects": 32}
SHAPES_LARGE_IMAGE_SIZE = 1024
SHAPES_LARGE_OBJECTS = {"min_side": 8, "max_side": 40, "min_objects": 30, "max_objects": 90}


class DatasetNotFoundError(KeyError):
    """Unknown dataset name; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _coco(img_dir: str, ann_file: str) -> dict[str, str]:
    return {"img_dir": img_dir, "ann_file": ann_file}


def _voc(data_dir: str, split: str) -> dict[str, str]:
    return {"data_dir": data_dir, "split": split}


def _builtin_datasets() -> dict[str, dict[str, str]]:
    """The original maskrcnn-benchmark / FCOS names; paths relative to DATA_DIR."""
    ann = "coco/annotations/"
    entries = {
        "coco_2017_train": _coco("coco/train2017", ann + "instances_train2017.json"),
        "coco_2017_val": _coco("coco/val2017", ann + "instances_val2017.json"),
        "coco_2017_test_dev": _coco("coco/test2017", ann + "image_info_test-dev2017.json"),
        "coco_2014_train": _coco("coco/train2014", ann + "instances_train2014.json"),
        "coco_2014_val": _coco("coco/val2014", ann + "instances_val2014.json"),
        "coco_2014_minival": _coco("coco/val2014", ann + "instances_minival2014.json"),
        "coco_2014_valminusminival": _coco(
            "coco/val2014", ann + "instances_valminusminival2014.json"
        ),
    }
    for split, img_dir in (("train", "train2014"), ("val", "val2014"), ("minival", "val2014")):
        entries[f"keypoints_coco_2014_{split}"] = _coco(
            f"coco/{img_dir}", ann + f"person_keypoints_{split}2014.json"
        )
    entries["keypoints_coco_2014_valminusminival"] = _coco(
        "coco/val2014", ann + "person_keypoints_valminusminival2014.json"
    )
    for year in ("2007", "2012"):
        for split in ("train", "val", "trainval", "test"):
            entries[f"voc_{year}_{split}"] = _voc(f"voc/VOC{year}", split)
            if not (year == "2012" and split == "test"):  # VOC2012 test has no public annotations
                entries[f"voc_{year}_{split}_cocostyle"] = _coco(
                    f"voc/VOC{year}/JPEGImages",
                    f"voc/VOC{year}/Annotations/pascal_{split}{year}.json",
                )
    for split in ("train", "val", "test"):
        entries[f"cityscapes_fine_instanceonly_seg_{split}_cocostyle"] = _coco(
            "cityscapes/images",
            f"cityscapes/annotations/instancesonly_filtered_gtFine_{split}.json",
        )
    return entries


def _synthetic(
    fmt: str,
    split: str,
    num_images: int,
    image_size: int = SHAPES_IMAGE_SIZE,
    objects: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A synthetic split's spec; `objects` None: the original object sizes and counts."""
    return {
        "fmt": fmt,
        "split": split,
        "num_images": num_images,
        "image_size": image_size,
        "seed": SHAPES_SEED,
        "out_dir": None,
        "objects": None if objects is None else dict(objects),
    }


class DatasetCatalog:
    """Dataset name -> dict(factory=<dataset class name>, args=<constructor kwargs>)."""

    DATA_DIR = os.environ.get("FCOS_DATA_DIR", "datasets")
    DATASETS: dict[str, dict[str, str]] = _builtin_datasets()
    SYNTHETIC: dict[str, dict[str, Any]] = {
        "shapes_train": _synthetic("coco", "train", 2000),
        "shapes_val": _synthetic("coco", "val", 300),
        "shapes_voc_train": _synthetic("voc", "train", 200),
        "shapes_voc_test": _synthetic("voc", "test", 100),
        "shapes_small_train": _synthetic("coco", "small_train", 2000, objects=SHAPES_SMALL_OBJECTS),
        "shapes_small_val": _synthetic("coco", "small_val", 200, objects=SHAPES_SMALL_OBJECTS),
        "shapes_large_val": _synthetic(
            "coco", "large_val", 40, SHAPES_LARGE_IMAGE_SIZE, SHAPES_LARGE_OBJECTS
        ),
    }
    # User registrations: name -> dict(factory=..., args=...) with absolute paths.
    REGISTERED: dict[str, dict[str, Any]] = {}

    @classmethod
    def names(cls) -> list[str]:
        """Every known dataset name, sorted."""
        return sorted({*cls.DATASETS, *cls.SYNTHETIC, *cls.REGISTERED})

    @classmethod
    def get(cls, name: str) -> dict[str, Any]:
        """Resolve `name` (a lookup only: it never writes files).

        Returns:
            dict(factory="COCODataset" | "PascalVOCDataset", args=dict of constructor kwargs);
            a synthetic split adds ``synthetic=dict(fmt, out_dir, split, num_images,
            image_size, seed, objects)``, which ``fcos_core.data.build.dataset_entry`` renders
            (``objects``: ObjectSpec keyword arguments, or None for the original objects).

        Raises:
            DatasetNotFoundError: `name` is unknown (the message lists the known names).
        """
        if name in cls.REGISTERED:
            entry = cls.REGISTERED[name]
            return {"factory": entry["factory"], "args": dict(entry["args"])}
        if name in cls.SYNTHETIC:
            return cls._get_synthetic(name, cls.SYNTHETIC[name])
        if name in cls.DATASETS:
            attrs = cls.DATASETS[name]
            if "ann_file" in attrs:
                args = {
                    "root": os.path.join(cls.DATA_DIR, attrs["img_dir"]),
                    "ann_file": os.path.join(cls.DATA_DIR, attrs["ann_file"]),
                }
                return {"factory": "COCODataset", "args": args}
            args = {
                "data_dir": os.path.join(cls.DATA_DIR, attrs["data_dir"]),
                "split": attrs["split"],
            }
            return {"factory": "PascalVOCDataset", "args": args}
        raise DatasetNotFoundError(cls._unknown_message(name))

    @classmethod
    def _unknown_message(cls, name: str) -> str:
        close = difflib.get_close_matches(name, cls.names(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return (
            f"Dataset {name!r} is not in the catalog.{hint} "
            f"Known datasets: {', '.join(cls.names())}. "
            "Register custom COCO-json data with DatasetCatalog.register_coco or DATASETS.REGISTER."
        )

    @classmethod
    def _get_synthetic(cls, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """The entry of a synthetic split; ``entry["synthetic"]`` says how `fcos_core.data`
        renders it (``data.build.dataset_entry``): a lookup never writes files."""
        fmt = spec["fmt"]
        split = f"{spec['split']}{spec['num_images']}"  # e.g. train2000: sizes never collide
        out_dir = spec["out_dir"] or os.path.join(
            cls.DATA_DIR,
            f"shapes{'_voc' if fmt == 'voc' else ''}_{spec['image_size']}px_seed{spec['seed']}",
        )
        render = {
            "fmt": fmt,
            "out_dir": out_dir,
            "split": split,
            "num_images": spec["num_images"],
            "image_size": spec["image_size"],
            "seed": spec["seed"],
            "objects": spec.get("objects"),
        }
        if fmt == "coco":
            args = {
                "root": os.path.join(out_dir, "images", split),
                "ann_file": os.path.join(out_dir, "annotations", f"instances_{split}.json"),
            }
            return {"factory": "COCODataset", "args": args, "synthetic": render}
        args = {"data_dir": out_dir, "split": split}
        return {"factory": "PascalVOCDataset", "args": args, "synthetic": render}

    @classmethod
    def _register(cls, name: str, entry: dict[str, Any]) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
        if name in cls.DATASETS or name in cls.SYNTHETIC:
            raise ValueError(
                f"dataset name {name!r} is built in; register your data under another name"
            )
        previous = cls.REGISTERED.get(name)
        if previous is not None and previous != entry:
            logger.info(
                "dataset %r re-registered: %s (was %s)", name, entry["args"], previous["args"]
            )
        cls.REGISTERED[name] = entry

    @classmethod
    def register_coco(cls, name: str, image_dir: str, ann_file: str) -> None:
        """Register a COCO-json dataset: images under `image_dir`, annotations in `ann_file`.

        Category ids may be any integers; labels are assigned in increasing id order, and the
        number of categories must equal MODEL.FCOS.NUM_CLASSES - 1 (checked when building).
        """
        args = {"root": os.path.abspath(image_dir), "ann_file": os.path.abspath(ann_file)}
        cls._register(name, {"factory": "COCODataset", "args": args})

    @classmethod
    def register_voc(
        cls, name: str, data_dir: str, split: str, classes: Sequence[str] | None = None
    ) -> None:
        """Register a Pascal-VOC-layout dataset (`classes` default: the 20 VOC classes)."""
        args: dict[str, Any] = {"data_dir": os.path.abspath(data_dir), "split": split}
        if classes is not None:
            args["classes"] = tuple(classes)
        cls._register(name, {"factory": "PascalVOCDataset", "args": args})

    @classmethod
    def register_synthetic(
        cls,
        name: str,
        split: str,
        num_images: int,
        image_size: int = SHAPES_IMAGE_SIZE,
        seed: int = SHAPES_SEED,
        fmt: str = "coco",
        out_dir: str | None = None,
        objects: dict[str, int] | None = None,
    ) -> None:
        """Register a synthetic shapes split of a chosen size; rendered when a dataset is
        built from it (`fcos_core.data.build.dataset_entry`). `objects`: keyword arguments of
        `fcos_core.data.datasets.synthetic_render.ObjectSpec` (min_side, max_side, min_objects,
        max_objects), None for the original objects.

        Synthetic names may be registered again (also the built-in shapes_* ones, e.g. to change
        the image count or size); the files are regenerated when the arguments differ.
        """
        if fmt not in ("coco", "voc"):
            raise ValueError(f"synthetic format must be 'coco' or 'voc', got {fmt!r}")
        if name in cls.DATASETS or name in cls.REGISTERED:
            raise ValueError(f"dataset name {name!r} is already taken")
        spec = {
            "fmt": fmt,
            "split": split,
            "num_images": int(num_images),
            "image_size": int(image_size),
            "seed": int(seed),
            "out_dir": os.path.abspath(out_dir) if out_dir else None,
            "objects": None if objects is None else dict(objects),
        }
        cls.SYNTHETIC[name] = spec


def load_register_file(path: str) -> None:
    """Run a user python file that registers datasets (calls DatasetCatalog.register_coco ...)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset register file not found: {path}")
    runpy.run_path(path, run_name="__fcos_register__")


def register_from_cfg(cfg: CfgNode) -> None:
    """Apply DATASETS.REGISTER: entries (name, image_dir, ann_file) or paths of register files."""
    for entry in cfg.DATASETS.REGISTER:
        if isinstance(entry, str):
            load_register_file(entry)
        elif (
            isinstance(entry, (list, tuple))
            and len(entry) == 3
            and all(isinstance(e, str) for e in entry)
        ):
            DatasetCatalog.register_coco(*entry)
        else:
            raise ValueError(
                "each DATASETS.REGISTER entry must be (name, image_dir, ann_file) or the path of a "
                f"python file that registers datasets; got {entry!r}"
            )


class ModelCatalog:
    """`catalog://` names -> URLs of pretrained weights (facts from the original repositories).

    The original FCOS model zoo and its MobileNetV2 ImageNet backbone are served from the Hugging
    Face hub repository ``tianzhi/FCOS`` (the file host the original README first linked is
    retired); Detectron's ImageNet ``.pkl`` files from dl.fbaipublicfiles.com; torchvision's from
    download.pytorch.org. For a name in ``PROVIDED_FILES`` no live host is known: ``get`` returns
    the bare file name, which the checkpointer looks for in the download cache.
    """

    S3_C2_DETECTRON_URL = "https://dl.fbaipublicfiles.com/detectron"
    C2_IMAGENET_MODELS = {
        "MSRA/R-50": "ImageNetPretrained/MSRA/R-50.pkl",
        "MSRA/R-50-GN": "ImageNetPretrained/47261647/R-50-GN.pkl",
        "MSRA/R-101": "ImageNetPretrained/MSRA/R-101.pkl",
        "MSRA/R-101-GN": "ImageNetPretrained/47592356/R-101-GN.pkl",
        "FAIR/20171220/X-101-32x8d": "ImageNetPretrained/20171220/X-101-32x8d.pkl",
    }
    # No live host: Detectron's X-101-64x4d link is dead (the FCOS README says so) and so is the
    # mirror the README gave instead. name -> the file to provide (Detectron .pkl format).
    PROVIDED_FILES = {"FAIR/20171220/X-101-64x4d": "X-101-64x4d.pkl"}
    HF_FCOS_URL = "https://huggingface.co/tianzhi/FCOS/resolve/main/{}?download=true"
    # torchvision ImageNet weights (IMAGENET1K_V1), for the R-18/R-34/MobileNetV2 backbones, and
    # the MobileNetV2 ImageNet weights the original FCOS MNV2 configs start from.
    TORCHVISION_MODELS = {
        "torchvision/R-18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        "torchvision/R-34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
        "torchvision/R-50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
        "torchvision/R-101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
        "torchvision/R-152": "https://download.pytorch.org/models/resnet152-394f9c45.pth",
        "torchvision/MNV2": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
        "FCOS/MNV2": HF_FCOS_URL.format("mobilenet_v2-ecbe2b5.pth") + "#mobilenet_v2-ecbe2b5.pth",
    }
    # Trained FCOS models of the original model zoo (COCO, 80 classes), by their README names;
    # each is <name>.pth on the hub.
    FCOS_MODELS = (
        "FCOS_R_50_FPN_1x",
        "FCOS_imprv_R_50_FPN_1x",
        "FCOS_imprv_dcnv2_R_50_FPN_1x",
        "FCOS_R_101_FPN_2x",
        "FCOS_imprv_R_101_FPN_2x",
        "FCOS_imprv_dcnv2_R_101_FPN_2x",
        "FCOS_X_101_32x8d_FPN_2x",
        "FCOS_imprv_X_101_32x8d_FPN_2x",
        "FCOS_imprv_dcnv2_X_101_32x8d_FPN_2x",
        "FCOS_X_101_64x4d_FPN_2x",
        "FCOS_imprv_X_101_64x4d_FPN_2x",
        "FCOS_imprv_dcnv2_X_101_64x4d_FPN_2x",
        "FCOS_syncbn_bs32_c128_MNV2_FPN_1x",
        "FCOS_syncbn_bs32_MNV2_FPN_1x",
        "FCOS_bn_bs16_MNV2_FPN_1x",
    )

    @classmethod
    def names(cls) -> list[str]:
        """Every known catalog name (without the `catalog://` prefix)."""
        imagenet = (*cls.C2_IMAGENET_MODELS, *cls.PROVIDED_FILES, *cls.TORCHVISION_MODELS)
        return sorted(
            [f"ImageNetPretrained/{k}" for k in imagenet] + [f"FCOS/{k}" for k in cls.FCOS_MODELS]
        )

    @classmethod
    def get(cls, name: str) -> str:
        """URL of `name` ("ImageNetPretrained/MSRA/R-50", "FCOS/FCOS_R_50_FPN_1x", ...), or the
        bare file name for a name in ``PROVIDED_FILES``.

        A leading "catalog://" is accepted. The URL fragment (after '#'), when present, names the
        file to cache the download as.
        """
        key = name.removeprefix("catalog://")
        if key.startswith("ImageNetPretrained/"):
            short = key[len("ImageNetPretrained/") :]
            if short in cls.PROVIDED_FILES:
                return cls.PROVIDED_FILES[short]
            if short in cls.C2_IMAGENET_MODELS:
                return f"{cls.S3_C2_DETECTRON_URL}/{cls.C2_IMAGENET_MODELS[short]}"
            if short in cls.TORCHVISION_MODELS:
                return cls.TORCHVISION_MODELS[short]
        if key.startswith("FCOS/") and key[len("FCOS/") :] in cls.FCOS_MODELS:
            return cls.HF_FCOS_URL.format(key[len("FCOS/") :] + ".pth")
        close = difflib.get_close_matches(key, cls.names(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"model {name!r} is not in the catalog.{hint} Known: {', '.join(cls.names())}"
        )
