"""The assembled detector: interface, gradient flow, and a short overfitting run."""

from __future__ import annotations

import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.modeling import GeneralizedRCNN, build_detection_model
from fcos_core.structures import BoxList, ImageList

NUM_CLASSES = 3  # background + 2
IMAGE = 64
COLOURS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # class 1 red, class 2 green


# R-18 with BatchNorm, a 64-channel FPN (2 channels per GroupNorm group in the head, so a 1x1
# P7 map works with batch 1) and a one-conv head.
TINY_OPTIONS = {
    "MODEL.DEVICE": "cpu",
    "MODEL.BACKBONE.CONV_BODY": "R-18-FPN-RETINANET",
    "MODEL.BACKBONE.FREEZE_CONV_BODY_AT": 0,
    "MODEL.RESNETS.TRANS_FUNC": "BasicBlockWithBatchNorm",
    "MODEL.RESNETS.STEM_FUNC": "StemWithBatchNorm",
    "MODEL.RESNETS.STEM_OUT_CHANNELS": 16,
    "MODEL.RESNETS.RES2_OUT_CHANNELS": 16,
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS": 64,
    "MODEL.RETINANET.USE_C5": False,
    "MODEL.FCOS.NUM_CONVS": 1,
    "MODEL.FCOS.NUM_CLASSES": NUM_CLASSES,
}


def tiny_cfg():
    """The default config with TINY_OPTIONS."""
    cfg = default_cfg.clone()
    cfg.merge_from_list([item for pair in TINY_OPTIONS.items() for item in pair])
    return cfg


def synthetic_batch(num_images: int, seed: int = 0):
    """Noisy images with two filled rectangles each, and their BoxLists."""
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(num_images):
        image = torch.rand(3, IMAGE, IMAGE, generator=g) * 0.2
        boxes, labels = [], []
        for _ in range(2):
            x1, y1 = torch.randint(0, IMAGE - 32, (2,), generator=g).tolist()
            w, h = torch.randint(12, 32, (2,), generator=g).tolist()
            label = int(torch.randint(1, NUM_CLASSES, (1,), generator=g))
            image[:, y1 : y1 + h, x1 : x1 + w] = COLOURS[label - 1][:, None, None]
            boxes.append([x1, y1, x1 + w, y1 + h])
            labels.append(label)
        target = BoxList(torch.tensor(boxes, dtype=torch.float32), (IMAGE, IMAGE))
        target.add_field("labels", torch.tensor(labels))
        images.append(image)
        targets.append(target)
    return images, targets


@pytest.fixture(scope="module")
def model() -> GeneralizedRCNN:
    torch.manual_seed(0)
    return build_detection_model(tiny_cfg())


def test_training_returns_the_loss_dict_and_needs_targets(model):
    images, targets = synthetic_batch(2)
    empty = BoxList(torch.zeros(0, 4), (IMAGE, IMAGE))
    empty.add_field("labels", torch.zeros(0, dtype=torch.long))
    model.train()
    losses = model(images, [targets[0], empty])
    assert set(losses) == {"loss_cls", "loss_reg", "loss_centerness"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match="targets"):
        model(images)


def test_one_step_reaches_every_trainable_parameter(model):
    images, targets = synthetic_batch(2, seed=1)
    model.train()
    model.zero_grad()
    sum(model(images, targets).values()).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == len(list(model.parameters()))  # FREEZE_CONV_BODY_AT 0
    for name, p in trainable:
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    model.zero_grad()


def test_eval_returns_detections_in_each_unpadded_frame(model):
    model.eval()
    images = [torch.rand(3, 50, 70), torch.rand(3, 64, 40)]
    with torch.no_grad():
        model.rpn.box_selector_test.pre_nms_thresh = 0.0  # keep candidates at init
        dets = model(images)
        model.rpn.box_selector_test.pre_nms_thresh = 0.05
        dets_from_list = model(ImageList(torch.zeros(1, 3, 64, 64), [(48, 60)]))
    assert [d.size for d in dets] == [(70, 50), (40, 64)]
    assert dets_from_list[0].size == (60, 48)
    for det in dets:
        assert 0 < len(det) <= 100
        assert set(det.fields()) == {"scores", "labels"}
        assert det.get_field("labels").min() >= 1 and det.get_field("labels").max() <= 2
        w, h = det.size
        assert (det.bbox[:, 0::2] <= w).all() and (det.bbox[:, 1::2] <= h).all()
        assert (det.bbox >= 0).all()


def test_build_rejects_unknown_architecture_and_mismatched_strides():
    cfg = tiny_cfg()
    cfg.MODEL.META_ARCHITECTURE = "MaskRCNN"
    with pytest.raises(ValueError, match="META_ARCHITECTURE"):
        build_detection_model(cfg)
    cfg = tiny_cfg()
    cfg.MODEL.FCOS.FPN_STRIDES = [4, 8, 16, 32, 64]
    with pytest.raises(ValueError, match="FPN_STRIDES"):
        build_detection_model(cfg)


def test_a_few_dozen_iterations_drive_the_loss_down():
    torch.manual_seed(0)
    model = build_detection_model(tiny_cfg()).train()
    images, targets = synthetic_batch(3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    history = []
    for _ in range(40):
        losses = model(images, targets)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({k: v.item() for k, v in losses.items()} | {"total": total.item()})
    first = sum(h["total"] for h in history[:3]) / 3
    last = sum(h["total"] for h in history[-5:]) / 5
    assert last < 0.4 * first, (first, last)
    assert history[-1]["loss_cls"] < 0.2 * history[0]["loss_cls"]
    assert history[-1]["loss_reg"] < 0.5 * history[0]["loss_reg"]
