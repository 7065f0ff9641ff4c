"""Reading images robustly: always uint8[H, W, 3] RGB, or an error naming the file.

Grayscale, palette, 16-bit and RGBA files are converted to 3-channel 8-bit RGB (alpha is dropped).
EXIF orientation is ignored, as in the COCO annotations (their width/height are the raw sizes).
"""

from __future__ import annotations

import cv2
import numpy as np

# A JPEG ends with the EOI marker FF D9; it may be followed by a little padding, so the tail is
# searched rather than the last two bytes only. Entropy-coded data never contains FF D9.
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_JPEG_TAIL_BYTES = 4096
_DECODE_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


class ImageReadError(OSError):
    """An image file exists but cannot be decoded (corrupt, truncated, wrong size...)."""


def _where(path: str, image_id: object) -> str:
    return f"{path}" if image_id is None else f"{path} (image id {image_id})"


def read_image(path: str, image_id: object = None) -> np.ndarray:
    """Decode an image file into uint8[H, W, 3] RGB.

    Args:
        path: the image file.
        image_id: the dataset's id of the image, only used in error messages.

    Raises:
        FileNotFoundError: the file does not exist.
        ImageReadError: the file is empty, truncated (JPEG without end marker) or not decodable.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {_where(path, image_id)}") from None
    if not data:
        raise ImageReadError(f"empty image file: {_where(path, image_id)}")
    if data.startswith(_JPEG_SOI) and _JPEG_EOI not in data[-_JPEG_TAIL_BYTES:]:
        raise ImageReadError(
            f"truncated JPEG (no end-of-image marker): {_where(path, image_id)}, {len(data)} bytes"
        )
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _DECODE_FLAGS)
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ImageReadError(f"corrupt or unsupported image file: {_where(path, image_id)}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
