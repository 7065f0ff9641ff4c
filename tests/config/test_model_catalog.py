"""ModelCatalog and the zoo configs point at live hosts; the X-101-64x4d ImageNet file, which no
live host serves, is looked for in the cache with an error that says what to provide; a .pkl
named by the catalog loads without flags."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from torch import nn

from fcos_core.config import cfg as default_cfg
from fcos_core.config.paths_catalog import ModelCatalog
from fcos_core.utils.checkpoint import DetectronCheckpointer
from fcos_core.utils.model_zoo import CACHE_ENV
from fcos_core.utils.safe_io import CheckpointLoadError

REPO = Path(__file__).resolve().parents[2]
LIVE_HOSTS = ("https://huggingface.co/tianzhi/FCOS/", "https://dl.fbaipublicfiles.com/detectron/",
              "https://download.pytorch.org/models/")  # fmt: skip
RETIRED = re.compile(r"cloudstor|aarnet", re.IGNORECASE)
HUB = "https://huggingface.co/tianzhi/FCOS/resolve/main/"


def test_every_catalog_name_resolves_to_a_live_host_or_a_file_to_provide():
    for name in ModelCatalog.names():
        target = ModelCatalog.get(f"catalog://{name}")
        if name.removeprefix("ImageNetPretrained/") in ModelCatalog.PROVIDED_FILES:
            assert target == "X-101-64x4d.pkl"
        else:
            assert target.startswith(LIVE_HOSTS), (name, target)


def test_model_zoo_checkpoints_are_on_the_hub():
    assert len(ModelCatalog.FCOS_MODELS) == 15
    for model in ModelCatalog.FCOS_MODELS:
        assert ModelCatalog.get(f"FCOS/{model}") == f"{HUB}{model}.pth?download=true"
    assert ModelCatalog.get("ImageNetPretrained/FCOS/MNV2").startswith(
        f"{HUB}mobilenet_v2-ecbe2b5.pth"
    )


def test_no_file_in_the_repository_names_the_retired_host():
    for folder in ("configs", "fcos_core", "docs", "tools", "demo", "tests"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in {".py", ".yaml", ".md"} and path != Path(__file__):
                assert not RETIRED.search(path.read_text()), path
    assert not RETIRED.search((REPO / "README.md").read_text())


def test_zoo_config_weights_are_catalog_names_or_live_urls():
    for path in sorted((REPO / "configs" / "fcos").glob("*.yaml")):
        weight = yaml.safe_load(path.read_text())["MODEL"]["WEIGHT"]
        if weight.startswith("catalog://"):
            ModelCatalog.get(weight)  # known name
        else:
            assert weight == "" or weight.startswith(LIVE_HOSTS), (path.name, weight)


class _Stem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Module()
        self.stem.conv1 = nn.Conv2d(3, 4, 7, bias=False)


def test_x101_64x4d_without_the_file_says_what_to_provide(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    name = "catalog://ImageNetPretrained/FAIR/20171220/X-101-64x4d"
    with pytest.raises(CheckpointLoadError) as info:
        DetectronCheckpointer(default_cfg.clone(), _Stem()).load(name)
    message = str(info.value)
    assert "no live download host is known for X-101-64x4d.pkl" in message
    assert f"put it at {tmp_path / 'X-101-64x4d.pkl'}" in message and "MODEL.WEIGHT" in message


def test_catalog_pkl_in_the_cache_loads_without_flags(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    weight = np.random.default_rng(0).standard_normal((4, 3, 7, 7)).astype(np.float32)
    with open(tmp_path / "X-101-64x4d.pkl", "wb") as f:
        pickle.dump({"blobs": {"conv1_w": weight, "fc1000_w": np.zeros((2, 4))}}, f, protocol=2)
    cfg = default_cfg.clone()
    assert cfg.MODEL.WEIGHT_ALLOW_PICKLE is False
    model = _Stem()
    DetectronCheckpointer(cfg, model).load("catalog://ImageNetPretrained/FAIR/20171220/X-101-64x4d")
    assert np.array_equal(model.stem.conv1.weight.detach().numpy(), weight)
