/// @file calibrate.hpp
/// Host calibration: times this machine's kernels on a backend and fits the
/// roofline (hardware.hpp `fit_roofline`), so the emulated device can be the
/// host itself, or a device whose figures were measured the same way.
///
/// Samples: square GEMMs from small (launch-bound) to large (compute-bound)
/// and element-wise adds, y += x, over working sets of at least four times
/// the host CPU's largest cache and 64 MiB (memory-bound: 12 bytes moved per
/// element), as much as a quarter of the available memory allows. Each
/// sample's time is the median of several runs after a warm-up.
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
  std::vector<calibration_sample> samples;
  roofline_fit fit;
};

/// `quick` uses fewer, smaller problems (seconds instead of tens of seconds).
absl::StatusOr<calibration> calibrate(backend& b, bool quick);

} // namespace satemu::gpu
