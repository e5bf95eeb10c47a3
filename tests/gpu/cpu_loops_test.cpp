// The cpu backend's vectorised loops (gpu/detail/cpu_loops.hpp): every
// instruction set this host runs gives the bits of a plain scalar loop, for
// row lengths around the vector widths, ties, clamping and subnormal scales.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/detail/cpu_loops.hpp"

namespace satemu::gpu::detail {
namespace {

std::vector<isa> isas_here() {
  std::vector<isa> v = {isa::baseline};
  if (runs_here(isa::avx2))
    v.push_back(isa::avx2);
  return v;
}

const char* name(isa i) { return i == isa::avx2 ? "avx2" : "baseline"; }

std::uint32_t bits_of(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

// Lengths below, at and beyond the 16-lane blocks and the vector widths.
const std::int64_t lengths[] = {0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 2049};

std::vector<float> random_row(std::int64_t n, float magnitude, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(n));
  for (float& v : x)
    v = u(rng) * magnitude;
  return x;
}

// The reference: clamp, then nearbyint (round half to even), then pack.
std::vector<std::uint8_t> reference_codes(const std::vector<float>& x, int bits, float scale) {
  const float qmax = bits == 8 ? 127.0f : 7.0f;
  const auto n = static_cast<std::int64_t>(x.size());
  std::vector<std::uint8_t> out(static_cast<std::size_t>(bits == 8 ? n : (n + 1) / 2), 0);
  for (std::int64_t j = 0; j < n; ++j) {
    const int c = static_cast<int>(
      std::nearbyint(std::clamp(x[static_cast<std::size_t>(j)] / scale, -qmax, qmax)));
    if (bits == 8)
      out[static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(static_cast<std::int8_t>(c));
    else
      out[static_cast<std::size_t>(j / 2)] |=
        static_cast<std::uint8_t>((static_cast<unsigned>(c) & 0x0fu) << (j % 2 == 0 ? 0 : 4));
  }
  return out;
}

std::uint32_t reference_max_bits(const std::vector<float>& x) {
  std::uint32_t m = 0;
  for (const float v : x)
    m = std::max(m, bits_of(v) & 0x7fffffffu);
  return m;
}

TEST(CpuLoops, MaxMagnitudeBitsIsTheScalarMaximumOnEveryIsa) {
  std::mt19937 rng(7);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (const isa i : isas_here())
    for (const std::int64_t n : lengths) {
      std::vector<float> x = random_row(n, 3.0f, rng);
      EXPECT_EQ(max_magnitude_bits(x.data(), n, i), reference_max_bits(x)) << name(i) << " " << n;
      // The maximum at every position (each lane and the tail), negative.
      for (std::int64_t p = 0; p < n; ++p) {
        std::vector<float> y = x;
        y[static_cast<std::size_t>(p)] = -1e30f;
        ASSERT_EQ(max_magnitude_bits(y.data(), n, i), bits_of(1e30f)) << name(i) << " " << p;
      }
      if (n == 0)
        continue;
      // Non-finite values rank above every finite one; -0 is 0.
      for (const float special : {inf, -inf, nan, -0.0f}) {
        std::vector<float> y(static_cast<std::size_t>(n), 0.0f);
        y[static_cast<std::size_t>(n - 1)] = special;
        EXPECT_EQ(max_magnitude_bits(y.data(), n, i), bits_of(special) & 0x7fffffffu)
          << name(i) << " " << n << " " << special;
        if (n == 1)
          continue;
        y[0] = std::numeric_limits<float>::max();
        EXPECT_EQ(max_magnitude_bits(y.data(), n, i) >= nonfinite_bits, !(special == 0.0f))
          << name(i) << " " << n << " " << special;
      }
    }
}

TEST(CpuLoops, QuantizeRowGivesTheReferenceCodesOnEveryIsa) {
  std::mt19937 rng(11);
  for (const isa i : isas_here())
    for (const int bits : {8, 4}) {
      const float qmax = bits == 8 ? 127.0f : 7.0f;
      for (const std::int64_t n : lengths)
        // Ordinary magnitudes, tiny ones, and ones whose scale is subnormal
        // (its lost digits put codes beyond qmax before the clamp).
        for (const float magnitude : {1.0f, 300.0f, 1e-30f, 1e-43f}) {
          const std::vector<float> x = random_row(n, magnitude, rng);
          float amax = 0.0f;
          for (const float v : x)
            amax = std::max(amax, std::fabs(v));
          const float scale = amax / qmax;
          if (scale == 0.0f)
            continue;
          std::vector<std::uint8_t> got(x.size() + 1, 0xaa);
          quantize_row(x.data(), n, bits, scale, got.data(), i);
          const auto want = reference_codes(x, bits, scale);
          got.resize(want.size() + 1);
          EXPECT_EQ(got.back(), 0xaa) << "wrote past the row";
          got.pop_back();
          EXPECT_EQ(got, want) << name(i) << " bits " << bits << " n " << n << " magnitude "
                               << magnitude;
        }
      // Halves (ties) at every position round to even, and values beyond
      // qmax clamp.
      std::vector<float> ties(67);
      const int span = bits == 8 ? 260 : 20;
      for (std::size_t j = 0; j < ties.size(); ++j)
        ties[j] = static_cast<float>(static_cast<int>(j * 37 % static_cast<std::size_t>(span)) -
                                     span / 2) + 0.5f;
      const auto want = reference_codes(ties, bits, 1.0f);
      std::vector<std::uint8_t> got(ties.size(), 0);
      quantize_row(ties.data(), static_cast<std::int64_t>(ties.size()), bits, 1.0f, got.data(), i);
      got.resize(want.size());
      EXPECT_EQ(got, want) << name(i) << " ties, bits " << bits;
    }
}

TEST(CpuLoops, HostIsaRunsHere) {
  EXPECT_TRUE(runs_here(isa::baseline));
  EXPECT_TRUE(runs_here(host_isa()));
  if (!runs_here(isa::avx2))
    GTEST_SKIP() << "this CPU has no AVX2: only the baseline loops were compared";
}

} // namespace
} // namespace satemu::gpu::detail
