"""bfloat16 training of a tiny FCOS: float32 master weights, gradients and optimizer state, losses
computed and summed in float32; the precision keys and flags in the front door."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcos_core.config import cfg as default_cfg
from fcos_core.engine.commands import detect
from fcos_core.engine.trainer import Trainer
from fcos_core.modeling.detector import build_detection_model
from fcos_core.solver import make_lr_scheduler, make_optimizer
from fcos_core.structures.bounding_box import BoxList
from fcos_core.structures.image_list import to_image_list
from fcos_core.utils.checkpoint import Checkpointer

TINY_YAML = Path(__file__).resolve().parents[1] / "fixtures" / "engine" / "tiny_fcos.yaml"
LOSS_NAMES = ("loss_cls", "loss_reg", "loss_centerness")


def _tiny_cfg(optimizer: str):
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(TINY_YAML))
    cfg.merge_from_list(["AMP.ENABLED", True, "AMP.DTYPE", "bfloat16", "SOLVER.OPTIMIZER",
                         optimizer, "SOLVER.WARMUP_ITERS", 0])  # fmt: skip
    return cfg


def _batch():
    g = torch.Generator().manual_seed(0)
    images = to_image_list([torch.randn(3, 64, 64, generator=g) for _ in range(2)], 32)
    targets = []
    for boxes in ([[4.0, 6.0, 40.0, 44.0]], [[10.0, 8.0, 30.0, 28.0], [30.0, 30.0, 60.0, 62.0]]):
        t = BoxList(torch.tensor(boxes), (64, 64))
        t.add_field("labels", torch.arange(1, len(boxes) + 1))
        targets.append(t)
    return images, targets


class _Recorder:
    """Wraps a callable and records the dtypes of its floating-point tensor arguments."""

    def __init__(self, fn) -> None:
        self.fn, self.dtypes = fn, []

    def __call__(self, *args, **kwargs):
        self.dtypes += [a.dtype for a in args if torch.is_tensor(a) and a.is_floating_point()]
        return self.fn(*args, **kwargs)


def _trainer(cfg, model, tmp_path):
    optimizer = make_optimizer(cfg, model)
    ckpt = Checkpointer(model, optimizer, None, save_dir=str(tmp_path), save_to_disk=False)
    return Trainer(cfg, model, optimizer, make_lr_scheduler(cfg, optimizer), ckpt,
                   torch.device("cpu"), 100, {"iteration": 0}, None)  # fmt: skip


@pytest.mark.parametrize("optimizer", ["SGD", "AdamW"])
def test_bf16_step_keeps_float32_master_weights_and_sums_losses_in_float32(optimizer, tmp_path):
    torch.manual_seed(0)
    cfg = _tiny_cfg(optimizer)
    model = build_detection_model(cfg).train()
    trainer = _trainer(cfg, model, tmp_path)
    assert trainer.amp_dtype == torch.bfloat16
    loss = model.rpn.loss_evaluator
    recorders = {}
    for name in ("cls_loss_func", "box_reg_loss_func", "centerness_loss_func"):
        recorders[name] = _Recorder(getattr(loss, name))
        setattr(loss, name, recorders[name])
    head_dtypes, grad_dtypes, outputs = [], [], {}
    model.rpn.head.cls_tower[0].register_forward_hook(lambda m, i, o: head_dtypes.append(o.dtype))
    model.register_forward_hook(lambda m, i, o: outputs.update(o))
    for p in model.parameters():
        p.register_post_accumulate_grad_hook(lambda p: grad_dtypes.append(p.grad.dtype))
    before = [p.detach().clone() for p in model.parameters()]
    reduced = trainer.step(*_batch(), it=1)

    levels = len(cfg.MODEL.FCOS.FPN_STRIDES)  # the head really ran under bfloat16 autocast
    assert head_dtypes == [torch.bfloat16] * levels
    for name, recorder in recorders.items():  # focal, IoU and centerness BCE see float32 only
        assert recorder.dtypes and set(recorder.dtypes) == {torch.float32}, (name, recorder.dtypes)
    components = [outputs[k] for k in LOSS_NAMES]
    assert all(c.dtype == torch.float32 for c in components)
    expected = torch.zeros((), dtype=torch.float32)
    for c in components:  # the float32 sum, one component after the other
        expected = expected + c.detach()
    assert reduced["loss"].dtype == torch.float32
    assert torch.equal(reduced["loss"], expected)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(grad_dtypes) == len(trainable) and set(grad_dtypes) == {torch.float32}
    params = list(model.parameters())
    assert all(p.dtype == torch.float32 for p in params)
    assert any(not torch.equal(p, b) for p, b in zip(params, before, strict=True))
    state = [v for s in trainer.optimizer.state.values() for v in s.values() if v.dim() > 0]
    assert state and {v.dtype for v in state} == {torch.float32}  # momentum / Adam moments


def test_trainer_resolves_auto_from_the_cpu(monkeypatch, tmp_path):
    from fcos_core.utils import precision

    cfg = _tiny_cfg("SGD")
    cfg.AMP.DTYPE = "auto"
    model = build_detection_model(cfg)
    for native, expected in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda native=native: native)
        assert _trainer(cfg, model, tmp_path).amp_dtype == expected


def test_config_files_with_old_spellings_are_refused(tiny_cfg):
    from fcos_core.config.checks import ConfigError

    for key in ("AMP.DTYPE", "TEST.FAST_PATH_AUTOCAST"):
        with pytest.raises(ConfigError, match=f"{key} must be one of float32, bfloat16, float16, "
                                              "auto, got 'bf16'"):  # fmt: skip
            tiny_cfg(key, "bf16")
    assert tiny_cfg("TEST.FAST_PATH_AUTOCAST", "auto").TEST.FAST_PATH_AUTOCAST == "auto"


def test_autocast_flag_takes_the_vocabulary(capsys):
    import argparse

    parser = argparse.ArgumentParser()
    detect.add_autocast_argument(parser)
    assert parser.parse_args(["--autocast", "bfloat16"]).autocast == "bfloat16"
    assert parser.parse_args([]).autocast is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--autocast", "bf16"])
    assert "invalid choice: 'bf16'" in capsys.readouterr().err
