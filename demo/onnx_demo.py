"""Run an exported fcos detector with onnxruntime alone and draw its detections.

Needs only numpy, opencv-python and onnxruntime (no torch)::

    python tools/export_onnx.py --config-file configs/fcos/fcos_torchvision_R_50_FPN.yaml \\
        --output fcos.onnx MODEL.WEIGHT models/fcos_torchvision_R_50_FPN.pth
    python demo/onnx_demo.py --model fcos.onnx --image street.jpg --output street_dets.jpg

The graph (``--mode detector`` of tools/export_onnx.py) takes one uint8 RGB image (0..255)
resized so that its shorter side is INPUT.MIN_SIZE_TEST (longer side at most MAX_SIZE_TEST), both
stored in the file's metadata, and returns boxes (xyxy, resized-image pixels), scores and
contiguous labels; this script resizes, runs, maps boxes back to the original image and draws.
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

try:
    import onnxruntime as ort
except ImportError:  # the message of fcos_core.utils.extras, without importing torch
    raise SystemExit(
        "demo/onnx_demo.py needs onnxruntime: pip install 'fcos[export]' "
        "(from a clone: pip install '.[export]')"
    ) from None

# Box colour (BGR) and text settings of the drawing.
BOX_COLOR = (0, 200, 255)
TEXT_COLOR = (0, 0, 0)
FONT_SCALE = 0.5
LINE_WIDTH = 2


def resized_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(H, W) after the test-time resize of fcos (maskrcnn-benchmark's rule, as in
    fcos_core.data.transforms.get_size): shorter side -> min_size unless the longer side would
    pass max_size, in which case the shorter side becomes round(max_size * short / long)."""
    short, long = float(min(height, width)), float(max(height, width))
    size = min_size
    if long / short * size > max_size:
        size = int(round(max_size * short / long))
    if min(height, width) == size:
        return height, width
    if width < height:
        return max(int(size * height / width), 1), max(size, 1)
    return max(size, 1), max(int(size * width / height), 1)


def read_metadata(session: ort.InferenceSession) -> dict:
    """Sizes and class names stored by the exporter; refuses a "head" graph."""
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("fcos_mode") != "detector":
        raise SystemExit(
            f"{meta.get('fcos_mode')!r} graph: export with tools/export_onnx.py --mode detector"
        )
    return {
        "min_size": int(meta["min_size_test"]),
        "max_size": int(meta["max_size_test"]),
        "class_names": json.loads(meta["class_names"]),
    }


def detect(
    session: ort.InferenceSession, image_bgr: np.ndarray, min_size: int, max_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes [K, 4] in original-image pixels, scores [K], labels [K] of one BGR uint8 image."""
    height, width = image_bgr.shape[:2]
    out_h, out_w = resized_size(height, width, min_size, max_size)
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    if (out_h, out_w) != (height, width):
        rgb = cv2.resize(rgb, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    tensor = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])  # (1, 3, H, W) uint8
    boxes, scores, labels = session.run(None, {"image": tensor})
    boxes = boxes * np.array([width / out_w, height / out_h] * 2, dtype=np.float32)
    return boxes, scores, labels


def draw(
    image_bgr: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
) -> np.ndarray:
    """A copy of the image with one labelled rectangle per detection."""
    canvas = image_bgr.copy()
    for (x1, y1, x2, y2), score, label in zip(boxes.round().astype(int), scores, labels):
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOR, LINE_WIDTH)
        text = f"{class_names[label]} {score:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, 1)
        cv2.rectangle(canvas, (x1, y1 - th - 4), (x1 + tw + 2, y1), BOX_COLOR, -1)
        cv2.putText(
            canvas, text, (x1 + 1, y1 - 3), cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, TEXT_COLOR, 1
        )
    return canvas


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fcos detection with onnxruntime")
    parser.add_argument("--model", required=True, help="ONNX file from tools/export_onnx.py")
    parser.add_argument("--image", required=True, help="input image")
    parser.add_argument("--output", default="", help="where to write the drawing (optional)")
    parser.add_argument(
        "--score-threshold", type=float, default=0.5, help="draw detections above this score"
    )
    args = parser.parse_args(argv)
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    meta = read_metadata(session)
    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read image {args.image}")
    boxes, scores, labels = detect(session, image, meta["min_size"], meta["max_size"])
    keep = scores >= args.score_threshold
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    for box, score, label in zip(boxes, scores, labels):
        coords = ", ".join(f"{v:.1f}" for v in box)
        print(f"{meta['class_names'][label]:>16s} {score:.3f} [{coords}]")
    if args.output:
        cv2.imwrite(args.output, draw(image, boxes, scores, labels, meta["class_names"]))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
