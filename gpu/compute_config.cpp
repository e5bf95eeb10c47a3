#include "gpu/compute_config.hpp"

#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gpu/safetensors.hpp"
#include "runtime/output.hpp"
#include "runtime/schema.hpp"

namespace satemu::gpu {

using runtime::key_spec;

void register_compute_section() {
  static std::once_flag once;
  std::call_once(once, [] {
    runtime::register_section(
      key_spec::map(
        "compute", "Compute: backend, model, emulated device, weights",
        {
          key_spec::choice("backend", {"auto", "cpu", "cuda"}, "auto",
                           "Kernel backend: auto = cuda when a device answers, else cpu")
            .suggesting("gpu", "cuda"),
          key_spec::choice("mode", {"real", "modeled"}, "real",
                           "real = run the kernels on real tensors; modeled = durations only"),
          key_spec::text("model", "", "Model profile: " + absl::StrJoin(model_names(), ", "))
            .mandatory(),
          key_spec::text("device", "", "Emulated device: " + absl::StrJoin(hardware_names(), ", "))
            .mandatory(),
          key_spec::choice("at", {"ground", "satellite"}, "ground",
                           "Where a user's model runs (skymemory emulated): ground = on the "
                           "user's own device; satellite = on its serving satellite, the prompt "
                           "going up and the output tokens coming down"),
          key_spec::text("weights", "''", "safetensors file; empty = synthetic weights")
            .names_input_file(),
          key_spec::integer("seed", "0", "Seed of the synthetic weights").at_least(0),
          key_spec::size("memory_limit", "",
                         "mode real: the most memory the model's fp32 weights may take; "
                         "default (or 0): what the machine has available at the start"),
          key_spec::dur("batch_window", "1ms",
                        "clock.mode realtime, mode real: a batch of compute requests waits at "
                        "most this long (wall time) after its first request for more")
            .at_least(0)
            .at_most(60e9),
          key_spec::integer("max_batch", "64",
                            "clock.mode realtime, mode real: a batch runs at once when it holds "
                            "this many requests")
            .at_least(1),
          key_spec::integer("threads", "0",
                            "backend cpu: threads the kernels of a batch use (0 = one per "
                            "core); the results are the same bits for every count")
            .at_least(0)
            .at_most(1024),
          key_spec::map(
            "device_override", "Figures replacing the device profile's (sat-payload needs them)",
            {
              key_spec::real("peak_fp32_flops", "", "Peak FP32 FLOP/s")
                .at_least(gpu::min_device_rate),
              key_spec::real("peak_fp16_flops", "", "Peak FP16/BF16 FLOP/s")
                .at_least(gpu::min_device_rate),
              key_spec::real("memory_bytes_per_s", "", "Memory bandwidth [bytes/s]")
                .at_least(gpu::min_device_rate),
              key_spec::dur("launch_overhead", "", "Fixed cost per operation")
                .at_least(0)
                .at_most(static_cast<double>(gpu::max_launch_overhead.ns())),
            }),
        })
        .optional_section()
        .read_by_workloads({"skymemory"}, "runs no model"));
  });
}

int compute_config::resolved_cpu_threads() const {
  return runtime::threads_or_cores(cpu_threads);
}

absl::StatusOr<compute_config> compute_config_from(const runtime::scenario& s) {
  // Keys a run would not use are refused rather than ignored.
  if (s.get_string("compute.mode") == "modeled")
    for (const char* k :
         {"backend", "weights", "seed", "memory_limit", "threads", "batch_window", "max_batch"})
      if (s.departs_from_default(absl::StrCat("compute.", k)))
        return absl::InvalidArgumentError(absl::StrCat(
          "compute.", k, ": only used with compute.mode: real (modeled costs the layers from "
          "the device's figures without running them)"));
  if (s.get_string("clock.mode") != "realtime")
    for (const char* k : {"batch_window", "max_batch"})
      if (s.departs_from_default(absl::StrCat("compute.", k)))
        return absl::InvalidArgumentError(absl::StrCat(
          "compute.", k, ": only used with clock.mode: realtime (in virtual time the requests "
          "of a window run as one batch per weight set)"));
  compute_config c;
  c.backend = s.get_string("compute.backend");
  c.modeled = s.get_string("compute.mode") == "modeled";
  c.on_satellite = s.get_string("compute.at") == "satellite";
  auto model = find_model(s.get_string("compute.model"));
  if (!model.ok())
    return absl::InvalidArgumentError(absl::StrCat("compute.model: ", model.status().message()));
  c.model = std::move(*model);
  hardware_overrides o;
  const std::string p = "compute.device_override.";
  if (s.has(p + "peak_fp32_flops"))
    o.peak_fp32_flops = s.get_real(p + "peak_fp32_flops");
  if (s.has(p + "peak_fp16_flops"))
    o.peak_fp16_flops = s.get_real(p + "peak_fp16_flops");
  if (s.has(p + "memory_bytes_per_s"))
    o.memory_bytes_per_s = s.get_real(p + "memory_bytes_per_s");
  if (s.has(p + "launch_overhead"))
    o.launch_overhead = s.get_duration(p + "launch_overhead");
  const std::string device_name = s.get_string("compute.device");
  auto device = find_hardware(device_name, o);
  if (!device.ok())
    return absl::InvalidArgumentError(
      device_name == "sat-payload"
        ? absl::StrCat("compute.device_override: ", device.status().message())
        : absl::StrCat("compute.device: ", device.status().message(),
                       " (figures go in compute.device_override)"));
  // The emulated device runs the model in fp16 (gpu_worker_options), so a
  // built-in device's fp32 peak alone would change nothing; sat-payload's
  // one peak serves both.
  if (o.peak_fp32_flops && !o.peak_fp16_flops && device_name != "sat-payload")
    return absl::InvalidArgumentError(absl::StrCat(
      p, "peak_fp32_flops: the emulated device runs the model in fp16, so its timing uses ",
      device_name, "'s peak_fp16_flops (", absl::StrFormat("%.3g", device->peak_fp16_flops),
      "); override that one"));
  c.device = std::move(*device);
  c.seed = static_cast<std::uint64_t>(s.get_int("compute.seed"));
  c.weights_file = s.get_string("compute.weights");
  if (s.has("compute.memory_limit"))
    c.memory_limit = s.get_data_size("compute.memory_limit").bytes;
  c.cpu_threads = static_cast<int>(s.get_int("compute.threads"));
  if (!c.weights_file.empty()) {
    auto file = safetensors_file::open(c.weights_file);
    if (!file.ok())
      return absl::Status(file.status().code(),
                          absl::StrCat("compute.weights: ", file.status().message()));
    if (auto st = check_model_file(*file, c.model); !st.ok())
      return absl::InvalidArgumentError(absl::StrCat("compute.weights: ", st.message()));
  }
  return c;
}

} // namespace satemu::gpu
