// Input checks shared by the CPU and CUDA kernels of the fcos ops.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <limits>

namespace fcos {

// Targets: 0 = background, k in 1..C = positive for channel k - 1, -1 = ignored.
constexpr int64_t kIgnoreLabel = -1;

inline void check_nms_inputs(const at::Tensor& boxes, const at::Tensor& scores, double offset) {
  TORCH_CHECK(std::isfinite(offset) && offset >= 0,
              "fcos::nms: offset must be a finite number >= 0, got ", offset);
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4,
              "fcos::nms: boxes must have shape [N, 4], got ", boxes.sizes());
  TORCH_CHECK(scores.dim() == 1, "fcos::nms: scores must have shape [N], got ", scores.sizes());
  TORCH_CHECK(boxes.size(0) == scores.size(0), "fcos::nms: boxes ", boxes.sizes(), " and scores ",
              scores.sizes(), " differ in length N");
  TORCH_CHECK(boxes.is_floating_point(), "fcos::nms: boxes must be floating point, got dtype ",
              boxes.scalar_type());
  TORCH_CHECK(scores.is_floating_point(), "fcos::nms: scores must be floating point, got dtype ",
              scores.scalar_type());
  TORCH_CHECK(boxes.device() == scores.device(), "fcos::nms: boxes on ", boxes.device(),
              " but scores on ", scores.device());
}

// The T value `t` nearest to `threshold` such that comparing a T value v with t gives the
// double comparison: v > t == (double)v > threshold (largest t <= threshold) or, with
// `or_equal`, v >= t == (double)v >= threshold (smallest t >= threshold).
template <typename T>
T threshold_in(double threshold, bool or_equal) {
  T t = static_cast<T>(threshold);
  if (!or_equal && static_cast<double>(t) > threshold) {
    t = std::nextafter(t, -std::numeric_limits<T>::infinity());
  } else if (or_equal && static_cast<double>(t) < threshold) {
    t = std::nextafter(t, std::numeric_limits<T>::infinity());
  }
  return t;
}

inline void check_focal_inputs(const at::Tensor& logits, const at::Tensor& targets, double gamma) {
  TORCH_CHECK(logits.dim() == 2, "fcos::sigmoid_focal_loss: logits must have shape [R, C], got ",
              logits.sizes());
  TORCH_CHECK(targets.dim() == 1, "fcos::sigmoid_focal_loss: targets must have shape [R], got ",
              targets.sizes());
  TORCH_CHECK(logits.size(0) == targets.size(0), "fcos::sigmoid_focal_loss: logits ",
              logits.sizes(), " and targets ", targets.sizes(), " differ in length R");
  TORCH_CHECK(logits.is_floating_point(),
              "fcos::sigmoid_focal_loss: logits must be floating point, got dtype ",
              logits.scalar_type());
  TORCH_CHECK(targets.scalar_type() == at::kInt || targets.scalar_type() == at::kLong,
              "fcos::sigmoid_focal_loss: targets must be int32 or int64, got dtype ",
              targets.scalar_type());
  TORCH_CHECK(logits.device() == targets.device(), "fcos::sigmoid_focal_loss: logits on ",
              logits.device(), " but targets on ", targets.device());
  TORCH_CHECK(gamma >= 0, "fcos::sigmoid_focal_loss: gamma must be >= 0, got ", gamma);
}

inline void check_focal_backward_inputs(const at::Tensor& logits, const at::Tensor& targets,
                                        const at::Tensor& grad_loss, double gamma) {
  check_focal_inputs(logits, targets, gamma);
  TORCH_CHECK(grad_loss.sizes() == logits.sizes(), "fcos::_sigmoid_focal_loss_backward: grad_loss ",
              grad_loss.sizes(), " must match logits ", logits.sizes());
  TORCH_CHECK(grad_loss.device() == logits.device(),
              "fcos::_sigmoid_focal_loss_backward: grad_loss on ", grad_loss.device(),
              " but logits on ", logits.device());
}

}  // namespace fcos
