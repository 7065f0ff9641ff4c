"""Test-time augmentation (TEST.BBOX_AUG) as the original: passes made from the original image.

A real tiny FCOS with random weights runs through ``run_test`` / ``inference``: with only the
identity pass TTA gives exactly the plain detections, a flipped pass equals the model run on the
flipped image with its boxes flipped back, a scale pass gets the test transform of the original
image at that scale, and a stand-in model whose detection is known shows every pass mapped back
into the identity frame.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from fcos_core.data.build import make_data_loader
from fcos_core.data.transforms import Compose, Normalize, Resize, ToTensor
from fcos_core.engine.inference import build_test_time_augmentation, inference, load_predictions
from fcos_core.engine.launcher import run_test
from fcos_core.modeling.detector import build_detection_model
from fcos_core.modeling.fcos.tta import FCOSTestTimeAugmentation, Pass
from fcos_core.structures import FLIP_LEFT_RIGHT, BoxList, to_image_list

TEST_SIZE = ("INPUT.MIN_SIZE_TEST", "48", "INPUT.MAX_SIZE_TEST", "80")  # tiny images are 64 px
TTA_ON = ("TEST.BBOX_AUG.ENABLED", "True")


def random_model(cfg, seed: int = 0) -> nn.Module:
    """The tiny detector with random weights that give boxes of a few strides."""
    model = build_detection_model(cfg).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if not value.is_floating_point():
                continue
            if key.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
            else:
                value.copy_(torch.randn(value.shape, generator=generator) * 0.1)
        model.rpn.head.bbox_pred.bias.fill_(1.5)
        model.rpn.head.cls_logits.bias.fill_(-1.0)
    return model


def predictions_of(cfg, model) -> list[BoxList]:
    """Run ``run_test`` (evaluation included) and read back the detections it saved."""
    (result,) = run_test(cfg, model, distributed=False)
    assert result is not None
    name = cfg.DATASETS.TEST[0]
    return load_predictions(os.path.join(cfg.OUTPUT_DIR, "inference", name, "predictions.pth"))


def test_identity_pass_alone_gives_the_plain_detections(tiny_cfg, tmp_path):
    plain_cfg = tiny_cfg(*TEST_SIZE, output_dir=str(tmp_path / "plain"))
    tta_cfg = tiny_cfg(*TEST_SIZE, *TTA_ON, output_dir=str(tmp_path / "tta"))
    plain = predictions_of(plain_cfg, random_model(plain_cfg))
    assert sum(len(p) for p in plain) > 50
    tta = predictions_of(tta_cfg, random_model(tta_cfg))
    for ours, reference in zip(tta, plain, strict=True):
        assert ours.size == reference.size == (48, 48)
        assert torch.equal(ours.bbox, reference.bbox)
        assert torch.equal(ours.get_field("scores"), reference.get_field("scores"))
        assert torch.equal(ours.get_field("labels"), reference.get_field("labels"))


def _original_images(count: int = 2) -> list[np.ndarray]:
    generator = np.random.default_rng(0)
    return [generator.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(count)]


def test_flipped_pass_is_the_model_on_the_flipped_image_flipped_back(tiny_cfg):
    cfg = tiny_cfg(*TTA_ON, "TEST.BBOX_AUG.H_FLIP", "True")
    model = random_model(cfg)
    tta = FCOSTestTimeAugmentation.from_config(cfg)
    assert tta.passes == [Pass(64, 64, False), Pass(64, 64, True)]
    images = _original_images()  # 64 x 96: at min size 64 (cap 200) no resize, flips commute
    flipped = tta.run_pass(model, images, Pass(64, 200, True), "cpu")
    to_input = Compose([ToTensor(), Normalize.from_config(cfg)])
    inputs = [to_input(np.ascontiguousarray(image[:, ::-1]), None)[0] for image in images]
    with torch.no_grad():
        expected = model(to_image_list(inputs, cfg.DATALOADER.SIZE_DIVISIBILITY))
    assert sum(len(e) for e in expected) > 10
    for ours, reference in zip(flipped, expected, strict=True):
        back = reference.transpose(FLIP_LEFT_RIGHT)
        assert ours.size == (96, 64)
        assert torch.equal(ours.bbox, back.bbox)
        assert torch.equal(ours.get_field("scores"), back.get_field("scores"))


def test_scale_pass_transforms_the_original_image(tiny_cfg):
    cfg = tiny_cfg(*TTA_ON, "TEST.BBOX_AUG.SCALES", "(40, 100)", "TEST.BBOX_AUG.MAX_SIZE", "120")
    model = random_model(cfg)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    images = _original_images(2)
    tta = FCOSTestTimeAugmentation.from_config(cfg)
    merged = tta(model, images, "cpu")
    # The identity pass: MIN_SIZE_TEST 64 with MAX_SIZE_TEST 64 gives 43 x 64 (round(64 * 2/3)).
    assert [m.size for m in merged] == [(64, 43)] * 2
    # 40: 40 x 60; 100 with the long side capped at 120: shorter side round(120 * 64 / 96) = 80.
    assert [b.image_sizes for b in seen] == [[(43, 64)] * 2, [(40, 60)] * 2, [(80, 120)] * 2]
    for batch, size in zip(seen[1:], (40, 100)):
        # Passes ship uint8; the model's preprocessing gives the original's pass exactly:
        # Resize, ToTensor, Normalize of the original image, zero padding.
        assert batch.tensors.dtype == torch.uint8
        transform = Compose([Resize(size, 120), ToTensor(), Normalize.from_config(cfg)])
        normalized = model.preprocess(batch).tensors
        for tensor, image, (height, width) in zip(normalized, images, batch.image_sizes):
            assert torch.equal(tensor[:, :height, :width], transform(image, None)[0])
            assert tensor[:, height:].eq(0).all() and tensor[:, :, width:].eq(0).all()


class _BrightBoxDetector(nn.Module):
    """Detects the bounding box of the bright (normalised > 0) pixels of each input."""

    def __init__(self) -> None:
        super().__init__()
        self.input_sizes: list[tuple[int, int]] = []

    def forward(self, images):
        dets = []
        for tensor, (h, w) in zip(images.tensors, images.image_sizes):
            self.input_sizes.append((h, w))
            ys, xs = (tensor[0, :h, :w] > 0).nonzero(as_tuple=True)
            box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
            det = BoxList(box[None], (w, h))
            det.add_field("scores", torch.tensor([0.9]))
            det.add_field("labels", torch.tensor([2]))
            dets.append(det)
        return dets


def test_every_pass_maps_back_into_the_identity_frame(tiny_cfg):
    cfg = tiny_cfg(
        *TTA_ON, "INPUT.MIN_SIZE_TEST", "30", "INPUT.MAX_SIZE_TEST", "1000",
        "TEST.BBOX_AUG.SCALES", "(60, 120)", "TEST.BBOX_AUG.MAX_SIZE", "1000",
        "TEST.BBOX_AUG.H_FLIP", "True", "TEST.BBOX_AUG.SCALE_H_FLIP", "True",
    )  # fmt: skip
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    image[12:36, 8:28] = 255  # box (8, 12, 28, 36) of the original, off-centre: flips matter
    tta = FCOSTestTimeAugmentation.from_config(cfg)
    model = _BrightBoxDetector()
    (det,) = tta(model, [image], "cpu")
    assert model.input_sizes == [(30, 40)] * 2 + [(60, 80)] * 2 + [(120, 160)] * 2
    assert det.size == (40, 30)  # the identity pass (test size 30)
    assert len(det) == 1 and det.get_field("labels").tolist() == [2]
    torch.testing.assert_close(det.bbox, torch.tensor([[4.0, 6, 14, 18]]), atol=1.0, rtol=0)
    for augmentation in tta.passes:
        (single,) = tta.run_pass(model, [image], augmentation, "cpu")
        box = single.resize((40, 30)).bbox
        torch.testing.assert_close(box, torch.tensor([[4.0, 6, 14, 18]]), atol=1.0, rtol=0)


def test_run_test_with_flips_and_scales(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        *TEST_SIZE, *TTA_ON, "TEST.BBOX_AUG.SCALES", "(40, 80)", "TEST.BBOX_AUG.MAX_SIZE", "4000",
        "TEST.BBOX_AUG.H_FLIP", "True", "TEST.BBOX_AUG.SCALE_H_FLIP", "True",
    )  # fmt: skip
    model = random_model(cfg)
    sizes = []
    model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].image_sizes[0]))
    predictions = predictions_of(cfg, model)
    batches = -(-8 // cfg.TEST.IMS_PER_BATCH)
    assert sizes == [(48, 48), (48, 48), (40, 40), (40, 40), (80, 80), (80, 80)] * batches
    assert len(predictions) == 8 and all(p.size == (48, 48) for p in predictions)
    assert sum(len(p) for p in predictions) > 50
    assert all(float(p.bbox.max()) <= 48 and float(p.bbox.min()) >= 0 for p in predictions)


def test_untransformed_loader_without_tta_is_a_clear_error(tiny_cfg):
    cfg = tiny_cfg(*TTA_ON)
    loader = make_data_loader(cfg, is_train=False)[0]
    images, _, _ = next(iter(loader))
    assert isinstance(images[0], np.ndarray) and images[0].dtype == np.uint8
    with pytest.raises(TypeError, match="build_test_time_augmentation"):
        inference(random_model(cfg), loader, "tiny_shapes_val", device="cpu")
    assert build_test_time_augmentation(tiny_cfg()) is None
