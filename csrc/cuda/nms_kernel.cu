// CUDA greedy NMS. Boxes are sorted by score; a 2-D grid of 64-thread blocks writes, for each box
// i and each block of 64 later boxes, a bit mask of those it overlaps (IoU > threshold, or >= with
// suppress_equal; `offset` added to widths and heights). A single block then walks the boxes in
// order, keeping each box not yet removed and OR-ing in its mask.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>

#include "../ops.h"

namespace fcos {
namespace {

constexpr int kBitsPerWord = 64;  // one thread per bit of a mask word
constexpr int kReduceThreads = 256;
using MaskWord = unsigned long long;

// Products rounded on their own (never fused into an add), as on the CPU.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

// Threshold, offset and comparison of one NMS call.
template <typename T>
struct Rule {
  T threshold;
  T offset;
  bool suppress_equal;
};

template <typename T>
__device__ __forceinline__ bool overlaps(const T* a, const T* b, const Rule<T>& rule) {
  const T off = rule.offset;
  const T w = max(T(0), min(a[2], b[2]) - max(a[0], b[0]) + off);
  const T h = max(T(0), min(a[3], b[3]) - max(a[1], b[1]) + off);
  const T inter = mul_rn(w, h);
  const T area_a = mul_rn(a[2] - a[0] + off, a[3] - a[1] + off);
  const T area_b = mul_rn(b[2] - b[0] + off, b[3] - b[1] + off);
  const T iou = inter / (area_a + area_b - inter);
  return rule.suppress_equal ? iou >= rule.threshold : iou > rule.threshold;
}

// mask[i, k] bit t: sorted box i overlaps sorted box k * 64 + t (only for later boxes).
template <typename T>
__global__ void nms_mask_kernel(int64_t n, Rule<T> rule, const T* __restrict__ boxes,
                                MaskWord* __restrict__ mask, int64_t col_blocks) {
  const int64_t row_block = blockIdx.y;
  const int64_t col_block = blockIdx.x;
  if (row_block > col_block) return;
  const int64_t word_bits = kBitsPerWord;
  const int row_size = static_cast<int>(min(n - row_block * word_bits, word_bits));
  const int col_size = static_cast<int>(min(n - col_block * word_bits, word_bits));
  __shared__ T col_boxes[kBitsPerWord * 4];
  if (threadIdx.x < col_size) {
    for (int d = 0; d < 4; ++d) {
      col_boxes[threadIdx.x * 4 + d] = boxes[(col_block * kBitsPerWord + threadIdx.x) * 4 + d];
    }
  }
  __syncthreads();
  if (threadIdx.x >= row_size) return;
  const int64_t i = row_block * kBitsPerWord + threadIdx.x;
  const T* box = boxes + i * 4;
  MaskWord bits = 0;
  for (int t = row_block == col_block ? threadIdx.x + 1 : 0; t < col_size; ++t) {
    if (overlaps(box, col_boxes + t * 4, rule)) bits |= 1ULL << t;
  }
  mask[i * col_blocks + col_block] = bits;
}

// One block walks the sorted boxes; `removed` (col_blocks words, zeroed) is global scratch.
__global__ void nms_reduce_kernel(int64_t n, int64_t col_blocks, const MaskWord* __restrict__ mask,
                                  MaskWord* removed, bool* __restrict__ keep) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t word = i / kBitsPerWord;
    const bool kept = !(removed[word] & (1ULL << (i % kBitsPerWord)));
    // Row i only sets bits of boxes after i, so concurrent updates cannot change `kept`.
    if (kept) {
      for (int64_t k = word + threadIdx.x; k < col_blocks; k += blockDim.x) {
        removed[k] |= mask[i * col_blocks + k];
      }
      if (threadIdx.x == 0) keep[i] = true;
    }
    __syncthreads();
  }
}

template <typename T>
at::Tensor nms_cuda_sorted(const at::Tensor& sorted, const at::Tensor& order, double threshold,
                           double offset, bool suppress_equal) {
  const int64_t n = sorted.size(0);
  const int64_t col_blocks = (n + kBitsPerWord - 1) / kBitsPerWord;
  TORCH_CHECK(col_blocks <= 65535, "fcos::nms (CUDA): too many boxes, got N = ", n);
  auto long_opts = sorted.options().dtype(at::kLong);
  at::Tensor mask = at::empty({n * col_blocks}, long_opts);
  at::Tensor removed = at::zeros({col_blocks}, long_opts);
  at::Tensor keep = at::zeros({n}, sorted.options().dtype(at::kBool));
  auto stream = at::cuda::getCurrentCUDAStream();
  const dim3 grid(col_blocks, col_blocks);
  const Rule<T> rule{threshold_in<T>(threshold, suppress_equal), static_cast<T>(offset),
                     suppress_equal};
  nms_mask_kernel<T><<<grid, kBitsPerWord, 0, stream>>>(
      n, rule, sorted.const_data_ptr<T>(),
      reinterpret_cast<MaskWord*>(mask.mutable_data_ptr<int64_t>()), col_blocks);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  nms_reduce_kernel<<<1, kReduceThreads, 0, stream>>>(
      n, col_blocks, reinterpret_cast<const MaskWord*>(mask.const_data_ptr<int64_t>()),
      reinterpret_cast<MaskWord*>(removed.mutable_data_ptr<int64_t>()),
      keep.mutable_data_ptr<bool>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return order.masked_select(keep);
}

at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold,
                    double offset, bool suppress_equal) {
  check_nms_inputs(boxes, scores, offset);
  TORCH_CHECK(boxes.is_cuda(), "fcos::nms (CUDA kernel): boxes on ", boxes.device());
  const c10::cuda::CUDAGuard device_guard(boxes.device());
  if (boxes.size(0) == 0) return at::empty({0}, scores.options().dtype(at::kLong));
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0,
                                                   /*descending=*/true));
  // float16 / bfloat16 boxes are compared in float.
  const auto compute_type = boxes.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor sorted = boxes.index_select(0, order).to(compute_type).contiguous();
  if (compute_type == at::kDouble) {
    return nms_cuda_sorted<double>(sorted, order, iou_threshold, offset, suppress_equal);
  }
  return nms_cuda_sorted<float>(sorted, order, iou_threshold, offset, suppress_equal);
}

}  // namespace

TORCH_LIBRARY_IMPL(fcos, CUDA, m) { m.impl("nms", TORCH_FN(nms_cuda)); }

}  // namespace fcos
