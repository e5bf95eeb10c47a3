#include "gpu/calibrate.hpp"

#include <algorithm>
#include <chrono>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gpu/cuda_backend.hpp"
#include "gpu/detail/check.hpp"
#include "runtime/output.hpp"

namespace satemu::gpu {

namespace {

/// Median seconds of `fn` over at least 3 runs and about 50 ms, after a warm-up.
absl::StatusOr<double> time_median(const std::function<absl::Status()>& fn) {
  SATEMU_GPU_RETURN_IF_ERROR(fn());
  std::vector<double> t;
  double total = 0;
  while (t.size() < 3 || (total < 0.05 && t.size() < 1000)) {
    const auto a = std::chrono::steady_clock::now();
    SATEMU_GPU_RETURN_IF_ERROR(fn());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
    t.push_back(s);
    total += s;
  }
  std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
  return t[t.size() / 2];
}

tensor filled(std::int64_t rows, std::int64_t cols, float v) {
  tensor x({rows, cols});
  std::fill(x.values().begin(), x.values().end(), v);
  return x;
}

/// Fits `c.samples`.
absl::Status fit(calibration& c) {
  std::vector<roofline_sample> samples;
  for (const auto& s : c.samples)
    samples.push_back(s.sample);
  SATEMU_GPU_ASSIGN_OR_RETURN(c.fit, fit_roofline(samples));
  return absl::OkStatus();
}

calibration_sample square_gemm(std::int64_t n, double element_bytes, double seconds) {
  const double dn = static_cast<double>(n);
  // A and B in `element_bytes`, C in fp32.
  return {absl::StrCat("gemm ", n, "x", n, "x", n),
          {2 * dn * dn * dn, (2 * element_bytes + 4) * dn * dn, seconds}};
}

} // namespace

absl::StatusOr<calibration> calibrate(backend& b, bool quick) {
  calibration c;
  c.backend = std::string(b.name());
  const std::vector<std::int64_t> gemm_sizes =
    quick ? std::vector<std::int64_t>{8, 32, 128, 256} : std::vector<std::int64_t>{8, 32, 128, 256, 512, 1024};
  for (auto n : gemm_sizes) {
    auto a = filled(n, n, 0.5f), w = filled(n, n, 0.25f), out = filled(n, n, 0);
    double s = 0;
    SATEMU_GPU_ASSIGN_OR_RETURN(s, time_median([&] { return b.gemm({}, a, w, out); }));
    c.samples.push_back(square_gemm(n, 4, s));
  }
  // Memory-bound: element-wise adds, y += x, on working sets (x and y) of at
  // least four times the largest cache and 64 MiB, doubling, so that every
  // sample streams from memory; the largest at most a quarter of the memory
  // available.
  const std::int64_t cols = 1024;
  const std::int64_t row_bytes = 2 * cols * static_cast<std::int64_t>(sizeof(float));
  const int count = quick ? 2 : 3;
  const auto working_set = std::max<std::uint64_t>(64u << 20, 4 * runtime::largest_cache_bytes());
  std::int64_t rows = 2048;
  while (static_cast<std::uint64_t>(rows * row_bytes) < working_set)
    rows *= 2;
  const std::uint64_t room = runtime::available_memory_bytes() / 4;
  while (rows > 2048 && static_cast<std::uint64_t>((rows << (count - 1)) * row_bytes) > room)
    rows /= 2;
  for (int i = 0; i < count; ++i, rows *= 2) {
    auto x = filled(rows, cols, 1.0f), y = filled(rows, cols, 2.0f);
    const double n = static_cast<double>(rows * cols);
    double s = 0;
    SATEMU_GPU_ASSIGN_OR_RETURN(s, time_median([&] { return b.add(y, x); }));
    c.samples.push_back({absl::StrCat("add ", rows, "x", cols), {n, 12 * n, s}});
  }
  SATEMU_GPU_RETURN_IF_ERROR(fit(c));
  return c;
}

absl::StatusOr<calibration> calibrate_cuda_device(bool quick) {
  calibration c;
  c.backend = "cuda";
  const cuda_precision p = cuda_options{}.precision;
  c.precision = p == cuda_precision::fp16 ? compute_precision::fp16 : compute_precision::bf16;
  // From launch-bound to the largest square GEMM the cuda benchmark's peak
  // uses; the quick run keeps two sizes a fast GPU needs to be compute-bound
  // (on an H100 a 1024^3 GEMM is still launch-bound, about 12 us).
  const std::vector<std::int64_t> gemm_sizes =
    quick ? std::vector<std::int64_t>{64, 1024, 4096, 8192}
          : std::vector<std::int64_t>{64, 256, 1024, 2048, 4096, 8192};
  for (auto n : gemm_sizes) {
    double s = 0;
    SATEMU_GPU_ASSIGN_OR_RETURN(s, cuda_gemm_seconds(p, n, n, n, n > 2048 ? 10 : 20));
    c.samples.push_back(square_gemm(n, 2, s));
  }
  // Copies of 256 MiB and more: beyond the L2 of current GPUs (50 MiB on an
  // H100) several times over; each byte is read and written.
  for (std::int64_t mib = 256; mib <= (quick ? 512 : 1024); mib *= 2) {
    double s = 0;
    SATEMU_GPU_ASSIGN_OR_RETURN(s, cuda_copy_seconds(mib << 20, 20));
    c.samples.push_back({absl::StrCat("copy ", mib, " MiB"), {0, 2.0 * (mib << 20), s}});
  }
  SATEMU_GPU_RETURN_IF_ERROR(fit(c));
  const double n = static_cast<double>(gemm_sizes.back());
  double s = 0;
  SATEMU_GPU_ASSIGN_OR_RETURN(s, cuda_gemm_seconds(cuda_precision::fp32, gemm_sizes.back(),
                                                   gemm_sizes.back(), gemm_sizes.back(), 5));
  c.fp32_gemm_flops = 2 * n * n * n / s;
  return c;
}

std::string fit_warning(const calibration& c, int threads) {
  constexpr double most = 0.2;
  const double r = c.fit.rms_relative_residual;
  if (!(r > most))
    return {};
  return absl::StrFormat(
    "the samples fit one roofline poorly (rms relative residual %.1f%%, above %.0f%%): other "
    "work on the host%s slowed some of them, and the figures may be off by as much; run "
    "calibrate again on a quiet host and compare",
    r * 100, most * 100,
    threads > 1 ? ", or GEMMs too small to be shared out over threads," : "");
}

std::string device_override(const calibration& c) {
  const auto& f = c.fit;
  std::string peaks;
  if (c.precision == compute_precision::fp32) {
    peaks = absl::StrFormat("peak_fp32_flops: %.4g", f.peak_flops);
  } else {
    // Both peaks: the emulated device runs a model in fp16, and calibrate
    // prints fp32's too.
    const double fp32 = c.fp32_gemm_flops > 0 ? c.fp32_gemm_flops : f.peak_flops;
    peaks = absl::StrFormat("peak_fp32_flops: %.4g, peak_fp16_flops: %.4g", fp32, f.peak_flops);
  }
  return absl::StrFormat("{%s, memory_bytes_per_s: %.4g, launch_overhead: %dns}", peaks,
                         f.memory_bytes_per_s, f.launch_overhead.ns());
}

} // namespace satemu::gpu
