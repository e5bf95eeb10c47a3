#include "gpu/detail/cpu_loops.hpp"

#include <cmath>
#include <cstring>

#include "gpu/detail/check.hpp"

#if defined(__x86_64__) && defined(__GNUC__)
#define SATEMU_GPU_AVX2_CLONES 1
#endif

namespace satemu::gpu::detail {

namespace {

// The bodies are written once and inlined into a baseline and an AVX2
// function, so the compiler vectorises each copy for its instruction set.

[[gnu::always_inline]] inline std::uint32_t max_magnitude_body(const float* __restrict x,
                                                               std::int64_t n) {
  // Sixteen independent maxima: one running maximum is a chain of dependent
  // compare-and-selects that leaves the loads waiting. Signed maxima, as
  // magnitudes are below 2^31 and SSE2 compares only signed integers.
  constexpr int lanes = 16;
  std::int32_t m[lanes] = {};
  std::int64_t j = 0;
  for (; j + lanes <= n; j += lanes)
    for (int l = 0; l < lanes; ++l) {
      std::int32_t b;
      std::memcpy(&b, x + j + l, sizeof b);
      b &= 0x7fffffff;
      m[l] = m[l] < b ? b : m[l];
    }
  std::int32_t r = 0;
  for (; j < n; ++j) {
    std::int32_t b;
    std::memcpy(&b, x + j, sizeof b);
    b &= 0x7fffffff;
    r = r < b ? b : r;
  }
  for (const std::int32_t v : m)
    r = r < v ? v : r;
  return static_cast<std::uint32_t>(r);
}

// Rounds half to even as nearbyint does in the default rounding mode, by
// adding and removing 1.5 x 2^23 (exact for |v| < 2^22; |x / scale| stays
// near qmax, as |x| <= max|x| = scale x qmax up to rounding and a subnormal
// scale's lost digits), without a libm call. Clamping the rounded integer
// equals rounding the clamped value, the bounds being integers; an integer
// clamp vectorises where a float one (for its NaN rules) does not.
[[gnu::always_inline]] inline int quant_code(float x, float scale, int qmax) {
  constexpr float magic = 12582912.0f;
  const int c = static_cast<int>((x / scale + magic) - magic);
  return c < -qmax ? -qmax : (c > qmax ? qmax : c);
}

[[gnu::always_inline]] inline void quantize_row_body(const float* __restrict in, std::int64_t cols,
                                                     int bits, float scale,
                                                     std::uint8_t* __restrict out) {
  if (bits == 8) {
    for (std::int64_t j = 0; j < cols; ++j)
      out[j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(quant_code(in[j], scale, 127)));
    return;
  }
  const std::int64_t pairs = cols / 2;
  for (std::int64_t b = 0; b < pairs; ++b) {
    const auto lo = static_cast<unsigned>(quant_code(in[2 * b], scale, 7)) & 0x0fu;
    const auto hi = static_cast<unsigned>(quant_code(in[2 * b + 1], scale, 7)) & 0x0fu;
    out[b] = static_cast<std::uint8_t>(lo | (hi << 4));
  }
  if (cols % 2 != 0)
    out[pairs] = static_cast<std::uint8_t>(
      static_cast<unsigned>(quant_code(in[cols - 1], scale, 7)) & 0x0fu);
}

std::uint32_t max_magnitude_baseline(const float* x, std::int64_t n) {
  return max_magnitude_body(x, n);
}
void quantize_row_baseline(const float* x, std::int64_t cols, int bits, float scale,
                           std::uint8_t* out) {
  quantize_row_body(x, cols, bits, scale, out);
}

#ifdef SATEMU_GPU_AVX2_CLONES
__attribute__((target("avx2"))) std::uint32_t max_magnitude_avx2(const float* x,
                                                                  std::int64_t n) {
  return max_magnitude_body(x, n);
}
__attribute__((target("avx2"))) void quantize_row_avx2(const float* x, std::int64_t cols,
                                                       int bits, float scale,
                                                       std::uint8_t* out) {
  quantize_row_body(x, cols, bits, scale, out);
}
#endif

} // namespace

float quant_scale(float amax, int bits) {
  // The double quotient rounds to a float past the exact one only if a float
  // lay between them, and none can: a float f != amax / qmax has
  // |f x qmax - amax| >= ulp(f), about 2^-30 of the quotient, where the
  // double is within 2^-53 of it.
  const double exact = static_cast<double>(amax) / (bits == 8 ? 127.0 : 7.0);
  float s = static_cast<float>(exact);
  if (static_cast<double>(s) > exact)
    s = std::nextafter(s, 0.0f);
  return s;
}

bool runs_here(isa i) {
  if (i == isa::baseline)
    return true;
#ifdef SATEMU_GPU_AVX2_CLONES
  static const bool avx2 = __builtin_cpu_supports("avx2") != 0;
  return avx2;
#else
  return false;
#endif
}

isa host_isa() { return runs_here(isa::avx2) ? isa::avx2 : isa::baseline; }

std::uint32_t max_magnitude_bits(const float* x, std::int64_t n, isa i) {
#ifdef SATEMU_GPU_AVX2_CLONES
  if (i == isa::avx2) {
    SATEMU_GPU_CHECK(runs_here(i), "AVX2 loops asked for on a CPU without AVX2");
    return max_magnitude_avx2(x, n);
  }
#endif
  (void)i;
  return max_magnitude_baseline(x, n);
}

void quantize_row(const float* x, std::int64_t cols, int bits, float scale, std::uint8_t* out,
                  isa i) {
#ifdef SATEMU_GPU_AVX2_CLONES
  if (i == isa::avx2) {
    SATEMU_GPU_CHECK(runs_here(i), "AVX2 loops asked for on a CPU without AVX2");
    return quantize_row_avx2(x, cols, bits, scale, out);
  }
#endif
  (void)i;
  quantize_row_baseline(x, cols, bits, scale, out);
}

} // namespace satemu::gpu::detail
