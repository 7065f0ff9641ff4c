// Function multi-versioning for the hot CPU loops: with GCC on x86-64 each marked function is
// compiled for AVX-512, AVX2+FMA and baseline SSE2, and the loader picks the best one for the CPU.
// The loops are written branch-free so that the compiler vectorizes them.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FCOS_SIMD_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FCOS_SIMD_CLONES
#endif

#if defined(__GNUC__)
#define FCOS_INLINE inline __attribute__((always_inline))
#else
#define FCOS_INLINE inline
#endif
