"""Official FCOS checkpoints must load unchanged: for every model-zoo config, the state_dict of our
model has exactly the keys (in order), shapes and dtypes of the original model.

The reference manifests (tests/fixtures/state_dicts/<config>.tsv, one ``key<TAB>shape<TAB>dtype``
line per entry, keys with the DDP ``module.`` prefix) were produced by building the original
repository's model for each config. Models are built on the meta device: only structure matters.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.modeling.backbone import build_backbone
from fcos_core.modeling.detector import build_detection_model

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "tests" / "fixtures" / "state_dicts"
ZOO_CONFIGS = ROOT / "configs" / "fcos"
DDP_PREFIX = "module."
NUM_ZOO_CONFIGS = 19

Entry = tuple[str, str, str]  # (key, "d0,d1,...", dtype name)


def read_manifest(name: str) -> list[Entry]:
    """Entries of ``<name>.tsv`` with the ``module.`` prefix removed."""
    entries = []
    for line in (MANIFESTS / f"{name}.tsv").read_text().splitlines():
        key, shape, dtype = line.split("\t")
        assert key.startswith(DDP_PREFIX), key
        entries.append((key[len(DDP_PREFIX) :], shape, dtype))
    return entries


def describe(state_dict: dict[str, torch.Tensor]) -> list[Entry]:
    """Our state_dict in the manifest format."""
    return [
        (key, ",".join(str(d) for d in value.shape), str(value.dtype).removeprefix("torch."))
        for key, value in state_dict.items()
    ]


def load_zoo_cfg(name: str):
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(ZOO_CONFIGS / f"{name}.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def assert_same_entries(ours: list[Entry], reference: list[Entry]) -> None:
    """Equal lists, with a readable message naming the first differences."""
    ours_keys, ref_keys = [e[0] for e in ours], [e[0] for e in reference]
    missing = [k for k in ref_keys if k not in set(ours_keys)]
    unexpected = [k for k in ours_keys if k not in set(ref_keys)]
    assert not missing and not unexpected, f"missing {missing[:5]}, unexpected {unexpected[:5]}"
    mismatched = [(a, b) for a, b in zip(ours, reference, strict=True) if a != b]
    assert not mismatched, f"{len(mismatched)} entries differ (ours, reference): {mismatched[:5]}"


MANIFEST_NAMES = sorted(p.stem for p in MANIFESTS.glob("*.tsv"))


def test_every_original_zoo_config_is_shipped():
    """One manifest per original config, and each has its yaml under configs/fcos/."""
    assert len(MANIFEST_NAMES) == NUM_ZOO_CONFIGS
    configs = {p.stem for p in ZOO_CONFIGS.glob("*.yaml")}
    assert set(MANIFEST_NAMES) <= configs, sorted(set(MANIFEST_NAMES) - configs)


def test_top_level_config_is_the_zoo_r50_config():
    top = (ROOT / "configs" / "fcos_R_50_FPN_1x.yaml").read_text()
    assert top == (ZOO_CONFIGS / "fcos_R_50_FPN_1x.yaml").read_text()


@pytest.mark.parametrize("name", MANIFEST_NAMES)
def test_detector_state_dict_matches_the_original(name):
    cfg = load_zoo_cfg(name)
    with torch.device("meta"):
        model = build_detection_model(cfg)
    assert_same_entries(describe(model.state_dict()), read_manifest(name))


@pytest.mark.parametrize(
    "name", ["fcos_imprv_dcnv2_X_101_32x8d_FPN_2x", "fcos_bn_bs16_MNV2_FPN_1x"]
)
def test_backbone_state_dict_matches_the_original(name):
    prefix = "backbone."
    reference = [
        (key[len(prefix) :], shape, dtype)
        for key, shape, dtype in read_manifest(name)
        if key.startswith(prefix)
    ]
    with torch.device("meta"):
        backbone = build_backbone(load_zoo_cfg(name))
    assert_same_entries(describe(backbone.state_dict()), reference)


def test_manifest_shaped_checkpoint_loads_strictly():
    """A checkpoint with the official keys (DDP prefix stripped) loads with nothing left over."""
    name = "fcos_R_50_FPN_1x"
    with torch.device("meta"):
        model = build_detection_model(load_zoo_cfg(name))
    checkpoint = {
        key: torch.empty([int(d) for d in shape.split(",") if d], dtype=getattr(torch, dtype))
        for key, shape, dtype in read_manifest(name)
    }
    model = model.to_empty(device="cpu")
    result = model.load_state_dict(checkpoint, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
