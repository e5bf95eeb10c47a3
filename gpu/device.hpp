/// satemu compute devices: which backend this host can run.
///
/// Plain C++: no CUDA header is visible here, so every folder can ask
/// whether a GPU answers without a CUDA compiler.
#pragma once

#include <string>

namespace satemu::gpu {

/// What the host offers for compute.
struct device_info {
  /// True when the binary was built with the CUDA backend.
  bool cuda_built = false;
  /// CUDA devices that answered `cudaGetDeviceCount` (0 when none or not built).
  int cuda_devices = 0;
  /// Name of device 0, or a reason why no device answered.
  std::string detail;
};

/// Probes the host once (cheap after the first call).
const device_info& probe_devices();

/// "cuda" when a CUDA device answers, "cpu" otherwise: what `backend: auto` picks.
std::string auto_backend();

} // namespace satemu::gpu
