"""make_data_loader: batches, exact resume, workers, class-count check, catalog and registration."""

from __future__ import annotations

import os

import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.config.paths_catalog import DatasetCatalog, DatasetNotFoundError, register_from_cfg
from fcos_core.data import make_data_loader
from fcos_core.data.build import _images_per_process, _loader_for, build_dataset, load_catalog
from fcos_core.data.datasets import COCODataset, ConcatDataset
from fcos_core.data.datasets.synthetic import generate_coco_split
from fcos_core.data.samplers import SeededBatchSampler
from fcos_core.data.transforms import build_transforms


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("build_shapes"))
    generate_coco_split(out, "train", num_images=20, size=96, seed=1)
    generate_coco_split(out, "val", num_images=6, size=96, seed=1)
    return out


@pytest.fixture
def catalog(shapes_dir, monkeypatch):
    monkeypatch.setattr(DatasetCatalog, "REGISTERED", {})
    for split in ("train", "val"):
        DatasetCatalog.register_coco(
            f"t_{split}",
            os.path.join(shapes_dir, "images", split),
            os.path.join(shapes_dir, "annotations", f"instances_{split}.json"),
        )
    return DatasetCatalog


def _cfg(**overrides):
    cfg = default_cfg.clone()
    cfg.DATASETS.TRAIN = ("t_train",)
    cfg.DATASETS.TEST = ("t_val", "t_train")
    cfg.MODEL.FCOS.NUM_CLASSES = 6
    cfg.INPUT.MIN_SIZE_TRAIN = (64, 80, 96)
    cfg.INPUT.MAX_SIZE_TRAIN = 200
    cfg.INPUT.MIN_SIZE_TEST = 96
    cfg.SOLVER.IMS_PER_BATCH = 4
    cfg.TEST.IMS_PER_BATCH = 4
    cfg.SOLVER.MAX_ITER = 12
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.SIZE_DIVISIBILITY = 32
    cfg.SEED = 11
    for key, value in overrides.items():
        node = cfg
        *path, leaf = key.split(".")
        for part in path:
            node = getattr(node, part)
        setattr(node, leaf, value)
    return cfg


def _batches(loader):
    return [(images.tensors, [t.bbox for t in targets], ids) for images, targets, ids in loader]


def _same(a, b):
    return (
        len(a) == len(b)
        and all(torch.equal(x[0], y[0]) and x[2] == y[2] for x, y in zip(a, b))
        and all(torch.equal(p, q) for x, y in zip(a, b) for p, q in zip(x[1], y[1]))
    )


def test_training_loader_yields_max_iter_padded_batches(catalog):
    loader = make_data_loader(_cfg(), is_train=True)
    assert isinstance(loader.batch_sampler, SeededBatchSampler) and len(loader) == 12
    batches = list(loader)
    assert len(batches) == 12
    for images, targets, ids in batches:
        assert images.tensors.shape[0] == 4 and len(targets) == 4 and len(ids) == 4
        assert images.tensors.shape[2] % 32 == 0 and images.tensors.shape[3] % 32 == 0
        for (h, w), target in zip(images.image_sizes, targets):
            assert target.size == (w, h) and target.has_field("labels")


@pytest.mark.parametrize("start_iter", [5, 11])
def test_resumed_loader_replays_the_same_images_and_augmentations(catalog, start_iter):
    cfg = _cfg(**{"DATALOADER.ASPECT_RATIO_GROUPING": False})
    full = _batches(make_data_loader(cfg, is_train=True))
    resumed = _batches(make_data_loader(cfg, is_train=True, start_iter=start_iter))
    assert len(resumed) == 12 - start_iter and _same(resumed, full[start_iter:])
    other_seed = _batches(make_data_loader(_cfg(SEED=12), is_train=True))
    assert not _same(other_seed, full)


def test_worker_processes_give_identical_batches(catalog):
    cfg = _cfg(**{"SOLVER.MAX_ITER": 4})
    in_process = _batches(make_data_loader(cfg, is_train=True))
    cfg.DATALOADER.NUM_WORKERS = 2
    assert _same(_batches(make_data_loader(cfg, is_train=True)), in_process)


