"""Every configuration option of fcos, with its default value.

This file is the single place where options are declared (maskrcnn-benchmark's rule): a yaml file
or a command-line ``KEY VALUE`` pair can only set keys that exist here, and yacs rejects unknown
keys. A key used in both training and testing carries a ``_TRAIN`` / ``_TEST`` suffix.

Names and defaults follow the original FCOS repository (see docs/config.md); additions are marked
"(fcos addition)".
"""

from __future__ import annotations

from yacs.config import CfgNode as CN

_C = CN()

# Base seed (fcos addition). Weight init, data order and per-iteration augmentation are derived
# from (SEED, iteration, slot), so a resumed run reproduces the uninterrupted one.
_C.SEED = 0
# cuDNN autotuning (torch.backends.cudnn.benchmark). Off, as detectron2: FCOS trains on varying
# image sizes and every new input shape would be tuned again. Turn on for fixed-size inputs.
_C.CUDNN_BENCHMARK = False
# Deterministic kernels where torch has them (torch.use_deterministic_algorithms, warn_only) and
# cuDNN deterministic mode; slower. Without it GPU runs are not bitwise reproducible.
_C.DETERMINISTIC = False
# Timeout (minutes) of every collective (NCCL/gloo): a dead or stuck rank ends the job with an
# error instead of hanging it.
_C.DIST_TIMEOUT_MINUTES = 10.0

# -----------------------------------------------------------------------------
# MODEL
# -----------------------------------------------------------------------------
_C.MODEL = CN()
# Only "GeneralizedRCNN" is implemented (the name the original FCOS configs use).
_C.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
# Kept for config compatibility with the original repository; FCOS configs set it to True.
_C.MODEL.RPN_ONLY = False
# Kept for config compatibility; fcos always builds the FCOS head.
_C.MODEL.FCOS_ON = True
# Kept for config compatibility; RetinaNet is not part of fcos.
_C.MODEL.RETINANET_ON = False
# Pixel convention of box arithmetic (fcos addition; see docs/abstractions.md). "plus_one": the
# original FCOS / maskrcnn-benchmark convention, a box covers pixels x1..x2 inclusive: width
# x2 - x1 + 1, COCO [x, y, w, h] -> x2 = x + w - 1, clipping to width - 1, +1 in NMS and IoU.
# "continuous": torchvision / detectron2, width x2 - x1. Zoo configs: plus_one; quickstart and
# torchvision configs: continuous.
_C.MODEL.BOX_CONVENTION = "plus_one"
# "cuda" or "cpu". "cuda" on a machine without a GPU falls back to "cpu" with one log line.
_C.MODEL.DEVICE = "cuda"
# Initial weights: a path, an http(s) URL or a catalog:// name (see paths_catalog.ModelCatalog).
_C.MODEL.WEIGHT = ""
# Convert BatchNorm layers to SyncBatchNorm when training with several processes.
_C.MODEL.USE_SYNCBN = False
# Keep weights and feature maps in torch.channels_last (NHWC): what oneDNN (CPU) and cuDNN
# tensor-core convs run fastest on; ~25% off an R-50 training step on CPU. Same values either way.
_C.MODEL.CHANNELS_LAST = True
# No longer needed (kept so older configs load; it has no effect): every Caffe2 .pkl is read with
# an allow-list unpickler that rebuilds only NumPy arrays, so no code in the file runs.
_C.MODEL.WEIGHT_ALLOW_PICKLE = False

# -----------------------------------------------------------------------------
# INPUT
# -----------------------------------------------------------------------------
_C.INPUT = CN()
# Shorter side of training images; one value is drawn per image from this tuple.
_C.INPUT.MIN_SIZE_TRAIN = (800,)
# When both are >= 0, the shorter side is drawn uniformly from [lo, hi] instead (multi-scale).
_C.INPUT.MIN_SIZE_RANGE_TRAIN = (-1, -1)
# Cap on the longer side of training images.
_C.INPUT.MAX_SIZE_TRAIN = 1333
# Shorter side of test images.
_C.INPUT.MIN_SIZE_TEST = 800
# Cap on the longer side of test images.
_C.INPUT.MAX_SIZE_TEST = 1333
# Per-channel mean subtracted from the image (in the channel order and scale set by TO_BGR255).
_C.INPUT.PIXEL_MEAN = [102.9801, 115.9465, 122.7717]
# Per-channel std the image is divided by.
_C.INPUT.PIXEL_STD = [1.0, 1.0, 1.0]
# True: BGR images in 0-255 (Caffe2/Detectron weights). False: RGB in 0-1 (torchvision weights).
_C.INPUT.TO_BGR255 = True
# Probability of a horizontal flip in training (fcos addition; hard-coded 0.5 in the original).
_C.INPUT.HORIZONTAL_FLIP_PROB_TRAIN = 0.5

