// CUDA sigmoid focal loss: one thread per element (grid-stride), math in float (double for
// double inputs). Same formulas as csrc/cpu/focal_math.h; the incoming gradient is read through
// its strides, so a gradient broadcast from .sum() is never materialized.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "../ops.h"

namespace fcos {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

// Returns the loss (kBackward false) or its derivative w.r.t. x.
template <typename T, bool kBackward>
__device__ __forceinline__ T focal_value(T x, bool positive, T gamma, T alpha) {
  const T e = exp(-fabs(x));
  const T softplus_tail = log1p(e);
  const T inv = T(1) / (T(1) + e);
  const bool nonneg = x >= T(0);
  const T p = nonneg ? inv : e * inv;
  const T one_minus_p = nonneg ? e * inv : inv;
  const T log_p = (nonneg ? T(0) : x) - softplus_tail;
  const T log_one_minus_p = -(nonneg ? x : T(0)) - softplus_tail;
  const T q = positive ? one_minus_p : p;  // probability of the wrong answer
  const T log_q = positive ? log_one_minus_p : log_p;
  const T log_right = positive ? log_p : log_one_minus_p;
  const T w = positive ? alpha : T(1) - alpha;
  const T wq = w * exp(gamma * log_q);  // w * q^gamma
  if (!kBackward) return -wq * log_right;
  const T grad = wq * (gamma * (T(1) - q) * log_right - q);
  return positive ? grad : -grad;
}

template <typename scalar_t, bool kBackward>
__global__ void focal_kernel(int64_t total, int64_t channels, const scalar_t* __restrict__ logits,
                             const int64_t* __restrict__ labels, const scalar_t* __restrict__ grad,
                             int64_t grad_stride_r, int64_t grad_stride_c,
                             scalar_t* __restrict__ out, at::opmath_type<scalar_t> gamma,
                             at::opmath_type<scalar_t> alpha) {
  using T = at::opmath_type<scalar_t>;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += step) {
    const int64_t r = idx / channels;
    const int64_t c = idx - r * channels;
    const int64_t label = labels[r];
    if (label == kIgnoreLabel) {
      out[idx] = scalar_t(0);
      continue;
    }
    const T x = static_cast<T>(logits[idx]);
    const T value = focal_value<T, kBackward>(x, label == c + 1, gamma, alpha);
    if constexpr (kBackward) {
      const T g = static_cast<T>(grad[r * grad_stride_r + c * grad_stride_c]);
      out[idx] = static_cast<scalar_t>(value * g);
    } else {
      out[idx] = static_cast<scalar_t>(value);
    }
  }
}

template <typename scalar_t>
void launch_focal(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& grad,
                  at::Tensor& out, double gamma, double alpha) {
  using T = at::opmath_type<scalar_t>;
  const int64_t total = logits.numel();
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, kMaxBlocks);
  auto stream = at::cuda::getCurrentCUDAStream();
  const bool backward = grad.defined();
  auto kernel = backward ? focal_kernel<scalar_t, true> : focal_kernel<scalar_t, false>;
  kernel<<<blocks, kThreads, 0, stream>>>(
      total, logits.size(1), logits.const_data_ptr<scalar_t>(), labels.const_data_ptr<int64_t>(),
      backward ? grad.const_data_ptr<scalar_t>() : nullptr, backward ? grad.stride(0) : 0,
      backward ? grad.stride(1) : 0, out.mutable_data_ptr<scalar_t>(), static_cast<T>(gamma),
      static_cast<T>(alpha));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Forward when grad_loss is undefined, else the gradient w.r.t. logits.
at::Tensor focal_cuda(const at::Tensor& logits_in, const at::Tensor& targets,
                      const at::Tensor& grad_loss, double gamma, double alpha) {
  TORCH_CHECK(logits_in.is_cuda(), "fcos::sigmoid_focal_loss (CUDA kernel): logits on ",
              logits_in.device());
  const c10::cuda::CUDAGuard device_guard(logits_in.device());
  const at::Tensor logits = logits_in.contiguous();
  at::Tensor out = at::empty_like(logits);
  if (logits.numel() == 0) return out;
  const at::Tensor labels = targets.to(at::kLong).contiguous();
  const at::Tensor grad = grad_loss.defined() ? grad_loss.to(logits.scalar_type()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "fcos_sigmoid_focal_loss_cuda",
      [&] { launch_focal<scalar_t>(logits, labels, grad, out, gamma, alpha); });
  return out;
}

at::Tensor sigmoid_focal_loss_cuda(const at::Tensor& logits, const at::Tensor& targets,
                                   double gamma, double alpha) {
  check_focal_inputs(logits, targets, gamma);
  return focal_cuda(logits, targets, at::Tensor(), gamma, alpha);
}

at::Tensor sigmoid_focal_loss_backward_cuda(const at::Tensor& logits, const at::Tensor& targets,
                                            const at::Tensor& grad_loss, double gamma,
                                            double alpha) {
  check_focal_backward_inputs(logits, targets, grad_loss, gamma);
  return focal_cuda(logits, targets, grad_loss, gamma, alpha);
}

}  // namespace

TORCH_LIBRARY_IMPL(fcos, CUDA, m) {
  m.impl("sigmoid_focal_loss", TORCH_FN(sigmoid_focal_loss_cuda));
  m.impl("_sigmoid_focal_loss_backward", TORCH_FN(sigmoid_focal_loss_backward_cuda));
}

}  // namespace fcos
