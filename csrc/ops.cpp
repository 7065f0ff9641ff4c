// Schemas of the fcos ops. Kernels live in cpu/*_kernel.cpp and cuda/*_kernel.cu; autograd and
// fake kernels are registered from Python (fcos_core/layers/_ops.py).
#include <torch/library.h>

TORCH_LIBRARY(fcos, m) {
  // Greedy NMS; returns kept indices (int64) sorted by decreasing score. `offset` is added to
  // every width and height (1 for the original's "+1" pixel convention); a box is suppressed
  // when its IoU with a kept box is > iou_threshold, or >= with suppress_equal (the original's
  // CPU kernel). IoUs are computed in the boxes' type and compared in double.
  m.def(
      "nms(Tensor boxes, Tensor scores, float iou_threshold, float offset=0., "
      "bool suppress_equal=False) -> Tensor");
  // Per-element sigmoid focal loss; targets int: 0 background, 1..C class, -1 ignored.
  m.def("sigmoid_focal_loss(Tensor logits, Tensor targets, float gamma, float alpha) -> Tensor");
  // Gradient of sigmoid_focal_loss w.r.t. logits, given the gradient of its output.
  m.def(
      "_sigmoid_focal_loss_backward(Tensor logits, Tensor targets, Tensor grad_loss, "
      "float gamma, float alpha) -> Tensor");
}
