#include "cli/calibrate_command.hpp"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "cli/json_file.hpp"
#include "cli/run_command.hpp"
#include "gpu/backend.hpp"
#include "gpu/calibrate.hpp"
#include "gpu/cpu_backend.hpp"
#include "gpu/cuda_backend.hpp"
#include "runtime/output.hpp"
#include "nlohmann/json.hpp"

namespace satemu::cli {

int calibrate_command(const calibrate_args& a) {
  // A file that cannot be written is found before the timings, not after.
  if (!a.json.empty())
    if (auto st = write_flag_file("--json", a.json, nullptr); !st.ok())
      return report_error(st);
  if (a.backend == "auto")
    std::fprintf(stderr, "%s\n", gpu::resolve_auto_backend().line().c_str());
  const int threads = runtime::threads_or_cores(a.threads);
  auto b = gpu::make_backend(a.backend, threads);
  if (!b.ok())
    return report_error(b.status());
  const bool cuda = (*b)->name() == "cuda";
  if (cuda) {
    std::fprintf(stderr, "calibrating the CUDA device (device-resident operands, %s GEMMs)%s...\n",
                 std::string(gpu::cuda_precision_name(gpu::cuda_options{}.precision)).c_str(),
                 a.quick ? " (quick)" : "");
  } else {
    std::fprintf(stderr, "calibrating backend %s (OpenBLAS %s kernels) on %d thread%s%s...\n",
                 std::string((*b)->name()).c_str(), gpu::openblas_core().c_str(), threads,
                 threads == 1 ? "" : "s", a.quick ? " (quick)" : "");
    if (threads > 1 && a.quick)
      std::fprintf(stderr, "note: --quick's GEMMs (up to 256) are too small to be shared out "
                           "over threads, so its peak is one core's\n");
  }
  absl::StatusOr<gpu::calibration> c;
  if (cuda) {
    b->reset(); // the device timings hold their own buffers and cuBLAS handle
    c = gpu::calibrate_cuda_device(a.quick);
  } else {
    c = gpu::calibrate(**b, a.quick);
  }
  if (!c.ok())
    return report_error(c.status());
  std::printf("%-22s %14s %14s %12s %12s\n", "sample", "flops", "bytes", "time_us", "GFLOP/s");
  for (const auto& s : c->samples)
    std::printf("%-22s %14.4g %14.4g %12.2f %12.2f\n", s.what.c_str(), s.sample.flops,
                s.sample.bytes, s.sample.seconds * 1e6, s.sample.flops / s.sample.seconds * 1e-9);
  const auto& f = c->fit;
  std::printf("\nfitted roofline (%zu compute-bound, %zu memory-bound samples, rms relative "
              "residual %.1f%%):\n",
              f.compute_bound, f.memory_bound, f.rms_relative_residual * 100);
  std::printf("  peak            %.2f GFLOP/s (%s)\n", f.peak_flops * 1e-9,
              std::string(gpu::precision_name(c->precision)).c_str());
  if (c->fp32_gemm_flops > 0)
    std::printf("  fp32 GEMM       %.2f GFLOP/s (largest size)\n", c->fp32_gemm_flops * 1e-9);
  std::printf("  memory          %.2f GB/s\n", f.memory_bytes_per_s * 1e-9);
  std::printf("  launch overhead %.2f us\n", f.overhead_seconds * 1e6);
  if (const auto w = gpu::fit_warning(*c, threads); !w.empty())
    std::fprintf(stderr, "satemu: warning: %s\n", w.c_str());
  const std::string values = gpu::device_override(*c);
  std::printf("\nas a scenario's device, in its compute section beside the model:\n"
              "  device: sat-payload\n  device_override: %s\n"
              "or on the command line of run and validate:\n"
              "  --set compute.device=sat-payload --set 'compute.device_override=%s'\n",
              values.c_str(), values.c_str());
  if (!a.json.empty()) {
    nlohmann::json j;
    j["backend"] = c->backend;
    j["precision"] = gpu::precision_name(c->precision);
    if (c->fp32_gemm_flops > 0)
      j["fp32_gemm_flops"] = c->fp32_gemm_flops;
    for (const auto& s : c->samples)
      j["samples"].push_back({{"what", s.what},
                              {"flops", s.sample.flops},
                              {"bytes", s.sample.bytes},
                              {"seconds", s.sample.seconds}});
    j["fit"] = {{"peak_flops", f.peak_flops},
                {"memory_bytes_per_s", f.memory_bytes_per_s},
                {"launch_overhead_ns", f.launch_overhead.ns()},
                {"rms_relative_residual", f.rms_relative_residual}};
    const std::string text = json_text(j);
    if (auto st = write_flag_file("--json", a.json, &text); !st.ok())
      return report_error(st);
  }
  return exit_ok;
}

} // namespace satemu::cli
