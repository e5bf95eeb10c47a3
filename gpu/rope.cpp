#include "gpu/rope.hpp"

#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"

namespace satemu::gpu {

absl::Status check_rope_scaling(const llama3_rope_scaling& s) {
  if (!s.enabled())
    return absl::OkStatus();
  if (!(s.factor >= 1.0) || !std::isfinite(s.factor) || !(s.low_freq_factor > 0.0) ||
      !(s.high_freq_factor > s.low_freq_factor) || !std::isfinite(s.high_freq_factor) ||
      s.original_max_position <= 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "llama3 RoPE scaling needs factor >= 1, 0 < low_freq_factor < high_freq_factor and "
        "original_max_position > 0; got factor ",
        s.factor, ", low_freq_factor ", s.low_freq_factor, ", high_freq_factor ",
        s.high_freq_factor, ", original_max_position ", s.original_max_position));
  return absl::OkStatus();
}

std::vector<double> rope_inv_freq(double theta, std::int64_t head_dim,
                                  const llama3_rope_scaling& scaling) {
  const std::int64_t half = head_dim / 2;
  std::vector<double> f(static_cast<std::size_t>(half > 0 ? half : 0));
  for (std::int64_t i = 0; i < half; ++i)
    f[static_cast<std::size_t>(i)] =
        std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
  if (!scaling.enabled())
    return f;
  const auto old_len = static_cast<double>(scaling.original_max_position);
  const double low_freq_wavelen = old_len / scaling.low_freq_factor;
  const double high_freq_wavelen = old_len / scaling.high_freq_factor;
  for (double& fi : f) {
    const double wavelen = 2.0 * std::numbers::pi / fi;
    if (wavelen < high_freq_wavelen)
      continue;
    if (wavelen > low_freq_wavelen) {
      fi /= scaling.factor;
      continue;
    }
    const double s = (old_len / wavelen - scaling.low_freq_factor) /
                     (scaling.high_freq_factor - scaling.low_freq_factor);
    fi = (1.0 - s) * fi / scaling.factor + s * fi;
  }
  return f;
}

} // namespace satemu::gpu