def test_test_loaders_one_per_dataset_in_order(catalog):
    loaders = make_data_loader(_cfg(), is_train=False)
    assert [loader.dataset.name for loader in loaders] == ["t_val", "t_train"]
    ids = [i for _, _, batch_ids in loaders[0] for i in batch_ids]
    assert sorted(ids) == list(range(6))
    assert not loaders[0].dataset.skip_bad_images
    assert make_data_loader(_cfg(), is_train=True).dataset.skip_bad_images


def test_num_classes_mismatch_says_which_value_to_set(catalog):
    with pytest.raises(ValueError, match=r"has 5 categories; set MODEL.FCOS.NUM_CLASSES 6"):
        make_data_loader(_cfg(**{"MODEL.FCOS.NUM_CLASSES": 81}), is_train=True)


def test_unknown_dataset_lists_known_names(catalog):
    with pytest.raises(DatasetNotFoundError) as err:
        make_data_loader(_cfg(**{"DATASETS.TRAIN": ("t_trian",)}), is_train=True)
    message = str(err.value)
    assert (
        "Did you mean t_train" in message
        and "coco_2017_train" in message
        and "shapes_train" in message
    )


def test_concat_training_datasets(catalog):
    datasets = build_dataset(("t_train", "t_val"), None, load_catalog(_cfg()), is_train=True)
    assert len(datasets) == 1 and isinstance(datasets[0], ConcatDataset) and len(datasets[0]) == 26
    image, target, index = datasets[0][(21, 5)]
    assert index == 21 and datasets[0].get_img_info(21)["id"] == 2
    loader = make_data_loader(_cfg(**{"DATASETS.TRAIN": ("t_train", "t_val")}), is_train=True)
    assert len(list(loader)) == 12


def test_concat_rejects_different_classes(catalog, coco_writer):
    coco_writer.add_image(1, boxes=[(1, 1, 5, 5, 3)])
    other = COCODataset(coco_writer.write(), coco_writer.image_dir, True)
    with pytest.raises(ValueError, match="different classes"):
        ConcatDataset([_catalog_dataset("t_val"), other])


def _catalog_dataset(name):
    entry = DatasetCatalog.get(name)
    return COCODataset(**entry["args"], remove_images_without_annotations=True, name=name)


def test_register_from_config_entries_and_files(shapes_dir, monkeypatch, tmp_path):
    monkeypatch.setattr(DatasetCatalog, "REGISTERED", {})
    image_dir = os.path.join(shapes_dir, "images", "val")
    ann_file = os.path.join(shapes_dir, "annotations", "instances_val.json")
    register_file = tmp_path / "my_datasets.py"
    register_file.write_text(
        "from fcos_core.config.paths_catalog import DatasetCatalog\n"
        f"DatasetCatalog.register_coco('from_file', {image_dir!r}, {ann_file!r})\n"
    )
    cfg = _cfg(**{"DATASETS.REGISTER": (("from_cfg", image_dir, ann_file), str(register_file))})
    register_from_cfg(cfg)
    assert DatasetCatalog.get("from_cfg")["args"] == {"root": image_dir, "ann_file": ann_file}
    assert DatasetCatalog.get("from_file")["args"]["ann_file"] == ann_file
    cfg.DATASETS.TEST = ("from_file",)
    assert len(make_data_loader(cfg, is_train=False)[0].dataset) == 6
    with pytest.raises(ValueError, match="DATASETS.REGISTER entry"):
        register_from_cfg(_cfg(**{"DATASETS.REGISTER": (("only", "two"),)}))
    with pytest.raises(FileNotFoundError, match="nope.py"):
        register_from_cfg(_cfg(**{"DATASETS.REGISTER": ("nope.py",)}))
    with pytest.raises(ValueError, match="built in"):
        DatasetCatalog.register_coco("coco_2017_train", image_dir, ann_file)


