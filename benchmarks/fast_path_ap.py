"""Does the fast path keep the detections? A trained checkpoint, evaluated on its val set.

For float32 (the plain model) and each fast-path variant (`fcos_core.export.fast_path`: FrozenBN /
BN folded into the convs, channels_last, inference_mode, optional autocast) this runs inference on
DATASETS.TEST[0] of the config and prints COCO AP / AP50, the AP change against float32, the
fraction of float32 detections the variant reproduces (same label, IoU >= 0.9) and the model time
per image.

The default config is the quickstart's, so after `make quickstart`:

    python benchmarks/fast_path_ap.py --weights output/quickstart/model_final.pth
    python benchmarks/fast_path_ap.py --weights W --autocast bfloat16 --autocast float16 \
        --device cuda

`bench_model.py --ap-weights W` appends these rows to its table.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import torch
from torch import nn

from fcos_core.config import cfg as default_cfg
from fcos_core.data import make_data_loader
from fcos_core.data.evaluation import evaluate
from fcos_core.engine.inference import compute_on_dataset
from fcos_core.engine.launcher import load_for_test
from fcos_core.export.fast_path import prepare_fast_inference
from fcos_core.modeling.detector import build_detection_model
from fcos_core.structures.bounding_box import BoxList
from fcos_core.structures.boxlist_ops import boxlist_iou
from fcos_core.utils.precision import PRECISIONS
from fcos_core.utils.timer import Timer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

QUICKSTART_CONFIG = os.path.join(ROOT, "configs", "quickstart", "fcos_quickstart.yaml")
MATCH_IOU = 0.9


@dataclass
class Agreement:
    variant: str
    ap: float
    ap50: float
    matched: int  # float32 detections reproduced
    total: int  # float32 detections
    ms_per_image: float

    @property
    def fraction(self) -> float:
        return self.matched / self.total if self.total else 1.0


def matched_count(reference: BoxList, other: BoxList, iou: float = MATCH_IOU) -> int:
    """How many ``reference`` boxes have a same-label box in ``other`` at IoU >= ``iou``.

    An identical box counts as a match even when it has no area (IoU 0 / 0).
    """
    if len(reference) == 0 or len(other) == 0:
        return 0
    overlap = boxlist_iou(reference, other)  # (N_ref, N_other)
    identical = (reference.bbox[:, None, :] == other.bbox[None, :, :]).all(dim=2)
    same = reference.get_field("labels")[:, None] == other.get_field("labels")[None, :]
    return int((((overlap >= iou) | identical) & same).any(dim=1).sum())


def build_trained(config_file: str, weights: str, device: str, opts: list[str]):
    """(cfg, eval-mode model with ``weights``, the first test loader)."""
    cfg = default_cfg.clone()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    cfg.MODEL.DEVICE = device
    cfg.DATALOADER.NUM_WORKERS = 0
    model = build_detection_model(cfg).to(device).eval()
    load_for_test(cfg, model, weights)
    loader = make_data_loader(cfg, is_train=False, is_distributed=False)[0]
    return cfg, model, loader


def _run(model: nn.Module, loader, device: str) -> tuple[list[BoxList], float]:
    """Detections in dataset order and model milliseconds per image."""
    timer = Timer()
    compute_on_dataset(model, loader, torch.device(device), timer)  # warm-up pass
    timer = Timer()
    by_index = compute_on_dataset(model, loader, torch.device(device), timer)
    count = len(loader.dataset)
    return [by_index[i] for i in range(count)], timer.total_time * 1e3 / count


def agreement(
    config_file: str,
    weights: str,
    autocasts: list[str],
    device: str = "cpu",
    opts: list[str] | None = None,
) -> list[Agreement]:
    """float32 first, then the fast path in float32 and under each autocast dtype in
    ``autocasts`` (`fcos_core.utils.precision` names)."""
    _, model, loader = build_trained(config_file, weights, device, opts or [])
    variants: dict[str, nn.Module] = {"float32": model}
    for autocast in dict.fromkeys(["float32", *autocasts]):
        variants[f"fast path ({autocast})"] = prepare_fast_inference(model, autocast=autocast)
    rows, reference = [], None
    for name, variant in variants.items():
        predictions, ms = _run(variant, loader, device)
        reference = reference or predictions
        result = evaluate(
            dataset=loader.dataset, predictions=predictions, output_folder=None,
            box_only=False, iou_types=("bbox",),
        )[0].results["bbox"]  # fmt: skip
        matched = sum(matched_count(r, p) for r, p in zip(reference, predictions, strict=True))
        total = sum(len(r) for r in reference)
        rows.append(Agreement(name, result["AP"], result["AP50"], matched, total, ms))
    return rows


def print_agreement(rows: list[Agreement], header: str) -> None:
    print(header)
    print("| variant | AP | AP50 | AP change (points) | float32 dets matched | model ms / img |")
    print("|---|---|---|---|---|---|")
    base = rows[0].ap
    for r in rows:
        print(f"| {r.variant} | {r.ap * 100:.2f} | {r.ap50 * 100:.2f} | "
              f"{(r.ap - base) * 100:+.2f} | {r.fraction:.2%} ({r.matched}/{r.total}) | "
              f"{r.ms_per_image:.1f} |")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config-file", default=QUICKSTART_CONFIG)
    p.add_argument("--weights", required=True, help="trained checkpoint of that config")
    p.add_argument("--autocast", action="append", default=[], choices=PRECISIONS,
                   help="also run the fast path under this autocast (repeatable)")  # fmt: skip
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE config overrides")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Agreement]:
    args = parse_args(argv)
    if not os.path.isfile(args.weights):
        raise SystemExit(f"--weights {args.weights}: no such file (run `make quickstart` first?)")
    torch.set_num_threads(args.threads)
    rows = agreement(args.config_file, args.weights, args.autocast, args.device, args.opts)
    print_agreement(rows, f"{os.path.relpath(args.config_file, ROOT)} + {args.weights} on "
                          f"{args.device}")  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
