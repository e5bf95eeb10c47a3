#include "actors/workload.hpp"

#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

#include "actors/flows.hpp"
#include "actors/mesh.hpp"
#include "actors/ping.hpp"
#include "actors/skymemory_emulated.hpp"
#include "actors/skymemory_sweep.hpp"
#include "gpu/compute_config.hpp"
#include "gpu/gpu_worker.hpp"

namespace satemu::actors {

workload::~workload() = default;

std::vector<std::uint32_t> workload::placement_groups() {
  std::vector<std::uint32_t> g(entities().size());
  for (std::size_t i = 0; i < g.size(); ++i)
    g[i] = static_cast<std::uint32_t>(i);
  return g;
}

std::map<std::string, std::string> workload::files(const runtime::run_result&) const {
  return {};
}

nlohmann::json milliseconds_summary(const runtime::histogram& h) {
  if (h.count() == 0)
    return nullptr; // nothing measured: no minimum of 0
  auto ms = [](std::int64_t ns) { return static_cast<double>(ns) * 1e-6; };
  return {{"mean", h.mean() * 1e-6}, {"p50", ms(h.quantile(0.5))}, {"p90", ms(h.quantile(0.9))},
          {"p99", ms(h.quantile(0.99))}, {"min", ms(h.min())},        {"max", ms(h.max())}};
}

std::vector<std::string> in_flight_warning(std::uint64_t in_flight, std::uint64_t sent,
                                           std::string_view what, std::string_view effect) {
  if (sent == 0 || static_cast<double>(in_flight) <= 0.05 * static_cast<double>(sent))
    return {};
  return {absl::StrFormat(
    "%.0f%% of the %s sent (%d of %d) were still in flight at the end: %s; a longer duration "
    "lowers the share",
    100.0 * static_cast<double>(in_flight) / static_cast<double>(sent), what, in_flight, sent,
    effect)};
}

void register_workloads() {
  static std::once_flag once;
  std::call_once(once, [] {
    gpu::register_compute_section();
    mesh_workload::register_kind();
    ping_workload::register_kind();
    flows_workload::register_kind();
    skymemory::register_kind();
  });
}

absl::StatusOr<std::unique_ptr<workload>> make_workload(const runtime::scenario& s,
                                                        build_depth depth) {
  const auto kind = s.get_string("workload.kind");
  if (kind == "skymemory" && s.get_string("workload.mode") == "analytic")
    return absl::InvalidArgumentError(
      "workload.mode: the analytic SkyMemory model has no emulation to run; evaluate it with "
      "`satemu sweep FILE`");
  if (!s.has("duration"))
    return absl::InvalidArgumentError(
      "duration: missing required key 'duration': the emulated time to run, e.g. `duration: 60s`");
  if (s.get_string("clock.mode") == "virtual" && s.departs_from_default("clock.dilation"))
    return absl::InvalidArgumentError(
      "clock.dilation: only used with clock.mode: realtime (virtual time runs as fast as the "
      "host allows)");
  // The wall time a real-time run lasts must fit in nanoseconds (100 years).
  if (const double wall_s = s.get_duration("duration").seconds() * s.get_real("clock.dilation");
      s.get_string("clock.mode") == "realtime" && wall_s > 100 * 365.25 * 86400)
    // Named by the key the user set: dilation when it is not 1, else duration.
    return absl::InvalidArgumentError(absl::StrFormat(
      "%s: duration x dilation is %.3g years of wall time; a real-time run may last at most 100 "
      "years",
      s.get_real("clock.dilation") > 1 ? "clock.dilation" : "duration",
      wall_s / (365.25 * 86400)));
  // A compute section is refused by the loader for a kind that runs no
  // model (key_spec::read_by_workloads); SkyMemory's emulation reads it.
  if (kind == "mesh") {
    // The mesh is its own network: refused rather than ignored.
    for (const char* section : {"constellation", "ground"})
      if (s.has(section))
        return absl::InvalidArgumentError(absl::StrCat(
          section, ": workload kind 'mesh' runs on its own graph, not the space segment, and "
                   "would ignore this section; remove it"));
    auto cfg = mesh_workload::config_from(s);
    if (!cfg.ok())
      return cfg.status();
    auto w = mesh_workload::make(*cfg);
    if (!w.ok())
      return w.status();
    return std::unique_ptr<workload>(std::move(*w));
  }
  if (kind == "ping") {
    auto w = ping_workload::make(s);
    if (!w.ok())
      return w.status();
    return std::unique_ptr<workload>(std::move(*w));
  }
  if (kind == "flows") {
    auto w = flows_workload::make(s);
    if (!w.ok())
      return w.status();
    return std::unique_ptr<workload>(std::move(*w));
  }
  if (kind == "skymemory") {
    auto w = skymemory::emulated_workload::make(s, depth);
    if (!w.ok())
      return w.status();
    return std::unique_ptr<workload>(std::move(*w));
  }
  return absl::InvalidArgumentError("workload.kind: unknown workload kind '" + kind + "'");
}

std::string weights_to_build(const runtime::scenario& s) {
  // Only emulated SkyMemory runs a model (make_workload refuses a compute
  // section elsewhere), and only in compute.mode: real.
  if (!s.has("compute") || s.get_string("workload.kind") != "skymemory" ||
      s.get_string("workload.mode") != "emulated")
    return "";
  auto c = gpu::compute_config_from(s);
  return c.ok() && !c->modeled ? gpu::weights_description(*c) : "";
}

} // namespace satemu::actors