# -----------------------------------------------------------------------------
# DATASETS
# -----------------------------------------------------------------------------
_C.DATASETS = CN()
# Names of training datasets, resolved by paths_catalog.DatasetCatalog.
_C.DATASETS.TRAIN = ()
# Names of test datasets, resolved by paths_catalog.DatasetCatalog.
_C.DATASETS.TEST = ()
# Custom datasets registered before TRAIN/TEST are resolved (fcos addition). Each entry is either
# (name, image_dir, ann_file) for a COCO-json dataset, or the path of a python file that calls
# DatasetCatalog.register_coco(...). See docs/custom_datasets.md.
_C.DATASETS.REGISTER = ()
# Train on images without any usable box too, as pure negatives (fcos addition). False: the
# original behaviour, such images are left out of training.
_C.DATASETS.KEEP_EMPTY_IMAGES = False

# -----------------------------------------------------------------------------
# DATALOADER
# -----------------------------------------------------------------------------
_C.DATALOADER = CN()
# Worker processes per data loader.
_C.DATALOADER.NUM_WORKERS = 4
# Pad batched images so height and width are multiples of this (0: no rounding).
_C.DATALOADER.SIZE_DIVISIBILITY = 0
# Batch images of similar aspect ratio together (less padding).
_C.DATALOADER.ASPECT_RATIO_GROUPING = True
# Skip (with a warning) an image that cannot be read during training instead of stopping the run
# (fcos addition). Evaluation always stops on a bad image.
_C.DATALOADER.SKIP_BAD_IMAGES = True

# -----------------------------------------------------------------------------
# BACKBONE
# -----------------------------------------------------------------------------
_C.MODEL.BACKBONE = CN()
# One of R-18-FPN-RETINANET, R-34-FPN-RETINANET, R-50-FPN-RETINANET, R-101-FPN-RETINANET,
# R-152-FPN-RETINANET, MNV2-FPN-RETINANET. ResNeXt = R-101 + RESNETS.NUM_GROUPS/WIDTH_PER_GROUP.
_C.MODEL.BACKBONE.CONV_BODY = "R-50-C4"
# Stages up to this one are frozen (0: none, 1: stem, 2: stem + layer1, ...).
_C.MODEL.BACKBONE.FREEZE_CONV_BODY_AT = 2
# Kept for config compatibility with the original (GN is chosen through RESNETS.TRANS_FUNC).
_C.MODEL.BACKBONE.USE_GN = False

# -----------------------------------------------------------------------------
# FPN
# -----------------------------------------------------------------------------
_C.MODEL.FPN = CN()
# GroupNorm after each FPN conv.
_C.MODEL.FPN.USE_GN = False
# ReLU after each FPN conv.
_C.MODEL.FPN.USE_RELU = False

# -----------------------------------------------------------------------------
# Group Norm
# -----------------------------------------------------------------------------
_C.MODEL.GROUP_NORM = CN()
# Channels per group (-1: use NUM_GROUPS instead).
_C.MODEL.GROUP_NORM.DIM_PER_GP = -1
# Number of groups (used when DIM_PER_GP is -1).
_C.MODEL.GROUP_NORM.NUM_GROUPS = 32
# GroupNorm epsilon.
_C.MODEL.GROUP_NORM.EPSILON = 1e-5

# -----------------------------------------------------------------------------
# ResNe[X]t
# -----------------------------------------------------------------------------
_C.MODEL.RESNETS = CN()
# 1 for ResNet; 32 or 64 for ResNeXt.
_C.MODEL.RESNETS.NUM_GROUPS = 1
# Width of each group in the first bottleneck stage (64 for ResNet, 8 or 4 for ResNeXt).
_C.MODEL.RESNETS.WIDTH_PER_GROUP = 64
# True: stride in the 1x1 conv (MSRA/Caffe2 ResNet). False: stride in the 3x3 (torchvision, FAIR).
_C.MODEL.RESNETS.STRIDE_IN_1X1 = True
# Residual block: Bottleneck/BasicBlock With FixedBatchNorm / BatchNorm / GN.
_C.MODEL.RESNETS.TRANS_FUNC = "BottleneckWithFixedBatchNorm"
# Stem: StemWith FixedBatchNorm / BatchNorm / GN.
_C.MODEL.RESNETS.STEM_FUNC = "StemWithFixedBatchNorm"
# Dilation of the last stage.
_C.MODEL.RESNETS.RES5_DILATION = 1
# Output channels of layer1 (doubles each stage). 256 for bottleneck nets, 64 for R-18/34.
_C.MODEL.RESNETS.RES2_OUT_CHANNELS = 256
# Output channels of the stem.
_C.MODEL.RESNETS.STEM_OUT_CHANNELS = 64
# FPN / head width.
_C.MODEL.RESNETS.BACKBONE_OUT_CHANNELS = 256 * 4
# Which of layer1..layer4 use deformable convolutions in their 3x3 conv.
_C.MODEL.RESNETS.STAGE_WITH_DCN = (False, False, False, False)
# Modulated (DCNv2) rather than plain (DCNv1) deformable convolutions.
_C.MODEL.RESNETS.WITH_MODULATED_DCN = False
# Deformable groups of the deformable convolutions.
_C.MODEL.RESNETS.DEFORMABLE_GROUPS = 1

