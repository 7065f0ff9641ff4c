"""Every yaml under configs/ merges, builds (with the official checkpoint layout where one is
known), runs one training step and one inference on a tiny image, on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.modeling import build_detection_model
from fcos_core.structures import BoxList

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(REPO.glob("configs/**/*.yaml"))
MANIFESTS = Path("/work/shared/reference/fcos_state_dicts")
CHECKPOINT_PREFIX = "module."
IMAGE = 64


def _manifest(config: Path) -> dict[str, tuple[tuple[int, ...], str]] | None:
    """Key -> (shape, dtype) of the official checkpoint for this config name, if listed."""
    tsv = MANIFESTS / f"{config.stem}.tsv"
    if not tsv.exists():
        return None
    entries = {}
    for line in tsv.read_text().splitlines():
        key, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.split(",")) if shape else ()
        entries[key.removeprefix(CHECKPOINT_PREFIX)] = (dims, dtype)
    return entries


def _tiny_batch(num_classes: int):
    g = torch.Generator().manual_seed(0)
    image = torch.randn(3, IMAGE, IMAGE, generator=g) * 50
    target = BoxList(
        torch.tensor([[8.0, 10.0, 40.0, 50.0], [30.0, 4.0, 60.0, 24.0]]), (IMAGE, IMAGE)
    )
    target.add_field("labels", torch.tensor([1, num_classes - 1]))
    return [image], [target]


def test_configs_exist_for_every_official_manifest():
    assert CONFIGS, "no yaml under configs/"
    names = {c.stem for c in CONFIGS}
    if MANIFESTS.exists():
        missing = {t.stem for t in MANIFESTS.glob("*.tsv")} - names
        assert not missing, f"configs missing for official checkpoints: {sorted(missing)}"


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c.relative_to(REPO)) for c in CONFIGS])
def test_config_builds_trains_one_step_and_infers(config):
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(config))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.WEIGHT", ""])
    torch.manual_seed(0)
    model = build_detection_model(cfg)

    manifest = _manifest(config)
    if manifest is not None:
        ours = {
            k: (tuple(v.shape), str(v.dtype).removeprefix("torch."))
            for k, v in model.state_dict().items()
        }
        assert sorted(set(manifest) - set(ours)) == [], "keys missing from our model"
        assert sorted(set(ours) - set(manifest)) == [], "keys the official checkpoint lacks"
        wrong = {k: (ours[k], manifest[k]) for k in manifest if ours[k] != manifest[k]}
        assert not wrong, f"shape/dtype mismatches: {dict(list(wrong.items())[:5])}"

    images, targets = _tiny_batch(cfg.MODEL.FCOS.NUM_CLASSES)
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_cls", "loss_reg", "loss_centerness"}
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    no_grad = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"no (finite) gradient for {no_grad[:5]}"

    model.eval()
    with torch.no_grad():
        (det,) = model(images)
    assert isinstance(det, BoxList) and det.size == (IMAGE, IMAGE)
    assert set(det.fields()) == {"scores", "labels"}
    assert len(det) <= cfg.TEST.DETECTIONS_PER_IMG
