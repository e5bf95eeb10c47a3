// satemu `skymemory` workload, analytic mode: keys, sweeps, tables, plots.
#include "actors/skymemory_sweep.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "runtime/constants.hpp"
#include "runtime/schema.hpp"
#include "runtime/svg_plot.hpp"

namespace satemu::actors::skymemory {

using runtime::key_spec;
using runtime::value_type;

namespace {

constexpr sweep_parameter all_parameters[] = {sweep_parameter::kv_size, sweep_parameter::servers,
                                              sweep_parameter::chunk_time,
                                              sweep_parameter::altitude};

/// Longest sweep, in points.
constexpr std::size_t max_sweep_points = 10'000;
/// Largest grid side: the breadth-first layouts keep a flag per satellite.
constexpr int max_grid_side = 1'000;
using runtime::max_scenario_altitude_m;
/// Keys of mode emulated, which the analytic model would ignore.
constexpr const char* emulated_keys[] = {
  "strategy", "in_plane",   "block_tokens", "capacity", "prompt_tokens",
  "sharing",  "headers",    "output_tokens", "interval", "start",
  "timeout",  "corruption", "cache",        "answer_timeout"};

constexpr double mib = 1024.0 * 1024.0;

// A sweep section: `values`, or `from`, `to` and `step`, of one type.
key_spec sweep_section(std::string name, std::string what, key_spec values, key_spec from,
                       key_spec to, key_spec step) {
  return key_spec::map(std::move(name),
                       absl::StrCat("Vary ", what,
                                    ", holding the other parameters at the workload's values: "
                                    "either `values`, or `from`, `to` and `step` (from `from` up "
                                    "by `step` while not past `to`, so `to` is a point when it is "
                                    "a whole number of steps on); at most 10000 points"),
                       {std::move(values), std::move(from), std::move(to), std::move(step)})
    .optional_section();
}

std::string axis_label(sweep_parameter p) {
  switch (p) {
    case sweep_parameter::kv_size:
      return "KV-cache size [MiB]";
    case sweep_parameter::servers:
      return "servers";
    case sweep_parameter::chunk_time:
      return "processing time per chunk [ms]";
    case sweep_parameter::altitude:
      return "altitude [km]";
  }
  return "?";
}

std::string title_noun(sweep_parameter p) {
  switch (p) {
    case sweep_parameter::kv_size:
      return "KV-cache size";
    case sweep_parameter::servers:
      return "servers";
    case sweep_parameter::chunk_time:
      return "time per chunk";
    case sweep_parameter::altitude:
      return "altitude";
  }
  return "?";
}

// A swept value in the parameter's base unit: bytes, servers or ns, which
// are whole numbers at least 0 and stay exact (kv_size goes past 2^53), or
// metres.
struct sweep_value {
  std::uint64_t whole = 0;
  double metres = 0;
};

sweep_value read_value(const runtime::scenario& s, sweep_parameter p, const std::string& path) {
  switch (p) {
    case sweep_parameter::kv_size:
      return {s.get_data_size(path).bytes, 0};
    case sweep_parameter::servers:
      return {static_cast<std::uint64_t>(s.get_int(path)), 0};
    case sweep_parameter::chunk_time:
      return {static_cast<std::uint64_t>(s.get_duration(path).ns()), 0};
    case sweep_parameter::altitude:
      return {0, s.get_distance(path).m};
  }
  return {};
}

params with_value(params p, sweep_parameter which, sweep_value v) {
  switch (which) {
    case sweep_parameter::kv_size:
      p.kv_bytes = v.whole;
      break;
    case sweep_parameter::servers:
      p.servers = static_cast<int>(v.whole);
      break;
    case sweep_parameter::chunk_time:
      p.chunk_time = runtime::duration::from_ns(static_cast<std::int64_t>(v.whole));
      break;
    case sweep_parameter::altitude:
      p.g.altitude_m = v.metres;
      break;
  }
  return p;
}

absl::Status check_servers(const grid& g, std::int64_t servers, const std::string& key) {
  const auto sats = static_cast<std::int64_t>(g.planes) * g.sats_per_plane;
  if (servers > sats)
    return absl::InvalidArgumentError(absl::StrCat(key, ": ", servers,
                                                   " servers need more satellites than the ",
                                                   g.planes, "x", g.sats_per_plane,
                                                   " grid has (", sats, ")"));
  return absl::OkStatus();
}

absl::StatusOr<sweep> read_sweep(const runtime::scenario& s, sweep_parameter p,
                                 const params& base) {
  const std::string path = absl::StrCat("workload.sweeps.", to_string(p));
  const bool values = s.list_size(path + ".values") > 0;
  const bool from = s.has(path + ".from"), to = s.has(path + ".to"), step = s.has(path + ".step");
  if (values && (from || to || step))
    return absl::InvalidArgumentError(
      absl::StrCat(path, ".values: give either values or from, to and step, not both (a --set "
                         "that turns a range into a list gives the whole sweep: --set '", path,
                         "={values: [...]}')"));
  std::vector<std::pair<std::string, sweep_value>> points; // (key that gave it, value)
  if (values) {
    for (std::size_t i = 0; i < s.list_size(path + ".values"); ++i) {
      const auto key = absl::StrCat(path, ".values.", i);
      const auto v = read_value(s, p, key);
      // A point given twice would be computed, written and plotted twice.
      for (std::size_t j = 0; j < points.size(); ++j)
        if (points[j].second.whole == v.whole && points[j].second.metres == v.metres)
          return absl::InvalidArgumentError(
            absl::StrCat(key, ": the same value as ", path, ".values.", j, ": give it once"));
      points.emplace_back(key, v);
    }
  } else {
    if (!(from && to && step)) {
      std::vector<std::string> missing;
      for (const auto& [given, name] : {std::pair{from, "from"}, {to, "to"}, {step, "step"}})
        if (!given)
          missing.push_back(name);
      return absl::InvalidArgumentError(absl::StrCat(
        path, ": give values, or from, to and step (missing: ", absl::StrJoin(missing, ", "),
        ")"));
    }
    const auto lo = read_value(s, p, path + ".from"), hi = read_value(s, p, path + ".to"),
               dx = read_value(s, p, path + ".step");
    const bool real = p == sweep_parameter::altitude;
    if (real ? hi.metres < lo.metres : hi.whole < lo.whole)
      return absl::InvalidArgumentError(
        absl::StrCat(path, ".to: the range ends below workload.sweeps.", to_string(p), ".from"));
    // The tolerance keeps `to` when it is a whole number of steps up to rounding.
    const double count = real ? std::floor((hi.metres - lo.metres) / dx.metres + 1e-9) + 1
                              : static_cast<double>((hi.whole - lo.whole) / dx.whole) + 1;
    if (count > static_cast<double>(max_sweep_points))
      return absl::InvalidArgumentError(absl::StrCat(path, ".step: the range has ", count,
                                                     " points; at most ", max_sweep_points));
    // Points of a range are located at the section: no key holds them.
    for (std::size_t i = 0; i < static_cast<std::size_t>(count); ++i)
      points.emplace_back(path, real ? sweep_value{0, lo.metres + static_cast<double>(i) * dx.metres}
                                     : sweep_value{lo.whole + i * dx.whole, 0});
  }
  if (points.size() > max_sweep_points)
    return absl::InvalidArgumentError(absl::StrCat(path, ".values: ", points.size(),
                                                   " points; at most ", max_sweep_points));
  sweep sw;
  sw.parameter = p;
  for (const auto& [key, v] : points) {
    if (p == sweep_parameter::servers)
      if (auto st = check_servers(base.g, static_cast<std::int64_t>(v.whole), key); !st.ok())
        return st;
    sw.points.push_back(with_value(base, p, v));
  }
  return sw;
}

} // namespace

std::string to_string(sweep_parameter p) {
  switch (p) {
    case sweep_parameter::kv_size:
      return "kv_size";
    case sweep_parameter::servers:
      return "servers";
    case sweep_parameter::chunk_time:
      return "chunk_time";
    case sweep_parameter::altitude:
      return "altitude";
  }
  return "?";
}

void register_kind() {
  key_spec strategies = key_spec::list(
    "strategies", value_type::choice,
    "Chunk layouts to evaluate: rotation (a box centred on the user's satellite, plane by "
    "plane), hop (breadth-first over the ISLs), hop_rotation (breadth-first inside the box)");
  strategies.choices = {"rotation", "hop", "hop_rotation"};
  strategies.default_value = "[rotation, hop, hop_rotation]";
  strategies.min_items = 1;

  runtime::register_workload_kind(
    "skymemory",
    "SkyMemory (arXiv 2505.14427): a prompt's KV cache cut into chunks spread over the "
    "satellites of a torus grid around the user. mode analytic: the paper's closed-form fetch "
    "time, evaluated by `satemu sweep`; mode emulated: the cache protocol as messages over the "
    "moving constellation, run by `satemu run` (needs the constellation, ground and compute "
    "sections)",
    {
      key_spec::choice("mode", {"analytic", "emulated"}, "",
                       "analytic: the closed-form model (satemu sweep); emulated: chunks as "
                       "messages between cache servers on the satellites of the constellation "
                       "section and ground users (satemu run)")
        .mandatory(),
      key_spec::choice("strategy", {"rotation", "hop", "hop_rotation"}, "rotation",
                       "Emulated: the layout of each user's chunks around its serving satellite"),
      key_spec::boolean("in_plane", "false",
                        "Emulated: lay chunks out in the serving satellite's plane only (for "
                        "shells whose planes are too far apart for inter-plane ISLs)"),
      key_spec::integer("block_tokens", "16", "Emulated: tokens per KV block (one chunk)")
        .at_least(1)
        .at_most(65536),
      key_spec::size("capacity", "1GiB", "Emulated: cache capacity of each satellite (LRU)").above(0),
      key_spec::integer("prompt_tokens", "1024", "Emulated: tokens per prompt").at_least(1).at_most(1 << 20),
      key_spec::real("sharing", "0.75",
                     "Emulated: fraction of a prompt that is its few-shot header, shared with "
                     "every prompt drawing the same header")
        .at_least(0)
        .at_most(1),
      key_spec::integer("headers", "4", "Emulated: distinct few-shot headers, drawn uniformly")
        .at_least(1)
        .at_most(1 << 30),
      key_spec::integer("output_tokens", "32", "Emulated: tokens generated per prompt (TTLT)")
        .at_least(1)
        .at_most(1 << 30),
      key_spec::dur("interval", "1s", "Emulated: mean gap between a user's prompts (exponential)")
        .above(0),
      key_spec::dur("start", "0s", "Emulated: when users start drawing prompts").at_least(0),
      key_spec::dur("timeout", "2s",
                    "Emulated: how long a user waits for lookup replies, then for chunks, "
                    "before going on without them")
        .above(0),
      key_spec::real("corruption", "0", "Emulated: probability that a server damages a chunk it "
                                        "sends (caught by the checksum)")
        .at_least(0)
        .at_most(1),
      key_spec::boolean("cache", "true", "Emulated: false = no lookups or puts (every prompt is "
                                         "prefilled whole)"),
      key_spec::dur("answer_timeout", "60s",
                    "Emulated, compute.at satellite: how long a user waits for the first and "
                    "the last output token before giving its request up")
        .above(0),
      key_spec::integer("planes", "15", "M: planes of the torus grid")
        .at_least(1)
        .at_most(max_grid_side),
      key_spec::integer("sats_per_plane", "15", "N: satellites per plane")
        .at_least(1)
        .at_most(max_grid_side),
      key_spec::integer("center_plane", "",
                        "Plane of the satellite above the user, numbered from 1 (1..planes); "
                        "default: the middle one, (planes + 1) / 2 rounded down (8 of 15)")
        .at_least(1),
      key_spec::integer("center_satellite", "",
                        "Satellite above the user within its plane, numbered from 1 "
                        "(1..sats_per_plane); default: the middle one, (sats_per_plane + 1) / 2 "
                        "rounded down")
        .at_least(1),
      key_spec::dist("altitude", "1920km", "h: altitude of the grid above the mean Earth radius")
        .above(0)
        .at_most(max_scenario_altitude_m),
      key_spec::size("kv_size", "21MiB", "KV cache of the prompt").above(0),
      key_spec::size("chunk_size", "12288B", "Chunk size; the cache is cut into "
                                             "ceil(kv_size / chunk_size) chunks")
        .above(0),
      key_spec::integer("servers", "81", "S: satellites the chunks are dealt to, round robin")
        .at_least(1)
        .at_most(1 << 30),
      key_spec::dur("chunk_time", "20ms", "Processing time per chunk at a server").at_least(0),
      std::move(strategies),
      key_spec::map(
        "sweeps", "Parameter sweeps (satemu sweep): one table and one plot each",
        {
          sweep_section("kv_size", "the KV-cache size",
                        key_spec::list("values", value_type::data_size, "KV-cache sizes").above(0),
                        key_spec::size("from", "", "First KV-cache size").above(0),
                        key_spec::size("to", "", "Last KV-cache size").above(0),
                        key_spec::size("step", "", "Step").above(0)),
          sweep_section("servers", "the number of servers",
                        key_spec::list("values", value_type::integer, "Server counts").at_least(1),
                        key_spec::integer("from", "", "First server count").at_least(1),
                        key_spec::integer("to", "", "Last server count").at_least(1),
                        key_spec::integer("step", "", "Step").at_least(1)),
          sweep_section("chunk_time", "the processing time per chunk",
                        key_spec::list("values", value_type::duration, "Times per chunk")
                          .at_least(0),
                        key_spec::dur("from", "", "First time per chunk").at_least(0),
                        key_spec::dur("to", "", "Last time per chunk").at_least(0),
                        key_spec::dur("step", "", "Step").above(0)),
          sweep_section("altitude", "the altitude",
                        key_spec::list("values", value_type::distance, "Altitudes")
                          .above(0)
                          .at_most(max_scenario_altitude_m),
                        key_spec::dist("from", "", "First altitude").above(0).at_most(max_scenario_altitude_m),
                        key_spec::dist("to", "", "Last altitude").above(0).at_most(max_scenario_altitude_m),
                        key_spec::dist("step", "", "Step").above(0)),
        }),
    });
}

absl::Status require_analytic(const runtime::scenario& s) {
  if (s.get_string("workload.mode") == "emulated")
    return absl::InvalidArgumentError(
      "workload.mode: `satemu sweep` evaluates the analytic model only; run an emulated "
      "SkyMemory scenario with `satemu run`");
  return absl::OkStatus();
}

absl::StatusOr<analytic_config> analytic_config_from(const runtime::scenario& s) {
  if (auto st = require_analytic(s); !st.ok())
    return st;
  // Refused rather than ignored, as on the workloads that run no model.
  if (s.has("compute"))
    return absl::InvalidArgumentError(
      "compute: the analytic model takes its figures from the workload section and would ignore "
      "this section (skymemory in mode emulated uses it); remove it");
  for (const char* section : {"constellation", "ground"})
    if (s.has(section))
      return absl::InvalidArgumentError(absl::StrCat(
        section, ": the analytic model runs on its own grid (workload.planes, "
                 "workload.sats_per_plane, workload.altitude) and would ignore this section "
                 "(skymemory in mode emulated uses it); remove it"));
  for (const char* k : emulated_keys) {
    const auto key = absl::StrCat("workload.", k);
    if (s.departs_from_default(key))
      return absl::InvalidArgumentError(absl::StrCat(
        key, ": a key of mode emulated (satemu run), which the analytic model would ignore",
        std::string_view(k) == "strategy" ? "; it evaluates every layout of workload.strategies"
                                          : ""));
  }
  for (const char* k : {"clock.mode", "clock.dilation"})
    if (s.departs_from_default(k))
      return absl::InvalidArgumentError(absl::StrCat(
        k, ": the analytic model is evaluated, not run in time; remove the clock section"));
  for (const char* k : {"seed", "threads"})
    if (s.departs_from_default(k))
      return absl::InvalidArgumentError(absl::StrCat(
        k, ": the analytic model is evaluated in closed form, with no random draws and on one "
           "thread; remove it"));
  if (s.get_bool("output.trace"))
    return absl::InvalidArgumentError(
      "output.trace: the analytic model sends no messages to trace; remove it");
  analytic_config c;
  grid& g = c.base.g;
  g.planes = static_cast<int>(s.get_int("workload.planes"));
  g.sats_per_plane = static_cast<int>(s.get_int("workload.sats_per_plane"));
  const auto cp = s.has("workload.center_plane") ? s.get_int("workload.center_plane")
                                                 : (g.planes + 1) / 2;
  const auto cs = s.has("workload.center_satellite") ? s.get_int("workload.center_satellite")
                                                     : (g.sats_per_plane + 1) / 2;
  if (cp > g.planes)
    return absl::InvalidArgumentError(absl::StrCat(
      "workload.center_plane: plane ", cp, " is outside the grid (planes are numbered 1..",
      g.planes, ")"));
  if (cs > g.sats_per_plane)
    return absl::InvalidArgumentError(absl::StrCat(
      "workload.center_satellite: satellite ", cs,
      " is outside the plane (satellites are numbered 1..", g.sats_per_plane, ")"));
  g.center_plane_index = static_cast<int>(cp - 1);
  g.center_satellite_index = static_cast<int>(cs - 1);
  g.altitude_m = s.get_distance("workload.altitude").m;
  c.base.kv_bytes = s.get_data_size("workload.kv_size").bytes;
  c.base.chunk_bytes = s.get_data_size("workload.chunk_size").bytes;
  c.base.chunk_time = s.get_duration("workload.chunk_time");
  const auto servers = s.get_int("workload.servers");
  if (auto st = check_servers(g, servers, "workload.servers"); !st.ok())
    return s.departs_from_default("workload.servers")
             ? st
             : absl::InvalidArgumentError(
                 absl::StrCat(st.message(), " (", servers, " is its default: give fewer)"));
  c.base.servers = static_cast<int>(servers);

  for (std::size_t i = 0; i < s.list_size("workload.strategies"); ++i) {
    const auto key = absl::StrCat("workload.strategies.", i);
    const auto st = parse_strategy(s.get_string(key));
    for (auto seen : c.strategies)
      if (seen == *st)
        return absl::InvalidArgumentError(
          absl::StrCat(key, ": '", to_string(*st), "' is listed twice"));
    c.strategies.push_back(*st);
  }
  for (auto p : all_parameters) {
    if (!s.has(absl::StrCat("workload.sweeps.", to_string(p))))
      continue;
    auto sw = read_sweep(s, p, c.base);
    if (!sw.ok())
      return sw.status();
    c.sweeps.push_back(std::move(*sw));
  }
  return c;
}

double plot_value(sweep_parameter parameter, const params& p) {
  switch (parameter) {
    case sweep_parameter::kv_size:
      return static_cast<double>(p.kv_bytes) / mib;
    case sweep_parameter::servers:
      return p.servers;
    case sweep_parameter::chunk_time:
      return static_cast<double>(p.chunk_time.ns()) * 1e-6;
    case sweep_parameter::altitude:
      return p.g.altitude_m / 1000.0;
  }
  return 0;
}

absl::StatusOr<std::vector<sweep_row>> run_sweep(const analytic_config& cfg, const sweep& sw,
                                                 const std::function<void()>& on_point) {
  std::vector<sweep_row> rows;
  rows.reserve(sw.points.size() * cfg.strategies.size());
  for (const auto& point : sw.points) {
    for (auto st : cfg.strategies) {
      auto r = evaluate(point, st);
      if (!r.ok())
        return r.status();
      // Freed, not only cleared (`= {}` keeps the capacity).
      std::vector<server_figures>().swap(r->servers);
      rows.push_back({point, std::move(*r)});
    }
    if (on_point)
      on_point();
  }
  return rows;
}

std::string sweep_csv(const std::vector<sweep_row>& rows) {
  std::string out =
    "strategy,kv_bytes,chunk_bytes,servers,chunk_time_ms,altitude_km,chunks,fetch_s,min_s,"
    "mean_s,std_s,box_planes,box_satellites,migration_chunks,migration_bytes\n";
  for (const auto& [p, r] : rows)
    absl::StrAppendFormat(&out, "%s,%d,%d,%d,%.12g,%.12g,%d,%.12f,%.12f,%.12f,%.12f,%d,%d,%d,%d\n",
                          to_string(r.s), p.kv_bytes, p.chunk_bytes, p.servers,
                          static_cast<double>(p.chunk_time.ns()) * 1e-6, p.g.altitude_m / 1000.0,
                          r.chunks, r.fetch_s, r.min_s, r.mean_s, r.std_s, r.box_planes,
                          r.box_satellites, r.migration_chunks, r.migration_bytes);
  return out;
}

std::string sweep_svg(const analytic_config& cfg, const sweep& sw,
                      const std::vector<sweep_row>& rows) {
  runtime::line_plot plot;
  const auto& b = cfg.base;
  std::string held;
  for (auto p : all_parameters) {
    if (p == sw.parameter)
      continue;
    const double v = plot_value(p, b);
    switch (p) {
      case sweep_parameter::kv_size:
        absl::StrAppend(&held, held.empty() ? "" : ", ",
                        runtime::to_string(runtime::data_size{b.kv_bytes}), " KV");
        break;
      case sweep_parameter::servers:
        absl::StrAppend(&held, held.empty() ? "" : ", ", absl::StrFormat("%d servers", b.servers));
        break;
      case sweep_parameter::chunk_time:
        absl::StrAppend(&held, held.empty() ? "" : ", ", absl::StrFormat("%g ms/chunk", v));
        break;
      case sweep_parameter::altitude:
        absl::StrAppend(&held, held.empty() ? "" : ", ", absl::StrFormat("%g km", v));
        break;
    }
  }
  // The chunk size sets the chunk count: plots of two sizes differ by it.
  absl::StrAppend(&held, ", ", runtime::to_string(runtime::data_size{b.chunk_bytes}), " chunks");
  plot.title = absl::StrFormat("SkyMemory fetch time vs %s (%dx%d grid; %s)",
                               title_noun(sw.parameter), b.g.planes, b.g.sats_per_plane, held);
  plot.x_label = axis_label(sw.parameter);
  // Server counts are whole numbers: no tick between two.
  if (sw.parameter == sweep_parameter::servers)
    plot.x_min_step = 1;
  // KV sizes in the largest binary unit the largest size reaches (MiB by
  // default: kB sizes would read 0.0010).
  double x_scale = 1;
  if (sw.parameter == sweep_parameter::kv_size) {
    std::uint64_t largest = 0;
    for (const auto& p : sw.points)
      largest = std::max(largest, p.kv_bytes);
    static constexpr std::pair<int, const char*> units[] = {
      {40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}, {0, "B"}};
    for (const auto& [shift, unit] : units)
      if (shift == 0 || largest >= (std::uint64_t{1} << shift)) {
        x_scale = static_cast<double>(mib) / static_cast<double>(std::uint64_t{1} << shift);
        plot.x_label = absl::StrCat("KV-cache size [", unit, "]");
        if (shift == 0)
          plot.x_min_step = 1;
        break;
      }
  }
  plot.y_label = "fetch time [s]";
  for (auto st : cfg.strategies) {
    // Drawn in the order of the swept value, whatever the order of the list.
    std::vector<std::pair<double, double>> xy;
    for (const auto& [p, r] : rows)
      if (r.s == st)
        xy.emplace_back(plot_value(sw.parameter, p) * x_scale, r.fetch_s);
    std::stable_sort(xy.begin(), xy.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    runtime::plot_series series;
    series.label = to_string(st);
    for (const auto& [x, y] : xy) {
      series.x.push_back(x);
      series.y.push_back(y);
    }
    plot.series.push_back(std::move(series));
  }
  return runtime::render_svg(plot);
}

std::string servers_csv(const std::vector<fetch_result>& results) {
  std::string out =
    "strategy,server,plane,satellite,plane_offset,satellite_offset,distance_km,chunks,bytes,"
    "time_s\n";
  for (const auto& r : results)
    for (std::size_t j = 0; j < r.servers.size(); ++j) {
      const auto& f = r.servers[j];
      absl::StrAppendFormat(&out, "%s,%d,%d,%d,%d,%d,%.6f,%d,%d,", to_string(r.s), j,
                            f.cell.plane + 1, f.cell.satellite + 1, f.at.plane, f.at.satellite,
                            f.distance_m / 1000.0, f.chunks, f.bytes);
      // A server that holds no chunk sends nothing: it has no time.
      if (f.chunks > 0)
        absl::StrAppendFormat(&out, "%.12f", f.time_s);
      out += '\n';
    }
  return out;
}

} // namespace satemu::actors::skymemory
