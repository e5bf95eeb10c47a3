/// @file compute_config.hpp
/// The scenario's `compute` section: which backend runs the kernels, which
/// model the shards hold, which device is emulated (its roofline gives the
/// emulated duration of every operation), and where the weights come from.
///
///     compute:
///       backend: auto          # auto | cpu | cuda
///       mode: real             # real kernels, or `modeled` (durations only)
///       model: llama-3.2-1b    # a profile name (gpu/model.hpp)
///       device: jetson-orin-nano
///       weights: ''            # '' = synthetic, seeded by `seed`; or a .safetensors file
///       seed: 0
///       batch_window: 1ms      # realtime clock: a batch waits this long for more requests
///       max_batch: 64          # realtime clock: ... or runs once it holds this many
///       threads: 0             # cpu backend: threads its kernels use; 0 = one per core
///       device_override: {peak_fp32_flops: 1e12, memory_bytes_per_s: 5e10, launch_overhead: 20us}
///
/// Reading it checks every name and, for a weights file, its header against
/// the model (every tensor present with its shape); errors name the key.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "gpu/hardware.hpp"
#include "gpu/model.hpp"
#include "runtime/scenario.hpp"

namespace satemu::gpu {

struct compute_config {
  std::string backend = "auto";
  bool modeled = false;
  /// `at: satellite`: a user's model runs on its serving satellite.
  bool on_satellite = false;
  model_profile model;
  hardware_profile device;
  /// Empty: synthetic weights.
  std::string weights_file;
  std::uint64_t seed = 0;
  /// The most memory the model's weights may take in `mode: real` [bytes];
  /// 0: what the machine has available when the run starts.
  std::uint64_t memory_limit = 0;
  /// Threads the cpu backend's kernels use; 0: one per core.
  int cpu_threads = 0;

  /// cpu_threads, with 0 resolved to the host's core count.
  int resolved_cpu_threads() const;
};

/// Registers the `compute` section with the scenario schema (idempotent).
void register_compute_section();

/// Reads and checks the section; InvalidArgument/NotFound starting with the
/// key at fault ("compute.model: unknown model 'x'; known models: ...").
absl::StatusOr<compute_config> compute_config_from(const runtime::scenario& s);

} // namespace satemu::gpu
