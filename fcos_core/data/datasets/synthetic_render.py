"""Rendering one synthetic "shapes" image: textured background, clutter, occluding shapes.

Everything is drawn from one `numpy.random.Generator`, so an image is a pure function of its seed.
Boxes are the tight boxes of each object's *visible* pixels in continuous coordinates (a pixel
column c spans [c, c + 1)), and `area` is the visible pixel count, as in COCO.
How big the objects are and how many an image holds is an `ObjectSpec`; the default one is the
original dataset's (``ObjectSpec()`` renders the same bytes as before the spec existed).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHAPE_CLASSES = ("rectangle", "ellipse", "triangle", "cross", "ring")

MIN_OBJECT_SIZE = 10  # px, smallest side of an object's box
MAX_OBJECT_FRACTION = 0.9  # largest object side, as a fraction of the image side
MAX_OBJECTS = 8  # objects tried per image (placements may be rejected)
MIN_VISIBLE_FRACTION = 0.5  # an object keeps at least this fraction of its pixels visible
PLACEMENT_TRIES = 4
MIN_COLOR_DISTANCE = 90.0  # RGB distance between an object and the background under it


@dataclass(frozen=True)
class ObjectSpec:
    """Object sizes and counts of a synthetic split.

    Attributes:
        min_side: smallest side of an object's box, px.
        max_side: largest side of an object's box, px; None keeps the original rule (the
            geometric-mean side goes up to MAX_OBJECT_FRACTION of the image side, each side up to
            the image side).
        min_objects, max_objects: objects tried per image, drawn uniformly from this range
            (a placement that would hide half of an earlier object is dropped).
    """

    min_side: int = MIN_OBJECT_SIZE
    max_side: int | None = None
    min_objects: int = 1
    max_objects: int = MAX_OBJECTS

    def __post_init__(self) -> None:
        if self.min_side < 1:
            raise ValueError(f"ObjectSpec.min_side must be >= 1 px, got {self.min_side}")
        if self.max_side is not None and self.max_side <= self.min_side:
            raise ValueError(
                f"ObjectSpec.max_side must be > min_side ({self.min_side}), got {self.max_side}"
            )
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(
                "ObjectSpec needs 1 <= min_objects <= max_objects, got "
                f"min_objects={self.min_objects}, max_objects={self.max_objects}"
            )

    def check_image_size(self, size: int) -> None:
        """Raise ValueError when the objects cannot fit an image of side `size`."""
        largest = self.min_side if self.max_side is None else self.max_side
        if largest > size:
            raise ValueError(f"objects of up to {largest} px do not fit {size} px images")

    def side_limits(self, size: int) -> tuple[int, int]:
        """(largest geometric-mean side sampled, largest side kept) for images of side `size`."""
        if self.max_side is None:
            return max(int(MAX_OBJECT_FRACTION * size), self.min_side + 1), size
        return self.max_side, self.max_side


DEFAULT_OBJECTS = ObjectSpec()


@dataclass
class RenderedObject:
    """One annotated object: class index (0-based in SHAPE_CLASSES), xyxy box, visible area."""

    category: int
    box: tuple[int, int, int, int]
    area: int


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """uint8[size, size, 3]: smooth colour field + fine texture + clutter lines and dots."""
    coarse = rng.integers(40, 216, size=(4, 4, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    fine = rng.integers(0, 50, size=(size // 8 + 1, size // 8 + 1), dtype=np.uint8)
    texture = cv2.resize(fine, (size, size), interpolation=cv2.INTER_LINEAR)
    image = cv2.subtract(cv2.add(image, cv2.merge([texture] * 3)), 25)
    for _ in range(int(rng.integers(2, 7))):
        p1, p2 = rng.integers(0, size, size=2), rng.integers(0, size, size=2)
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        cv2.line(image, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), color, 1, cv2.LINE_AA)
    for _ in range(int(rng.integers(3, 12))):
        center = tuple(int(c) for c in rng.integers(0, size, size=2))
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        cv2.circle(image, center, int(rng.integers(1, 3)), color, -1)
    return image


def _draw_mask(
    category: int, box: tuple[int, int, int, int], size: int, rng: np.random.Generator
) -> np.ndarray:
    """uint8[size, size] mask (255 inside) of one shape filling `box` = (x1, y1, x2, y2) tightly."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    mask = np.zeros((size, size), dtype=np.uint8)
    name = SHAPE_CLASSES[category]
    center, axes = (x1 + w // 2, y1 + h // 2), (max(w // 2, 1), max(h // 2, 1))
    if name == "rectangle":
        mask[y1:y2, x1:x2] = 255
    elif name == "ellipse":
        cv2.ellipse(mask, center, axes, 0, 0, 360, 255, -1)
    elif name == "triangle":
        apex = x1 + int(rng.integers(0, w))
        pts = np.array([[x1, y2 - 1], [x2 - 1, y2 - 1], [apex, y1]], dtype=np.int32)
        cv2.fillPoly(mask, [pts], 255)
    elif name == "cross":
        t = max(int(0.3 * min(w, h)), 3)
        mask[y1:y2, center[0] - t // 2 : center[0] - t // 2 + t] = 255
        mask[center[1] - t // 2 : center[1] - t // 2 + t, x1:x2] = 255
    else:  # ring
        cv2.ellipse(mask, center, axes, 0, 0, 360, 255, -1)
        inner = (max(int(axes[0] * 0.55), 1), max(int(axes[1] * 0.55), 1))
        cv2.ellipse(mask, center, inner, 0, 0, 360, 0, -1)
    return mask


def _sample_box(rng: np.random.Generator, size: int, spec: ObjectSpec) -> tuple[int, int, int, int]:
    """Log-uniform geometric-mean side in [spec.min_side, largest], aspect 1:2..2:1, each side
    clipped to [spec.min_side, cap] (`spec.side_limits`)."""
    largest, cap = spec.side_limits(size)
    side = float(np.exp(rng.uniform(np.log(spec.min_side), np.log(largest))))
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    w = int(np.clip(round(side * np.sqrt(aspect)), spec.min_side, cap))
    h = int(np.clip(round(side / np.sqrt(aspect)), spec.min_side, cap))
    x1, y1 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    return x1, y1, x1 + w, y1 + h


def _pick_color(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A colour far enough from the mean background colour under `mask`."""
    under = image[mask > 0].reshape(-1, 3).mean(axis=0)
    color = rng.integers(0, 256, size=3)
    for _ in range(8):
        if np.linalg.norm(color - under) >= MIN_COLOR_DISTANCE:
            break
        color = rng.integers(0, 256, size=3)
    return color.astype(np.uint8)


def _place(rng, size, owner, full_areas, spec: ObjectSpec) -> tuple[int, np.ndarray] | None:
    """Try to place one object so every earlier object keeps enough visible pixels."""
    visible = np.bincount(owner.ravel() + 1, minlength=len(full_areas) + 1)[1:]
    for _ in range(PLACEMENT_TRIES):
        category = int(rng.integers(len(SHAPE_CLASSES)))
        mask = _draw_mask(category, _sample_box(rng, size, spec), size, rng) > 0
        if not mask.any():
            continue
        lost = np.bincount(owner[mask] + 1, minlength=len(full_areas) + 1)[1:]
        if np.all(visible - lost >= MIN_VISIBLE_FRACTION * np.asarray(full_areas)):
            return category, mask
    return None


def render_image(
    rng: np.random.Generator, size: int, spec: ObjectSpec = DEFAULT_OBJECTS
) -> tuple[np.ndarray, list[RenderedObject]]:
    """Render one image of side `size` with objects as `spec` says.

    Returns:
        (uint8[size, size, 3] RGB image, visible objects with their boxes and areas).
    """
    image = _background(rng, size)
    owner = np.full((size, size), -1, dtype=np.int16)  # index of the object owning each pixel
    categories: list[int] = []
    full_areas: list[int] = []
    spec.check_image_size(size)
    for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        placed = _place(rng, size, owner, full_areas, spec)
        if placed is None:
            continue
        category, mask = placed
        np.copyto(image, _pick_color(rng, image, mask), where=mask[..., None])
        owner[mask] = len(categories)
        categories.append(category)
        full_areas.append(int(np.count_nonzero(mask)))
    return _add_noise(rng, image), _visible_objects(owner, categories)


def _add_noise(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Sensor-like noise: difference of two uniform 4-bit values (triangular, std ~6.5)."""
    bits = rng.integers(0, 256, size=image.shape, dtype=np.uint8)
    return cv2.subtract(cv2.add(image, bits & 15), bits >> 4)


def _visible_objects(owner: np.ndarray, categories: list[int]) -> list[RenderedObject]:
    objects = []
    for k, category in enumerate(categories):
        ys, xs = np.nonzero(owner == k)
        if len(xs) == 0:
            continue
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        objects.append(RenderedObject(category=category, box=box, area=len(xs)))
    return objects
