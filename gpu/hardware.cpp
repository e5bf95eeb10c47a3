#include "gpu/hardware.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace satemu::gpu {

namespace {

// Built-in devices. Peaks and bandwidths are the vendors' published
// (theoretical) figures; launch overheads are not published anywhere and are
// order-of-magnitude assumptions, to be replaced by `satemu calibrate`.
//
// | device           | FP32 FLOP/s | FP16/BF16 FLOP/s | bandwidth  | overhead | source |
// |------------------|-------------|------------------|------------|----------|--------|
// | jetson-nano      | 236 G       | 472 G            | 25.6 GB/s  | 20 us    | NVIDIA Jetson Nano module datasheet: 128-core Maxwell GPU at 921.6 MHz, "472 GFLOPS" FP16 (FP32 = 128 x 2 x 921.6 MHz); 4 GB 64-bit LPDDR4, 25.6 GB/s |
// | jetson-orin-nano | 1.28 T      | 10 T             | 68 GB/s    | 10 us    | NVIDIA Jetson Orin Nano 8GB datasheet: 1024-core Ampere GPU with 32 tensor cores at 625 MHz (FP32 = 1024 x 2 x 625 MHz), "40 TOPS" sparse INT8 = 10 T dense FP16 tensor (sparse INT8 / 4); 128-bit LPDDR5, 68 GB/s |
// | rpi-zero-2w      | 32 G        | 32 G             | 3.6 GB/s   | 5 us     | Raspberry Pi Zero 2 W product brief: RP3A0, 4x Cortex-A53 at 1 GHz, 512 MB LPDDR2. FP32 = 4 cores x 1 GHz x 8 (a 128-bit NEON FMA per cycle), an upper bound; ARMv8.0 has no FP16 arithmetic, so FP16 runs at the FP32 rate. Bandwidth: 32-bit LPDDR2 at 900 MT/s |
// | h100             | 67 T        | 989.4 T          | 3.35 TB/s  | 4 us     | NVIDIA H100 Tensor Core GPU datasheet, SXM5: FP32 67 TFLOPS, FP16/BF16 tensor 1,979 TFLOPS with sparsity = 989.4 dense; HBM3 3.35 TB/s |
// | sat-payload      | user        | user (one peak given: both) | user | user | a satellite payload computer: figures come from the scenario |
struct builtin {
  const char* name;
  const char* source;
  double fp32;
  double fp16;
  double bandwidth;
  std::int64_t overhead_ns;
};

constexpr builtin builtins[] = {
    {"jetson-nano",
     "NVIDIA Jetson Nano datasheet (472 GFLOPS FP16, 25.6 GB/s LPDDR4)", 235.9e9, 471.9e9,
     25.6e9, 20'000},
    {"jetson-orin-nano",
     "NVIDIA Jetson Orin Nano 8GB datasheet (1024 cores at 625 MHz, 40 sparse INT8 TOPS, "
     "68 GB/s LPDDR5)",
     1.28e12, 10.0e12, 68.0e9, 10'000},
    {"rpi-zero-2w",
     "Raspberry Pi Zero 2 W brief (4x Cortex-A53 at 1 GHz, 32-bit LPDDR2); peak is 8 FP32 "
     "FLOP/cycle/core",
     32.0e9, 32.0e9, 3.6e9, 5'000},
    {"sat-payload", "configured by the user", 0, 0, 0, 0},
    {"h100", "NVIDIA H100 SXM5 datasheet (67 TFLOPS FP32, 989.4 dense FP16/BF16, 3.35 TB/s)",
     67.0e12, 989.4e12, 3.35e12, 4'000},
};

constexpr std::string_view configurable = "sat-payload";

bool finite_positive(double v) { return std::isfinite(v) && v > 0; }

// Least squares min |A x - b| for k <= 3 columns by Householder QR, with the
// columns scaled to unit max first (FLOPs, bytes and 1 differ by 12 orders of
// magnitude). False when A is rank-deficient.
bool least_squares(std::vector<std::array<double, 3>> a, int k, std::vector<double> b,
                   double* x) {
  const std::size_t n = a.size();
  if (n < static_cast<std::size_t>(k))
    return false;
  std::array<double, 3> scale{};
  for (int j = 0; j < k; ++j) {
    for (const auto& row : a)
      scale[j] = std::max(scale[j], std::abs(row[j]));
    if (scale[j] == 0)
      return false;
    for (auto& row : a)
      row[j] /= scale[j];
  }
  std::vector<double> v(n);
  for (int j = 0; j < k; ++j) {
    double norm = 0;
    for (std::size_t i = j; i < n; ++i)
      norm += a[i][j] * a[i][j];
    norm = std::sqrt(norm);
    if (norm == 0)
      return false;
    const double alpha = a[j][j] > 0 ? -norm : norm;
    double vnorm2 = 0;
    for (std::size_t i = j; i < n; ++i) {
      v[i] = a[i][j] - (i == static_cast<std::size_t>(j) ? alpha : 0.0);
      vnorm2 += v[i] * v[i];
    }
    if (vnorm2 == 0)
      continue;
    for (int c = j; c < k; ++c) {
      double dot = 0;
      for (std::size_t i = j; i < n; ++i)
        dot += v[i] * a[i][c];
      for (std::size_t i = j; i < n; ++i)
        a[i][c] -= 2 * dot / vnorm2 * v[i];
    }
    double dot = 0;
    for (std::size_t i = j; i < n; ++i)
      dot += v[i] * b[i];
    for (std::size_t i = j; i < n; ++i)
      b[i] -= 2 * dot / vnorm2 * v[i];
  }
  double rmax = 0;
  for (int j = 0; j < k; ++j)
    rmax = std::max(rmax, std::abs(a[j][j]));
  for (int j = k - 1; j >= 0; --j) {
    if (std::abs(a[j][j]) <= 1e-12 * rmax)
      return false;
    double s = b[j];
    for (int c = j + 1; c < k; ++c)
      s -= a[j][c] * x[c];
    x[j] = s / a[j][j];
  }
  for (int j = 0; j < k; ++j)
    x[j] /= scale[j];
  return true;
}

} // namespace

std::vector<std::string> hardware_names() {
  std::vector<std::string> out;
  for (const auto& b : builtins)
    out.emplace_back(b.name);
  return out;
}

absl::Status validate_hardware(const hardware_profile& hw) {
  auto bad = [&](const char* field, double v) {
    return absl::InvalidArgumentError(absl::StrCat("hardware '", hw.name, "': ", field,
                                                   " must be finite and positive, got ", v));
  };
  if (!finite_positive(hw.peak_fp32_flops))
    return bad("peak_fp32_flops", hw.peak_fp32_flops);
  if (!finite_positive(hw.peak_fp16_flops))
    return bad("peak_fp16_flops", hw.peak_fp16_flops);
  if (!finite_positive(hw.memory_bytes_per_s))
    return bad("memory_bytes_per_s", hw.memory_bytes_per_s);
  if (hw.launch_overhead < runtime::duration::zero())
    return absl::InvalidArgumentError(absl::StrCat(
        "hardware '", hw.name, "': launch_overhead must not be negative, got ",
        runtime::to_string(hw.launch_overhead)));
  // Far outside any device: most likely a slipped exponent or unit, and
  // figures that would put a layer's duration beyond any run.
  // (sat-payload given one peak has both equal: both are named.)
  const bool same_peaks = hw.peak_fp32_flops == hw.peak_fp16_flops;
  for (const auto& [field, v, unit] :
       {std::tuple{same_peaks ? "peak_fp32_flops (and peak_fp16_flops)" : "peak_fp32_flops",
                   hw.peak_fp32_flops, "FLOP/s"},
        std::tuple{"peak_fp16_flops", hw.peak_fp16_flops, "FLOP/s"},
        std::tuple{"memory_bytes_per_s", hw.memory_bytes_per_s, "bytes/s"}})
    if (v < min_device_rate)
      return absl::InvalidArgumentError(absl::StrCat(
          "hardware '", hw.name, "': ", field, " must be at least 1e6 ", unit,
          " (a microcontroller does 1e8), got ", v));
  if (hw.launch_overhead > max_launch_overhead)
    return absl::InvalidArgumentError(absl::StrCat(
        "hardware '", hw.name, "': launch_overhead must be at most ",
        runtime::to_string(max_launch_overhead), " (a GPU's is microseconds), got ",
        runtime::to_string(hw.launch_overhead)));
  return absl::OkStatus();
}

absl::StatusOr<hardware_profile> find_hardware(std::string_view name,
                                               const hardware_overrides& overrides) {
  const builtin* found = nullptr;
  for (const auto& b : builtins)
    if (b.name == name)
      found = &b;
  if (!found)
    return absl::NotFoundError(absl::StrCat("unknown hardware '", std::string(name),
                                            "'; known hardware: ",
                                            absl::StrJoin(hardware_names(), ", ")));
  hardware_profile hw;
  hw.name = found->name;
  hw.source = found->source;
  hw.peak_fp32_flops = found->fp32;
  hw.peak_fp16_flops = found->fp16;
  hw.memory_bytes_per_s = found->bandwidth;
  hw.launch_overhead = runtime::nanoseconds(found->overhead_ns);

  if (name == configurable) {
    std::vector<std::string> missing;
    if (!overrides.peak_fp32_flops && !overrides.peak_fp16_flops)
      missing.emplace_back("peak_fp32_flops or peak_fp16_flops");
    if (!overrides.memory_bytes_per_s)
      missing.emplace_back("memory_bytes_per_s");
    if (!overrides.launch_overhead)
      missing.emplace_back("launch_overhead");
    if (!missing.empty())
      return absl::InvalidArgumentError(absl::StrCat(
          "hardware 'sat-payload' is configured by the user and needs ",
          absl::StrJoin(missing, ", ")));
    // One peak given: the other is the same.
    hw.peak_fp16_flops = overrides.peak_fp16_flops.value_or(overrides.peak_fp32_flops.value_or(0));
    hw.peak_fp32_flops = overrides.peak_fp32_flops.value_or(hw.peak_fp16_flops);
  }
  if (overrides.peak_fp32_flops)
    hw.peak_fp32_flops = *overrides.peak_fp32_flops;
  if (overrides.peak_fp16_flops)
    hw.peak_fp16_flops = *overrides.peak_fp16_flops;
  if (overrides.memory_bytes_per_s)
    hw.memory_bytes_per_s = *overrides.memory_bytes_per_s;
  if (overrides.launch_overhead)
    hw.launch_overhead = *overrides.launch_overhead;
  if (auto s = validate_hardware(hw); !s.ok())
    return s;
  return hw;
}

runtime::duration estimate_duration(const hardware_profile& hw, double flops, double bytes,
                                    compute_precision precision) {
  if (!(std::isfinite(flops) && flops >= 0 && std::isfinite(bytes) && bytes >= 0)) {
    std::fprintf(stderr, "satemu::gpu::estimate_duration on '%s': bad counts flops=%g bytes=%g\n",
                 hw.name.c_str(), flops, bytes);
    std::abort();
  }
  const double seconds =
      std::max(flops / hw.peak_flops(precision), bytes / hw.memory_bytes_per_s);
  const double ns = std::min(seconds * 1e9, static_cast<double>(max_estimate.ns()));
  return runtime::nanoseconds(std::llround(ns)) + hw.launch_overhead;
}

absl::StatusOr<roofline_fit> fit_roofline(const std::vector<roofline_sample>& samples) {
  const std::size_t n = samples.size();
  if (n < 4)
    return absl::InvalidArgumentError(
        absl::StrCat("roofline fit needs at least 4 samples (2 compute-bound, 2 memory-bound), "
                     "got ",
                     n));
  for (std::size_t i = 0; i < n; ++i) {
    const auto& s = samples[i];
    if (!(std::isfinite(s.flops) && s.flops >= 0 && std::isfinite(s.bytes) && s.bytes >= 0 &&
          finite_positive(s.seconds)))
      return absl::InvalidArgumentError(absl::StrCat(
          "roofline sample ", i, " (flops=", s.flops, ", bytes=", s.bytes, ", seconds=",
          s.seconds, "): counts must be finite and >= 0, seconds finite and > 0"));
  }
  auto intensity = [](const roofline_sample& s) {
    if (s.bytes == 0)
      return s.flops == 0 ? 0.0 : std::numeric_limits<double>::infinity();
    return s.flops / s.bytes;
  };
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return intensity(samples[a]) < intensity(samples[b]);
  });

  // Rows are divided by the measured time: relative residuals.
  auto relative_sse = [&](double c, double a, double b) {
    double sse = 0;
    for (const auto& s : samples) {
      const double r = (std::max(s.flops * a, s.bytes * b) + c - s.seconds) / s.seconds;
      sse += r * r;
    }
    return sse;
  };

  bool found = false;
  double best_sse = std::numeric_limits<double>::infinity();
  double best[3] = {0, 0, 0}; // overhead, 1/peak, 1/bandwidth
  for (std::size_t split = 2; split + 2 <= n; ++split) {
    // A split between equal intensities cannot tell peak from bandwidth.
    if (intensity(samples[order[split - 1]]) == intensity(samples[order[split]]))
      continue;
    std::vector<std::array<double, 3>> rows(n);
    std::vector<double> rhs(n, 1.0);
    for (std::size_t r = 0; r < n; ++r) {
      const auto& s = samples[order[r]];
      const bool memory_bound = r < split;
      rows[r] = {1.0 / s.seconds, memory_bound ? 0.0 : s.flops / s.seconds,
                 memory_bound ? s.bytes / s.seconds : 0.0};
    }
    double x[3] = {0, 0, 0};
    if (!least_squares(rows, 3, rhs, x))
      continue;
    if (x[0] < 0) {
      for (auto& row : rows)
        row = {row[1], row[2], 0.0};
      double y[2] = {0, 0};
      if (!least_squares(rows, 2, rhs, y))
        continue;
      x[0] = 0;
      x[1] = y[0];
      x[2] = y[1];
    }
    if (!(x[1] > 0 && x[2] > 0))
      continue;
    // The solution must itself see both regimes, or one figure is unfounded.
    std::size_t compute = 0;
    for (const auto& s : samples)
      compute += s.flops * x[1] > s.bytes * x[2];
    if (compute < 2 || n - compute < 2)
      continue;
    const double sse = relative_sse(x[0], x[1], x[2]);
    if (sse < best_sse) {
      best_sse = sse;
      std::copy(x, x + 3, best);
      found = true;
    }
  }
  if (!found)
    return absl::InvalidArgumentError(
        "roofline fit found no consistent solution: the samples need at least 2 compute-bound "
        "and 2 memory-bound operations, spread over arithmetic intensity (FLOPs per byte)");

  // A roofline is a ceiling: where the fit came out below a rate a sample
  // reached (small kernels, slower than the model has them, pull it down),
  // the rate reached is the figure.
  double reached_flops = 0, reached_bytes = 0;
  for (const auto& s : samples) {
    if (s.flops * best[1] > s.bytes * best[2])
      reached_flops = std::max(reached_flops, s.flops / s.seconds);
    else
      reached_bytes = std::max(reached_bytes, s.bytes / s.seconds);
  }
  best[1] = std::min(best[1], 1.0 / reached_flops);
  best[2] = std::min(best[2], 1.0 / reached_bytes);

  roofline_fit fit;
  fit.overhead_seconds = best[0];
  fit.peak_flops = 1.0 / best[1];
  fit.memory_bytes_per_s = 1.0 / best[2];
  fit.launch_overhead = runtime::nanoseconds(std::llround(best[0] * 1e9));
  fit.rms_relative_residual =
      std::sqrt(relative_sse(best[0], best[1], best[2]) / static_cast<double>(n));
  for (const auto& s : samples)
    (s.flops * best[1] > s.bytes * best[2] ? fit.compute_bound : fit.memory_bound) += 1;
  return fit;
}

hardware_profile apply_fit(hardware_profile base, const roofline_fit& fit,
                           compute_precision precision) {
  const double ratio = fit.peak_flops / base.peak_flops(precision);
  if (precision == compute_precision::fp32) {
    base.peak_fp32_flops = fit.peak_flops;
    base.peak_fp16_flops *= ratio;
  } else {
    base.peak_fp16_flops = fit.peak_flops;
    base.peak_fp32_flops *= ratio;
  }
  base.memory_bytes_per_s = fit.memory_bytes_per_s;
  base.launch_overhead = fit.launch_overhead;
  return base;
}

} // namespace satemu::gpu
