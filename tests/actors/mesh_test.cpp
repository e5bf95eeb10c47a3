// Tests of the mesh workload: graph shapes and routing against an independent
// breadth-first search, edge latencies, build errors, and small end-to-end
// runs through the virtual-time kernel with hand-checkable latencies.
#include "actors/mesh.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "actors/mesh_graph.hpp"
#include "nlohmann/json.hpp"
#include "runtime/kernel.hpp"

namespace satemu::actors {
namespace {

using runtime::duration;
using runtime::milliseconds;

mesh_graph_config ring(std::uint32_t n, std::uint64_t seed = 1) {
  mesh_graph_config c;
  c.nodes = n;
  c.topology = mesh_topology::ring;
  c.seed = seed;
  return c;
}

mesh_graph_config torus(std::uint32_t n, std::uint32_t width, std::uint64_t seed = 1) {
  mesh_graph_config c;
  c.nodes = n;
  c.topology = mesh_topology::torus;
  c.width = width;
  c.seed = seed;
  return c;
}

mesh_graph_config random_regular(std::uint32_t n, std::uint32_t degree, std::uint64_t seed) {
  mesh_graph_config c;
  c.nodes = n;
  c.topology = mesh_topology::random_regular;
  c.degree = degree;
  c.seed = seed;
  return c;
}

mesh_graph build_ok(const mesh_graph_config& c) {
  auto g = mesh_graph::build(c);
  EXPECT_TRUE(g.ok()) << g.status();
  return std::move(g).value();
}

std::string describe(const mesh_graph_config& c) {
  return to_string(c.topology) + " n=" + std::to_string(c.nodes) +
         " width=" + std::to_string(c.width) + " degree=" + std::to_string(c.degree) +
         " seed=" + std::to_string(c.seed);
}

/// All-pairs hop distances by BFS over the adjacency the graph exposes.
std::vector<std::vector<std::uint32_t>> bfs_distances(const mesh_graph& g) {
  const auto n = g.nodes();
  const auto inf = std::numeric_limits<std::uint32_t>::max();
  std::vector<std::vector<std::uint32_t>> d(n, std::vector<std::uint32_t>(n, inf));
  for (std::uint32_t s = 0; s < n; ++s) {
    std::deque<std::uint32_t> q{s};
    d[s][s] = 0;
    while (!q.empty()) {
      const auto v = q.front();
      q.pop_front();
      for (std::uint32_t i = 0; i < g.degree(v); ++i) {
        const auto w = g.neighbour(v, i);
        if (d[s][w] == inf) {
          d[s][w] = d[s][v] + 1;
          q.push_back(w);
        }
      }
    }
  }
  return d;
}

/// Following next_hop from every u reaches every dst in exactly the BFS
/// distance, and distance() agrees.
void check_routing(const mesh_graph_config& c) {
  SCOPED_TRACE(describe(c));
  auto g = build_ok(c);
  ASSERT_EQ(g.nodes(), c.nodes);
  const auto d = bfs_distances(g);
  const auto n = g.nodes();
  std::uint64_t mismatches = 0;
  for (std::uint32_t u = 0; u < n; ++u) {
    for (std::uint32_t dst = 0; dst < n; ++dst) {
      ASSERT_NE(d[u][dst], std::numeric_limits<std::uint32_t>::max())
        << "graph not connected: " << u << " -> " << dst;
      if (u == dst)
        continue;
      std::uint32_t at = u, hops = 0;
      while (at != dst && hops <= n) {
        const auto i = g.next_hop(at, dst);
        ASSERT_LT(i, g.degree(at)) << "next_hop index out of range at " << at;
        const auto next = g.neighbour(at, i);
        // Every hop is one step closer.
        if (d[next][dst] + 1 != d[at][dst])
          ++mismatches;
        at = next;
        ++hops;
      }
      EXPECT_EQ(at, dst) << u << " -> " << dst << " did not arrive";
      EXPECT_EQ(hops, d[u][dst]) << u << " -> " << dst;
      EXPECT_EQ(g.distance(u, dst), d[u][dst]) << u << " -> " << dst;
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

// ---------------------------------------------------------------------------
// Routing against breadth-first search.

TEST(mesh_graph_test, ring_routes_along_shortest_paths) {
  for (std::uint32_t n : {2u, 3u, 7u, 10u})
    check_routing(ring(n));
}

TEST(mesh_graph_test, torus_routes_along_shortest_paths) {
  check_routing(torus(20, 4));  // 4 x 5
  check_routing(torus(20, 5));  // 5 x 4
  check_routing(torus(36, 6));  // 6 x 6
  check_routing(torus(36, 0));  // width chosen: 6
  check_routing(torus(30, 0));  // width chosen: 5 (x 6)
  check_routing(torus(9, 3));   // smallest torus
  check_routing(torus(21, 7));  // 7 x 3, odd sides
}

TEST(mesh_graph_test, random_regular_routes_along_shortest_paths) {
  for (std::uint64_t seed : {1u, 2u, 3u, 17u, 12345u})
    check_routing(random_regular(30, 4, seed));
  check_routing(random_regular(30, 6, 5));
  check_routing(random_regular(11, 2, 9)); // a single Hamiltonian cycle
}

TEST(mesh_graph_test, torus_width_zero_picks_divisor_nearest_sqrt) {
  EXPECT_EQ(build_ok(torus(36, 0)).width(), 6u);
  EXPECT_EQ(build_ok(torus(20, 0)).width(), 4u);
  EXPECT_EQ(build_ok(torus(30, 0)).width(), 5u);
  EXPECT_EQ(build_ok(torus(64, 0)).width(), 8u);
  EXPECT_EQ(build_ok(torus(20, 5)).width(), 5u);
}

TEST(mesh_graph_test, shapes_have_expected_neighbours) {
  auto r = build_ok(ring(7));
  for (std::uint32_t u = 0; u < 7; ++u) {
    ASSERT_EQ(r.degree(u), 2u);
    std::set<std::uint32_t> nb{r.neighbour(u, 0), r.neighbour(u, 1)};
    EXPECT_EQ(nb, (std::set<std::uint32_t>{(u + 1) % 7, (u + 6) % 7})) << u;
  }
  // 4 columns x 5 rows: node u = y*4 + x.
  auto t = build_ok(torus(20, 4));
  for (std::uint32_t u = 0; u < 20; ++u) {
    ASSERT_EQ(t.degree(u), 4u);
    const auto x = u % 4, y = u / 4;
    std::multiset<std::uint32_t> nb;
    for (std::uint32_t i = 0; i < 4; ++i)
      nb.insert(t.neighbour(u, i));
    std::multiset<std::uint32_t> want{y * 4 + (x + 1) % 4, y * 4 + (x + 3) % 4,
                                      ((y + 1) % 5) * 4 + x, ((y + 4) % 5) * 4 + x};
    EXPECT_EQ(nb, want) << u;
  }
}

TEST(mesh_graph_test, ties_break_the_positive_way_and_x_first) {
  // Ring of 10: 0 -> 5 is 5 hops either way; the positive way is taken.
  auto r = build_ok(ring(10));
  EXPECT_EQ(r.neighbour(0, r.next_hop(0, 5)), 1u);
  EXPECT_EQ(r.neighbour(3, r.next_hop(3, 8)), 4u);
  EXPECT_EQ(r.neighbour(0, r.next_hop(0, 6)), 9u); // 4 hops the negative way
  // Torus 6x6: from (0,0) to (1,1) the first hop is along x.
  auto t = build_ok(torus(36, 6));
  EXPECT_EQ(t.neighbour(0, t.next_hop(0, 7)), 1u);
  // (0,0) to (3,3): ties on both axes, x first, positive way.
  EXPECT_EQ(t.neighbour(0, t.next_hop(0, 21)), 1u);
  // Same column: along y.
  EXPECT_EQ(t.neighbour(0, t.next_hop(0, 12)), 6u);
  EXPECT_EQ(t.neighbour(0, t.next_hop(0, 30)), 30u);
}

// ---------------------------------------------------------------------------
// Random regular wiring.

// Degrees of 10 and more too: drawing whole cycles again until one repeated
// no edge failed for most seeds there.
TEST(mesh_graph_test, random_regular_is_simple_regular_and_symmetric) {
  const std::pair<std::uint32_t, std::uint32_t> cases[] = {
    {30, 2}, {30, 4}, {30, 6}, {30, 10}, {30, 16}, {500, 16}, {300, 64}, {400, 256}};
  for (const auto& [n, degree] : cases) {
    for (std::uint64_t seed : {1u, 2u, 3u, 4u}) {
      auto c = random_regular(n, degree, seed);
      SCOPED_TRACE(describe(c));
      auto g = build_ok(c);
      std::set<std::pair<std::uint32_t, std::uint32_t>> arcs;
      for (std::uint32_t u = 0; u < n; ++u) {
        ASSERT_EQ(g.degree(u), degree) << u;
        std::set<std::uint32_t> nb;
        for (std::uint32_t i = 0; i < g.degree(u); ++i) {
          const auto v = g.neighbour(u, i);
          EXPECT_LT(v, n);
          EXPECT_NE(v, u) << "self loop at " << u;
          nb.insert(v);
          arcs.insert({u, v});
        }
        EXPECT_EQ(nb.size(), degree) << "repeated neighbour at " << u;
      }
      for (const auto& [u, v] : arcs)
        EXPECT_TRUE(arcs.count({v, u})) << u << " -> " << v << " has no reverse edge";
    }
  }
}

TEST(mesh_graph_test, random_regular_wiring_depends_on_seed_only) {
  auto adjacency = [](const mesh_graph& g) {
    std::vector<std::uint32_t> a;
    for (std::uint32_t u = 0; u < g.nodes(); ++u)
      for (std::uint32_t i = 0; i < g.degree(u); ++i)
        a.push_back(g.neighbour(u, i));
    return a;
  };
  EXPECT_EQ(adjacency(build_ok(random_regular(30, 4, 7))),
            adjacency(build_ok(random_regular(30, 4, 7))));
  EXPECT_NE(adjacency(build_ok(random_regular(30, 4, 7))),
            adjacency(build_ok(random_regular(30, 4, 8))));
}

// ---------------------------------------------------------------------------
// Latencies.

std::vector<std::int64_t> latencies(const mesh_graph& g) {
  std::vector<std::int64_t> l;
  for (std::uint32_t u = 0; u < g.nodes(); ++u)
    for (std::uint32_t i = 0; i < g.degree(u); ++i)
      l.push_back(g.latency(u, i).ns());
  return l;
}

TEST(mesh_graph_test, edge_latencies_within_bounds_and_min_is_lookahead) {
  std::vector<mesh_graph_config> configs{ring(10), torus(36, 0), random_regular(30, 4, 3)};
  for (auto c : configs) {
    c.latency_min = milliseconds(2);
    c.latency_max = milliseconds(7);
    SCOPED_TRACE(describe(c));
    auto g = build_ok(c);
    const auto l = latencies(g);
    ASSERT_FALSE(l.empty());
    for (auto v : l) {
      EXPECT_GE(v, milliseconds(2).ns());
      EXPECT_LE(v, milliseconds(7).ns());
    }
    EXPECT_EQ(g.min_latency().ns(), *std::min_element(l.begin(), l.end()));
    // Per directed edge: not all the same, and the two directions of an edge
    // are drawn separately.
    EXPECT_NE(*std::min_element(l.begin(), l.end()), *std::max_element(l.begin(), l.end()));
  }
}

TEST(mesh_graph_test, equal_bounds_give_constant_latency) {
  auto c = torus(16, 4);
  c.latency_min = c.latency_max = milliseconds(3);
  auto g = build_ok(c);
  for (auto v : latencies(g))
    EXPECT_EQ(v, milliseconds(3).ns());
  EXPECT_EQ(g.min_latency(), milliseconds(3));
}

TEST(mesh_graph_test, latencies_depend_on_seed_only) {
  EXPECT_EQ(latencies(build_ok(torus(36, 6, 5))), latencies(build_ok(torus(36, 6, 5))));
  EXPECT_NE(latencies(build_ok(torus(36, 6, 5))), latencies(build_ok(torus(36, 6, 6))));
  EXPECT_EQ(latencies(build_ok(ring(10, 9))), latencies(build_ok(ring(10, 9))));
  EXPECT_NE(latencies(build_ok(ring(10, 9))), latencies(build_ok(ring(10, 10))));
}

// ---------------------------------------------------------------------------
// Build errors.

void expect_invalid(const mesh_graph_config& c, const std::string& key) {
  SCOPED_TRACE(describe(c));
  auto g = mesh_graph::build(c);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument) << g.status();
  EXPECT_NE(std::string(g.status().message()).find(key), std::string::npos) << g.status();
}

TEST(mesh_graph_test, build_rejects_impossible_shapes) {
  {
    auto c = torus(36, 6);
    c.latency_min = milliseconds(5);
    c.latency_max = milliseconds(2);
    expect_invalid(c, "workload.latency_max");
    expect_invalid(c, "workload.latency_min");
  }
  {
    auto c = ring(5);
    c.latency_min = duration::zero();
    c.latency_max = milliseconds(2);
    expect_invalid(c, "workload.latency_min");
  }
  expect_invalid(torus(20, 3), "workload.width");  // 3 does not divide 20
  expect_invalid(torus(20, 7), "workload.width");
  expect_invalid(torus(8, 2), "workload.width");   // 2 x 4
  expect_invalid(torus(8, 0), "8 is fewer than 9 entities");  // not "between 3 and 2"
  expect_invalid(torus(2, 0), "2 is fewer than 9 entities");
  expect_invalid(torus(22, 0), "22 has no divisor between 3 and 7");
  expect_invalid(torus(6, 3), "workload.width");   // 3 x 2
  expect_invalid(torus(7, 0), "workload.entities");  // prime
  expect_invalid(random_regular(30, 3, 1), "workload.degree");
  expect_invalid(random_regular(30, 5, 1), "workload.degree");
  expect_invalid(random_regular(4, 4, 1), "workload.degree");
  expect_invalid(random_regular(6, 8, 1), "workload.degree");
  expect_invalid(random_regular(max_random_regular_nodes + 1, 4, 1), "workload.entities");
  expect_invalid(ring(1), "workload.entities");
  expect_invalid(ring(0), "workload.entities");
}

TEST(mesh_graph_test, build_accepts_boundary_shapes) {
  EXPECT_TRUE(mesh_graph::build(torus(9, 3)).ok());
  EXPECT_TRUE(mesh_graph::build(random_regular(5, 4, 1)).ok()); // degree n-1: complete graph
  EXPECT_TRUE(mesh_graph::build(ring(2)).ok());
  auto c = ring(5);
  c.latency_min = c.latency_max = milliseconds(1);
  EXPECT_TRUE(mesh_graph::build(c).ok());
}

// ---------------------------------------------------------------------------
// End to end through the virtual-time kernel.

struct mesh_run {
  std::unique_ptr<mesh_workload> w;
  runtime::run_result r;
  nlohmann::json m;
};

mesh_run run_mesh(const mesh_config& cfg, duration length, std::size_t threads = 2,
                  bool trace = false) {
  auto made = mesh_workload::make(cfg);
  EXPECT_TRUE(made.ok()) << made.status();
  mesh_run out;
  out.w = std::move(made).value();
  runtime::run_options opts;
  opts.end = runtime::vtime::zero() + length;
  opts.lookahead = out.w->lookahead();
  opts.seed = cfg.graph.seed;
  opts.threads = threads;
  opts.trace = trace;
  out.r = runtime::run(out.w->entities(), opts);
  out.m = out.w->metrics(out.r);
  return out;
}

const mesh_entity& entity_at(const mesh_run& run, std::size_t i) {
  return static_cast<const mesh_entity&>(*run.w->entities()[i]);
}

mesh_config torus36(double rate) {
  mesh_config c;
  c.graph = torus(36, 0, 3);
  c.rate_per_s = rate;
  c.payload_bytes = 64;
  return c;
}

TEST(mesh_run_test, messages_are_conserved_and_counted) {
  const auto cfg = torus36(50);
  const auto end = runtime::seconds(2);
  auto run = run_mesh(cfg, end, 2, /*trace=*/true);
  const auto& m = run.m;
  ASSERT_FALSE(run.r.interrupted);
  EXPECT_EQ(run.r.reached.ns(), end.ns());

  // Sums over the entities, independently of metrics().
  std::uint64_t sent = 0, delivered = 0, forwarded = 0, malformed = 0, events = 0;
  std::uint64_t hop_sum = 0;
  std::int64_t max_hops = 0;
  const auto graph = build_ok(cfg.graph);
  std::uint32_t diameter = 0;
  for (std::uint32_t u = 0; u < 36; ++u)
    for (std::uint32_t v = 0; v < 36; ++v)
      diameter = std::max(diameter, graph.distance(u, v));
  EXPECT_EQ(diameter, 6u); // 6x6 torus: 3 + 3
  for (std::size_t i = 0; i < 36; ++i) {
    const auto& e = entity_at(run, i);
    sent += e.sent();
    delivered += e.delivered();
    forwarded += e.forwarded();
    malformed += e.malformed();
    events += e.events();
    EXPECT_EQ(e.hops().count(), e.delivered());
    EXPECT_EQ(e.latency().count(), e.delivered());
    if (e.delivered() > 0) {
      EXPECT_GE(e.hops().min(), 1);
      EXPECT_LE(e.hops().max(), static_cast<std::int64_t>(diameter));
      EXPECT_GE(e.latency().min(), run.w->lookahead().ns());
      // A message of h hops takes between h*min and h*max of edge latency.
      EXPECT_GE(e.latency().min(), e.hops().min() * cfg.graph.latency_min.ns());
      EXPECT_LE(e.latency().max(), e.hops().max() * cfg.graph.latency_max.ns());
    }
    hop_sum += static_cast<std::uint64_t>(
      std::llround(e.hops().mean() * static_cast<double>(e.hops().count())));
    max_hops = std::max(max_hops, e.hops().max());
  }
  // Poisson: 36 entities x 2 s x 50/s = 3600 expected.
  EXPECT_GT(sent, 3000u);
  EXPECT_LT(sent, 4200u);
  EXPECT_GT(delivered, 0u);
  EXPECT_EQ(malformed, 0u);
  EXPECT_EQ(m["messages_sent"].get<std::uint64_t>(), sent);
  EXPECT_EQ(m["messages_delivered"].get<std::uint64_t>(), delivered);
  EXPECT_EQ(m["malformed"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(m["messages_sent"].get<std::uint64_t>(),
            m["messages_delivered"].get<std::uint64_t>() +
              m["messages_in_flight"].get<std::uint64_t>());
  EXPECT_EQ(m["entities"].get<std::uint64_t>(), 36u);
  EXPECT_EQ(m["topology"], "torus");
  EXPECT_EQ(m["lookahead_ns"].get<std::int64_t>(), run.w->lookahead().ns());
  EXPECT_EQ(m["hops"]["max"].get<std::int64_t>(), max_hops);
  EXPECT_GE(m["latency_ms"]["min"].get<double>() * 1e6,
            static_cast<double>(run.w->lookahead().ns()) - 1.0);

  // Every processed envelope was a delivery or a forward; one event per
  // envelope plus one timer per message created.
  EXPECT_EQ(run.r.envelopes, forwarded + delivered);
  EXPECT_EQ(m["hop_deliveries"].get<std::uint64_t>(), run.r.envelopes);
  EXPECT_EQ(run.r.events, events);
  EXPECT_EQ(run.r.events, run.r.envelopes + sent);
  // The delivered messages' hops are part of the envelopes; the rest belong
  // to messages still in flight, each fewer than `diameter` hops along.
  const auto in_flight = sent - delivered;
  EXPECT_LE(hop_sum, run.r.envelopes);
  EXPECT_LE(run.r.envelopes - hop_sum, in_flight * (diameter - 1));

  // In flight at the end: no message created in the last min_latency can have
  // arrived, and every message created before end - diameter*latency_max has.
  std::uint64_t created_last_min = 0, created_last_max_path = 0, timers = 0;
  const auto end_ns = end.ns();
  for (const auto& t : run.r.trace) {
    if (t.k != protocol::kind::timer)
      continue;
    ++timers;
    if (t.time_ns >= end_ns - run.w->lookahead().ns())
      ++created_last_min;
    if (t.time_ns >= end_ns - static_cast<std::int64_t>(diameter) * cfg.graph.latency_max.ns())
      ++created_last_max_path;
  }
  EXPECT_EQ(timers, sent);
  EXPECT_EQ(run.r.trace.size(), run.r.events);
  EXPECT_GE(in_flight, created_last_min);
  EXPECT_LE(in_flight, created_last_max_path);
  EXPECT_GT(in_flight, 0u);
}

TEST(mesh_run_test, fingerprint_independent_of_thread_count) {
  const auto cfg = torus36(50);
  auto a = run_mesh(cfg, runtime::seconds(1), 1);
  auto b = run_mesh(cfg, runtime::seconds(1), 3);
  EXPECT_EQ(a.r.fingerprint, b.r.fingerprint);
  EXPECT_EQ(a.r.events, b.r.events);
  EXPECT_EQ(a.r.envelopes, b.r.envelopes);
  EXPECT_EQ(a.m["messages_delivered"], b.m["messages_delivered"]);
  EXPECT_EQ(a.m["latency_ms"], b.m["latency_ms"]);
  auto other = cfg;
  other.graph.seed = 4;
  auto c = run_mesh(other, runtime::seconds(1), 2);
  EXPECT_NE(a.r.fingerprint, c.r.fingerprint);
}

// A run too short for its paths leaves much in flight: the delivered ones,
// the nearer, are what latency_ms and hops cover, which the run warns about.
TEST(mesh_run_test, many_messages_in_flight_at_the_end_are_warned_about) {
  auto brief = run_mesh(torus36(50), runtime::milliseconds(30));
  const auto sent = brief.m["messages_sent"].get<std::uint64_t>();
  const auto in_flight = brief.m["messages_in_flight"].get<std::uint64_t>();
  ASSERT_GT(in_flight * 20, sent);
  const auto w = brief.w->result_warnings(brief.r);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find(absl::StrCat("(", in_flight, " of ", sent, ") were still in flight")),
            std::string::npos)
    << w[0];
  auto longer = run_mesh(torus36(50), runtime::seconds(2));
  ASSERT_LE(longer.m["messages_in_flight"].get<std::uint64_t>() * 20,
            longer.m["messages_sent"].get<std::uint64_t>());
  EXPECT_TRUE(longer.w->result_warnings(longer.r).empty());
}

TEST(mesh_run_test, rate_zero_sends_nothing) {
  auto run = run_mesh(torus36(0), runtime::seconds(2));
  EXPECT_EQ(run.r.envelopes, 0u);
  EXPECT_EQ(run.r.events, 0u);
  EXPECT_EQ(run.m["messages_sent"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(run.m["messages_delivered"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(run.m["hop_deliveries"].get<std::uint64_t>(), 0u);
  EXPECT_FALSE(run.r.interrupted);
}

TEST(mesh_run_test, constant_latency_ring_takes_hops_times_latency) {
  // Ring of 5, every edge 3 ms: a message needs 1 or 2 hops, so 3 or 6 ms.
  mesh_config cfg;
  cfg.graph = ring(5, 11);
  cfg.graph.latency_min = cfg.graph.latency_max = milliseconds(3);
  cfg.rate_per_s = 5;
  auto run = run_mesh(cfg, runtime::seconds(4));
  EXPECT_EQ(run.w->lookahead(), milliseconds(3));
  std::uint64_t delivered = 0;
  double hop_total = 0;
  for (std::size_t i = 0; i < 5; ++i) {
    const auto& e = entity_at(run, i);
    SCOPED_TRACE(i);
    ASSERT_GT(e.delivered(), 0u);
    delivered += e.delivered();
    EXPECT_GE(e.hops().min(), 1);
    EXPECT_LE(e.hops().max(), 2);
    EXPECT_EQ(e.latency().min(), e.hops().min() * milliseconds(3).ns());
    EXPECT_EQ(e.latency().max(), e.hops().max() * milliseconds(3).ns());
    // Exact running sums: mean latency is mean hops times 3 ms.
    EXPECT_NEAR(e.latency().mean(), e.hops().mean() * 3e6, 1e-3);
    hop_total += e.hops().mean() * static_cast<double>(e.hops().count());
  }
  // Targets are uniform over the 4 others: 2 at 1 hop, 2 at 2 hops.
  EXPECT_NEAR(hop_total / static_cast<double>(delivered), 1.5, 0.25);
  EXPECT_DOUBLE_EQ(run.m["latency_ms"]["min"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(run.m["latency_ms"]["max"].get<double>(), 6.0);
  EXPECT_EQ(run.m["hops"]["max"].get<std::int64_t>(), 2);
}

TEST(mesh_run_test, triangle_latencies_are_the_edge_latencies) {
  // Ring of 3: every destination is one hop away, so a message delivered at
  // v took either the edge (v-1 -> v) or (v+1 -> v), and nothing else.
  mesh_config cfg;
  cfg.graph = ring(3, 21);
  cfg.graph.latency_min = milliseconds(1);
  cfg.graph.latency_max = milliseconds(9);
  cfg.rate_per_s = 20;
  auto run = run_mesh(cfg, runtime::seconds(2));
  const auto& g = run.w->graph();
  auto edge = [&](std::uint32_t from, std::uint32_t to) {
    for (std::uint32_t i = 0; i < g.degree(from); ++i)
      if (g.neighbour(from, i) == to)
        return g.latency(from, i).ns();
    ADD_FAILURE() << "no edge " << from << " -> " << to;
    return std::int64_t{-1};
  };
  for (std::uint32_t v = 0; v < 3; ++v) {
    SCOPED_TRACE(v);
    const auto& e = entity_at(run, v);
    ASSERT_GT(e.delivered(), 10u);
    EXPECT_EQ(e.hops().max(), 1);
    const auto a = edge((v + 2) % 3, v), b = edge((v + 1) % 3, v);
    EXPECT_EQ(e.latency().min(), std::min(a, b));
    EXPECT_EQ(e.latency().max(), std::max(a, b));
  }
  EXPECT_EQ(run.r.envelopes, run.m["messages_delivered"].get<std::uint64_t>());
}

} // namespace
} // namespace satemu::actors
