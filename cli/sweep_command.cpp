#include "cli/sweep_command.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "actors/skymemory_sweep.hpp"
#include "actors/workload.hpp"
#include "cli/json_file.hpp"
#include "cli/run_command.hpp"
#include "nlohmann/json.hpp"
#include "runtime/output.hpp"
#include "runtime/progress.hpp"
#include "runtime/scenario.hpp"

namespace satemu::cli {

namespace sm = actors::skymemory;

namespace {

absl::StatusOr<sm::analytic_config> analytic(const runtime::scenario& sc) {
  const auto kind = sc.get_string("workload.kind");
  if (kind != "skymemory")
    return locate(sc, absl::InvalidArgumentError(absl::StrCat(
                        "workload.kind: `satemu sweep` evaluates analytic models (kind "
                        "skymemory, mode analytic); kind '",
                        kind, "' is emulated: use `satemu run`")));
  auto cfg = sm::analytic_config_from(sc);
  if (!cfg.ok())
    return locate(sc, cfg.status());
  return cfg;
}

std::size_t point_count(const sm::analytic_config& c) {
  std::size_t n = 0;
  for (const auto& sw : c.sweeps)
    n += sw.points.size();
  return n;
}

nlohmann::json figures(const sm::fetch_result& r) {
  return {{"chunks", r.chunks},
          {"fetch_s", r.fetch_s},
          {"min_s", r.min_s},
          {"mean_s", r.mean_s},
          {"std_s", r.std_s},
          {"box_planes", r.box_planes},
          {"box_satellites", r.box_satellites},
          {"migration_chunks", r.migration_chunks},
          {"migration_bytes", r.migration_bytes}};
}

nlohmann::json point_json(const sm::params& p) {
  return {{"planes", p.g.planes},
          {"sats_per_plane", p.g.sats_per_plane},
          {"center_plane", p.g.center_plane_index + 1},
          {"center_satellite", p.g.center_satellite_index + 1},
          {"altitude_km", p.g.altitude_m / 1000.0},
          {"kv_bytes", p.kv_bytes},
          {"chunk_bytes", p.chunk_bytes},
          {"servers", p.servers},
          {"chunk_time_ms", static_cast<double>(p.chunk_time.ns()) * 1e-6}};
}

} // namespace

int validate_analytic(const std::string& file, const runtime::scenario& sc) {
  auto cfg = analytic(sc);
  if (!cfg.ok())
    return report_error(cfg.status());
  for (auto st : cfg->strategies)
    if (auto r = sm::evaluate(cfg->base, st); !r.ok())
      return report_error(locate(sc, r.status()));
  std::printf("%s: ok (workload skymemory, analytic: %zu sweeps, %zu points; evaluate it with "
              "satemu sweep)\n",
              file.c_str(), cfg->sweeps.size(), point_count(*cfg));
  return exit_ok;
}

int sweep_command(const sweep_args& a) {
  exit_on_stop_signals("\n[satemu] interrupted before the outputs were written: nothing written\n");
  auto sc = load_scenario(a.file, a.out, a.sets);
  if (!sc.ok())
    return report_error(sc.status());
  auto cfg = analytic(*sc);
  if (!cfg.ok())
    return report_error(cfg.status());

  const std::size_t total = point_count(*cfg);
  if (!a.quiet)
    std::fprintf(stderr, "[satemu] %s: analytic skymemory, %zu sweeps, %zu points x %zu strategies\n",
                 sc->get_string("name").c_str(), cfg->sweeps.size(), total,
                 cfg->strategies.size());
  runtime::progress_line progress(
    a.quiet ? runtime::progress_line::mode::off
            : runtime::progress_line::parse(sc->get_string("output.progress")),
    runtime::vtime::zero());
  // Everything is evaluated before anything is written: bad input leaves no
  // output directory behind.
  const auto started = std::chrono::steady_clock::now();
  auto wall = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  std::vector<sm::fetch_result> point;
  for (auto st : cfg->strategies) {
    auto r = sm::evaluate(cfg->base, st);
    if (!r.ok())
      return report_error(locate(*sc, r.status()));
    point.push_back(std::move(*r));
  }
  std::vector<std::vector<sm::sweep_row>> tables;
  std::size_t done = 0;
  for (const auto& sw : cfg->sweeps) {
    auto rows =
      sm::run_sweep(*cfg, sw, [&] { progress.update_count(++done, total, wall(), "points"); });
    if (!rows.ok())
      return report_error(locate(*sc, rows.status()));
    tables.push_back(std::move(*rows));
  }
  progress.finish();
  const double wall_s = wall();

  // Every point is computed: what is written now is written whole.
  ignore_stop_signals();
  std::string dir;
  auto out = open_output(*sc, dir);
  if (!out.ok())
    return report_error(out.status());

  // Every file is tried: one that cannot be written (a full disk) does not
  // cost the others, which are kept as partial.
  std::vector<std::string> files;
  auto write = [&](const std::string& name, const std::string& content) {
    if (out->write(name, content).ok())
      files.push_back(name);
  };
  write("scenario.resolved.yaml", sc->resolved_yaml());
  write("servers.csv", sm::servers_csv(point));
  nlohmann::json sweeps = nlohmann::json::array();
  for (std::size_t i = 0; i < cfg->sweeps.size(); ++i) {
    const auto& sw = cfg->sweeps[i];
    const auto stem = absl::StrCat("sweep_", sm::to_string(sw.parameter));
    write(stem + ".csv", sm::sweep_csv(tables[i]));
    write(stem + ".svg", sm::sweep_svg(*cfg, sw, tables[i]));
    sweeps.push_back({{"parameter", sm::to_string(sw.parameter)},
                      {"points", sw.points.size()},
                      {"rows", tables[i].size()},
                      {"csv", stem + ".csv"},
                      {"svg", stem + ".svg"}});
  }
  nlohmann::json j;
  j["scenario"] = sc->get_string("name");
  j["complete"] = true;
  j["mode"] = "analytic";
  j["wall_seconds"] = wall_s;
  j["point"] = point_json(cfg->base);
  j["metrics"] = nlohmann::json::object();
  for (const auto& r : point)
    j["metrics"][sm::to_string(r.s)] = figures(r);
  j["sweeps"] = std::move(sweeps);
  const bool complete = out->first_failure().ok();
  if (!complete) {
    j["complete"] = false;
    j["error"] = std::string(out->first_failure().message());
    j["unwritten_files"] = out->unwritten();
  }
  write("summary.json", json_text(j));
  // A failed write leaves what was written under its partial name.
  absl::Status st = out->first_failure();
  if (auto c = out->commit(st.ok()); st.ok())
    st = c;
  if (!st.ok()) {
    std::fprintf(stderr, "satemu: error: %s\n", std::string(st.message()).c_str());
    std::fprintf(stderr, "[satemu] outputs in %s are PARTIAL%s\n", dir.c_str(),
                 files.empty() || files.back() != "summary.json" ? ""
                                                                : " (summary.partial.json)");
    return exit_internal;
  }

  if (!a.quiet)
    for (const auto& r : point)
      std::fprintf(stderr,
                   "[satemu] %-12s fetch %.6f s (servers %.6f..%.6f s, mean %.6f s), %llu "
                   "chunks\n",
                   sm::to_string(r.s).c_str(), r.fetch_s, r.min_s, r.fetch_s, r.mean_s,
                   static_cast<unsigned long long>(r.chunks));
  for (const auto& f : files)
    std::printf("%s\n", (std::filesystem::path(dir) / f).string().c_str());
  return exit_ok;
}

} // namespace satemu::cli
