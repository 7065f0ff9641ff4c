"""The GPU-readiness layer: every model family trains (forward + loss) and detects on fake CUDA
tensors without a CPU tensor meeting a CUDA one and without host syncs outside the places that
need one; a planted CPU tensor or sync makes these tests fail. See fake_cuda.py for the method."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from fake_cuda import FakeCudaRun

from fcos_core.layers import _ops
from fcos_core.modeling.fcos import loss as fcos_loss
from fcos_core.modeling.fcos import targets as fcos_targets

REPO = Path(__file__).resolve().parents[2]
FAMILIES = {
    "R-50": "configs/fcos/fcos_R_50_FPN_1x.yaml",
    "imprv": "configs/fcos/fcos_imprv_R_50_FPN_1x.yaml",
    "DCN": "configs/fcos/fcos_imprv_dcnv2_R_50_FPN_1x.yaml",
    "MNV2": "configs/fcos/fcos_syncbn_bs32_MNV2_FPN_1x.yaml",
    "quickstart": "configs/quickstart/fcos_quickstart.yaml",
}
# Where a host sync is expected: the loss selects the positive locations (their count normalises
# the losses); post-processing selects candidates, runs NMS and keeps the top detections.
TRAIN_SYNC_FILES = {"modeling/fcos/loss.py"}
EVAL_SYNC_FILES = {
    "modeling/fcos/inference_core.py",
    "structures/bounding_box.py",
    "structures/boxlist_ops.py",
    "layers/nms.py",
}
# Without the extension the reference NMS loops in Python on fake sizes: eval needs the op.
needs_ext = pytest.mark.skipif(not _ops.HAS_EXT, reason="the fake NMS kernel needs fcos_core._C")


@pytest.fixture(scope="module", params=list(FAMILIES))
def run(request):
    return FakeCudaRun(str(REPO / FAMILIES[request.param]))


def check_training(run: FakeCudaRun, dtype: torch.dtype = torch.float32) -> None:
    """Losses on CUDA; host syncs only where the loss needs one (its positive count)."""
    losses = run.train_losses(dtype)
    assert set(losses) == {"loss_cls", "loss_reg", "loss_centerness"}
    assert {loss.device.type for loss in losses.values()} == {"cuda"}
    assert run.shape_env.sync_files() <= TRAIN_SYNC_FILES, run.shape_env.syncs
    # The backbone, FPN, head and target assignment never sync.
    assert len(run.shape_env.syncs) <= 1, run.shape_env.syncs


def test_train_forward_and_loss_stay_on_cuda(run):
    check_training(run)


@needs_ext
def test_detection_stays_on_cuda(run):
    (first, second) = run.detections()
    for boxlist in (first, second):
        assert boxlist.bbox.device.type == "cuda"
        assert {boxlist.get_field(k).device.type for k in ("scores", "labels")} == {"cuda"}
    assert run.shape_env.sync_files() <= EVAL_SYNC_FILES, run.shape_env.syncs


def test_a_cpu_tensor_planted_in_the_loss_is_caught(monkeypatch):
    real = fcos_loss.compute_centerness_targets

    def planted(reg_targets):
        return real(reg_targets) + torch.zeros(reg_targets.shape[0])  # CPU: the bug

    monkeypatch.setattr(fcos_loss, "compute_centerness_targets", planted)
    with pytest.raises(RuntimeError, match="cpu"):  # fake mode or the prims device check
        FakeCudaRun(str(REPO / FAMILIES["quickstart"])).train_losses()


def test_a_cpu_tensor_planted_in_target_assignment_is_caught(monkeypatch):
    real = fcos_targets.prepare_targets

    def planted(locations, targets, *args, **kwargs):
        labels, regression = real(locations, targets, *args, **kwargs)
        return labels + torch.zeros(labels.shape[-1], dtype=labels.dtype), regression  # CPU

    monkeypatch.setattr(fcos_loss, "prepare_targets", planted)
    with pytest.raises(RuntimeError, match="cpu"):
        FakeCudaRun(str(REPO / FAMILIES["quickstart"])).train_losses()


def test_a_host_sync_planted_in_target_assignment_is_caught(monkeypatch):
    real = fcos_targets.prepare_targets

    def planted(locations, targets, *args, **kwargs):
        labels, regression = real(locations, targets, *args, **kwargs)
        if int(labels.sum()) > 0:  # a Python decision on GPU data: a host sync
            labels = labels.clone()
        return labels, regression

    monkeypatch.setattr(fcos_loss, "prepare_targets", planted)
    run = FakeCudaRun(str(REPO / FAMILIES["quickstart"]))
    with pytest.raises(AssertionError, match="test_fake_cuda.py"):
        check_training(run)


def hard_coded_devices(path: Path) -> list[str]:
    """`.cuda()` calls and "cuda..." literals passed as a device in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "cuda":
            found.append(f"{path.name}:{node.lineno} .cuda()")
        values = [kw.value for kw in node.keywords if kw.arg == "device"]
        if isinstance(func, ast.Attribute) and func.attr in ("to", "device"):
            values += node.args[:1]
        for value in values:
            if isinstance(value, ast.Constant) and str(value.value).startswith("cuda"):
                found.append(f"{path.name}:{node.lineno} device {value.value!r}")
    return found


def test_no_hard_coded_cuda_in_the_model_data_and_evaluation_code():
    folders = ["modeling", "layers", "structures", "data", "engine"]
    files = [p for folder in folders for p in sorted((REPO / "fcos_core" / folder).rglob("*.py"))]
    assert files
    found = [hit for path in files for hit in hard_coded_devices(path)]
    assert found == []


def test_the_hard_coded_device_scan_finds_them(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text("x = y.cuda()\nz = torch.zeros(3, device='cuda:0')\nw = t.to('cuda')\n")
    assert len(hard_coded_devices(source)) == 3


@pytest.mark.cuda
@pytest.mark.parametrize("family", ["quickstart", "MNV2"])
def test_on_a_real_gpu_backbone_and_head_do_not_sync_and_training_syncs_little(family):
    """What the fake-CUDA tests predict, checked with CUDA's own sync detector."""
    from fake_cuda import fake_batch, zoo_config

    from fcos_core.modeling.detector import build_detection_model

    cfg = zoo_config(str(REPO / FAMILIES[family]), "cuda")
    model = build_detection_model(cfg).to("cuda").train()
    images, targets = fake_batch("cuda", cfg.MODEL.FCOS.NUM_CLASSES)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        features = model.backbone(images.tensors)
        outputs = model.rpn.head(features)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(t.device.type == "cuda" for level in outputs for t in level)
    with pytest.warns(UserWarning, match="synchroniz") as caught:
        torch.cuda.set_sync_debug_mode("warn")
        try:
            losses = model(images, targets)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert {loss.device.type for loss in losses.values()} == {"cuda"}
    # The positives' nonzero, plus host-to-GPU copies of small per-level tables (pageable
    # memory copies synchronise too; the fake-CUDA tests do not see those).
    assert 1 <= len(caught) <= 8, [str(w.message) for w in caught]
