// CPU greedy NMS: sort by score, gather boxes into contiguous per-coordinate arrays in that order,
// then for each kept box mark every later box whose IoU exceeds the threshold (or equals it, with
// suppress_equal). `offset` is added to every width and height (1: the original's +1 boxes). The
// marking loop is branch-free over contiguous memory, so it vectorizes (see simd.h).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../ops.h"
#include "simd.h"

namespace fcos {
namespace {

// Sorted boxes, one array per coordinate, plus areas; `offset` is added to widths and heights.
template <typename T>
struct SortedBoxes {
  std::vector<T> x1, y1, x2, y2, area;
  T offset;
};

// How a box is compared with the threshold: IoU > threshold, or IoU >= threshold.
struct Rule {
  bool suppress_equal;
};

template <typename T, bool kOrEqual>
FCOS_INLINE void mark_overlaps(const SortedBoxes<T>& b, int64_t i, int64_t n, T threshold,
                               uint8_t* __restrict__ suppressed) {
  const T* __restrict__ x1 = b.x1.data();
  const T* __restrict__ y1 = b.y1.data();
  const T* __restrict__ x2 = b.x2.data();
  const T* __restrict__ y2 = b.y2.data();
  const T* __restrict__ area = b.area.data();
  const T ix1 = x1[i], iy1 = y1[i], ix2 = x2[i], iy2 = y2[i], iarea = area[i];
  const T off = b.offset;
  for (int64_t j = i + 1; j < n; ++j) {
    const T w = std::max(T(0), std::min(ix2, x2[j]) - std::max(ix1, x1[j]) + off);
    const T h = std::max(T(0), std::min(iy2, y2[j]) - std::max(iy1, y1[j]) + off);
    const T inter = w * h;
    const T iou = inter / (iarea + area[j] - inter);
    suppressed[j] |= static_cast<uint8_t>(kOrEqual ? iou >= threshold : iou > threshold);
  }
}

FCOS_SIMD_CLONES void mark_overlaps_float(const SortedBoxes<float>& b, int64_t i, int64_t n,
                                          float threshold, uint8_t* suppressed) {
  mark_overlaps<float, false>(b, i, n, threshold, suppressed);
}

FCOS_SIMD_CLONES void mark_overlaps_or_equal_float(const SortedBoxes<float>& b, int64_t i,
                                                   int64_t n, float threshold,
                                                   uint8_t* suppressed) {
  mark_overlaps<float, true>(b, i, n, threshold, suppressed);
}

void mark_overlaps_any(const SortedBoxes<float>& b, int64_t i, int64_t n, float threshold,
                       Rule rule, uint8_t* suppressed) {
  if (rule.suppress_equal) {
    mark_overlaps_or_equal_float(b, i, n, threshold, suppressed);
  } else {
    mark_overlaps_float(b, i, n, threshold, suppressed);
  }
}

void mark_overlaps_any(const SortedBoxes<double>& b, int64_t i, int64_t n, double threshold,
                       Rule rule, uint8_t* suppressed) {
  if (rule.suppress_equal) {
    mark_overlaps<double, true>(b, i, n, threshold, suppressed);
  } else {
    mark_overlaps<double, false>(b, i, n, threshold, suppressed);
  }
}

template <typename scalar_t, typename T>
SortedBoxes<T> gather_sorted(const at::Tensor& boxes, const int64_t* order, int64_t n,
                             double offset) {
  const T off = static_cast<T>(offset);
  SortedBoxes<T> b{std::vector<T>(n), std::vector<T>(n), std::vector<T>(n), std::vector<T>(n),
                   std::vector<T>(n), off};
  const scalar_t* src = boxes.const_data_ptr<scalar_t>();
  for (int64_t k = 0; k < n; ++k) {
    const scalar_t* box = src + 4 * order[k];
    b.x1[k] = static_cast<T>(box[0]);
    b.y1[k] = static_cast<T>(box[1]);
    b.x2[k] = static_cast<T>(box[2]);
    b.y2[k] = static_cast<T>(box[3]);
    b.area[k] = (b.x2[k] - b.x1[k] + off) * (b.y2[k] - b.y1[k] + off);
  }
  return b;
}

template <typename scalar_t>
at::Tensor nms_cpu_typed(const at::Tensor& boxes, const at::Tensor& scores, double threshold,
                         double offset, Rule rule) {
  using T = at::opmath_type<scalar_t>;
  const int64_t n = boxes.size(0);
  const at::Tensor order_t = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0,
                                                     /*descending=*/true));
  const int64_t* order = order_t.const_data_ptr<int64_t>();
  const SortedBoxes<T> sorted = gather_sorted<scalar_t, T>(boxes, order, n, offset);
  const T thr = threshold_in<T>(threshold, rule.suppress_equal);
  std::vector<uint8_t> suppressed(n, 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n; ++i) {
    if (suppressed[i]) continue;
    keep.push_back(order[i]);
    mark_overlaps_any(sorted, i, n, thr, rule, suppressed.data());
  }
  at::Tensor out =
      at::empty({static_cast<int64_t>(keep.size())}, scores.options().dtype(at::kLong));
  std::copy(keep.begin(), keep.end(), out.mutable_data_ptr<int64_t>());
  return out;
}

at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold,
                   double offset, bool suppress_equal) {
  check_nms_inputs(boxes, scores, offset);
  TORCH_CHECK(boxes.device().is_cpu(), "fcos::nms (CPU kernel): boxes on ", boxes.device());
  if (boxes.size(0) == 0) {
    return at::empty({0}, scores.options().dtype(at::kLong));
  }
  const at::Tensor boxes_c = boxes.contiguous();
  const at::Tensor scores_c = scores.contiguous();
  at::Tensor keep;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, boxes_c.scalar_type(), "fcos_nms_cpu",
      [&] {
        keep = nms_cpu_typed<scalar_t>(boxes_c, scores_c, iou_threshold, offset,
                                       Rule{suppress_equal});
      });
  return keep;
}

}  // namespace

TORCH_LIBRARY_IMPL(fcos, CPU, m) { m.impl("nms", TORCH_FN(nms_cpu)); }

}  // namespace fcos
