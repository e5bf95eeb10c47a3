// fp32 <-> fp16 / bf16 conversions (gpu/half.hpp): special values, rounding
// ties, subnormals, overflow; every 16-bit pattern round-trips; and random
// floats round to the nearest representable value found by an independent
// table search (ties to the even pattern).
#include "gpu/half.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/rng.hpp"

namespace satemu::gpu {
namespace {

constexpr float inf = std::numeric_limits<float>::infinity();

// Compile-time checks: the conversions are constexpr.
static_assert(float_to_fp16_bits(1.0f) == 0x3c00);
static_assert(float_to_bf16_bits(1.0f) == 0x3f80);
static_assert(fp16_bits_to_float(0xc000) == -2.0f);

TEST(Fp16, SpecialValues) {
  EXPECT_EQ(float_to_fp16_bits(0.0f), 0x0000);
  EXPECT_EQ(float_to_fp16_bits(-0.0f), 0x8000);
  EXPECT_EQ(float_to_fp16_bits(inf), 0x7c00);
  EXPECT_EQ(float_to_fp16_bits(-inf), 0xfc00);
  const std::uint16_t nan = float_to_fp16_bits(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  // A signalling NaN whose payload sits only in the low bits stays a NaN.
  const std::uint16_t snan = float_to_fp16_bits(std::bit_cast<float>(0x7f800001u));
  EXPECT_EQ(snan & 0x7c00, 0x7c00);
  EXPECT_NE(snan & 0x03ff, 0);
  EXPECT_TRUE(std::isnan(fp16_bits_to_float(0x7e00)));
  EXPECT_TRUE(std::isnan(fp16_bits_to_float(0xfc01)));
  EXPECT_EQ(fp16_bits_to_float(0x7c00), inf);
  EXPECT_TRUE(std::signbit(fp16_bits_to_float(0x8000)));

  // Largest finite, and overflow at the halfway point 65520 (ties to even -> inf).
  EXPECT_EQ(float_to_fp16_bits(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16_bits(65519.996f), 0x7bff);
  EXPECT_EQ(float_to_fp16_bits(65520.0f), 0x7c00);
  EXPECT_EQ(float_to_fp16_bits(-1e10f), 0xfc00);
  EXPECT_EQ(fp16_bits_to_float(0x7bff), 65504.0f);

  // Normal / subnormal boundary and subnormals.
  EXPECT_EQ(float_to_fp16_bits(0x1p-14f), 0x0400);
  EXPECT_EQ(fp16_bits_to_float(0x0400), 0x1p-14f);
  EXPECT_EQ(float_to_fp16_bits(0x1p-24f), 0x0001);
  EXPECT_EQ(fp16_bits_to_float(0x0001), 0x1p-24f);
  EXPECT_EQ(fp16_bits_to_float(0x03ff), 1023 * 0x1p-24f);
  EXPECT_EQ(float_to_fp16_bits(1023 * 0x1p-24f), 0x03ff);
  EXPECT_EQ(float_to_fp16_bits(1023.5f * 0x1p-24f), 0x0400); // tie rounds up to even
  EXPECT_EQ(float_to_fp16_bits(-0x1p-24f), 0x8001);
  EXPECT_EQ(float_to_fp16_bits(0x1p-25f), 0x0000);             // tie between 0 and 1: even
  EXPECT_EQ(float_to_fp16_bits(0x1.000002p-25f), 0x0001);      // just above the tie
  EXPECT_EQ(float_to_fp16_bits(3 * 0x1p-25f), 0x0002);         // tie between 1 and 2: even
  EXPECT_EQ(float_to_fp16_bits(5 * 0x1p-25f), 0x0002);         // tie between 2 and 3: even
  EXPECT_EQ(float_to_fp16_bits(-0x1p-26f), 0x8000);            // underflow keeps the sign
  EXPECT_EQ(float_to_fp16_bits(std::numeric_limits<float>::denorm_min()), 0x0000);

  // Ties in the normal range: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(float_to_fp16_bits(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(float_to_fp16_bits(1.0f + 3 * 0x1p-11f), 0x3c02);
  EXPECT_EQ(float_to_fp16_bits(1.0f + 0x1p-11f + 0x1p-23f), 0x3c01);
  // A carry out of the mantissa moves to the next binade: 2 - 2^-12 -> 2.
  EXPECT_EQ(float_to_fp16_bits(2.0f - 0x1p-12f), 0x4000);
}

TEST(Bf16, SpecialValues) {
  EXPECT_EQ(float_to_bf16_bits(0.0f), 0x0000);
  EXPECT_EQ(float_to_bf16_bits(-0.0f), 0x8000);
  EXPECT_EQ(float_to_bf16_bits(inf), 0x7f80);
  EXPECT_EQ(float_to_bf16_bits(-inf), 0xff80);
  const std::uint16_t nan = float_to_bf16_bits(std::bit_cast<float>(0x7f800001u));
  EXPECT_TRUE(std::isnan(bf16_bits_to_float(nan))) << std::hex << nan;
  EXPECT_TRUE(std::isnan(bf16_bits_to_float(
      float_to_bf16_bits(-std::numeric_limits<float>::quiet_NaN()))));
  // Overflow: the largest float rounds to infinity; the largest bf16 stays.
  EXPECT_EQ(float_to_bf16_bits(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(float_to_bf16_bits(bf16_bits_to_float(0x7f7f)), 0x7f7f);
  // Subnormals are kept (bf16 shares fp32's exponent range).
  EXPECT_EQ(float_to_bf16_bits(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(float_to_bf16_bits(std::bit_cast<float>(0x00010000u)), 0x0001);
  EXPECT_EQ(float_to_bf16_bits(std::bit_cast<float>(0x00018000u)), 0x0002); // tie -> even
  EXPECT_EQ(float_to_bf16_bits(std::bit_cast<float>(0x00008000u)), 0x0000); // tie -> even
  EXPECT_EQ(float_to_bf16_bits(std::bit_cast<float>(0x00008001u)), 0x0001);
  // Ties in the normal range.
  EXPECT_EQ(float_to_bf16_bits(1.0f + 0x1p-8f), 0x3f80);
  EXPECT_EQ(float_to_bf16_bits(1.0f + 3 * 0x1p-8f), 0x3f82);
  EXPECT_EQ(float_to_bf16_bits(1.0f + 0x1p-8f + 0x1p-23f), 0x3f81);
}

TEST(HalfFormats, EveryPatternRoundTrips) {
  for (std::uint32_t b = 0; b <= 0xffff; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    const float f16 = fp16_bits_to_float(h);
    const float b16 = bf16_bits_to_float(h);
    if (std::isnan(f16)) {
      EXPECT_TRUE(std::isnan(fp16_bits_to_float(float_to_fp16_bits(f16)))) << b;
    } else {
      ASSERT_EQ(float_to_fp16_bits(f16), h) << std::hex << b;
    }
    if (std::isnan(b16)) {
      EXPECT_TRUE(std::isnan(bf16_bits_to_float(float_to_bf16_bits(b16)))) << b;
    } else {
      ASSERT_EQ(float_to_bf16_bits(b16), h) << std::hex << b;
    }
  }
}

// Value of a finite, non-negative 16-bit pattern from its fields, in double.
double fp16_value(std::uint32_t b) {
  const std::uint32_t e = b >> 10;
  const std::uint32_t m = b & 0x3ff;
  return e == 0 ? std::ldexp(double(m), -24) : std::ldexp(double(1024 + m), int(e) - 25);
}
double bf16_value(std::uint32_t b) {
  const std::uint32_t e = b >> 7;
  const std::uint32_t m = b & 0x7f;
  return e == 0 ? std::ldexp(double(m), -133) : std::ldexp(double(128 + m), int(e) - 134);
}

// Nearest entry of an ascending table (ties to the even pattern); `table`
// ends with the first value past the largest finite one, standing for
// infinity (IEEE rounds as if the exponent were unbounded, then overflows).
std::uint16_t nearest(const std::vector<double>& table, std::uint16_t inf_bits, double a) {
  const auto it = std::lower_bound(table.begin(), table.end(), a);
  if (it == table.end())
    return inf_bits;
  const auto hi = static_cast<std::uint16_t>(it - table.begin());
  if (*it == a || hi == 0)
    return hi;
  const auto lo = static_cast<std::uint16_t>(hi - 1);
  const double dlo = a - table[lo];
  const double dhi = *it - a;
  if (dlo < dhi)
    return lo;
  if (dhi < dlo)
    return hi;
  return (lo & 1) == 0 ? lo : hi;
}

TEST(HalfFormats, RandomFloatsRoundToNearestEven) {
  std::vector<double> f16_table;
  for (std::uint32_t b = 0; b < 0x7c00; ++b)
    f16_table.push_back(fp16_value(b));
  f16_table.push_back(65536.0); // pattern 0x7c00
  std::vector<double> bf16_table;
  for (std::uint32_t b = 0; b < 0x7f80; ++b)
    bf16_table.push_back(bf16_value(b));
  bf16_table.push_back(std::ldexp(1.0, 128)); // pattern 0x7f80

  runtime::rng r(11, 0, 0);
  for (int i = 0; i < 200000; ++i) {
    // Half the draws anywhere in fp32, half in [2^-27, 2^17) (fp16's range
    // and a bit beyond); some exactly on ties (low mantissa bits cleared but one).
    std::uint32_t bits = static_cast<std::uint32_t>(r.next());
    if (i % 2 == 1)
      bits = (bits & 0x80000000u) | ((bits & 0x7fffffffu) % 0x16000000u + 0x32000000u);
    if (i % 7 == 0)
      bits = (bits & ~0x1fffu) | 0x1000u; // an fp16 tie in the normal range
    if (i % 11 == 0)
      bits = (bits & ~0xffffu) | 0x8000u; // a bf16 tie
    const float x = std::bit_cast<float>(bits);
    if (std::isnan(x))
      continue;
    const double a = std::fabs(static_cast<double>(x));
    const auto sign = static_cast<std::uint16_t>(std::signbit(x) ? 0x8000 : 0);
    const std::uint16_t want16 =
        std::isinf(x) ? 0x7c00 : nearest(f16_table, 0x7c00, a);
    const std::uint16_t wantb =
        std::isinf(x) ? 0x7f80 : nearest(bf16_table, 0x7f80, a);
    ASSERT_EQ(float_to_fp16_bits(x), sign | want16) << std::hexfloat << x;
    ASSERT_EQ(float_to_bf16_bits(x), sign | wantb) << std::hexfloat << x;
  }
}

#if defined(__FLT16_MAX__)
TEST(Fp16, AgreesWithTheCompilersFloat16) {
  runtime::rng r(12, 0, 0);
  for (int i = 0; i < 100000; ++i) {
    const float x = std::bit_cast<float>(static_cast<std::uint32_t>(r.next()));
    if (std::isnan(x))
      continue;
    const auto h = static_cast<_Float16>(x);
    ASSERT_EQ(float_to_fp16_bits(x), std::bit_cast<std::uint16_t>(h)) << std::hexfloat << x;
  }
}
#endif

} // namespace
} // namespace satemu::gpu