# -----------------------------------------------------------------------------
# RetinaNet options used by FCOS's FPN
# -----------------------------------------------------------------------------
_C.MODEL.RETINANET = CN()
# True: P6 is computed from C5. False: from P5 (all FCOS configs).
_C.MODEL.RETINANET.USE_C5 = True

# -----------------------------------------------------------------------------
# FCOS
# -----------------------------------------------------------------------------
_C.MODEL.FCOS = CN()
# Number of classes + 1 (background); the head predicts NUM_CLASSES - 1 channels.
_C.MODEL.FCOS.NUM_CLASSES = 81
# Strides of the feature levels P3-P7.
# [4, 8, 16, 32, 64, 128] adds the stride-4 level P2 (fcos addition, for small objects): the FPN
# then also reads C2 (new keys fpn_inner1 / fpn_layer1, one more head Scale) and
# SIZES_OF_INTEREST needs one more boundary, e.g. [32, 64, 128, 256, 512]
# (docs/small_objects.md).
_C.MODEL.FCOS.FPN_STRIDES = [8, 16, 32, 64, 128]
# Prior probability used to initialise the cls_logits bias: -log((1 - p) / p).
_C.MODEL.FCOS.PRIOR_PROB = 0.01
# Pre-NMS threshold on the class probability (before centerness).
_C.MODEL.FCOS.INFERENCE_TH = 0.05
# What INFERENCE_TH is compared with (fcos addition): "cls" = the class probability
# sigmoid(logit) (original FCOS), "score" = the final score sqrt(sigmoid(logit) *
# sigmoid(centerness)) (torchvision's FCOS, which uses INFERENCE_TH 0.2).
_C.MODEL.FCOS.INFERENCE_TH_ON = "cls"
# Class-aware NMS IoU threshold.
_C.MODEL.FCOS.NMS_TH = 0.6
# Candidates kept per level and image before NMS.
_C.MODEL.FCOS.PRE_NMS_TOP_N = 1000
# Focal loss alpha.
_C.MODEL.FCOS.LOSS_ALPHA = 0.25
# Focal loss gamma.
_C.MODEL.FCOS.LOSS_GAMMA = 2.0
# Conv + GN + ReLU blocks in each head tower.
_C.MODEL.FCOS.NUM_CONVS = 4
# Centre sampling radius in units of the level's stride; <= 0 disables it (imprv configs: 1.5).
_C.MODEL.FCOS.CENTER_SAMPLING_RADIUS = 0.0
# Box regression loss: "iou" (-log IoU), "linear_iou" (1 - IoU) or "giou" (1 - GIoU).
_C.MODEL.FCOS.IOU_LOSS_TYPE = "iou"
# Regression targets divided by the stride and ReLU instead of exp (imprv configs).
_C.MODEL.FCOS.NORM_REG_TARGETS = False
# Centerness branch reads the bbox tower instead of the cls tower (imprv configs).
_C.MODEL.FCOS.CENTERNESS_ON_REG = False
# The last conv of both towers is a modulated deformable conv (dcnv2 configs).
_C.MODEL.FCOS.USE_DCN_IN_TOWER = False
# Boundaries of the object-size ranges of the levels (fcos addition; fixed in the original):
# P3 [-1, 64], P4 [64, 128], P5 [128, 256], P6 [256, 512], P7 [512, inf], bounds inclusive.
# One boundary per pair of adjacent levels: with P2, [32, 64, 128, 256, 512] gives P2 [-1, 32],
# P3 [32, 64] and the rest as above.
_C.MODEL.FCOS.SIZES_OF_INTEREST = [64, 128, 256, 512]
# Where cell (i, j) of a level with stride s sits in the input image, in training and inference
# (fcos addition): "half_stride" = (j * s + s // 2, i * s + s // 2) (original FCOS), "zero" =
# (j * s, i * s) (torchvision's FCOS anchor centres).
_C.MODEL.FCOS.LOCATION_OFFSET = "half_stride"

