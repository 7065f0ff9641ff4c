// Schemas of the fcos ops. Kernels live in cpu/*_kernel.cpp and cuda/*_kernel.cu; autograd and
// fake kernels are registered from Python (fcos_core/layers/_ops.py).
#include <torch/library.h>

TORCH_LIBRARY(fcos, m) {
  // Greedy NMS; returns kept indices (int64) sorted by decreasing score.
  m.def("nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor");
  // Per-element sigmoid focal loss; targets int: 0 background, 1..C class, -1 ignored.
  m.def("sigmoid_focal_loss(Tensor logits, Tensor targets, float gamma, float alpha) -> Tensor");
  // Gradient of sigmoid_focal_loss w.r.t. logits, given the gradient of its output.
  m.def(
      "_sigmoid_focal_loss_backward(Tensor logits, Tensor targets, Tensor grad_loss, "
      "float gamma, float alpha) -> Tensor");
}
