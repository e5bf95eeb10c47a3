/// @file rope.hpp
/// The rotary position embedding's frequencies: the plain RoPE ones and
/// Llama 3's scaled ones, computed once here for every backend (each rotates
/// by angle = position * inv_freq[i]).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace satemu::gpu {

/// Llama 3 RoPE frequency scaling (`rope_scaling` with `rope_type: llama3` in
/// Hugging Face configs). `factor == 0` means no scaling.
struct llama3_rope_scaling {
  double factor = 0;
  double low_freq_factor = 0;
  double high_freq_factor = 0;
  std::int64_t original_max_position = 0;

  bool enabled() const { return factor != 0; }
};

/// InvalidArgument unless the scaling is off or usable: factor >= 1,
/// 0 < low_freq_factor < high_freq_factor, original_max_position > 0, all
/// finite.
absl::Status check_rope_scaling(const llama3_rope_scaling& s);

/// The head_dim / 2 inverse frequencies theta^(-2i / head_dim), in double.
/// With Llama 3 scaling, over wavelength 2 pi / f: those longer than
/// original_max_position / low_freq_factor are divided by factor, those
/// shorter than original_max_position / high_freq_factor kept, and those
/// between blended with s = (original_max_position / wavelength -
/// low_freq_factor) / (high_freq_factor - low_freq_factor) as
/// (1 - s) f / factor + s f (Meta's reference and Hugging Face's "llama3").
std::vector<double> rope_inv_freq(double theta, std::int64_t head_dim,
                                  const llama3_rope_scaling& scaling = {});

} // namespace satemu::gpu
