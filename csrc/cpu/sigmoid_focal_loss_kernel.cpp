// CPU sigmoid focal loss: one fused pass per direction, rows split across threads with
// at::parallel_for, each row's C channels computed by a branch-free loop that vectorizes.
// float16/bfloat16 are computed in float; double with the standard library.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "../ops.h"
#include "focal_math.h"
#include "simd.h"

namespace fcos {
namespace {

using focal_math::focal_element;

// About this many elements per parallel task.
constexpr int64_t kGrainElements = 16384;

// Per-row inputs: logits[rows, C], labels[rows] (int64), optional grad of the loss.
template <typename T>
struct RowBlock {
  const T* logits;
  const int64_t* labels;
  const T* grad_loss;  // nullptr: every element's incoming gradient is `grad_scale`
  T grad_scale;
  T* out;
  int64_t rows;
  int64_t channels;
  T gamma;
  T alpha;
};

// Loss (forward) or gradient (backward) of every channel of one row, all treated as negatives.
template <typename T, bool kBackward, bool kGammaIsTwo>
FCOS_INLINE void negative_row(const RowBlock<T>& b, const T* __restrict__ x, const T* g,
                              T* __restrict__ out) {
  if constexpr (!kBackward) {
    for (int64_t c = 0; c < b.channels; ++c) {
      out[c] = focal_element<T, kGammaIsTwo, false>(x[c], b.gamma, b.alpha).loss;
    }
  } else if (g == nullptr) {
    for (int64_t c = 0; c < b.channels; ++c) {
      out[c] = focal_element<T, kGammaIsTwo, false>(x[c], b.gamma, b.alpha).grad * b.grad_scale;
    }
  } else {
    for (int64_t c = 0; c < b.channels; ++c) {
      out[c] = focal_element<T, kGammaIsTwo, false>(x[c], b.gamma, b.alpha).grad * g[c];
    }
  }
}

// Rows are computed as all-negative by a vectorizable loop; the one positive channel (if any)
// is then overwritten, and ignored rows are zero.
template <typename T, bool kBackward, bool kGammaIsTwo>
FCOS_INLINE void focal_rows(const RowBlock<T>& b) {
  for (int64_t r = 0; r < b.rows; ++r) {
    const T* x = b.logits + r * b.channels;
    T* out = b.out + r * b.channels;
    const int64_t label = b.labels[r];
    if (label == kIgnoreLabel) {
      std::fill(out, out + b.channels, T(0));
      continue;
    }
    const T* g = b.grad_loss == nullptr ? nullptr : b.grad_loss + r * b.channels;
    negative_row<T, kBackward, kGammaIsTwo>(b, x, g, out);
    if (label >= 1 && label <= b.channels) {
      const int64_t c = label - 1;
      const auto v = focal_element<T, kGammaIsTwo, true>(x[c], b.gamma, b.alpha);
      out[c] = kBackward ? v.grad * (g == nullptr ? b.grad_scale : g[c]) : v.loss;
    }
  }
}

template <typename T, bool kBackward>
FCOS_INLINE void focal_rows_any_gamma(const RowBlock<T>& b) {
  if (b.gamma == T(2)) {
    focal_rows<T, kBackward, true>(b);
  } else {
    focal_rows<T, kBackward, false>(b);
  }
}

FCOS_SIMD_CLONES void focal_forward_float(const RowBlock<float>& b) {
  focal_rows_any_gamma<float, false>(b);
}

FCOS_SIMD_CLONES void focal_backward_float(const RowBlock<float>& b) {
  focal_rows_any_gamma<float, true>(b);
}

void focal_block(const RowBlock<float>& b, bool backward) {
  backward ? focal_backward_float(b) : focal_forward_float(b);
}

void focal_block(const RowBlock<double>& b, bool backward) {
  backward ? focal_rows_any_gamma<double, true>(b) : focal_rows_any_gamma<double, false>(b);
}

// Computes the loss (grad_loss undefined) or the gradient w.r.t. logits, all in T.
template <typename T>
at::Tensor focal_cpu_typed(const at::Tensor& logits, const at::Tensor& labels,
                           const at::Tensor& grad_loss, double gamma, double alpha) {
  at::Tensor out = at::empty_like(logits, at::MemoryFormat::Contiguous);
  const int64_t channels = logits.size(1);
  const bool backward = grad_loss.defined();
  // A gradient broadcast from a scalar (e.g. after .sum()) is read as one number.
  const bool scalar_grad =
      backward && grad_loss.numel() > 0 && grad_loss.stride(0) == 0 && grad_loss.stride(1) == 0;
  const at::Tensor grad_c = backward && !scalar_grad ? grad_loss.contiguous() : at::Tensor();
  RowBlock<T> base{logits.const_data_ptr<T>(),
                   labels.const_data_ptr<int64_t>(),
                   grad_c.defined() ? grad_c.const_data_ptr<T>() : nullptr,
                   scalar_grad ? grad_loss.const_data_ptr<T>()[0] : T(1),
                   out.mutable_data_ptr<T>(),
                   0,
                   channels,
                   static_cast<T>(gamma),
                   static_cast<T>(alpha)};
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, channels));
  at::parallel_for(0, logits.size(0), grain, [&](int64_t begin, int64_t end) {
    RowBlock<T> b = base;
    b.logits += begin * channels;
    b.labels += begin;
    b.grad_loss = b.grad_loss == nullptr ? nullptr : b.grad_loss + begin * channels;
    b.out += begin * channels;
    b.rows = end - begin;
    focal_block(b, backward);
  });
  return out;
}

