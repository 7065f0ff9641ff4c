// Element-wise sigmoid focal loss and its derivative, shared by the CPU loops.
//
// For logit x with p = sigmoid(x), a positive element costs -alpha (1-p)^g log(p) and a negative
// one -(1-alpha) p^g log(1-p). Writing q for the probability of the wrong answer (1-p if
// positive, p if negative), lr for the log-probability of the right one and w for its weight:
//   loss = -w q^g lr
//   dloss/dx = s w q^g (g (1-q) lr - q), with s = +1 for positives and -1 for negatives.
// log(p) = min(x, 0) - log1p(exp(-|x|)) and log(1-p) = -max(x, 0) - log1p(exp(-|x|)) never
// overflow. float uses branch-free polynomial exp/log1p so that loops vectorize; double uses
// the standard library.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "simd.h"

namespace fcos {
namespace focal_math {

// Inputs below this give exp() = 1.6e-38 instead of underflowing to subnormals.
constexpr float kExpInputMin = -87.0f;
constexpr float kLog2e = 1.44269504088896341f;
// ln(2) split in two so that n * ln2 is exact in the first part (Cephes).
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
// 1.5 * 2^23: adding and subtracting it rounds a float to the nearest integer.
constexpr float kRoundMagic = 12582912.0f;
constexpr int32_t kRoundMagicBits = 0x4B400000;
constexpr int32_t kFloatExponentBias = 127;
constexpr int kFloatMantissaBits = 23;

FCOS_INLINE float bits_to_float(int32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

FCOS_INLINE int32_t float_to_bits(float f) {
  int32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}

// exp(y) for y <= 0, within 2 ulp: y = n ln2 + r, |r| <= ln2 / 2, exp(r) by a degree-7 polynomial
// (Cephes expf coefficients), 2^n built in the exponent bits.
FCOS_INLINE float exp_nonpos(float y) {
  y = y < kExpInputMin ? kExpInputMin : y;
  const float shifted = y * kLog2e + kRoundMagic;
  const int32_t n = float_to_bits(shifted) - kRoundMagicBits;
  const float nf = shifted - kRoundMagic;
  const float r = (y - nf * kLn2Hi) - nf * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * bits_to_float((n + kFloatExponentBias) << kFloatMantissaBits);
}

// log1p(e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) <= 1/3, Taylor series to s^13
// (truncation error < 2e-8 relative).
FCOS_INLINE float log1p_unit(float e) {
  const float s = e / (2.0f + e);
  const float s2 = s * s;
  float p = 1.0f / 13.0f;
  p = p * s2 + 1.0f / 11.0f;
  p = p * s2 + 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  return 2.0f * s * p;
}

FCOS_INLINE double exp_nonpos(double y) { return std::exp(y); }
FCOS_INLINE double log1p_unit(double e) { return std::log1p(e); }

template <typename T>
struct LossAndGrad {
  T loss;
  T grad;
};

// Focal loss of one element and its derivative w.r.t. the logit.
template <typename T, bool kGammaIsTwo, bool kPositive>
FCOS_INLINE LossAndGrad<T> focal_element(T x, T gamma, T alpha) {
  const T e = exp_nonpos(-std::fabs(x));  // exp(-|x|)
  const T softplus_tail = log1p_unit(e);
  const T inv = T(1) / (T(1) + e);
  const bool nonneg = x >= T(0);
  const T p = nonneg ? inv : e * inv;  // sigmoid(x)
  const T one_minus_p = nonneg ? e * inv : inv;
  const T log_p = (nonneg ? T(0) : x) - softplus_tail;
  const T log_one_minus_p = -(nonneg ? x : T(0)) - softplus_tail;
  const T q = kPositive ? one_minus_p : p;
  const T one_minus_q = kPositive ? p : one_minus_p;
  const T log_q = kPositive ? log_one_minus_p : log_p;
  const T log_right = kPositive ? log_p : log_one_minus_p;
  const T w = kPositive ? alpha : T(1) - alpha;
  const T q_pow = kGammaIsTwo ? q * q : exp_nonpos(gamma * log_q);
  const T wq = w * q_pow;
  const T grad = wq * (gamma * one_minus_q * log_right - q);
  return {-wq * log_right, kPositive ? grad : -grad};
}

}  // namespace focal_math
}  // namespace fcos
