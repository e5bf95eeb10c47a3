/// @file half.hpp
/// Portable fp32 <-> fp16 (IEEE binary16) and fp32 <-> bf16 (bfloat16)
/// conversions on bit patterns, independent of compiler support for
/// `_Float16` or `std::bfloat16_t` and of the FPU's rounding mode.
///
/// fp32 -> 16 bit rounds to nearest, ties to even; overflow gives +-inf;
/// fp16 keeps subnormals (no flush to zero); the sign of zero is kept. A NaN
/// stays a NaN: its top payload bits are kept and the quiet bit is set, so a
/// signalling NaN never turns into an infinity. 16 bit -> fp32 is exact.
#pragma once

#include <bit>
#include <cstdint>

namespace satemu::gpu {

/// fp32 -> IEEE binary16 bits, round to nearest even.
constexpr std::uint16_t float_to_fp16_bits(float x) {
  const std::uint32_t f = std::bit_cast<std::uint32_t>(x);
  const std::uint32_t sign = (f >> 16) & 0x8000u;
  const std::uint32_t a = f & 0x7fffffffu;
  if (a >= 0x7f800000u) // inf or NaN
    return static_cast<std::uint16_t>(
        sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0u));
  // 65520 lies halfway between the largest half (65504, odd mantissa) and
  // 2^16: ties to even rounds it, and everything above, to infinity.
  if (a >= 0x477ff000u)
    return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (a >= 0x38800000u) { // normal half: |x| >= 2^-14
    // Round the 23-bit mantissa to 10 bits at bit 13; a carry correctly
    // ripples into the exponent. Then rebias the exponent from 127 to 15.
    const std::uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
    return static_cast<std::uint16_t>(sign | ((rounded - (112u << 23)) >> 13));
  }
  // Subnormal half (or zero): the result is round(|x| / 2^-24).
  const std::uint32_t e = a >> 23;
  if (e < 102u) // |x| < 2^-25 (float subnormals included): rounds to zero
    return static_cast<std::uint16_t>(sign);
  const std::uint32_t mant = (a & 0x7fffffu) | 0x800000u; // |x| = mant * 2^(e-150)
  const std::uint32_t shift = 126u - e;                   // in [14, 24]
  std::uint32_t m = mant >> shift;
  const std::uint32_t rem = mant & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (m & 1u)))
    ++m; // may become 0x400, the smallest normal: the right encoding
  return static_cast<std::uint16_t>(sign | m);
}

/// IEEE binary16 bits -> fp32 (exact).
constexpr float fp16_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t e = (h >> 10) & 0x1fu;
  std::uint32_t m = h & 0x3ffu;
  if (e == 0x1fu)
    return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
  if (e != 0)
    return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
  if (m == 0)
    return std::bit_cast<float>(sign);
  // Subnormal: normalise m * 2^-24 to 1.f * 2^(exp).
  std::int32_t exp = 1;
  while ((m & 0x400u) == 0) {
    m <<= 1;
    --exp;
  }
  return std::bit_cast<float>(sign | (static_cast<std::uint32_t>(exp + 112) << 23) |
                              ((m & 0x3ffu) << 13));
}

/// fp32 -> bfloat16 bits (the top half of the fp32 pattern), round to nearest even.
constexpr std::uint16_t float_to_bf16_bits(float x) {
  const std::uint32_t f = std::bit_cast<std::uint32_t>(x);
  if ((f & 0x7fffffffu) > 0x7f800000u) // NaN: keep the top payload, set the quiet bit
    return static_cast<std::uint16_t>((f >> 16) | 0x40u);
  // A carry out of the mantissa bumps the exponent; past the largest finite
  // value it lands exactly on the infinity pattern.
  return static_cast<std::uint16_t>((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
}

/// bfloat16 bits -> fp32 (exact).
constexpr float bf16_bits_to_float(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

} // namespace satemu::gpu
