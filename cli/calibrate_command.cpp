#include "cli/calibrate_command.hpp"

#include <cstdio>
#include <fstream>

#include "cli/run_command.hpp"
#include "gpu/backend.hpp"
#include "gpu/calibrate.hpp"
#include "nlohmann/json.hpp"

namespace satemu::cli {

int calibrate_command(const calibrate_args& a) {
  if (a.backend == "auto")
    std::fprintf(stderr, "%s\n", gpu::resolve_auto_backend().line().c_str());
  auto b = gpu::make_backend(a.backend);
  if (!b.ok())
    return report_error(b.status());
  std::fprintf(stderr, "calibrating backend %s%s...\n", std::string((*b)->name()).c_str(),
               a.quick ? " (quick)" : "");
  if ((*b)->name() == "cuda")
    std::fprintf(stderr, "note: every cuda sample includes the copies of its operands between "
                         "host and device, so the figures are those of that path, not of the "
                         "device alone\n");
  auto c = gpu::calibrate(**b, a.quick);
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
  std::printf("  peak            %.2f GFLOP/s\n", f.peak_flops * 1e-9);
  std::printf("  memory          %.2f GB/s\n", f.memory_bytes_per_s * 1e-9);
  std::printf("  launch overhead %.2f us\n", f.overhead_seconds * 1e6);
  std::printf("\nas a scenario's device:\n  compute: {device: sat-payload, device_override: "
              "{peak_fp32_flops: %.4g, memory_bytes_per_s: %.4g, launch_overhead: %lldns}}\n",
              f.peak_flops, f.memory_bytes_per_s, static_cast<long long>(f.launch_overhead.ns()));
  if (!a.json.empty()) {
    nlohmann::json j;
    j["backend"] = c->backend;
    for (const auto& s : c->samples)
      j["samples"].push_back({{"what", s.what},
                              {"flops", s.sample.flops},
                              {"bytes", s.sample.bytes},
                              {"seconds", s.sample.seconds}});
    j["fit"] = {{"peak_flops", f.peak_flops},
                {"memory_bytes_per_s", f.memory_bytes_per_s},
                {"launch_overhead_ns", f.launch_overhead.ns()},
                {"rms_relative_residual", f.rms_relative_residual}};
    const auto tmp = a.json + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << j.dump(2) << "\n";
      if (!out.good())
        return report_error(absl::NotFoundError("cannot write " + tmp));
    }
    if (std::rename(tmp.c_str(), a.json.c_str()) != 0)
      return report_error(absl::NotFoundError("cannot rename " + tmp + " to " + a.json));
  }
  return exit_ok;
}

} // namespace satemu::cli
