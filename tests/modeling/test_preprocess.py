"""uint8 batches normalised by the model (ImagePreprocessor) equal the original pipeline's batches.

The reference is the original pipeline, still available as ``build_transforms(...,
normalize_in_worker=True)``: Resize, flip, ToTensor, Normalize in the worker, then zero padding
in ``to_image_list``. The uint8 pipeline (Resize, flip, ToUint8Tensor, zero padding in uint8,
normalisation and re-zeroed padding in the model) must give the same float32 batch bit for bit
on the CPU (the same float32 operations in the same order), for the zoo configs' Caffe2
convention (TO_BGR255, mean in 0..255, std 1) and the quickstart's torchvision one (RGB [0, 1],
mean and std).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.data.transforms import ToTensor, build_transforms
from fcos_core.modeling.detector import build_detection_model
from fcos_core.modeling.preprocess import ImagePreprocessor, zero_padding_
from fcos_core.structures import BoxList, ImageList, to_image_list

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = {
    "zoo (TO_BGR255 True)": "configs/fcos/fcos_imprv_R_50_FPN_1x.yaml",
    "quickstart (TO_BGR255 False)": "configs/quickstart/fcos_quickstart.yaml",
}
# Small multi-scale training sizes, so that images of one batch differ and get padded.
SMALL_SIZES = ["INPUT.MIN_SIZE_TRAIN", (40, 52, 64), "INPUT.MAX_SIZE_TRAIN", 100]
SMALL_SIZES += ["INPUT.MIN_SIZE_TEST", 48, "INPUT.MAX_SIZE_TEST", 100]


def load(name: str):
    cfg = default_cfg.clone()
    cfg.merge_from_file(os.path.join(REPO, CONFIGS[name]))
    cfg.merge_from_list(SMALL_SIZES + ["MODEL.DEVICE", "cpu", "MODEL.WEIGHT", ""])
    return cfg


def original_images(count: int = 4) -> list[np.ndarray]:
    """uint8[H, W, 3] RGB images of several sizes and aspect ratios."""
    rng = np.random.default_rng(1)
    sizes = [(60, 80), (90, 50), (33, 47), (64, 64)]
    return [rng.integers(0, 256, (*sizes[i % 4], 3), dtype=np.uint8) for i in range(count)]


def both_pipelines(cfg, is_train: bool):
    """(uint8 ImageList, float reference ImageList) of the same images and augmentation."""
    new = build_transforms(cfg, is_train)
    old = build_transforms(cfg, is_train, normalize_in_worker=True)
    uint8_items, float_items = [], []
    for seed, image in enumerate(original_images()):
        target = BoxList(torch.tensor([[2.0, 3.0, 20.0, 30.0]]), image.shape[1::-1])
        u, ut = new(image, target, np.random.default_rng(seed))
        f, ft = old(image, target, np.random.default_rng(seed))
        assert torch.equal(ut.bbox, ft.bbox) and ut.size == ft.size  # same augmentation drawn
        uint8_items.append(u)
        float_items.append(f)
    divisible = cfg.DATALOADER.SIZE_DIVISIBILITY
    return to_image_list(uint8_items, divisible), to_image_list(float_items, divisible)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("is_train", [True, False])
def test_model_preprocessing_of_uint8_batches_equals_the_original_pipeline(name, is_train):
    cfg = load(name)
    uint8_batch, reference = both_pipelines(cfg, is_train)
    assert uint8_batch.tensors.dtype == torch.uint8 and reference.tensors.dtype == torch.float32
    assert uint8_batch.image_sizes == reference.image_sizes
    assert len(set(uint8_batch.image_sizes)) > 1  # padding is exercised
    out = ImagePreprocessor.from_config(cfg)(uint8_batch)
    assert out.tensors.dtype == torch.float32 and out.image_sizes == reference.image_sizes
    assert torch.equal(out.tensors, reference.tensors)  # bit for bit, padding included
    assert not out.tensors.eq(0).logical_and(out.tensors.signbit()).any()  # no -0.0 either


@pytest.mark.parametrize("is_train", [True, False])
def test_uint8_pipeline_gives_the_original_tensors_before_normalisation(is_train):
    """Before Normalize the original item is ToTensor's RGB [0, 1]: uint8 / 255 exactly."""
    cfg = load("quickstart (TO_BGR255 False)")
    new = build_transforms(cfg, is_train)
    before = build_transforms(cfg, is_train, normalize_in_worker=True)
    before.transforms = before.transforms[:-1]  # drop Normalize: Resize, (flip), ToTensor
    for seed, image in enumerate(original_images()):
        u, _ = new(image, None, np.random.default_rng(seed))
        f, _ = before(image, None, np.random.default_rng(seed))
        assert u.dtype == torch.uint8 and u.shape == f.shape and u.is_contiguous()
        assert torch.equal(u.float() / 255.0, f)
        assert torch.equal(u, (f * 255.0).round().to(torch.uint8))


