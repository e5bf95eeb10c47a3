/// @file calibrate.hpp
/// Host calibration: times this machine's kernels on a backend and fits the
/// roofline (hardware.hpp `fit_roofline`), so the emulated device can be the
/// host itself, or a device whose figures were measured the same way.
///
/// Two ways to time:
/// - `calibrate(backend&)` times the backend's own calls on host tensors:
///   square fp32 GEMMs from small (launch-bound) to large (compute-bound) and
///   element-wise adds, y += x, over working sets of at least four times the
///   host CPU's largest cache and 64 MiB (memory-bound: 12 bytes moved per
///   element), as much as a quarter of the available memory allows. Each
///   sample's time is the median of several runs after a warm-up. On the cuda
///   backend every call would include the copies between host and device, so
///   it is meant for the cpu backend.
/// - `calibrate_cuda_device` times the GPU itself, on device-resident data
///   with CUDA events (cuda_backend.hpp's timings): square cuBLAS GEMMs in
///   bf16 (fp32 accumulation, the cuda backend's precision) up to 8192, and
///   device-to-device copies of 256 MiB and more (memory-bound: each byte read
///   and written). The fit's peak is then the bf16 peak; one large fp32 GEMM
///   gives the fp32 rate beside it.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gpu/backend.hpp"
#include "gpu/hardware.hpp"

namespace satemu::gpu {

struct calibration_sample {
  std::string what; ///< e.g. "gemm 512x512x512"
  roofline_sample sample;
};

struct calibration {
  std::string backend;
  /// The arithmetic of the GEMM samples, and so of `fit.peak_flops`.
  compute_precision precision = compute_precision::fp32;
  std::vector<calibration_sample> samples;
  roofline_fit fit;
  /// When `precision` is not fp32: the FLOP/s of one large fp32 GEMM (the
  /// fp32 peak beside the fitted one); 0 when not measured.
  double fp32_gemm_flops = 0;
};

/// `quick` uses fewer, smaller problems (seconds instead of tens of seconds).
absl::StatusOr<calibration> calibrate(backend& b, bool quick);

/// The GPU `cuda_options{}` names, timed on the device (file comment).
/// Unavailable as make_cuda_backend says.
absl::StatusOr<calibration> calibrate_cuda_device(bool quick);

/// A fit whose rms relative residual is above 20% (a quiet host fits within
/// about 10%): a warning that the figures may be off, else "". `threads`:
/// the cpu backend's.
std::string fit_warning(const calibration& c, int threads);

/// `c`'s figures as the value of `compute.device_override` for the
/// configurable device, `sat-payload`: a YAML flow map with the peak of
/// `c.precision` (and, for fp16/bf16, the fp32 peak: the measured fp32 rate,
/// or the fitted peak where none was measured), the bandwidth and the
/// launch overhead.
std::string device_override(const calibration& c);

} // namespace satemu::gpu
