// Outages and re-routing at epoch boundaries, flows, moving users, and the
// topology records (positions, links, CZML).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "actors/flows.hpp"
#include "actors/ping.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "protocol/flow.hpp"
#include "space_fixture.hpp"

namespace satemu::actors {
namespace {

using testing::run_text;
using testing::warnings_of;

constexpr const char* grid = R"(
name: grid
seed: 5
duration: 3s
constellation:
  shells:
    - {planes: 12, sats_per_plane: 12, altitude: 550km, inclination: 53deg, phasing: 1}
  update_interval: 500ms
ground:
  stations:
    - {name: a, lat: 10, lon: 20}
    - {name: b, lat: 30, lon: 60}
  gsl: {min_elevation: 10deg}
workload: {kind: ping, pattern: pairs, pairs: [{from: a, to: b}], interval: 1s, start: 499ms}
)";

/// The route a -> b (ground nodes) in the epoch holding `t`: a, satellites..., b.
std::vector<std::uint32_t> route(space_network& net, runtime::vtime t) {
  const auto ep = net.at(t);
  const auto a = static_cast<std::uint32_t>(net.satellites());
  std::vector<std::uint32_t> path;
  for (auto v = a; v != runtime::route_tree::none; v = ep->routes->next(a + 1, v))
    path.push_back(v);
  return path;
}

std::string outage_of(std::uint32_t sat, const std::string& from, const std::string& to) {
  return absl::StrCat("constellation.outages=[{satellite: ", sat, ", from: ", from, ", to: ", to, "}]");
}

TEST(SpaceOutage, RemovesTheSatelliteFromEveryPath) {
  auto base = run_text<ping_workload>(grid);
  auto& bnet = const_cast<space_network&>(base.w->network());
  const auto path = route(bnet, runtime::vtime::zero());
  ASSERT_GE(path.size(), 5u) << "a, at least three satellites, b";
  const auto x = path[2];

  auto out = run_text<ping_workload>(grid, {outage_of(x, "0s", "10s")});
  auto& net = const_cast<space_network&>(out.w->network());
  EXPECT_EQ(out.w->ground(0).samples().size(), 3u) << "a path around the outage exists";
  EXPECT_EQ(out.r.counters["space.drops_outage"], 0u);
  for (auto t : {runtime::vtime::zero(), runtime::vtime::from_ns(2'600'000'000)}) {
    const auto ep = net.at(t);
    const auto& snap = *ep->snapshot;
    EXPECT_EQ(snap.offsets[x + 1] - snap.offsets[x], 0u) << "a satellite that is down has no links";
    for (std::uint32_t dst = 0; dst < snap.nodes(); ++dst) {
      for (std::uint32_t v = 0; v < snap.nodes(); ++v)
        ASSERT_NE(ep->routes->next(dst, v), x)
            << "route from " << v << " to " << dst << " crosses the outage";
    }
  }
}

TEST(SpaceOutage, MessageCrossingAnEpochBoundaryIsReRouted) {
  // Pings leave at 0.499 s, 1.499 s and 2.499 s; epochs are 0.5 s. A
  // satellite of the 1.499 s route goes down at 1.5 s, before the request
  // reaches the first satellite, so every satellite hop of that request
  // already sees the new epoch and goes around it.
  auto base = run_text<ping_workload>(grid);
  auto& bnet = const_cast<space_network&>(base.w->network());
  const auto path = route(bnet, runtime::vtime::from_ns(1'499'000'000));
  ASSERT_GE(path.size(), 5u);
  const auto x = path[2];
  EXPECT_EQ(route(bnet, runtime::vtime::from_ns(1'500'000'000))[2], x)
    << "without the outage the next epoch still routes through the satellite";

  auto out = run_text<ping_workload>(grid, {outage_of(x, "1500ms", "10s")});
  auto& net = const_cast<space_network&>(out.w->network());
  const auto after = route(net, runtime::vtime::from_ns(1'500'000'000));
  EXPECT_EQ(std::count(after.begin(), after.end(), x), 0);
  const auto before = route(net, runtime::vtime::from_ns(1'499'000'000));
  EXPECT_EQ(std::count(before.begin(), before.end(), x), 1)
    << "the route at send time still used the satellite";
  const auto& got = out.w->ground(0).samples();
  const auto& want = base.w->ground(0).samples();
  ASSERT_EQ(got.size(), 3u) << "the request in flight was re-routed, not lost";
  ASSERT_EQ(want.size(), 3u);
  EXPECT_EQ(got[0].forward_ns, want[0].forward_ns) << "before the outage nothing changes";
  EXPECT_NE(got[1].forward_ns, want[1].forward_ns) << "the request took another way";
  EXPECT_EQ(out.r.counters["space.drops_outage"], 0u);
}

TEST(SpaceOutage, MessageAlreadyHeadingToAFailedSatelliteIsDroppedWithAReason) {
  // The serving satellite of a fails at 1.5 s while the 1.499 s request is on
  // its way up to it: that request is dropped there, and counted.
  auto base = run_text<ping_workload>(grid);
  auto& bnet = const_cast<space_network&>(base.w->network());
  const auto x = route(bnet, runtime::vtime::from_ns(1'499'000'000))[1];
  auto out = run_text<ping_workload>(grid, {outage_of(x, "1500ms", "1600ms")});
  EXPECT_EQ(out.r.counters["space.drops_outage"], 1u);
  EXPECT_EQ(out.w->ground(0).samples().size(), 2u);
}

TEST(SpaceOutage, LinkOutageRemovesOnlyThatLink) {
  auto base = run_text<ping_workload>(grid);
  auto& bnet = const_cast<space_network&>(base.w->network());
  const auto path = route(bnet, runtime::vtime::zero());
  ASSERT_GE(path.size(), 5u);
  const auto u = path[1], v = path[2];
  auto out = run_text<ping_workload>(
    grid, {absl::StrCat("constellation.outages=[{link: [", u, ", ", v, "], to: 10s}]")});
  auto& net = const_cast<space_network&>(out.w->network());
  const auto ep = net.at(runtime::vtime::zero());
  EXPECT_FALSE(ep->snapshot->link_length_m(u, v).has_value());
  EXPECT_GT(ep->snapshot->offsets[u + 1] - ep->snapshot->offsets[u], 0u) << "the satellites stay up";
  const auto after = route(net, runtime::vtime::zero());
  for (std::size_t i = 0; i + 1 < after.size(); ++i)
    EXPECT_FALSE(after[i] == u && after[i + 1] == v);
  EXPECT_EQ(out.w->ground(0).samples().size(), 3u);
}

// A node holds the epoch only while it handles an event: a satellite that
// goes quiet must not keep its last epoch (snapshot and routes) alive. Here
// a satellite of the first pings' path fails at 1.5 s and hears nothing
// after; with 100 ms epochs, epochs are built as nodes ask for them, up to
// the last answer at about 2.6 s.
TEST(SpaceEpochs, QuietNodesDoNotKeepOldEpochsAlive) {
  // The satellite: on the route at 1.499 s (asked of a run with the
  // scenario's 500 ms epochs, which still holds that epoch at its end).
  auto base = run_text<ping_workload>(grid);
  ASSERT_NE(base.w, nullptr);
  const auto x = route(const_cast<space_network&>(base.w->network()),
                       runtime::vtime::from_ns(1'499'000'000))[2];
  auto r = run_text<ping_workload>(
      grid, {"constellation.update_interval=100ms", outage_of(x, "1500ms", "10s")});
  ASSERT_NE(r.w, nullptr);
  const auto& net = r.w->network();
  ASSERT_EQ(r.w->ground(0).samples().size(), 3u);
  EXPECT_GE(net.epochs_built(), 25);
  EXPECT_EQ(net.epochs_alive(), net.kept_epochs());
}

// A hop delay of 1 s makes the lookahead window 1 s long: its entities ask
// for any of the ten epochs it spans, so the network keeps them all (it
// kept 8, and a run stopped as an internal error).
TEST(SpaceEpochs, AWindowSpanningManyEpochsKeepsThemAll) {
  auto r = run_text<ping_workload>(grid, {"constellation.update_interval=100ms",
                                          "constellation.hop_delay=1s", "duration=40s"});
  ASSERT_NE(r.w, nullptr);
  EXPECT_GE(r.w->network().lookahead(), runtime::seconds(1));
  EXPECT_EQ(r.w->network().kept_epochs(), 18u);
  ASSERT_FALSE(r.w->ground(0).samples().empty());
}

// Real time: an entity that runs late may ask for an epoch already dropped;
// it gets the oldest kept one and the lookup is counted. In virtual time the
// same lookup is an internal error.
TEST(SpaceEpochs, RealTimeLateLookupsGetTheOldestKeptEpoch) {
  register_workloads();
  for (const bool real_time : {true, false}) {
    auto sc = runtime::load_scenario_text(
      grid, "t.yaml",
      {"constellation.update_interval=100ms", real_time ? "clock.mode=realtime" : "seed=1"});
    ASSERT_TRUE(sc.ok()) << sc.status();
    auto w = make_workload(*sc);
    ASSERT_TRUE(w.ok()) << w.status();
    auto& net = const_cast<space_network&>(dynamic_cast<ping_workload&>(**w).network());
    EXPECT_EQ(net.config().real_time, real_time);
    const auto newest = runtime::vtime::from_ns(2'000'000'000); // epoch 20
    ASSERT_EQ(net.at(newest)->index, 20);
    if (real_time) {
      EXPECT_EQ(net.stale_lookups(), 0u);
      EXPECT_EQ(net.at(runtime::vtime::zero())->index,
                20 - static_cast<std::int64_t>(net.kept_epochs()) + 1);
      EXPECT_EQ(net.stale_lookups(), 1u);
    } else {
      GTEST_FLAG_SET(death_test_style, "threadsafe");
      EXPECT_DEATH(net.at(runtime::vtime::zero()), "topology epoch 0 requested after it was dropped");
    }
  }
}

TEST(SpaceOutage, UnknownSatelliteIsAnErrorNamingTheKey) {
  register_workloads();
  auto sc = runtime::load_scenario_text(grid, "t.yaml", {outage_of(144, "0s", "1s")});
  ASSERT_TRUE(sc.ok());
  auto w = make_workload(*sc);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("constellation.outages.0.satellite: satellite 144 does not exist"),
            std::string::npos)
    << w.status();
}

// The grid is 12 planes of 12: satellite 0 links to 1 (its plane) and to
// one of plane 1, never to 2 or 30.
TEST(SpaceOutage, LinkThatGridNeverMakesIsAnErrorNamingTheKey) {
  register_workloads();
  for (const auto* link : {"[0, 2]", "[0, 30]"}) {
    auto sc = runtime::load_scenario_text(
      grid, "t.yaml", {absl::StrCat("constellation.outages=[{link: ", link, ", to: 1s}]")});
    ASSERT_TRUE(sc.ok()) << sc.status();
    const auto st = make_workload(*sc).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << link;
    EXPECT_NE(st.message().find("constellation.outages.0.link: satellites 0 and "),
              std::string::npos)
      << st;
    EXPECT_NE(st.message().find("have no ISL between them"), std::string::npos) << st;
  }
  auto ok = runtime::load_scenario_text(grid, "t.yaml",
                                        {"constellation.outages=[{link: [1, 0], to: 1s}]"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(make_workload(*ok).ok());
}

constexpr const char* flows = R"(
name: flows
seed: 5
duration: 2s
constellation:
  shells:
    - {planes: 12, sats_per_plane: 12, altitude: 550km, inclination: 53deg, phasing: 1}
  update_interval: 1000s
ground:
  stations:
    - {name: a, lat: 10, lon: 20}
    - {name: b, lat: 30, lon: 60}
  gsl: {min_elevation: 10deg, rate: 1Gbps}
workload:
  kind: flows
  flows: [{from: a, to: b, rate: 1Mbps, packet: 1000B}]
)";

TEST(SpaceFlows, ConstantRateFlowDeliversEveryPacketWithThePathDelay) {
  auto [w, r] = run_text<flows_workload>(flows);
  const auto m = w->metrics(r);
  const auto& f = m["flows"][0];
  // 1 Mbps of 1000 B packets: one every 8 ms, 250 in 2 s.
  EXPECT_EQ(f["packets_sent"].get<std::uint64_t>(), 250u);
  const auto delivered = f["packets_delivered"].get<std::uint64_t>();
  const auto& samples = w->ground(1).flow_samples();
  ASSERT_EQ(samples.size(), delivered);
  ASSERT_FALSE(samples.empty());
  // Only the packets sent in the last one-way delay may still be in flight.
  const auto in_flight = static_cast<std::uint64_t>(samples.front().delay_ns / 8'000'000 + 1);
  EXPECT_GE(delivered, 250u - in_flight);
  EXPECT_LT(delivered, 250u);
  for (const auto& s : samples) {
    EXPECT_LE(s.wire_bytes, 1000u) << "the packet size is the size on the wire";
    EXPECT_GT(s.wire_bytes, 992u) << "(filler in whole 8-byte words)";
    EXPECT_EQ(s.delay_ns, samples.front().delay_ns) << "a static route, no queueing";
    EXPECT_FALSE(s.path_changed);
  }
  // 1 Mbps goodput over the run, less what was in flight at the end.
  EXPECT_NEAR(f["throughput_bps"].get<double>(), 1e6, 0.02e6);
  EXPECT_EQ(r.counters["space.drops_queue_full"], 0u);
}

// 104 B at 332.8 Gbps is a packet every 2.5 ns: whole-nanosecond intervals
// sent at 416 Gbps (or 277). And however short or slow a flow, its
// throughput is never above its rate: a 1 bps flow sends one 832-bit
// packet in a 2 s run, which had read as 832 bps.
TEST(SpaceFlows, FlowsSendAtTheirRateWhateverTheInterval) {
  auto [w, r] = run_text<flows_workload>(
    flows, {"duration=1ms", "workload.flows=[{from: a, to: b, rate: 332.8Gbps, packet: 104B}]"});
  EXPECT_EQ(w->metrics(r)["flows"][0]["packets_sent"].get<std::uint64_t>(), 400'000u);
  auto [slow, rs] = run_text<flows_workload>(
    flows, {"workload.flows=[{from: a, to: b, rate: 1bps, packet: 104B}]"});
  const auto m = slow->metrics(rs);
  const auto& f = m["flows"][0];
  EXPECT_EQ(f["packets_sent"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(f["packets_delivered"].get<std::uint64_t>(), 1u);
  EXPECT_NEAR(f["throughput_bps"].get<double>(), 1.0, 1e-9);
}

// Packets still on their way at the end are counted apart from drops, and
// warned about when they are many; a flow with nothing delivered has no
// delay (null, not missing).
TEST(SpaceFlows, PacketsInFlightAtTheEndAreCountedAndWarnedAbout) {
  auto [w, r] = run_text<flows_workload>(flows);
  auto m = w->metrics(r);
  const auto sent = m["packets_sent"].get<std::uint64_t>();
  const auto delivered = m["packets_delivered"].get<std::uint64_t>();
  EXPECT_LT(delivered, sent);
  EXPECT_EQ(m["packets_in_flight"].get<std::uint64_t>(), sent - delivered); // no drops
  EXPECT_TRUE(w->result_warnings(r).empty());
  auto [late, rl] = run_text<flows_workload>(
    flows, {"workload.flows=[{from: a, to: b, rate: 1Mbps, packet: 1000B, start: 1995ms}]"});
  m = late->metrics(rl);
  EXPECT_EQ(m["packets_sent"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(m["packets_in_flight"].get<std::uint64_t>(), 1u);
  EXPECT_TRUE(m["flows"][0]["delay_ms"].is_null()) << m;
  EXPECT_EQ(m["flows"][0]["delivery_ratio"].get<double>(), 0.0);
  const auto warnings = late->result_warnings(rl);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].rfind("100% of the flow packets sent (1 of 1) were still in flight", 0), 0u)
    << warnings[0];
}

TEST(SpaceFlows, FlowAboveTheLinkRateFillsTheQueueAndDeliversTheLinkRate) {
  auto [w, r] = run_text<flows_workload>(
    flows, {"duration=500ms", "workload.flows=[{from: a, to: b, rate: 2Gbps, packet: 9000B}]"});
  const auto m = w->metrics(r);
  const auto& f = m["flows"][0];
  EXPECT_GT(r.counters["space.drops_queue_full"], 0u);
  EXPECT_LT(f["delivery_ratio"].get<double>(), 0.55);
  // The 1 Gbps ground link is the bottleneck (less the first one-way delay
  // and the backlog left at the end).
  EXPECT_GT(f["throughput_bps"].get<double>(), 0.9e9);
  EXPECT_LE(f["throughput_bps"].get<double>(), 1e9);
  // Delay grows to the queue's depth: 1 MiB at 1 Gbps is about 8.4 ms.
  EXPECT_GT(f["delay_ms"]["max"].get<double>() - f["delay_ms"]["min"].get<double>(), 7.0);
}

// A packet smaller than a flow packet's header and fields is refused (it
// had gone out bigger than configured, at a rate above the configured
// one); a size between whole words of filler sends the size that goes on
// the wire, at the configured rate.
TEST(SpaceFlows, PacketsAreTheirSizeOnTheWireAndTheRateHolds) {
  register_workloads();
  auto error = [](const std::vector<std::string>& sets) {
    auto sc = runtime::load_scenario_text(flows, "t.yaml", sets);
    return sc.ok() ? std::string(make_workload(*sc).status().message())
                   : std::string(sc.status().message());
  };
  const auto overhead = protocol::flow_overhead_bytes();
  EXPECT_EQ(overhead, 96u);
  EXPECT_NE(error({"workload.flows=[{from: a, to: b, rate: 1Mbps, packet: 95B}]"})
              .find("workload.flows.0.packet: expected a data size in [96B, 64KiB]"),
            std::string::npos);
  EXPECT_EQ(error({absl::StrCat("workload.flows=[{from: a, to: b, rate: 1Mbps, packet: ", overhead,
                                "B}]")}),
            "");
  // A flow that starts at the end of the run, with no stop of its own or
  // with one (it had been accepted, to send nothing).
  EXPECT_EQ(error({"workload.flows=[{from: a, to: b, rate: 1Mbps, start: 2s}]"}),
            "workload.flows.0.start: must be before the end of the run (duration 2s)");
  EXPECT_EQ(error({"workload.flows=[{from: a, to: b, rate: 1Mbps, start: 3s, stop: 4s}]"}),
            "workload.flows.0.start: must be before the end of the run (duration 2s)");
  // 3 bytes past whole words: 8 ms less 24 ns between packets of
  // `overhead + 8k` bytes on the wire.
  const auto packet = overhead + 8 * 100 + 3;
  auto [w, r] = run_text<flows_workload>(
    flows, {absl::StrCat("workload.flows=[{from: a, to: b, rate: 1Mbps, packet: ", packet, "B}]")});
  const auto& samples = w->ground(1).flow_samples();
  ASSERT_FALSE(samples.empty());
  for (const auto& s : samples)
    EXPECT_EQ(s.wire_bytes, packet - 3);
  const auto m = w->metrics(r);
  EXPECT_EQ(m["flows"][0]["packets_sent"].get<std::uint64_t>(),
            static_cast<std::uint64_t>(std::ceil(2.0 / ((packet - 3) * 8.0 / 1e6))));
  // Less the packets in flight at the end: a 39 ms path, 2% of the run.
  EXPECT_NEAR(m["flows"][0]["throughput_bps"].get<double>(), 1e6, 0.025e6);
}

// A flow from a to b over the 12x12 grid whose bottleneck is `link` at
// `rate`, with 100 ms epochs: a satellite or link that goes down at 1 s
// takes out the queue behind it at once.
constexpr const char* saturated = R"(
name: saturated
seed: 1
duration: 1500ms
constellation:
  shells:
    - {planes: 12, sats_per_plane: 12, altitude: 550km, inclination: 53deg, phasing: 1}
  update_interval: 100ms
  isl: {rate: 50Mbps}
ground:
  stations:
    - {name: a, lat: 10, lon: 20}
    - {name: b, lat: 30, lon: 60}
  gsl: {min_elevation: 10deg, rate: 1Gbps}
output: {trace: true}
workload:
  kind: flows
  flows: [{from: a, to: b, rate: 100Mbps, packet: 1500B}]
)";

/// The trace's events at `at` handed over by `from` (envelopes from that
/// hop) at or after `t`.
std::size_t arrivals(const runtime::run_result& r, std::uint32_t from, std::uint32_t at,
                     runtime::vtime t, runtime::vtime before = runtime::vtime::never()) {
  return static_cast<std::size_t>(std::count_if(r.trace.begin(), r.trace.end(), [&](const auto& e) {
    return e.from == from && e.entity == at && e.time_ns >= t.ns() && e.time_ns < before.ns();
  }));
}

// A satellite or ISL that goes down stops sending: the messages still queued
// on the link are lost then (counted as outage drops), not sent on for as
// long as the backlog lasts (84 ms of a 1 MiB queue at 100 Mbps, 168 ms here).
TEST(SpaceOutage, ALinkThatGoesDownSendsNoMoreOfItsQueue) {
  const auto t = runtime::vtime::from_ns(1'000'000'000);
  auto base = run_text<flows_workload>(saturated);
  auto& bnet = const_cast<space_network&>(base.w->network());
  const auto path = route(bnet, t - runtime::milliseconds(1));
  ASSERT_GE(path.size(), 4u);
  const auto x = path[1], z = path[2];
  const auto ep = bnet.at(t - runtime::milliseconds(1));
  const auto flight = runtime::duration::from_ns(
    static_cast<std::int64_t>(*ep->snapshot->link_length_m(x, z) / runtime::speed_of_light_m_per_s * 1e9) +
    1000);
  ASSERT_GT(base.r.counters["space.drops_queue_full"], 0u) << "the ISL x -> z is the bottleneck";
  ASSERT_GT(arrivals(base.r, x, z, t + runtime::milliseconds(20)), 0u);
  for (const auto& down : {absl::StrCat("{satellite: ", x, ", from: 1s, to: 2s}"),
                           absl::StrCat("{link: [", z, ", ", x, "], from: 1s, to: 2s}")}) {
    auto out = run_text<flows_workload>(saturated, {"constellation.outages=[" + down + "]"});
    EXPECT_GT(arrivals(out.r, x, z, t - runtime::milliseconds(5), t), 0u) << down;
    // What was out before 1 s arrives; nothing sent later does.
    EXPECT_EQ(arrivals(out.r, x, z, t + flight + runtime::microseconds(20)), 0u) << down;
    EXPECT_GT(out.r.counters["space.drops_outage"], 100u) << down;
  }
}

// A ground endpoint has one radio (per shell): after a handover its
// packets queue behind those still going out to the satellite before, and
// it sends at its rate, not at twice the rate to both.
TEST(SpaceFlows, AGroundEndpointSendsAtItsRateAcrossAHandover) {
  // The first handover of a with 1 s epochs.
  const std::vector<std::string> slow = {"ground.gsl.rate=50Mbps", "constellation.isl.rate=10Gbps",
                                         "constellation.update_interval=1s"};
  auto sets = slow;
  sets.push_back("duration=1ms");
  auto base = run_text<flows_workload>(saturated, sets);
  auto& bnet = const_cast<space_network&>(base.w->network());
  const auto a = static_cast<std::uint32_t>(bnet.satellites());
  const auto x = route(bnet, runtime::vtime::zero())[1];
  std::int64_t h = 1;
  while (h < 1000 && route(bnet, runtime::vtime::from_ns(h * 1'000'000'000))[1] == x)
    ++h;
  ASSERT_LT(h, 1000);
  const auto y = route(bnet, runtime::vtime::from_ns(h * 1'000'000'000))[1];
  // 100 Mbps into the 50 Mbps uplink from 0.4 s before the handover: the
  // queue (1 MiB, 168 ms at 50 Mbps) is full at the handover.
  sets = slow;
  sets.push_back(absl::StrCat("duration=", h * 1000 + 300, "ms"));
  sets.push_back(absl::StrCat("workload.flows=[{from: a, to: b, rate: 100Mbps, packet: 1500B, start: ",
                              h * 1000 - 400, "ms}]"));
  auto out = run_text<flows_workload>(saturated, sets);
  // 100 ms from 10 ms after the handover: 50 Mbps of 1496 B packets on the
  // wire is 417.8 of them, the old queue's (to x) first.
  const auto t = runtime::vtime::from_ns(h * 1'000'000'000);
  const auto from = t + runtime::milliseconds(10), to = from + runtime::milliseconds(100);
  const auto old_queue = arrivals(out.r, a, x, from, to);
  const auto sent = old_queue + arrivals(out.r, a, y, from, to);
  EXPECT_GT(old_queue, 300u);
  EXPECT_GE(sent, 417u);
  EXPECT_LE(sent, 418u);
}

// Path changes of a flow are counted against the flow's previous packet
// sent, as for pings: New York to London on a 40x25 shell, whose serving
// satellite in New York fails for 200 ms. The new route is shorter, so
// packets on it overtake those still on the old one; counted at delivery,
// every overtaken packet had read as a change (52 against 2 here).
TEST(SpaceFlows, PathChangesAreRouteChangesAtSendingNotReordering) {
  constexpr const char* ny_london = R"(
name: ny-london
seed: 1
duration: 2s
constellation:
  shells:
    - {planes: 40, sats_per_plane: 25, altitude: 550km, inclination: 53deg, phasing: 1}
  update_interval: 100ms
  outages: [{satellite: 433, from: 1600ms, to: 1800ms}]
ground:
  gsl: {min_elevation: 25deg, rate: 1Gbps}
  stations:
    - {name: nyc, lat: 40.71, lon: -74.01}
    - {name: lon, lat: 51.5, lon: -0.12}
workload:
  kind: flows
  flows: [{from: nyc, to: lon, rate: 10Mbps, packet: 1500B}]
)";
  auto [w, r] = run_text<flows_workload>(ny_london);
  auto& net = const_cast<space_network&>(w->network());
  ASSERT_EQ(route(net, runtime::vtime::from_ns(1'599'000'000))[1], 433u) << "New York's satellite";
  const auto& samples = w->ground(1).flow_samples();
  ASSERT_FALSE(samples.empty());
  // Delivered out of order: the new route overtook the old one.
  bool overtaken = false;
  for (std::size_t i = 1; i < samples.size(); ++i)
    overtaken = overtaken || samples[i].seq < samples[i - 1].seq;
  EXPECT_TRUE(overtaken);
  // Routes change only between epochs: a change is the first packet sent
  // in its epoch (one every 1.2 ms), at 1.6 s and at 1.8 s.
  std::vector<std::int64_t> changes;
  for (const auto& s : samples)
    if (s.path_changed) {
      EXPECT_NE(s.sent_ns / 100'000'000, (s.sent_ns - 1'200'000) / 100'000'000) << s.seq;
      changes.push_back(s.sent_ns / 100'000'000);
    }
  std::sort(changes.begin(), changes.end());
  EXPECT_EQ(changes, (std::vector<std::int64_t>{16, 18}));
  EXPECT_EQ(w->metrics(r)["flows"][0]["path_changes"].get<std::uint64_t>(), 2u);
}

// Settings the emulation accepts but makes implausible are warned about: a
// topology held for an hour (links to satellites long set), two planes in
// one orbit plane (neighbours pass through each other: 10 us windows), a
// user moved across the Earth in a nanosecond. They had run without a word.
TEST(SpaceWarnings, ImplausibleGeometryIsWarnedAbout) {
  EXPECT_TRUE(warnings_of(grid, {}).empty());
  EXPECT_TRUE(warnings_of(grid, {"constellation.update_interval=10s"}).empty());
  auto w = warnings_of(grid, {"constellation.update_interval=1h"});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].rfind("constellation.update_interval: 1h holds the topology that long: satellites "
                       "move some 27360 km between epochs", 0),
            0u)
    << w[0];
  EXPECT_NE(w[0].find("off by up to 90ms"), std::string::npos) << w[0];
  // A hop_delay of 1,000 epochs or more: all of them in memory at once.
  EXPECT_TRUE(warnings_of(grid, {"constellation.hop_delay=9s",
                                 "constellation.update_interval=10ms"})
                .empty());
  w = warnings_of(grid, {"constellation.hop_delay=20s", "constellation.update_interval=10ms"});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].rfind("constellation.hop_delay: 20s makes windows (20.", 0), 0u) << w[0];
  EXPECT_NE(w[0].find("span 2000 topology epochs of 10ms"), std::string::npos) << w[0];

  const std::string shared_plane = "constellation.shells=[{planes: 2, sats_per_plane: 40, altitude: "
                                   "500km, inclination: 90deg, phasing: 0}]";
  w = warnings_of(grid, {shared_plane, "constellation.isl.polar_limit=90deg"});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].rfind("constellation.shells.0: +Grid neighbours come within 0.000 km of each other, "
                       "so every window is only about 10us long",
                       0),
            0u)
    << w[0];
  EXPECT_TRUE(warnings_of(grid, {shared_plane, "constellation.isl.min_range=10km"}).empty());

  const std::string user = "ground.users=[{name: u, lat: 40, lon: -70, waypoints: [{at: 1s, lat: 40, "
                           "lon: -69.95}, {at: 2s, lat: -40, lon: 110}]}]";
  w = warnings_of(grid, {user});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].rfind("ground.users.0.waypoints.1: the user moves at 1.274e+04 km/s or more", 0), 0u)
    << w[0];
  EXPECT_TRUE(warnings_of(grid, {"ground.users=[{name: u, lat: 40, lon: -70, waypoints: [{at: 1s, "
                                 "lat: 40, lon: -69.95}]}]"})
                .empty())
    << "4.3 km in a second: not faster than a satellite";
}

TEST(SpaceFlows, UnknownEndpointIsAnErrorNamingTheKey) {
  register_workloads();
  auto sc = runtime::load_scenario_text(flows, "t.yaml",
                                        {"workload.flows=[{from: a, to: nowhere, rate: 1Mbps}]"});
  ASSERT_TRUE(sc.ok());
  auto w = make_workload(*sc);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("workload.flows.0.to: no ground endpoint named 'nowhere'"),
            std::string::npos)
    << w.status();
}

TEST(SpaceUsers, MovingUserFollowsItsWaypoints) {
  auto [w, r] = run_text<ping_workload>(
    grid, {"ground.users=[{name: plane, lat: 40, lon: -70, waypoints: [{at: 2s, lat: 50, lon: "
           "-10, alt: 10km}]}]",
           "workload.pairs=[{from: a, to: plane}]"});
  auto& net = const_cast<space_network&>(w->network());
  const auto node = net.satellites() + 2;
  for (double t : {0.0, 0.5, 1.0, 2.5}) {
    const auto ep = net.at(runtime::vtime::from_ns(static_cast<std::int64_t>(t * 1e9)));
    const double f = std::min(t / 2.0, 1.0);
    const auto want = runtime::geodetic_to_ecef(40 + 10 * f, -70 + 60 * f, 10e3 * f);
    EXPECT_LT(runtime::distance(ep->snapshot->position_m[node], want), 1e-3) << "t = " << t;
  }
  EXPECT_EQ(w->ground(0).samples().size(), 3u);
}

// Users flying from 45N to 45S cross the equator, where the Earth is about
// 11 km wider than at their waypoints. Under an equatorial ring whose ground
// links, not ISLs, set the lookahead, their links there are the shortest of
// the run: the lookahead must allow for them (it had counted only the
// waypoints, and the run aborted with a hop below the lookahead).
TEST(SpaceUsers, AUserCrossingTheEquatorBetweenWaypointsStaysAboveTheLookahead) {
  std::string users;
  for (int u = 0; u < 10; ++u)
    absl::StrAppend(&users, u == 0 ? "" : ", ", "{name: u", u, ", lat: 45, lon: ", 0.6 * u,
                    ", waypoints: [{at: 2000s, lat: -45, lon: ", 0.6 * u, "}]}");
  const std::string equator = absl::StrCat(R"(
name: equator
seed: 1
duration: 2000s
constellation:
  shells:
    - {planes: 1, sats_per_plane: 60, altitude: 550km, inclination: 0deg, phasing: 0}
  update_interval: 1s
ground:
  gsl: {min_elevation: 70deg, rate: 1Gbps}
  users: [)", users, R"(]
workload: {kind: ping, pattern: ring, interval: 100ms, size: 64B}
)");
  auto [w, r] = run_text<ping_workload>(equator);
  EXPECT_EQ(r.reached.ns(), 2000 * std::int64_t{1'000'000'000});
  std::size_t answered = 0;
  for (std::size_t g = 0; g < 10; ++g)
    answered += w->ground(g).samples().size();
  EXPECT_GT(answered, 0u) << "the users pass under the ring";
  // The shortest hop: hop_delay and a ground link at the equator, under a
  // satellite.
  const double shortest = 10e-6 + 550e3 / runtime::speed_of_light_m_per_s;
  EXPECT_LE(w->network().lookahead().seconds(), shortest + 1e-9);
}

// A near-polar shell's planes converge towards the poles, where its
// inter-plane links are off (polar_limit): the lookahead comes from the
// links that can be up. It had taken the neighbours' closest approach over
// the whole orbit, 158 km here, for about half the lookahead the links
// allow.
TEST(SpaceLookahead, ANearPolarShellsLinksSetItWhereTheyCanBeUp) {
  const std::string polar = R"(
name: polar
seed: 1
duration: 30s
constellation:
  shells:
    - {planes: 30, sats_per_plane: 120, altitude: 360km, inclination: 96.9deg, phasing: 1}
  update_interval: 1s
ground:
  stations:
    - {name: a, lat: 72, lon: 0}
    - {name: b, lat: 72, lon: 150}
workload: {kind: ping, pattern: pairs, pairs: [{from: a, to: b}], interval: 1s}
)";
  register_workloads();
  auto sc = runtime::load_scenario_text(polar, "polar.yaml", {});
  ASSERT_TRUE(sc.ok()) << sc.status();
  auto built = make_workload(*sc);
  ASSERT_TRUE(built.ok()) << built.status();
  auto* ping = dynamic_cast<ping_workload*>(built->get());
  ASSERT_NE(ping, nullptr);
  auto& net = const_cast<space_network&>(ping->network());
  const double floor_m =
    (net.lookahead() - runtime::microseconds(10)).seconds() * runtime::speed_of_light_m_per_s;
  EXPECT_GT(floor_m, 300e3);
  // Every link of the run is at least that long, and inter-plane links come
  // close to it (those at the polar limit): the bound is tight.
  double shortest_inter = std::numeric_limits<double>::infinity();
  for (int t = 0; t < 30; ++t) {
    const auto ep = net.at(runtime::vtime::from_ns(t * std::int64_t{1'000'000'000}));
    const auto& s = *ep->snapshot;
    for (std::size_t i = 0; i < s.length_m.size(); ++i) {
      EXPECT_GE(s.length_m[i], floor_m) << "t = " << t;
      if (s.kind[i] == runtime::link_kind::isl_inter_plane)
        shortest_inter = std::min(shortest_inter, s.length_m[i]);
    }
  }
  EXPECT_LT(shortest_inter, floor_m * 1.05);
  // A run over those links completes, every ping answered.
  auto [w, r] = run_text<ping_workload>(polar);
  EXPECT_EQ(r.reached.ns(), 30 * std::int64_t{1'000'000'000});
  EXPECT_EQ(w->ground(0).samples().size(), 30u);
}

// The recorded route is drawn in the CZML file: without it, or from an
// endpoint to itself, it is refused naming the key.
TEST(SpaceRecord, ARouteNeedsTheCzmlFileAndTwoEndpoints) {
  register_workloads();
  auto error = [](const std::string& record) {
    auto sc = runtime::load_scenario_text(grid, "t.yaml", {"constellation.record=" + record});
    EXPECT_TRUE(sc.ok()) << sc.status();
    return sc.ok() ? std::string(make_workload(*sc).status().message()) : "";
  };
  EXPECT_EQ(error("{interval: 1s, path_from: a, path_to: b}").rfind(
              "constellation.record.path_from: the route is drawn in the CZML file only", 0),
            0u);
  EXPECT_EQ(error("{interval: 1s, czml: true, path_from: a, path_to: a}"),
            "constellation.record.path_to: the same endpoint as path_from; a route needs two");
  EXPECT_EQ(error("{interval: 1s, czml: true, path_from: a, path_to: b}"), "");
  // Likewise a dilation in virtual time, which nothing would use.
  auto sc = runtime::load_scenario_text(grid, "t.yaml", {"clock.dilation=5"});
  ASSERT_TRUE(sc.ok()) << sc.status();
  EXPECT_EQ(std::string(make_workload(*sc).status().message()).rfind(
              "clock.dilation: only used with clock.mode: realtime", 0),
            0u);
  sc = runtime::load_scenario_text(grid, "t.yaml", {"clock.dilation=5", "clock.mode=realtime"});
  ASSERT_TRUE(sc.ok()) << sc.status();
  EXPECT_TRUE(make_workload(*sc).ok());
}

TEST(SpaceRecord, PositionsLinksAndCzml) {
  auto [w, r] = run_text<ping_workload>(
    grid, {"constellation.record={interval: 1s, czml: true, path_from: a, path_to: b}"});
  const auto files = w->files(r);
  ASSERT_EQ(files.count("positions.csv"), 1u);
  ASSERT_EQ(files.count("links.csv"), 1u);
  ASSERT_EQ(files.count("constellation.czml"), 1u);
  // Records at 0, 1 and 2 s, each with every satellite and endpoint.
  const std::vector<std::string> rows = absl::StrSplit(files.at("positions.csv"), '\n', absl::SkipEmpty());
  EXPECT_EQ(rows.size(), 1u + 3u * (144u + 2u));
  EXPECT_EQ(rows[1].rfind("0.000,0,sat0,", 0), 0u) << rows[1];
  const auto czml = nlohmann::json::parse(files.at("constellation.czml"));
  ASSERT_TRUE(czml.is_array());
  EXPECT_EQ(czml[0]["id"], "document");
  bool saw_sat = false, saw_path = false, saw_link = false;
  for (const auto& p : czml) {
    const auto id = p["id"].get<std::string>();
    if (id == "sat0") {
      saw_sat = true;
      EXPECT_EQ(p["position"]["cartesian"].size(), 3u * 4u) << "3 samples of (t, x, y, z)";
      EXPECT_EQ(p["position"]["referenceFrame"], "FIXED");
    }
    if (id.rfind("link/", 0) == 0)
      saw_link = true;
    if (id.rfind("path/", 0) == 0) {
      saw_path = true;
      const auto& refs = p["polyline"]["positions"]["references"];
      EXPECT_EQ(refs.front(), "a#position");
      EXPECT_EQ(refs.back(), "b#position");
    }
  }
  EXPECT_TRUE(saw_sat);
  EXPECT_TRUE(saw_link);
  EXPECT_TRUE(saw_path);
}

} // namespace
} // namespace satemu::actors
