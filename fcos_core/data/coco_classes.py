"""COCO class names and the two label numberings in use.

COCO annotation files number the 80 object categories with ids 1..90 that leave 10 gaps (ids 12,
26, 29, 30, 45, 66, 68, 69, 71 and 83 were dropped from the released dataset). Two numberings
follow from that:

- **COCO category id** (1..90, with gaps): what ``instances_*.json`` and the COCO evaluation use,
  and, with index 0 for the background, the 91 rows of torchvision's detection models
  (``torchvision.models.detection`` class index == COCO category id).
- **Contiguous label** (1..80, no gaps): what fcos uses everywhere inside the model (label 0 means
  background; head channel k predicts label k + 1). Label k + 1 is the k-th category id in
  increasing order, which is also how `fcos_core.data.datasets.coco` numbers them.

Use `contiguous_to_coco_id` / `coco_id_to_contiguous` (plain dicts) to go between them, and
`COCO_CLASS_NAMES[label]` for a readable name (index 0 is "__background__").
"""

from __future__ import annotations

# (COCO category id, name) of the 80 categories, in increasing id order.
COCO_CATEGORIES: tuple[tuple[int, str], ...] = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"),
    (6, "bus"), (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"),
    (11, "fire hydrant"), (13, "stop sign"), (14, "parking meter"), (15, "bench"),
    (16, "bird"), (17, "cat"), (18, "dog"), (19, "horse"), (20, "sheep"), (21, "cow"),
    (22, "elephant"), (23, "bear"), (24, "zebra"), (25, "giraffe"), (27, "backpack"),
    (28, "umbrella"), (31, "handbag"), (32, "tie"), (33, "suitcase"), (34, "frisbee"),
    (35, "skis"), (36, "snowboard"), (37, "sports ball"), (38, "kite"),
    (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"), (42, "surfboard"),
    (43, "tennis racket"), (44, "bottle"), (46, "wine glass"), (47, "cup"), (48, "fork"),
    (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"),
    (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"),
    (64, "potted plant"), (65, "bed"), (67, "dining table"), (70, "toilet"), (72, "tv"),
    (73, "laptop"), (74, "mouse"), (75, "remote"), (76, "keyboard"), (77, "cell phone"),
    (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"), (82, "refrigerator"),
    (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"), (88, "teddy bear"),
    (89, "hair drier"), (90, "toothbrush"),
)  # fmt: skip

# Number of object classes (the head's channels for COCO; MODEL.FCOS.NUM_CLASSES is this + 1).
NUM_COCO_CLASSES = len(COCO_CATEGORIES)
# Rows of a torchvision COCO detection head: background (0) + category ids 1..90 incl. gaps.
NUM_COCO_ID_SLOTS = 91
# Name of label 0.
BACKGROUND_NAME = "__background__"

# Contiguous label (0 = background, 1..80) -> class name.
COCO_CLASS_NAMES: tuple[str, ...] = (BACKGROUND_NAME,) + tuple(n for _, n in COCO_CATEGORIES)


def default_class_names(num_classes: int) -> list[str]:
    """Names of labels 1..C for a model with C = ``num_classes`` object classes (the head's
    channels, MODEL.FCOS.NUM_CLASSES - 1): the COCO names when C is 80, else ``class_1 ..
    class_C``. Index ``k`` names label ``k + 1``; label 0 (background) is :data:`BACKGROUND_NAME`.
    """
    if num_classes == NUM_COCO_CLASSES:
        return list(COCO_CLASS_NAMES[1:])
    return [f"class_{k}" for k in range(1, num_classes + 1)]


# Contiguous label (1..80) -> COCO category id (1..90).
contiguous_to_coco_id: dict[int, int] = {
    label: cat_id for label, (cat_id, _) in enumerate(COCO_CATEGORIES, start=1)
}
# COCO category id (1..90) -> contiguous label (1..80). The 10 unused ids are absent.
coco_id_to_contiguous: dict[int, int] = {v: k for k, v in contiguous_to_coco_id.items()}

# COCO category ids with no category (absent from coco_id_to_contiguous), plus 0 (background):
# the 11 rows of a 91-row torchvision head that have no counterpart among the 80 labels.
UNUSED_COCO_ID_SLOTS: tuple[int, ...] = tuple(
    i for i in range(NUM_COCO_ID_SLOTS) if i not in coco_id_to_contiguous
)


__all__ = [
    "BACKGROUND_NAME",
    "COCO_CATEGORIES",
    "COCO_CLASS_NAMES",
    "NUM_COCO_CLASSES",
    "NUM_COCO_ID_SLOTS",
    "UNUSED_COCO_ID_SLOTS",
    "coco_id_to_contiguous",
    "contiguous_to_coco_id",
]

# Per-class score thresholds for labels 1..80 shipped with the original FCOS demo (computed there
# by maximising each class's F-measure on its precision-recall curve, for FCOS R-50 on COCO
# minival). `demo/fcos_demo.py --class-thresholds coco` uses them.
FCOS_COCO_CLASS_THRESHOLDS: tuple[float, ...] = (
    0.23860901594161987, 0.24108672142028809, 0.2470853328704834, 0.2316885143518448,
    0.2708061933517456, 0.23173952102661133, 0.31990334391593933, 0.21302376687526703,
    0.20151866972446442, 0.20928964018821716, 0.3793887197971344, 0.2715213894844055,
    0.2836397588253021, 0.26449233293533325, 0.1728038638830185, 0.314998596906662,
    0.28575003147125244, 0.28987520933151245, 0.2727000117301941, 0.23306897282600403,
    0.265937477350235, 0.32663893699645996, 0.27102580666542053, 0.29177549481391907,
    0.2043062448501587, 0.24331751465797424, 0.20752687752246857, 0.22951272130012512,
    0.22753854095935822, 0.2159966081380844, 0.1993938684463501, 0.23676514625549316,
    0.20982342958450317, 0.18315598368644714, 0.2489681988954544, 0.24793922901153564,
    0.287187397480011, 0.23045086860656738, 0.2462811917066574, 0.21191294491291046,
    0.22845126688480377, 0.24365000426769257, 0.22687821090221405, 0.18365581333637238,
    0.2035856395959854, 0.23478077352046967, 0.18431290984153748, 0.18184082210063934,
    0.2708037495613098, 0.2268175482749939, 0.19970566034317017, 0.21832780539989471,
    0.21120598912239075, 0.270445853471756, 0.189377561211586, 0.2101106345653534,
    0.2112293541431427, 0.23484709858894348, 0.22701986134052277, 0.20732736587524414,
    0.1953316181898117, 0.3237660229206085, 0.3078872859477997, 0.2881140112876892,
    0.38746657967567444, 0.20038367807865143, 0.28123822808265686, 0.2588447630405426,
    0.2796839773654938, 0.266757994890213, 0.3266656696796417, 0.25759157538414,
    0.2578003704547882, 0.17009201645851135, 0.29051828384399414, 0.24002137780189514,
    0.22378061711788177, 0.26134759187698364, 0.1730124056339264, 0.1857597529888153,
)  # fmt: skip