// Shared by forward (grad_loss undefined) and backward.
at::Tensor focal_cpu(const at::Tensor& logits, const at::Tensor& targets,
                     const at::Tensor& grad_loss, double gamma, double alpha) {
  TORCH_CHECK(logits.device().is_cpu(), "fcos::sigmoid_focal_loss (CPU kernel): logits on ",
              logits.device());
  if (logits.numel() == 0) {
    return at::empty_like(logits, at::MemoryFormat::Contiguous);
  }
  const at::Tensor labels = targets.to(at::kLong).contiguous();
  const auto dtype = logits.scalar_type();
  if (dtype == at::kDouble) {
    const at::Tensor grad_d = grad_loss.defined() ? grad_loss.to(at::kDouble) : at::Tensor();
    return focal_cpu_typed<double>(logits.contiguous(), labels, grad_d, gamma, alpha);
  }
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16,
              "fcos::sigmoid_focal_loss: unsupported logits dtype ", dtype);
  // float16 / bfloat16 are widened to float; the result is narrowed back.
  const at::Tensor grad_f = grad_loss.defined() ? grad_loss.to(at::kFloat) : at::Tensor();
  at::Tensor out =
      focal_cpu_typed<float>(logits.to(at::kFloat).contiguous(), labels, grad_f, gamma, alpha);
  return out.to(dtype);
}

at::Tensor sigmoid_focal_loss_cpu(const at::Tensor& logits, const at::Tensor& targets, double gamma,
                                  double alpha) {
  check_focal_inputs(logits, targets, gamma);
  return focal_cpu(logits, targets, at::Tensor(), gamma, alpha);
}

at::Tensor sigmoid_focal_loss_backward_cpu(const at::Tensor& logits, const at::Tensor& targets,
                                           const at::Tensor& grad_loss, double gamma,
                                           double alpha) {
  check_focal_backward_inputs(logits, targets, grad_loss, gamma);
  return focal_cpu(logits, targets, grad_loss, gamma, alpha);
}

}  // namespace

TORCH_LIBRARY_IMPL(fcos, CPU, m) {
  m.impl("sigmoid_focal_loss", TORCH_FN(sigmoid_focal_loss_cpu));
  m.impl("_sigmoid_focal_loss_backward", TORCH_FN(sigmoid_focal_loss_backward_cpu));
}

}  // namespace fcos