def test_to_tensor_and_the_preprocessor_agree_on_a_known_pixel():
    """Pure red (255, 0, 0) RGB: Caffe2 convention gives BGR 0..255 minus the mean."""
    image = np.zeros((1, 1, 3), dtype=np.uint8)
    image[..., 0] = 255
    pre = ImagePreprocessor(pixel_mean=(100.0, 110.0, 120.0), pixel_std=(1, 1, 2), to_bgr255=True)
    batch = ImageList(torch.from_numpy(image).permute(2, 0, 1)[None].contiguous(), [(1, 1)])
    assert pre(batch).tensors.flatten().tolist() == [-100.0, -110.0, (255.0 - 120.0) / 2]
    assert ToTensor()(image, None)[0].flatten().tolist() == [1.0, 0.0, 0.0]


def test_padding_is_set_back_to_zero_and_channels_last_is_kept():
    cfg = load("zoo (TO_BGR255 True)")
    images = [torch.full((3, 5, 7), 200, dtype=torch.uint8), torch.full((3, 8, 3), 9).byte()]
    batch = to_image_list(images, 4)
    pre = ImagePreprocessor.from_config(cfg)
    plain = pre(batch).tensors
    assert plain.shape == (2, 3, 8, 8)
    assert plain[0, :, 5:].eq(0).all() and plain[0, :, :, 7:].eq(0).all()
    assert plain[1, :, :, 3:].eq(0).all() and plain[1, :, :, :3].ne(0).all()
    assert plain[0, :, :5, :7].ne(0).all()
    last = batch.tensors.contiguous(memory_format=torch.channels_last)
    out = pre(ImageList(last, batch.image_sizes)).tensors
    assert out.is_contiguous(memory_format=torch.channels_last) and torch.equal(out, plain)


def test_zero_padding_only_touches_the_padding():
    batch = torch.ones(2, 1, 4, 5)
    zero_padding_(batch, [(4, 5), (2, 3)])
    assert batch[0].eq(1).all()
    assert batch[1, 0].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [0] * 5, [0] * 5]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_floating_point_input_is_already_normalised_and_passes_unchanged(dtype):
    pre = ImagePreprocessor(pixel_mean=(1.0, 2.0, 3.0), pixel_std=(1, 1, 1), to_bgr255=True)
    batch = ImageList(torch.randn(2, 3, 8, 8).to(dtype), [(8, 8), (5, 6)])
    assert pre(batch) is batch


def test_other_dtypes_and_bad_constants_are_refused():
    pre = ImagePreprocessor(pixel_mean=(1.0, 2.0, 3.0), pixel_std=(1, 1, 1), to_bgr255=False)
    with pytest.raises(TypeError, match=r"uint8 images .* got torch.int32"):
        pre(ImageList(torch.zeros(1, 3, 4, 4, dtype=torch.int32), [(4, 4)]))
    with pytest.raises(TypeError, match=r"uint8 Tensor\[N, 3, H, W\].*\[1, 1, 4, 4\]"):
        pre.normalize(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"INPUT.PIXEL_STD values must be > 0"):
        ImagePreprocessor(pixel_mean=(1.0, 2.0, 3.0), pixel_std=(1, 0, 1), to_bgr255=False)
    with pytest.raises(ValueError, match=r"need 3 values"):
        ImagePreprocessor(pixel_mean=(1.0, 2.0), pixel_std=(1, 1, 1), to_bgr255=False)


def test_constants_follow_the_model_but_stay_out_of_its_state_dict():
    cfg = load("quickstart (TO_BGR255 False)")
    model = build_detection_model(cfg)
    assert isinstance(model.preprocess, ImagePreprocessor)
    assert not any(key.startswith("preprocess") for key in model.state_dict())
    model.to(torch.float64)
    assert model.preprocess.scale.dtype == torch.float64


def test_detector_gives_the_same_detections_for_uint8_and_normalised_float_input():
    """End to end on the quickstart model (random weights): a uint8 list and the original
    pipeline's normalised floats give identical detections."""
    cfg = load("quickstart (TO_BGR255 False)")
    torch.manual_seed(0)
    model = build_detection_model(cfg).eval()
    with torch.no_grad():  # scores above the threshold, so there are detections to compare
        model.rpn.head.cls_logits.bias.fill_(-1.0)
    test_uint8 = build_transforms(cfg, is_train=False)
    test_float = build_transforms(cfg, is_train=False, normalize_in_worker=True)
    images = original_images(2)
    with torch.no_grad():
        ours = model([test_uint8(image, None)[0] for image in images])
        reference = model([test_float(image, None)[0] for image in images])
    assert sum(len(d) for d in reference) > 0
    for a, b in zip(ours, reference, strict=True):
        assert torch.equal(a.bbox, b.bbox)
        assert torch.equal(a.get_field("scores"), b.get_field("scores"))
        assert torch.equal(a.get_field("labels"), b.get_field("labels"))