# -----------------------------------------------------------------------------
# SOLVER
# -----------------------------------------------------------------------------
_C.SOLVER = CN()
# "SGD" (the original) or "AdamW" (fcos addition).
_C.SOLVER.OPTIMIZER = "SGD"
# Number of training iterations.
_C.SOLVER.MAX_ITER = 40000
# Learning rate for weights (for a global batch of IMS_PER_BATCH).
_C.SOLVER.BASE_LR = 0.001
# Learning-rate multiplier for biases.
_C.SOLVER.BIAS_LR_FACTOR = 2
# SGD momentum.
_C.SOLVER.MOMENTUM = 0.9
# Weight decay for weights.
_C.SOLVER.WEIGHT_DECAY = 0.0005
# Weight decay for biases.
_C.SOLVER.WEIGHT_DECAY_BIAS = 0
# Learning-rate multiplier at each of STEPS.
_C.SOLVER.GAMMA = 0.1
# Iterations at which the learning rate is multiplied by GAMMA (increasing).
_C.SOLVER.STEPS = (30000,)
# Warm-up starts at BASE_LR * WARMUP_FACTOR.
_C.SOLVER.WARMUP_FACTOR = 1.0 / 3
# Warm-up length in iterations.
_C.SOLVER.WARMUP_ITERS = 500
# "constant" or "linear" warm-up.
_C.SOLVER.WARMUP_METHOD = "linear"
# Save a checkpoint every this many iterations.
_C.SOLVER.CHECKPOINT_PERIOD = 2500
# Global training batch size (split over processes).
_C.SOLVER.IMS_PER_BATCH = 16
# Batch the schedule below was written for (fcos addition; detectron2's REFERENCE_WORLD_SIZE
# idea). When > 0 and IMS_PER_BATCH differs, training scales BASE_LR by IMS_PER_BATCH / this
# (linear scaling rule) and MAX_ITER, STEPS, WARMUP_ITERS, CHECKPOINT_PERIOD and TEST_PERIOD by
# its inverse. 0: off (a warning says when IMS_PER_BATCH differs from the config file's value).
_C.SOLVER.REFERENCE_IMS_PER_BATCH = 0
# Learning-rate multiplier for deformable-conv offset layers.
_C.SOLVER.DCONV_OFFSETS_LR_FACTOR = 1.0
# Clip the global gradient norm to this value; 0 disables clipping (fcos addition).
_C.SOLVER.CLIP_GRAD_NORM = 0.0
# On a non-finite loss: "stop" (with a message, last good checkpoint kept) or "skip" the step
# (counted and logged) (fcos addition).
_C.SOLVER.NONFINITE_LOSS = "stop"
# Log a line every this many iterations (fcos addition).
_C.SOLVER.LOG_PERIOD = 20
# Evaluate on DATASETS.TEST every this many iterations during training; 0 disables it
# (fcos addition).
_C.SOLVER.TEST_PERIOD = 0
# Stop training cleanly (saving model_final) after this many minutes of training; 0 = no limit
# (fcos addition; the quickstart uses it).
_C.SOLVER.MAX_MINUTES = 0.0
# With MAX_MINUTES: once the speed is measured (iterations 6-55 of the run), shorten a schedule
# that would not fit and scale STEPS by the same factor, so the learning-rate decays still happen
# before the limit; checkpoints keep the fitted schedule for a resume (fcos addition).
_C.SOLVER.FIT_TO_MAX_MINUTES = False

# -----------------------------------------------------------------------------
# Mixed precision (fcos addition; replaces apex)
# -----------------------------------------------------------------------------
_C.AMP = CN()
# Use torch.amp autocast (and a GradScaler for float16) in training and inference.
_C.AMP.ENABLED = False
# "float32", "bfloat16", "float16" or "auto" (fcos_core/utils/precision.py): auto = float16 (with
# a GradScaler) on CUDA; bfloat16 on a CPU with native bfloat16 (AMX-BF16 / AVX512-BF16), else
# float32. Weights and optimizer state stay float32; losses are computed in float32.
_C.AMP.DTYPE = "auto"

