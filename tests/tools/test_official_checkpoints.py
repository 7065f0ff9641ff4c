"""Checkpoints of the original FCOS model zoo load with no missing and no unexpected keys.

tests/fixtures/state_dicts/<config>.tsv lists every key (with its ``module.`` prefix), shape and
dtype of the state dict the original code builds for configs/fcos/<config>.yaml. For every config
an official-format checkpoint made from that list goes through our loader (meta tensors, so all
19 stay fast); for a ResNet-50 and a MobileNetV2 config (FrozenBN and BatchNorm with int64
counters) a real file with random values goes through DetectronCheckpointer (MODEL.WEIGHT) and
the model then runs inference.
"""

from __future__ import annotations

import functools
import hashlib
import os

import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.modeling.detector import build_detection_model
from fcos_core.structures.image_list import to_image_list
from fcos_core.utils.checkpoint import DetectronCheckpointer
from fcos_core.utils.model_serialization import load_state_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "state_dicts")
CONFIGS = os.path.join(ROOT, "configs", "fcos")
NAMES = sorted(f[: -len(".tsv")] for f in os.listdir(FIXTURES) if f.endswith(".tsv"))
DTYPES = {"float32": torch.float32, "int64": torch.int64}
# Configs loaded from a real file with random values, then run.
FILE_ROUND_TRIP = ["fcos_imprv_R_50_FPN_1x", "fcos_syncbn_bs32_c128_MNV2_FPN_1x"]


def read_tsv(name: str) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """(key, shape, dtype) rows of a fixture; an empty shape field is a 0-dim tensor."""
    rows = []
    with open(os.path.join(FIXTURES, f"{name}.tsv")) as f:
        for line in f:
            key, shape, dtype = line.rstrip("\n").split("\t")
            rows.append((key, tuple(int(s) for s in shape.split(",") if s), DTYPES[dtype]))
    return rows


def load_cfg(name: str):
    cfg = default_cfg.clone()
    cfg.merge_from_file(os.path.join(CONFIGS, f"{name}.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    return cfg


@functools.cache
def _meta_model(tsv_digest: str, name: str):
    """One meta-device model per distinct architecture (identical fixtures share it)."""
    with torch.device("meta"):
        return build_detection_model(load_cfg(name))


def meta_model(name: str):
    with open(os.path.join(FIXTURES, f"{name}.tsv"), "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()
    return _meta_model(digest, name)


def random_official_checkpoint(name: str, generator: torch.Generator) -> dict:
    """{"model": state dict} with the fixture's keys/shapes/dtypes and sane random values."""
    state = {}
    for key, shape, dtype in read_tsv(name):
        if dtype == torch.int64:
            value = torch.randint(0, 1000, shape, generator=generator)
        elif key.endswith("running_var"):
            value = torch.rand(shape, generator=generator) + 0.5
        else:
            value = torch.randn(shape, generator=generator) * 0.05
        state[key] = value
    return {"model": state}


def test_every_config_has_a_fixture():
    assert len(NAMES) == 19
    for name in NAMES:
        assert os.path.exists(os.path.join(CONFIGS, f"{name}.yaml")), name


@pytest.mark.parametrize("name", NAMES)
def test_official_keys_load_without_missing_or_unexpected(name):
    model = meta_model(name)
    rows = read_tsv(name)
    assert all(key.startswith("module.") for key, _, _ in rows)
    loaded = {key: torch.empty(shape, dtype=dtype, device="meta") for key, shape, dtype in rows}
    report = load_state_dict(model, loaded)
    assert report.missing == []
    assert report.unused == []
    assert report.mismatched == []
    assert report.ambiguous == []
    assert len(report.loaded) == len(rows)
    # Keys match exactly (after the prefix), not only by suffix.
    assert all(m == k for m, k in report.loaded.items())


@pytest.mark.parametrize("name", FILE_ROUND_TRIP)
def test_official_file_loads_through_checkpointer_and_runs(name, tmp_path):
    generator = torch.Generator().manual_seed(0)
    checkpoint = random_official_checkpoint(name, generator)
    path = tmp_path / f"{name}.pth"
    torch.save(checkpoint, path)

    cfg = load_cfg(name)
    cfg.MODEL.WEIGHT = str(path)
    model = build_detection_model(cfg).eval()
    DetectronCheckpointer(cfg, model, save_dir="").load(cfg.MODEL.WEIGHT, use_latest=False)
    ours = model.state_dict()
    official = {k.removeprefix("module."): v for k, v in checkpoint["model"].items()}
    assert set(ours) == set(official)
    for key, value in official.items():
        assert torch.equal(ours[key], value.to(ours[key].dtype)), key

    images = to_image_list([torch.randn(3, 128, 160)], cfg.DATALOADER.SIZE_DIVISIBILITY)
    with torch.no_grad():
        (detections,) = model(images)
    assert detections.size == (160, 128)
    assert torch.isfinite(detections.bbox).all()
    labels = detections.get_field("labels")
    assert ((labels >= 1) & (labels <= cfg.MODEL.FCOS.NUM_CLASSES - 1)).all()