def test_builtin_names_resolve_under_data_dir(monkeypatch):
    monkeypatch.setattr(DatasetCatalog, "DATA_DIR", "/data")
    coco = DatasetCatalog.get("coco_2014_minival")
    assert coco == {
        "factory": "COCODataset",
        "args": {
            "root": "/data/coco/val2014",
            "ann_file": "/data/coco/annotations/instances_minival2014.json",
        },
    }
    assert DatasetCatalog.get("voc_2007_trainval") == {
        "factory": "PascalVOCDataset",
        "args": {"data_dir": "/data/voc/VOC2007", "split": "trainval"},
    }
    for name in (
        "coco_2014_train",
        "coco_2014_valminusminival",
        "coco_2017_train",
        "coco_2017_val",
        "coco_2017_test_dev",
        "voc_2007_test",
        "voc_2012_train",
        "voc_2012_val",
    ):
        assert DatasetCatalog.get(name)["args"]


def test_images_per_batch_must_split_across_processes():
    assert _images_per_process(16, "SOLVER.IMS_PER_BATCH", 8) == 2
    with pytest.raises(
        ValueError, match=r"SOLVER.IMS_PER_BATCH \(6\) must be a positive multiple .* \(4\)"
    ):
        _images_per_process(6, "SOLVER.IMS_PER_BATCH", 4)


def test_data_dir_environment_variable(tmp_path):
    import subprocess
    import sys

    code = (
        "from fcos_core.config.paths_catalog import DatasetCatalog as C; "
        "print(C.get('coco_2017_val')['args']['root'])"
    )
    env = dict(os.environ, FCOS_DATA_DIR=str(tmp_path), PYTHONPATH=os.getcwd())
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == os.path.join(str(tmp_path), "coco", "val2017")


def test_model_catalog_urls():
    from fcos_core.config.paths_catalog import ModelCatalog

    assert ModelCatalog.get("catalog://ImageNetPretrained/MSRA/R-50") == (
        "https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/MSRA/R-50.pkl"
    )
    assert ModelCatalog.get("ImageNetPretrained/FAIR/20171220/X-101-32x8d").endswith(
        "20171220/X-101-32x8d.pkl"
    )
    assert ModelCatalog.get("FCOS/FCOS_imprv_R_50_FPN_1x") == (
        "https://huggingface.co/tianzhi/FCOS/resolve/main/FCOS_imprv_R_50_FPN_1x.pth?download=true"
    )
    assert ModelCatalog.get("ImageNetPretrained/torchvision/R-18").endswith("resnet18-f37072fd.pth")
    with pytest.raises(KeyError, match="Did you mean ImageNetPretrained/MSRA/R-50"):
        ModelCatalog.get("ImageNetPretrained/MSRA/R-5O")


def test_two_process_shares_equal_the_single_process_batches(catalog):
    """Same global batch (ids and augmented pixels) for 1 process and for 2 ranks together."""
    cfg = _cfg(**{"SOLVER.MAX_ITER": 6})
    dataset = build_dataset(("t_train",), None, load_catalog(cfg), True)[0]
    dataset.transforms = build_transforms(cfg, is_train=True)

    def samples(world, rank):
        loader = _loader_for(cfg, dataset, True, (world, rank), 0)
        return [
            {
                i: (tuple(t.bbox.flatten().tolist()), size)
                for i, t, size in zip(ids, tg, im.image_sizes)
            }
            for im, tg, ids in loader
        ]

    single = samples(1, 0)
    rank0, rank1 = samples(2, 0), samples(2, 1)
    for it in range(6):
        assert single[it] == {**rank0[it], **rank1[it]}


def test_register_entries_from_a_yaml_config(shapes_dir, monkeypatch, tmp_path):
    monkeypatch.setattr(DatasetCatalog, "REGISTERED", {})
    image_dir = os.path.join(shapes_dir, "images", "val")
    ann_file = os.path.join(shapes_dir, "annotations", "instances_val.json")
    config = tmp_path / "c.yaml"
    config.write_text(f"DATASETS:\n  REGISTER:\n    - [yaml_val, {image_dir}, {ann_file}]\n")
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(config))
    register_from_cfg(cfg)
    assert DatasetCatalog.get("yaml_val")["args"]["root"] == image_dir
