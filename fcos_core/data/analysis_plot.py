"""PNG histograms of a dataset pre-flight report (`fcos_core.data.analysis`)."""

from __future__ import annotations

import numpy as np
from yacs.config import CfgNode

from fcos_core.data.analysis import DatasetStats, boxes_per_level, level_edges

FIGURE_SIZE = (15, 4)
HISTOGRAM_BINS = 50


def plot_report(cfg: CfgNode, stats: DatasetStats, out_png: str) -> str:
    """Box sizes against the level ranges, boxes per level and class, aspect ratios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=FIGURE_SIZE)
    half_long = stats.sides.max(axis=1) / 2 if stats.num_boxes else np.zeros(0)
    axes[0].hist(half_long, bins=HISTOGRAM_BINS, color="tab:blue")
    for edge in level_edges(cfg)[1:-1]:
        axes[0].axvline(edge, color="tab:red", linestyle="--", linewidth=1)
    axes[0].axvline(cfg.MODEL.FCOS.FPN_STRIDES[0] / 2, color="black", linewidth=1)
    axes[0].set_title(f"half longer side after resize to {stats.resize_min_size} (px)")
    per_level = boxes_per_level(cfg, stats)
    axes[1].bar([f"P{3 + k}" for k in range(len(per_level))], per_level, color="tab:green")
    axes[1].set_title("boxes per FPN level")
    counts = np.bincount(stats.labels, minlength=len(stats.class_names) + 1)[1:]
    axes[2].barh(stats.class_names, counts, color="tab:orange")
    axes[2].set_title("boxes per class")
    ratio = stats.sides[:, 0] / np.maximum(stats.sides[:, 1], 1e-6)
    axes[3].hist(np.log2(ratio) if len(ratio) else ratio, bins=HISTOGRAM_BINS, color="tab:purple")
    axes[3].set_title("aspect ratio log2(w/h)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{stats.name}: {stats.num_images} images, {stats.num_boxes} boxes")
    fig.tight_layout()
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png
