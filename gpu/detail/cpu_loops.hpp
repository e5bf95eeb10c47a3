/// @file cpu_loops.hpp
/// Private to gpu/: the cpu backend's elementwise loops that run at memory
/// speed only when vectorised. On x86-64 each is compiled twice, for the
/// build's baseline (SSE2) and for AVX2, and picked at run time by what the
/// host's CPU has; elsewhere there is one version. Both versions give the
/// same bits: the loops use only exactly rounded operations (division,
/// addition, conversion, integer compares).
#pragma once

#include <cstdint>

namespace satemu::gpu::detail {

/// An instruction set the loops below are compiled for.
enum class isa { baseline, avx2 };

/// AVX2 in an x86-64 build on a CPU that has it; otherwise baseline.
isa host_isa();
/// Whether loops compiled for `i` run on this host (baseline always does).
/// The loops below abort when asked for an `i` that does not.
bool runs_here(isa i);

/// The bits of max |x| over `n` floats: magnitudes' bit patterns order as
/// the magnitudes do, with infinities and NaNs (>= `nonfinite_bits`) above
/// every finite value; an integer maximum vectorises (a float one does not,
/// for its NaN rules).
std::uint32_t max_magnitude_bits(const float* x, std::int64_t n, isa i = host_isa());
inline constexpr std::uint32_t nonfinite_bits = 0x7f800000u;

/// The per-token scale of a row whose largest magnitude is `amax` (finite):
/// amax / qmax rounded toward zero, so that no restored value |q| x scale
/// exceeds amax (rounded to nearest, 127 x (FLT_MAX / 127) is infinite). 0
/// when amax / qmax is below the smallest subnormal.
float quant_scale(float amax, int bits);

/// The per-token symmetric codes of one row of `cols` finite values at a
/// positive `scale`: x / scale (a division, not a multiplication by
/// 1/scale, so that the code of max|x| is exactly qmax) rounded half to
/// even, clamped to [-qmax, qmax] (qmax = 127 for 8 bits, 7 for 4). 8 bits:
/// one two's-complement byte per value. 4 bits: two codes per byte, the even
/// column in the low nibble; an odd last column fills a low nibble alone.
/// Writes `cols` (8 bits) or (cols + 1) / 2 (4 bits) bytes to `out`.
void quantize_row(const float* x, std::int64_t cols, int bits, float scale, std::uint8_t* out,
                  isa i = host_isa());

} // namespace satemu::gpu::detail