# -----------------------------------------------------------------------------
# TEST
# -----------------------------------------------------------------------------
_C.TEST = CN()
# Regression check after testing: [[dataset, iou_type, metric, value], ...].
_C.TEST.EXPECTED_RESULTS = []
# Tolerance of EXPECTED_RESULTS in standard deviations.
_C.TEST.EXPECTED_RESULTS_SIGMA_TOL = 4
# Global test batch size (split over processes).
_C.TEST.IMS_PER_BATCH = 8
# Detections kept per image after NMS.
_C.TEST.DETECTIONS_PER_IMG = 100
# Which boxes DETECTIONS_PER_IMG keeps (fcos addition): "keep" = every box scoring at least the
# DETECTIONS_PER_IMG-th best score, so boxes tied with it are all kept (original FCOS, kthvalue);
# "cut" = exactly the first DETECTIONS_PER_IMG by score (torchvision's FCOS).
_C.TEST.DETECTIONS_PER_IMG_TIES = "keep"
# Faster inference that keeps the detections: FrozenBN / BN folded into the convs, channels_last,
# inference_mode. In float32 the detections equal the plain model's up to float rounding (100% of
# them matched, same AP), hence on by default (fcos addition).
_C.TEST.FAST_PATH = True
# Autocast dtype of the fast path, as AMP.DTYPE: "float32", "bfloat16" (CPU with AVX512-BF16 /
# AMX-BF16, CUDA), "float16" (CUDA) or "auto"; the head's predictor convs stay float32 and
# detections come back in float32. Changes results slightly (quickstart checkpoint, bfloat16: AP
# -0.05 points, 99.2% of detections matched), hence float32 by default (fcos addition).
_C.TEST.FAST_PATH_AUTOCAST = "float32"
# torch.compile the backbone and head in the fast path. Same detections; no measurable gain on a
# 2-core CPU, and every new input size costs a compile (5-25 s for R-50) (fcos addition).
_C.TEST.FAST_PATH_COMPILE = False
# COCO evaluation backend: "pycocotools" or "faster_coco_eval" (same numbers, faster; needs the
# faster-coco-eval package) (fcos addition).
_C.TEST.COCO_EVAL_BACKEND = "pycocotools"

# Test-time augmentation.
_C.TEST.BBOX_AUG = CN()
# Enable test-time augmentation.
_C.TEST.BBOX_AUG.ENABLED = False
# Also run the horizontally flipped image at the test scale.
_C.TEST.BBOX_AUG.H_FLIP = False
# Extra shorter-side scales.
_C.TEST.BBOX_AUG.SCALES = ()
# Longer-side cap for the extra scales.
_C.TEST.BBOX_AUG.MAX_SIZE = 4000
# Also run the flipped image at each extra scale.
_C.TEST.BBOX_AUG.SCALE_H_FLIP = False

# Sliced inference for large images (fcos addition; see fcos_core/modeling/fcos/slicing.py): square
# tiles cut from the original image go through the test transforms and the model, their boxes are
# shifted back into the image and merged with the whole-image pass by class-aware NMS
# (MODEL.FCOS.NMS_TH) and the DETECTIONS_PER_IMG cap. Cannot be combined with TEST.BBOX_AUG.
_C.TEST.SLICE = CN()
# Enable sliced inference (evaluation, the predictor, fcos detect and the demo).
_C.TEST.SLICE.ENABLED = False
# Side of a square tile in pixels of the original image; each tile is then resized by the test
# transforms (INPUT.MIN_SIZE_TEST = TILE_SIZE runs tiles at the image's own scale). An image
# smaller than a tile in a dimension gets one tile that spans it there.
_C.TEST.SLICE.TILE_SIZE = 512
# Pixels shared by neighbouring tiles (0 <= OVERLAP < TILE_SIZE); the last tile of a row or
# column is aligned to the image border, so it may share more. Objects up to this size are seen
# whole in some tile.
_C.TEST.SLICE.OVERLAP = 128
# Also run the whole image (resized to the test size) and merge its detections with the tiles'.
_C.TEST.SLICE.INCLUDE_FULL_IMAGE = True
# Tiles per forward pass (the tiles of all images of a test batch share the passes).
_C.TEST.SLICE.TILES_PER_BATCH = 8

# -----------------------------------------------------------------------------
# Misc
# -----------------------------------------------------------------------------
# Where logs, checkpoints and results go.
# fcos train / test / quickstart (and tools/) replace the default "." by output/<config name>.
_C.OUTPUT_DIR = "."
# Module that defines DatasetCatalog / ModelCatalog.
_C.PATHS_CATALOG = "fcos_core.config.paths_catalog"
