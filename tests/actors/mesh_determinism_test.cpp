// The 10,000-entity mesh benchmark scenario (scenarios/mesh-10k.yaml), cut
// short: the same fingerprint with 1 and 2 threads and across repeated runs,
// a different one with another seed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "actors/workload.hpp"
#include "nlohmann/json.hpp"
#include "runtime/kernel.hpp"
#include "runtime/scenario.hpp"

namespace satemu::actors {
namespace {

struct outcome {
  std::uint64_t fingerprint;
  std::uint64_t events;
  std::uint64_t envelopes;
};

outcome run_mesh_10k(std::size_t threads, std::uint64_t seed) {
  register_workloads();
  const std::string file = std::string(SATEMU_SOURCE_DIR) + "/scenarios/mesh-10k.yaml";
  auto sc = runtime::load_scenario_file(
    file, {"duration=300ms", "seed=" + std::to_string(seed), "threads=" + std::to_string(threads)});
  EXPECT_TRUE(sc.ok()) << sc.status();
  auto w = make_workload(*sc);
  EXPECT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->entities().size(), 10'000u);
  runtime::run_options o;
  o.end = runtime::vtime::zero() + sc->get_duration("duration");
  o.lookahead = (*w)->lookahead();
  o.seed = static_cast<std::uint64_t>(sc->get_int("seed"));
  o.threads = static_cast<std::size_t>(sc->get_int("threads"));
  auto r = runtime::run((*w)->entities(), o);
  EXPECT_FALSE(r.interrupted);
  return {r.fingerprint, r.events, r.envelopes};
}

TEST(MeshDeterminism, TenThousandEntitiesSameFingerprintWithOneAndTwoThreads) {
  const auto one = run_mesh_10k(1, 1);
  const auto two = run_mesh_10k(2, 1);
  const auto again = run_mesh_10k(2, 1);
  EXPECT_GT(one.envelopes, 100'000u);
  EXPECT_EQ(one.fingerprint, two.fingerprint);
  EXPECT_EQ(one.events, two.events);
  EXPECT_EQ(one.envelopes, two.envelopes);
  EXPECT_EQ(two.fingerprint, again.fingerprint);
  const auto other_seed = run_mesh_10k(2, 2);
  EXPECT_NE(one.fingerprint, other_seed.fingerprint);
}

// A run too short for any message to arrive (edges take 1 ms at least) has
// no latencies: null, not a minimum of 0.
TEST(MeshMetrics, NothingDeliveredMeansNullLatencies) {
  register_workloads();
  auto sc = runtime::load_scenario_file(std::string(SATEMU_SOURCE_DIR) + "/scenarios/quickstart.yaml",
                                        {"duration=500us", "workload.rate=10000"});
  ASSERT_TRUE(sc.ok()) << sc.status();
  auto w = make_workload(*sc);
  ASSERT_TRUE(w.ok()) << w.status();
  runtime::run_options o;
  o.end = runtime::vtime::zero() + sc->get_duration("duration");
  o.lookahead = (*w)->lookahead();
  o.threads = 1;
  const auto r = runtime::run((*w)->entities(), o);
  const auto m = (*w)->metrics(r);
  EXPECT_GT(m["messages_sent"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(m["messages_delivered"].get<std::uint64_t>(), 0u);
  EXPECT_TRUE(m["latency_ms"].is_null());
  EXPECT_TRUE(m["hops"].is_null());
}

} // namespace
} // namespace satemu::actors
