"""uint8 batches on the GPU: the model normalises them on its device without a CPU tensor or a
host sync (fake CUDA tensors here; a real GPU where there is one), TO_BGR255 True and False."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fake_cuda import FakeCudaRun, zoo_config
from test_fake_cuda import FAMILIES, check_training, needs_ext

from fcos_core.modeling.preprocess import ImagePreprocessor
from fcos_core.structures.image_list import to_image_list

REPO = Path(__file__).resolve().parents[2]
# The Caffe2 convention (TO_BGR255, zoo configs) and the torchvision one (quickstart).
UINT8_FAMILIES = ["R-50", "quickstart"]


@pytest.fixture(scope="module", params=UINT8_FAMILIES)
def run(request):
    return FakeCudaRun(str(REPO / FAMILIES[request.param]))


def test_uint8_training_batches_stay_on_cuda_without_new_syncs(run):
    check_training(run, torch.uint8)


@needs_ext
def test_uint8_detection_stays_on_cuda(run):
    (first, second) = run.detections(torch.uint8)
    assert first.bbox.device.type == "cuda" and second.bbox.device.type == "cuda"


@pytest.mark.cuda
@pytest.mark.parametrize("family", UINT8_FAMILIES)
def test_on_a_real_gpu_preprocessing_does_not_sync_and_equals_the_cpu(family):
    cfg = zoo_config(str(REPO / FAMILIES[family]), "cuda")
    pre = ImagePreprocessor.from_config(cfg)
    gen = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
              for h, w in ((64, 96), (70, 80))]  # fmt: skip
    batch = to_image_list(images, 32)
    expected = pre(batch).tensors
    pinned = batch.pin_memory()
    pre_cuda = pre.to("cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = pre_cuda(pinned.to("cuda", non_blocking=True)).tensors
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(out.cpu(), expected)  # true division on the device: bit for bit
