/// satemu hardware profiles: the compute devices the emulated satellites
/// carry, and the roofline cost model that turns an operation's FLOPs and bytes
/// into emulated time on them.
///
///   duration = max(flops / peak(precision), bytes / bandwidth) + launch_overhead
///
/// rounded to integer nanoseconds. `fit_roofline` recovers peak, bandwidth and
/// overhead from measured kernel times (for `satemu calibrate`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/time.hpp"

namespace satemu::gpu {

/// The arithmetic an operation runs in: selects which peak applies.
enum class compute_precision { fp32, fp16, bf16 };

/// Bytes of one weight or activation element in `p`.
constexpr double element_bytes(compute_precision p) { return p == compute_precision::fp32 ? 4.0 : 2.0; }
/// "fp32", "fp16", "bf16".
constexpr std::string_view precision_name(compute_precision p) {
  return p == compute_precision::fp32 ? "fp32" : p == compute_precision::fp16 ? "fp16" : "bf16";
}

/// One emulated compute device.
struct hardware_profile {
  std::string name;
  /// Where the figures come from.
  std::string source;
  /// Peak FP32 throughput, FLOP/s (a multiply-add counts 2).
  double peak_fp32_flops = 0;
  /// Peak FP16/BF16 throughput (tensor cores where the device has them), FLOP/s.
  double peak_fp16_flops = 0;
  /// Main-memory bandwidth, bytes/s.
  double memory_bytes_per_s = 0;
  /// Fixed cost of starting one operation (kernel launch, dispatch).
  runtime::duration launch_overhead;

  /// The peak for `p` (fp16 and bf16 share one figure).
  double peak_flops(compute_precision p) const {
    return p == compute_precision::fp32 ? peak_fp32_flops : peak_fp16_flops;
  }
};

/// Values that replace a profile's figures (e.g. from a scenario or a
/// calibration). Unset fields keep the profile's value.
struct hardware_overrides {
  std::optional<double> peak_fp32_flops;
  std::optional<double> peak_fp16_flops;
  std::optional<double> memory_bytes_per_s;
  std::optional<runtime::duration> launch_overhead;
};

/// The names of the built-in profiles, in a stable order.
std::vector<std::string> hardware_names();

/// The built-in profile `name` with `overrides` applied; NotFound listing the
/// known names for an unknown name. `sat-payload` has no figures of its own:
/// it needs a peak (peak_fp32_flops or peak_fp16_flops; one given, the
/// other is the same), memory_bytes_per_s and launch_overhead;
/// InvalidArgument names the missing ones. Any resulting profile is validated.
absl::StatusOr<hardware_profile> find_hardware(std::string_view name,
                                               const hardware_overrides& overrides = {});

/// The least peak FLOP/s and memory bytes/s, and the largest launch overhead,
/// a device profile may have.
inline constexpr double min_device_rate = 1e6;
inline constexpr runtime::duration max_launch_overhead = runtime::seconds(1);
/// The longest roofline time estimate_duration gives: 1e17 ns, about three
/// years, beyond any run, and far enough below the time type's limit that
/// the sum of a whole model's layers cannot overflow it.
inline constexpr runtime::duration max_estimate = runtime::nanoseconds(100'000'000'000'000'000);

/// OK when both peaks and the bandwidth are finite and at least
/// min_device_rate and the overhead is between zero and
/// max_launch_overhead; otherwise InvalidArgument naming the field.
absl::Status validate_hardware(const hardware_profile& hw);

/// Emulated duration of an operation of `flops` FLOPs moving `bytes` bytes of
/// memory on `hw`: max(flops / peak, bytes / bandwidth), rounded to the nearest
/// nanosecond and at most max_estimate, plus the launch overhead.
/// Precondition: flops and bytes finite and >= 0 (a violation aborts).
runtime::duration estimate_duration(const hardware_profile& hw, double flops, double bytes,
                                    compute_precision precision = compute_precision::fp32);

/// One measured operation.
struct roofline_sample {
  double flops = 0;
  double bytes = 0;
  double seconds = 0;
};

/// The device figures that best explain a set of samples.
struct roofline_fit {
  double peak_flops = 0;
  double memory_bytes_per_s = 0;
  /// The fitted overhead, in seconds and rounded to nanoseconds.
  double overhead_seconds = 0;
  runtime::duration launch_overhead;
  /// Root mean square of (predicted - measured) / measured.
  double rms_relative_residual = 0;
  /// How many samples the fitted figures make compute-bound (F / peak >
  /// B / bandwidth) and memory-bound (the rest, zero-work samples included).
  std::size_t compute_bound = 0;
  std::size_t memory_bound = 0;
};

/// Fits t = max(F / peak, B / bandwidth) + overhead to `samples`, minimising
/// the squared relative residuals (so microsecond and second-long kernels
/// weigh alike). Whether a sample is compute- or memory-bound depends only on
/// its arithmetic intensity F/B against the ridge point peak/bandwidth, so
/// the samples are sorted by intensity and every split into a memory-bound low
/// part and a compute-bound high part (at least 2 samples in each) is solved as
/// a linear least-squares problem in (overhead, 1/peak, 1/bandwidth); a
/// negative overhead is refitted as 0. The split whose solution has the
/// smallest residual under the full max() model wins. A roofline is a
/// ceiling, so a peak (bandwidth) below the best rate F/t (B/t) that one of
/// its compute-bound (memory-bound) samples reached is raised to that rate:
/// small kernels, slower than the model has them, would otherwise pull it
/// below what large ones reach.
/// Errors: fewer than 4 samples, a sample that is not finite, negative counts
/// or a non-positive time, and samples that do not span both regimes.
absl::StatusOr<roofline_fit> fit_roofline(const std::vector<roofline_sample>& samples);

/// `base` calibrated by `fit` measured in `precision`: that precision's peak,
/// the bandwidth and the overhead come from the fit; the other peak is scaled
/// by the same factor, keeping the datasheet ratio between the two.
hardware_profile apply_fit(hardware_profile base, const roofline_fit& fit,
                           compute_precision precision);

} // namespace satemu::gpu
