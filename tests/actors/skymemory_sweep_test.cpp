// Tests of the analytic skymemory workload: the shipped sweeps reproduce an
// independent reference model (tests/actors/skymemory_reference.hpp) to
// 1e-9 s on every row for every strategy; sweep points, tables, plots and
// the checks of values that are only wrong together.
#include "actors/skymemory_sweep.hpp"

#include <algorithm>
#include <string>

#include <gtest/gtest.h>

#include "actors/workload.hpp"
#include "skymemory_reference.hpp"

namespace {

using namespace satemu::actors::skymemory;
namespace ref = satemu::testing::skymemory_ref;

const std::string shipped = std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-sweeps.yaml";

absl::StatusOr<analytic_config> load_file(const std::string& path,
                                          const std::vector<std::string>& sets = {}) {
  satemu::actors::register_workloads();
  auto sc = satemu::runtime::load_scenario_file(path, sets);
  if (!sc.ok())
    return sc.status();
  return analytic_config_from(*sc);
}

absl::StatusOr<analytic_config> load_text(const std::string& text) {
  satemu::actors::register_workloads();
  auto sc = satemu::runtime::load_scenario_text(text, "t.yaml");
  if (!sc.ok())
    return sc.status();
  return analytic_config_from(*sc);
}

ref::point to_ref(const params& p) {
  ref::point r;
  r.planes = p.g.planes;
  r.sats = p.g.sats_per_plane;
  r.center_plane = p.g.center_plane_index + 1;
  r.center_sat = p.g.center_satellite_index + 1;
  r.altitude_m = p.g.altitude_m;
  r.kv_bytes = p.kv_bytes;
  r.chunk_bytes = p.chunk_bytes;
  r.servers = p.servers;
  r.chunk_s = static_cast<double>(p.chunk_time.ns()) * 1e-9;
  return r;
}

int lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

TEST(skymemory_sweep, shipped_scenario_has_the_papers_four_sweeps) {
  auto cfg = load_file(shipped);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->base.g.planes, 15);
  EXPECT_EQ(cfg->base.g.sats_per_plane, 15);
  // (8, 8) numbered from 1 is index 7: seven satellites on either side.
  EXPECT_EQ(cfg->base.g.center_plane_index, 7);
  EXPECT_EQ(cfg->base.g.center_satellite_index, 7);
  EXPECT_EQ(cfg->base.kv_bytes, 21u * 1024 * 1024);
  EXPECT_EQ(cfg->base.chunk_bytes, 12'288u);
  EXPECT_EQ(cfg->base.servers, 81);
  EXPECT_EQ(cfg->base.chunk_time, satemu::runtime::milliseconds(20));
  EXPECT_DOUBLE_EQ(cfg->base.g.altitude_m, 1'920e3);
  EXPECT_EQ(cfg->strategies.size(), 3u);
  ASSERT_EQ(cfg->sweeps.size(), 4u);
  EXPECT_EQ(cfg->sweeps[0].parameter, sweep_parameter::kv_size);
  EXPECT_EQ(cfg->sweeps[1].parameter, sweep_parameter::servers);
  EXPECT_EQ(cfg->sweeps[2].parameter, sweep_parameter::chunk_time);
  EXPECT_EQ(cfg->sweeps[3].parameter, sweep_parameter::altitude);
  // 1..21 MiB, {9, 25, 49, 81}, 2..20 ms, 160..1920 km.
  ASSERT_EQ(cfg->sweeps[0].points.size(), 21u);
  ASSERT_EQ(cfg->sweeps[1].points.size(), 4u);
  ASSERT_EQ(cfg->sweeps[2].points.size(), 10u);
  ASSERT_EQ(cfg->sweeps[3].points.size(), 9u);
  for (std::size_t i = 0; i < 21; ++i) {
    EXPECT_EQ(cfg->sweeps[0].points[i].kv_bytes, (i + 1) << 20);
    EXPECT_EQ(cfg->sweeps[0].points[i].servers, 81); // the others are held
  }
  EXPECT_EQ(cfg->sweeps[1].points[0].servers, 9);
  EXPECT_EQ(cfg->sweeps[1].points[3].servers, 81);
  EXPECT_EQ(cfg->sweeps[1].points[0].kv_bytes, 21u << 20);
  EXPECT_EQ(cfg->sweeps[2].points[0].chunk_time, satemu::runtime::milliseconds(2));
  EXPECT_EQ(cfg->sweeps[2].points[9].chunk_time, satemu::runtime::milliseconds(20));
  EXPECT_DOUBLE_EQ(cfg->sweeps[3].points[0].g.altitude_m, 160e3);
  EXPECT_DOUBLE_EQ(cfg->sweeps[3].points[4].g.altitude_m, 1'040e3);
  EXPECT_DOUBLE_EQ(cfg->sweeps[3].points[8].g.altitude_m, 1'920e3);
  EXPECT_EQ(cfg->sweeps[3].points[8].g.center_plane_index, 7);
}

TEST(skymemory_sweep, every_row_matches_the_reference_model_to_a_nanosecond) {
  auto cfg = load_file(shipped);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const std::size_t want_rows[] = {63, 12, 30, 27};
  std::size_t checked = 0;
  for (std::size_t k = 0; k < cfg->sweeps.size(); ++k) {
    auto rows = run_sweep(*cfg, cfg->sweeps[k]);
    ASSERT_TRUE(rows.ok()) << rows.status();
    EXPECT_EQ(rows->size(), want_rows[k]);
    for (const auto& [p, r] : *rows) {
      const auto want = ref::evaluate(to_ref(p), to_string(r.s));
      const auto what = ::testing::Message()
                        << to_string(cfg->sweeps[k].parameter) << " " << to_string(r.s) << " at "
                        << plot_value(cfg->sweeps[k].parameter, p);
      EXPECT_EQ(r.chunks, want.chunks) << what;
      EXPECT_NEAR(r.fetch_s, want.fetch_s, 1e-9) << what;
      EXPECT_NEAR(r.min_s, want.min_s, 1e-9) << what;
      EXPECT_NEAR(r.mean_s, want.mean_s, 1e-9) << what;
      EXPECT_NEAR(r.std_s, want.std_s, 1e-9) << what;
      EXPECT_EQ(r.migration_chunks, want.migration_chunks) << what;
      EXPECT_EQ(r.migration_bytes, want.migration_bytes) << what;
      // A row keeps its figures, not its per-server list (a sweep's memory
      // would grow with points x servers); the layout is the point's.
      EXPECT_TRUE(r.servers.empty()) << what;
      const auto full = evaluate(p, r.s);
      ASSERT_TRUE(full.ok()) << full.status();
      EXPECT_EQ(full->fetch_s, r.fetch_s) << what;
      ASSERT_EQ(full->servers.size(), want.layout.size()) << what;
      for (std::size_t j = 0; j < want.layout.size(); ++j) {
        EXPECT_EQ(full->servers[j].at.plane, want.layout[j].first) << what << " server " << j;
        EXPECT_EQ(full->servers[j].at.satellite, want.layout[j].second) << what << " server " << j;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 132u);
}

TEST(skymemory_sweep, reference_agrees_on_small_and_odd_grids_too) {
  // Off-centre users, even and clipped rings, more servers than the box
  // side suggests, partial last chunks, fewer chunks than servers.
  struct c {
    int planes, sats, cp, cs, servers;
    std::uint64_t kv;
  };
  for (const auto& k : {c{5, 5, 3, 3, 9, 11'500}, c{5, 5, 1, 1, 16, 40'000},
                        c{4, 6, 4, 1, 20, 7'777}, c{3, 15, 2, 8, 25, 99'999},
                        c{15, 15, 8, 8, 81, 3'000}, c{2, 9, 1, 5, 10, 123'456},
                        c{7, 4, 7, 4, 12, 1'000'000}, c{1, 10, 1, 10, 7, 5'000}}) {
    params p;
    p.g.planes = k.planes;
    p.g.sats_per_plane = k.sats;
    p.g.center_plane_index = k.cp - 1;
    p.g.center_satellite_index = k.cs - 1;
    p.g.altitude_m = 700e3;
    p.kv_bytes = k.kv;
    p.chunk_bytes = 1'000;
    p.servers = k.servers;
    p.chunk_time = satemu::runtime::milliseconds(3);
    for (auto s : all_strategies()) {
      auto r = evaluate(p, s);
      ASSERT_TRUE(r.ok()) << r.status();
      const auto want = ref::evaluate(to_ref(p), to_string(s));
      const auto what = ::testing::Message() << k.planes << "x" << k.sats << " S=" << k.servers
                                             << " " << to_string(s);
      EXPECT_NEAR(r->fetch_s, want.fetch_s, 1e-9) << what;
      EXPECT_NEAR(r->mean_s, want.mean_s, 1e-9) << what;
      EXPECT_NEAR(r->std_s, want.std_s, 1e-9) << what;
      EXPECT_EQ(r->migration_chunks, want.migration_chunks) << what;
      EXPECT_EQ(r->migration_bytes, want.migration_bytes) << what;
      ASSERT_EQ(r->servers.size(), want.layout.size()) << what;
      for (std::size_t j = 0; j < want.layout.size(); ++j)
        EXPECT_EQ(std::make_pair(r->servers[j].at.plane, r->servers[j].at.satellite),
                  want.layout[j])
          << what << " server " << j;
    }
  }
}

TEST(skymemory_sweep, the_papers_point) {
  // 21 MiB = 1792 chunks on 81 servers (10 with 23, 71 with 22), 20 ms each,
  // 15x15 at 1920 km: neighbours 2 x 8291 km x sin(12 deg) = 3447.59 km apart.
  // Rotation: server 0 at (-4, -4) holds 23 chunks at the slant distance
  // sqrt(2 (4 x 3447.59)^2 + 1920^2) = 19596.81 km: 65.3662 ms + 460 ms.
  auto cfg = load_file(shipped);
  ASSERT_TRUE(cfg.ok());
  auto rot = evaluate(cfg->base, strategy::rotation);
  ASSERT_TRUE(rot.ok());
  EXPECT_NEAR(rot->fetch_s, 19'596'806.46177 / 2.998e8 + 0.460, 1e-9);
  EXPECT_NEAR(rot->fetch_s, 0.525366265716, 1e-9);
  // Hop: 81 breadth-first satellites reach 6 hops (1+4+8+...+20 = 61 within
  // 5 hops); 6 x 3447.59 km = 20685.55 km for a 22-chunk server:
  // 68.9978 ms + 440 ms; the 23-chunk ones are within 2 hops (491.0 ms).
  auto hop = evaluate(cfg->base, strategy::hop);
  ASSERT_TRUE(hop.ok());
  EXPECT_NEAR(hop->fetch_s, 6 * 3'447'591.65714 / 2.998e8 + 0.440, 1e-9);
  // Hop rotation: the 23-chunk servers are the centre and its neighbours;
  // the corners, with 22, decide: 65.3662 + 440 ms.
  auto hr = evaluate(cfg->base, strategy::hop_rotation);
  ASSERT_TRUE(hr.ok());
  EXPECT_NEAR(hr->fetch_s, 19'596'806.46177 / 2.998e8 + 0.440, 1e-9);
  EXPECT_LT(hr->fetch_s, hop->fetch_s);
  EXPECT_LT(hop->fetch_s, rot->fetch_s);
}

TEST(skymemory_sweep, tables_and_plots) {
  auto cfg = load_file(shipped);
  ASSERT_TRUE(cfg.ok());
  auto rows = run_sweep(*cfg, cfg->sweeps[1]);
  ASSERT_TRUE(rows.ok());
  const auto csv = sweep_csv(*rows);
  EXPECT_EQ(lines(csv), 1 + 12);
  EXPECT_EQ(csv.rfind("strategy,kv_bytes,chunk_bytes,servers,chunk_time_ms,altitude_km,chunks,"
                      "fetch_s,",
                      0),
            0u);
  // Rows point by point, strategies in order within a point.
  EXPECT_NE(csv.find("\nrotation,22020096,12288,9,20,1920,1792,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nhop_rotation,22020096,12288,81,20,1920,1792,"), std::string::npos);
  const auto svg = sweep_svg(*cfg, cfg->sweeps[1], *rows);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  for (const char* s : {">rotation<", ">hop<", ">hop_rotation<", ">servers<", "fetch time [s]"})
    EXPECT_NE(svg.find(s), std::string::npos) << s;
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 10, true);
  EXPECT_EQ(svg.find("<polyline") != std::string::npos, true);
  // A list out of order is drawn in the order of its values (the table
  // keeps the list's order).
  auto shuffled = cfg->sweeps[1];
  std::swap(shuffled.points[0], shuffled.points[3]);
  auto shuffled_rows = run_sweep(*cfg, shuffled);
  ASSERT_TRUE(shuffled_rows.ok());
  EXPECT_EQ(sweep_svg(*cfg, shuffled, *shuffled_rows), svg);
  EXPECT_NE(sweep_csv(*shuffled_rows), csv);
  // The title names the chunk size (it sets the chunk count); kB-scale
  // sizes are drawn in KiB, not as 0.001 MiB.
  EXPECT_NE(svg.find(", 12KiB chunks)"), std::string::npos) << svg.substr(0, 600);
  auto small = cfg->sweeps[0];
  ASSERT_EQ(small.parameter, sweep_parameter::kv_size);
  for (std::size_t i = 0; i < small.points.size(); ++i)
    small.points[i].kv_bytes = 1500 * (i + 1);
  auto small_rows = run_sweep(*cfg, small);
  ASSERT_TRUE(small_rows.ok());
  EXPECT_NE(sweep_svg(*cfg, small, *small_rows).find("KV-cache size [KiB]"), std::string::npos);
  // servers.csv: one line per server per strategy.
  std::vector<fetch_result> point;
  for (auto s : cfg->strategies)
    point.push_back(*evaluate(cfg->base, s));
  const auto servers = servers_csv(point);
  EXPECT_EQ(lines(servers), 1 + 3 * 81);
  // The centre satellite is (8, 8), numbered from 1: hop's first server.
  EXPECT_NE(servers.find("\nhop,0,8,8,0,0,0.000000,23,"), std::string::npos) << servers;
  // Rotation's first server is the box corner (4, 4).
  EXPECT_NE(servers.find("\nrotation,0,4,4,-4,-4,"), std::string::npos);
  // A server that holds no chunk has no time: 3 chunks on 9 servers.
  auto few = cfg->base;
  few.kv_bytes = 3 * few.chunk_bytes;
  few.servers = 9;
  const auto sparse = servers_csv({*evaluate(few, strategy::hop)});
  EXPECT_EQ(lines(sparse), 1 + 9);
  std::size_t empty = 0;
  for (std::size_t at = sparse.find(",0,0,\n"); at != std::string::npos;
       at = sparse.find(",0,0,\n", at + 1))
    ++empty;
  EXPECT_EQ(empty, 6u) << sparse;
}

TEST(skymemory_sweep, values_wrong_together_name_the_key) {
  const std::string base = R"(name: t
duration: 1s
workload:
  kind: skymemory
  mode: analytic
)";
  auto expect_error = [&](const std::string& extra, const std::string& key) {
    auto cfg = load_text(base + extra);
    ASSERT_FALSE(cfg.ok()) << extra;
    EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(cfg.status().message()).rfind(key + ":", 0), 0u)
      << cfg.status() << " does not start with " << key;
  };
  expect_error("  center_plane: 16\n", "workload.center_plane");
  expect_error("  sats_per_plane: 5\n  center_satellite: 6\n", "workload.center_satellite");
  expect_error("  servers: 226\n", "workload.servers");
  // The default, not given, on a grid too small for it: said so.
  auto small_grid = load_text(base + "  planes: 14\n  sats_per_plane: 4\n");
  ASSERT_FALSE(small_grid.ok());
  EXPECT_EQ(small_grid.status().message(),
            "workload.servers: 81 servers need more satellites than the 14x4 grid has (56) (81 "
            "is its default: give fewer)");
  expect_error("  sweeps: {servers: {values: [9, 300]}}\n", "workload.sweeps.servers.values.1");
  // A range's points have no key of their own: the section is named.
  expect_error("  sweeps: {servers: {from: 9, to: 300, step: 10}}\n", "workload.sweeps.servers");
  expect_error("  sweeps: {kv_size: {values: [1MiB], from: 1MiB}}\n",
               "workload.sweeps.kv_size.values");
  {
    // Which says how a --set turns a range into a list.
    auto both = load_text(base + "  sweeps: {kv_size: {values: [1MiB], from: 1MiB}}\n");
    ASSERT_FALSE(both.ok());
    EXPECT_NE(both.status().message().find("--set 'workload.sweeps.kv_size={values: [...]}'"),
              std::string::npos)
      << both.status();
  }
  expect_error("  sweeps: {altitude: {from: 500km, step: 10km}}\n", "workload.sweeps.altitude");
  expect_error("  sweeps: {chunk_time: {from: 5ms, to: 1ms, step: 1ms}}\n",
               "workload.sweeps.chunk_time.to");
  expect_error("  sweeps: {chunk_time: {from: 0ms, to: 1s, step: 1us}}\n",
               "workload.sweeps.chunk_time.step");
  expect_error("  strategies: [hop, rotation, hop]\n", "workload.strategies.2");
  // The analytic model runs none: a compute section is refused, not ignored.
  expect_error("compute: {mode: modeled, model: tiny, device: h100}\n", "compute");
  // So are the space segment, the keys of mode emulated, real time and a trace.
  expect_error("constellation: {shells: [{planes: 5, sats_per_plane: 19, altitude: 550km, "
               "inclination: 53deg}]}\n",
               "constellation");
  expect_error("ground: {stations: [{name: nyc, lat: 40.71, lon: -74.01}]}\n", "ground");
  expect_error("  strategy: hop\n", "workload.strategy");
  expect_error("  prompt_tokens: 5\n", "workload.prompt_tokens");
  expect_error("clock: {mode: realtime}\n", "clock.mode");
  expect_error("clock: {dilation: 2}\n", "clock.dilation");
  expect_error("output: {trace: true}\n", "output.trace");
  // A point given twice would be computed and drawn twice.
  expect_error("  sweeps: {chunk_time: {values: [0s, 5ms, 5000us]}}\n",
               "workload.sweeps.chunk_time.values.2");
  // It draws nothing at random and runs on one thread.
  expect_error("seed: 3\n", "seed");
  expect_error("threads: 2\n", "threads");
  EXPECT_TRUE(load_text(base + "seed: 1\nthreads: 0\n").ok()) << "the defaults, written out";
  auto emulated = load_text(std::string(base).replace(base.find("analytic"), 8, "emulated"));
  ASSERT_FALSE(emulated.ok());
  EXPECT_NE(emulated.status().message().find("satemu run"), std::string::npos);
  // The centre defaults to the middle of the grid, whatever its size.
  auto small = load_text(base + "  planes: 5\n  sats_per_plane: 4\n  servers: 9\n");
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->base.g.center_plane_index, 2);
  EXPECT_EQ(small->base.g.center_satellite_index, 1);
  // KV sizes stay exact past 2^53 bytes, as far as 2^64 - 1, in lists and ranges.
  auto big = load_text(base + "  sweeps: {kv_size: {values: [9007199254740993B, "
                              "16000000TiB]}}\n");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->sweeps[0].points[0].kv_bytes, 9'007'199'254'740'993u);
  EXPECT_EQ(big->sweeps[0].points[1].kv_bytes, 16'000'000ull << 40);
  big = load_text(base + "  sweeps: {kv_size: {from: 9007199254740993B, to: 9007199254740995B, "
                         "step: 1B}}\n");
  ASSERT_TRUE(big.ok()) << big.status();
  ASSERT_EQ(big->sweeps[0].points.size(), 3u);
  EXPECT_EQ(big->sweeps[0].points[2].kv_bytes, 9'007'199'254'740'995u);
  // Altitudes past 100,000 km are refused (they overflowed to inf before).
  EXPECT_FALSE(load_text(base + "  altitude: 100001km\n").ok());
  EXPECT_FALSE(load_text(base + "  sweeps: {altitude: {values: [550km, 1e300km]}}\n").ok());
  // A range whose `to` is a whole number of steps keeps `to`.
  auto ok = load_text(base + "  sweeps: {altitude: {from: 0.1km, to: 0.7km, step: 0.1km}}\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->sweeps[0].points.size(), 7u);
  EXPECT_NEAR(ok->sweeps[0].points[6].g.altitude_m, 700.0, 1e-9);
}

TEST(skymemory_sweep, run_of_a_skymemory_scenario_points_to_sweep) {
  satemu::actors::register_workloads();
  auto sc = satemu::runtime::load_scenario_file(shipped);
  ASSERT_TRUE(sc.ok()) << sc.status();
  auto w = satemu::actors::make_workload(*sc);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("satemu sweep"), std::string::npos) << w.status();
}

} // namespace
