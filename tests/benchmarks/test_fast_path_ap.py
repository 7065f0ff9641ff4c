"""benchmarks/fast_path_ap.py: AP and detection agreement of the fast path on a val split."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fcos_core.engine.defaults import load_config
from fcos_core.modeling.detector import build_detection_model

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "engine"
REGISTER = ["DATASETS.REGISTER", f'("{FIXTURES / "tiny_shapes_register.py"}",)']
# >= 2x2 cells at P7 (the tiny head has one channel per GroupNorm group); every box kept.
OPTS = REGISTER + ["INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "128",
                   "MODEL.FCOS.INFERENCE_TH", "0.0"]  # fmt: skip


def test_fast_path_ap_reports_ap_and_agreement_per_variant(
    tiny_env, tmp_path, capsys, benchmark_module
):
    os.environ["FCOS_TINY_SHAPES_DIR"] = tiny_env["FCOS_TINY_SHAPES_DIR"]
    config = str(FIXTURES / "tiny_fcos.yaml")
    torch.manual_seed(0)
    model = build_detection_model(load_config(config, REGISTER))
    with torch.no_grad():  # boxes with some extent, so IoU means something
        model.rpn.head.bbox_pred.bias.uniform_(1.0, 2.0)
    torch.save({"model": model.state_dict()}, tmp_path / "w.pth")
    module = benchmark_module("fast_path_ap")
    rows = module.main(["--config-file", config, "--weights", str(tmp_path / "w.pth"),
                        "--autocast", "bfloat16", "--device", "cpu", *OPTS])  # fmt: skip
    assert [r.variant for r in rows] == ["float32", "fast path (float32)", "fast path (bfloat16)"]
    fp32, fast, bf16 = rows
    assert fp32.total == fast.total == bf16.total > 0  # all counted against the fp32 boxes
    assert fp32.matched == fp32.total
    assert fast.fraction >= 0.99  # folding only changes float rounding
    assert abs(fast.ap - fp32.ap) < 1e-3
    assert 0.0 <= bf16.fraction <= 1.0 and 0.0 <= bf16.ap <= 1.0
    out = capsys.readouterr().out
    assert "| fast path (bfloat16) |" in out and "float32 dets matched" in out


def test_matched_count_needs_the_same_label_and_iou_0_9(benchmark_module):
    from fcos_core.structures.bounding_box import BoxList

    module = benchmark_module("fast_path_ap")
    ref = BoxList(torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]), (64, 64))
    ref.add_field("labels", torch.tensor([1, 2]))
    other = BoxList(torch.tensor([[0.0, 0.0, 10.0, 10.5], [20.0, 20.0, 30.0, 30.0]]), (64, 64))
    other.add_field("labels", torch.tensor([1, 3]))
    assert module.matched_count(ref, other) == 1  # first: IoU 0.95 same label; second: label
    shifted = BoxList(other.bbox + torch.tensor([0.0, 2.0, 0.0, 2.0]), (64, 64))
    shifted.add_field("labels", torch.tensor([1, 2]))
    assert module.matched_count(ref, shifted) == 0  # IoU 0.8 and 0.67: below 0.9
    assert module.matched_count(ref, BoxList(torch.zeros(0, 4), (64, 64))) == 0
    flat = BoxList(torch.tensor([[5.0, 5.0, 5.0, 9.0]]), (64, 64))  # no area: IoU 0 with itself
    flat.add_field("labels", torch.tensor([1]))
    assert module.matched_count(flat, flat) == 1
