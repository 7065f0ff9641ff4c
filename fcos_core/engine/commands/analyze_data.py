"""``fcos analyze-data``: the dataset pre-flight report of a config."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

NAME = "analyze-data"
HELP = "dataset pre-flight: box sizes vs FPN levels, classes, empty images, warnings"
DESCRIPTION = """\
Dataset pre-flight report, from the annotations only (no image is decoded): images, boxes per
class, images without boxes, crowd boxes, box sizes after the configured training resize
against each FPN level's regression range, boxes under the smallest stride, aspect ratios, and
warnings naming the config key to change. Writes <dataset>.png histograms and report.json.

  fcos analyze-data --config-file configs/fcos/fcos_imprv_R_50_FPN_1x.yaml
  fcos analyze-data --config-file my.yaml --dataset my_val DATASETS.REGISTER '("my.py",)'

A short version of the report is logged when training starts.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to a yaml config")
    parser.add_argument(
        "--dataset",
        action="append",
        default=[],
        help="catalog dataset to analyse (repeatable; default: DATASETS.TRAIN)",
    )
    parser.add_argument(
        "--output-dir", default=None, help="folder for the plots and report.json "
        "(default: OUTPUT_DIR/analysis)"
    )  # fmt: skip
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Print the report of each dataset; returns what report.json holds."""
    from fcos_core.config.checks import ConfigError
    from fcos_core.data.analysis import (
        boxes_per_level,
        check,
        collect_stats,
        load_dataset,
        report_lines,
    )
    from fcos_core.data.analysis_plot import plot_report
    from fcos_core.engine.defaults import load_run_config

    cfg, config_file = load_run_config(args.config_file, args.opts)
    names = args.dataset or list(cfg.DATASETS.TRAIN)
    if not names:
        raise ConfigError("no dataset: set DATASETS.TRAIN in the config or pass --dataset NAME")
    out_dir = args.output_dir or os.path.join(cfg.OUTPUT_DIR, "analysis")
    os.makedirs(out_dir, exist_ok=True)
    reports = []
    for name in names:
        stats = collect_stats(cfg, load_dataset(cfg, name), name)
        print("\n".join(report_lines(cfg, stats)), flush=True)
        png = plot_report(cfg, stats, os.path.join(out_dir, f"{name}.png"))
        reports.append({
            "dataset": name, "images": stats.num_images, "boxes": stats.num_boxes,
            "empty_images": stats.empty_images, "crowd_boxes": stats.crowd_boxes,
            "boxes_per_level": boxes_per_level(cfg, stats), "warnings": check(cfg, stats),
            "plot": png,
        })  # fmt: skip
        print(f"plot: {png}")
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(reports, f, indent=1)
    return reports
