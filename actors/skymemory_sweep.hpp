/// satemu `skymemory` workload, analytic mode: the scenario keys, parameter
/// sweeps over the model (actors/skymemory_model.hpp), and their CSV tables
/// and SVG plots.
///
/// A scenario with `workload: {kind: skymemory, mode: analytic, ...}` gives
/// one model point (grid, centre, altitude, KV size, chunk size, servers,
/// per-chunk time) and, under `workload.sweeps`, up to four sweeps, each of
/// which varies one of kv_size, servers, chunk_time and altitude over a list
/// or a range and holds the others at the point's values. `satemu sweep`
/// evaluates them; `mode: emulated` is run by `satemu run`
/// (actors/skymemory_emulated.hpp) and its keys are registered here too.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "actors/skymemory_model.hpp"
#include "runtime/scenario.hpp"

namespace satemu::actors::skymemory {

/// The parameters a sweep can vary, in the order sweeps are run.
enum class sweep_parameter { kv_size, servers, chunk_time, altitude };

/// "kv_size", "servers", "chunk_time", "altitude": the key under
/// `workload.sweeps` and the stem of the output files.
std::string to_string(sweep_parameter p);

/// One sweep: the model points it evaluates, in order.
struct sweep {
  sweep_parameter parameter = sweep_parameter::kv_size;
  std::vector<params> points;
};

/// Everything an analytic skymemory scenario asks for.
struct analytic_config {
  params base;
  std::vector<strategy> strategies;
  std::vector<sweep> sweeps;
};

/// Registers the keys of `kind: skymemory` with the scenario schema.
void register_kind();

/// InvalidArgument naming `workload.mode` unless the scenario asks for the
/// analytic model (`satemu sweep` evaluates nothing else).
absl::Status require_analytic(const runtime::scenario& s);

/// Reads an analytic skymemory scenario. InvalidArgument, starting with the
/// key path it is about, for values that are valid one by one but not
/// together: a centre outside the grid, more servers than satellites, a
/// sweep with both `values` and a range, or a range that is empty or too long.
absl::StatusOr<analytic_config> analytic_config_from(const runtime::scenario& s);

/// The swept parameter of `p` in the unit the tables' plots use: MiB,
/// servers, ms, km.
double plot_value(sweep_parameter parameter, const params& p);

/// One row of a sweep: a point and one strategy's result there, without
/// its per-server list (`result.servers` is empty), so that a sweep's memory
/// does not grow with points x servers.
struct sweep_row {
  params point;
  fetch_result result;
};

/// Evaluates every point of `sw` for every strategy of `cfg`: rows point by
/// point, strategies in the configured order within a point. `on_point`,
/// when set, is called after each point.
absl::StatusOr<std::vector<sweep_row>> run_sweep(const analytic_config& cfg, const sweep& sw,
                                                 const std::function<void()>& on_point = {});

/// The table of a sweep: a header and one line per row, with columns
/// strategy, kv_bytes, chunk_bytes, servers, chunk_time_ms, altitude_km,
/// chunks, fetch_s, min_s, mean_s, std_s, box_planes, box_satellites,
/// migration_chunks, migration_bytes (seconds with 12 decimals).
std::string sweep_csv(const std::vector<sweep_row>& rows);

/// The plot of a sweep: fetch time [s] against the swept parameter, one
/// line per strategy of `cfg`; the title names the values held.
std::string sweep_svg(const analytic_config& cfg, const sweep& sw,
                      const std::vector<sweep_row>& rows);

/// The layouts at one point: one line per (strategy, server), with columns
/// strategy, server (0-based layout rank), plane, satellite (1-based, as in
/// the scenario), plane_offset, satellite_offset, distance_km, chunks,
/// bytes, time_s.
std::string servers_csv(const std::vector<fetch_result>& results);

} // namespace satemu::actors::skymemory
