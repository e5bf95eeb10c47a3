// Kernel correctness: delivery times, tie order, time monotonicity under
// random traffic, thread-count determinism, idle skipping, real-time pacing,
// compute requests (batched per window, results at request time plus
// duration, waiting entities going on inside the window).
#include "runtime/kernel.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "fake_compute.hpp"
#include "kj/exception.h"
#include "tests/address_space_limit.hpp"

namespace satemu::runtime {
namespace {

struct seen {
  std::int64_t now_ns;
  entity_id src;
  std::uint64_t seq;
  std::int64_t send_ns;
  std::int64_t deliver_ns;
  std::uint32_t hops;
};

/// An entity whose behaviour is given by lambdas, recording what it sees.
class probe final : public entity {
public:
  using entity::compute;
  using entity::count;
  using entity::declare_counters;
  using entity::forward;
  using entity::random;
  using entity::schedule;
  using entity::send;
  using entity::send_via;

  std::function<void(probe&)> start;
  std::function<void(probe&, const protocol::envelope&)> receive;
  std::function<void(probe&, std::uint64_t)> timer;
  std::function<void(probe&, std::uint64_t, compute_job&)> computed;

  std::vector<seen> arrivals;
  std::vector<std::pair<std::int64_t, std::uint64_t>> timers;
  /// (time, tag) of each compute result.
  std::vector<std::pair<std::int64_t, std::uint64_t>> results;
  std::int64_t last_ns = -1;
  std::uint64_t backwards = 0;

protected:
  void on_start() override {
    if (start)
      start(*this);
  }
  void on_envelope(protocol::envelope& e) override {
    note();
    arrivals.push_back({now().ns(), e.src, e.seq, e.send_ns, e.deliver_ns, e.hops});
    if (receive)
      receive(*this, e);
  }
  void on_timer(std::uint64_t tag) override {
    note();
    timers.emplace_back(now().ns(), tag);
    if (timer)
      timer(*this, tag);
  }
  void on_compute(std::uint64_t tag, std::unique_ptr<compute_job> job) override {
    note();
    results.emplace_back(now().ns(), tag);
    if (computed)
      computed(*this, tag, *job);
  }

private:
  void note() {
    if (now().ns() < last_ns)
      ++backwards;
    last_ns = now().ns();
  }
};

using world = std::vector<std::unique_ptr<entity>>;

world make_world(std::size_t n) {
  world w;
  for (std::size_t i = 0; i < n; ++i)
    w.push_back(std::make_unique<probe>());
  return w;
}

probe& at(world& w, std::size_t i) { return static_cast<probe&>(*w[i]); }

/// Real time on two threads, paced 1:1.
run_options realtime_opts(duration end) {
  run_options o;
  o.mode = clock_mode::real_time;
  o.end = vtime::zero() + end;
  o.threads = 2;
  return o;
}

run_options virtual_opts(duration end, duration lookahead, std::size_t threads = 1) {
  run_options o;
  o.end = vtime::zero() + end;
  o.lookahead = lookahead;
  o.threads = threads;
  o.seed = 7;
  return o;
}

TEST(Kernel, EveryEnvelopeArrivesAtSendTimePlusLatency) {
  auto w = make_world(3);
  // Entity 0 sends to 1 and 2 with a spread of latencies at many times and
  // writes down when each envelope is due.
  std::vector<std::pair<entity_id, std::int64_t>> want;
  at(w, 0).start = [](probe& p) { p.schedule(duration::zero(), 0); };
  at(w, 0).timer = [&](probe& p, std::uint64_t k) {
    for (int i = 0; i < 4; ++i) {
      const auto latency =
        milliseconds(1) + microseconds(static_cast<std::int64_t>(p.random().below(5000)));
      const entity_id dst = 1 + static_cast<entity_id>(i % 2);
      p.send(dst, latency, protocol::kind::mesh, {});
      want.emplace_back(dst, (p.now() + latency).ns());
    }
    if (k < 20)
      p.schedule(microseconds(700), k + 1);
  };
  auto r = run(w, virtual_opts(seconds(1), milliseconds(1)));
  ASSERT_FALSE(r.interrupted);
  std::vector<std::pair<entity_id, std::int64_t>> got;
  for (entity_id d : {1u, 2u})
    for (const auto& a : at(w, d).arrivals) {
      EXPECT_EQ(a.now_ns, a.deliver_ns);
      got.emplace_back(d, a.now_ns);
    }
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got.size(), 21u * 4u);
  EXPECT_EQ(got, want);
}

// A path of 70,000 hops (a mesh ring of 140,000 entities has such): the
// count does not wrap at 65,536.
TEST(Kernel, HopCountsPastSixteenBitsDoNotWrap) {
  auto w = make_world(3);
  at(w, 0).start = [](probe& p) { p.send_via(1, 2, microseconds(1), protocol::kind::mesh, {}); };
  at(w, 0).receive = [](probe& p, const protocol::envelope& e) {
    p.forward(1, microseconds(1), e);
  };
  at(w, 1).receive = [](probe& p, const protocol::envelope& e) {
    p.forward(e.hops < 70'000 ? 0 : 2, microseconds(1), e);
  };
  run(w, virtual_opts(milliseconds(100), microseconds(1)));
  ASSERT_EQ(at(w, 2).arrivals.size(), 1u);
  EXPECT_EQ(at(w, 2).arrivals[0].hops, 70'001u);
}

// A run to the largest time with a lookahead of 3e18 ns: the sums of a
// window's start and the lookahead, and of a send time and a latency, once
// wrapped past 2^63 and left the run blocked for good.
// Seconds are the nanoseconds correctly rounded: a 60 s run had reported
// 60.00000000000001 emulated seconds (ns times 1e-9, which is inexact).
TEST(Kernel, SecondsAreExact) {
  for (const std::int64_t s : {1, 3, 60, 120, 3600})
    EXPECT_EQ(vtime::from_ns(s * 1'000'000'000).seconds(), static_cast<double>(s)) << s;
  EXPECT_EQ(vtime::from_ns(5'130'976).seconds(), 0.005130976);
  EXPECT_EQ(duration::from_ns(60'000'000'000).seconds(), 60.0);
}

TEST(Kernel, TimesNearTheLargestDoNotWrap) {
  auto w = make_world(2);
  const auto hop = duration::from_ns(3'000'000'000'000'000'000);
  at(w, 0).start = [hop](probe& p) { p.send(1, hop, protocol::kind::mesh, {}); };
  for (entity_id e : {0u, 1u})
    at(w, e).receive = [e, hop](probe& p, const protocol::envelope& m) {
      p.forward(1 - e, hop, m);
    };
  const auto end = duration::from_ns(std::numeric_limits<std::int64_t>::max());
  run(w, virtual_opts(end, hop));
  // Arrivals at 3e18, 6e18 and 9e18 ns; the next would be past the end.
  ASSERT_EQ(at(w, 1).arrivals.size(), 2u);
  ASSERT_EQ(at(w, 0).arrivals.size(), 1u);
  EXPECT_EQ(at(w, 1).arrivals[1].now_ns, 9'000'000'000'000'000'000);
}

TEST(Kernel, EqualTimeEventsInSourceSequenceOrder) {
  // Entities 1..8 each send three envelopes to entity 0, all due at 5 ms.
  auto w = make_world(9);
  for (entity_id s = 1; s < 9; ++s)
    at(w, s).start = [s](probe& p) {
      // Senders start at different offsets so latencies differ but the
      // delivery time is the same for everyone.
      p.schedule(microseconds(100 * s), 0);
    };
  for (entity_id s = 1; s < 9; ++s)
    at(w, s).timer = [](probe& p, std::uint64_t) {
      for (int i = 0; i < 3; ++i)
        p.send(0, (vtime::zero() + milliseconds(5)) - p.now(), protocol::kind::mesh, {});
    };
  auto r = run(w, virtual_opts(milliseconds(20), milliseconds(1), 2));
  ASSERT_FALSE(r.interrupted);
  const auto& arr = at(w, 0).arrivals;
  ASSERT_EQ(arr.size(), 24u);
  for (const auto& a : arr)
    EXPECT_EQ(a.now_ns, milliseconds(5).ns());
  for (std::size_t i = 1; i < arr.size(); ++i)
    EXPECT_LT(std::tie(arr[i - 1].src, arr[i - 1].seq), std::tie(arr[i].src, arr[i].seq))
      << "at position " << i;
}

TEST(Kernel, TimersFireAtTheirTimeInScheduleOrder) {
  auto w = make_world(1);
  at(w, 0).start = [](probe& p) {
    p.schedule(milliseconds(3), 30);
    p.schedule(milliseconds(1), 10);
    p.schedule(milliseconds(3), 31); // same time: scheduled later, fires later
    p.schedule(duration::zero(), 0);
  };
  run(w, virtual_opts(milliseconds(10), milliseconds(1)));
  const std::vector<std::pair<std::int64_t, std::uint64_t>> want = {
    {0, 0}, {milliseconds(1).ns(), 10}, {milliseconds(3).ns(), 30}, {milliseconds(3).ns(), 31}};
  EXPECT_EQ(at(w, 0).timers, want);
}

// A timer past the last nanosecond time can hold never fires (its time had
// wrapped negative and aborted the run); one just short of it waits.
TEST(Kernel, ATimerPastTheEndOfTimeNeverFires) {
  auto w = make_world(1);
  at(w, 0).start = [](probe& p) { p.schedule(milliseconds(2), 1); };
  at(w, 0).timer = [](probe& p, std::uint64_t tag) {
    if (tag != 1)
      return;
    p.schedule(duration::max(), 2);
    p.schedule(duration::max() - milliseconds(2), 3); // lands exactly on never()
    p.schedule(duration::max() - milliseconds(3), 4); // 1 ms short of it
    p.schedule(milliseconds(1), 5);
  };
  const auto r = run(w, virtual_opts(milliseconds(10), milliseconds(1)));
  EXPECT_EQ(r.reached.ns(), milliseconds(10).ns());
  const std::vector<std::pair<std::int64_t, std::uint64_t>> want = {{milliseconds(2).ns(), 1},
                                                                    {milliseconds(3).ns(), 5}};
  EXPECT_EQ(at(w, 0).timers, want);
  EXPECT_EQ(duration::from_ns_saturated(1e30), duration::max());
  EXPECT_EQ(duration::from_ns_saturated(9223372036854775808.0), duration::max());
  EXPECT_EQ(duration::from_ns_saturated(9223372036854774784.0).ns(), 9223372036854774784);
  EXPECT_EQ(duration::from_ns_saturated(2.5).ns(), 3);
  EXPECT_EQ(vtime::from_ns(5).plus_or_never(duration::max() - nanoseconds(5)), vtime::never());
  EXPECT_EQ(vtime::from_ns(5).plus_or_never(duration::max() - nanoseconds(6)).ns(),
            std::numeric_limits<std::int64_t>::max() - 1);
}

// An entity's handler that throws (say, out of memory) stops the run at the
// end of that window, naming the entity, as an interruption would: the run
// used to wait for it forever, then to end the process.
TEST(Kernel, AnExceptionInAnEntityStopsTheRunNamingIt) {
  // std::bad_alloc; Cap'n Proto's failed allocation; anything else.
  for (const int kind : {0, 1, 2}) {
    const bool memory = kind < 2;
    auto w = make_world(3);
    // Entity 0 ticks every 100 us; entity 2 throws at 2 ms.
    at(w, 0).start = [](probe& p) { p.schedule(microseconds(100), 0); };
    at(w, 0).timer = [](probe& p, std::uint64_t) { p.schedule(microseconds(100), 0); };
    at(w, 2).start = [](probe& p) { p.schedule(milliseconds(2), 1); };
    at(w, 2).timer = [kind](probe&, std::uint64_t) {
      if (kind == 0)
        throw std::bad_alloc();
      if (kind == 1)
        throw kj::Exception(kj::Exception::Type::OVERLOADED, "x.c++", 1,
                            kj::heapString("calloc failed"));
      throw std::runtime_error("boom");
    };
    auto r = run(w, virtual_opts(milliseconds(10), microseconds(500)));
    EXPECT_TRUE(r.interrupted);
    EXPECT_EQ(r.out_of_memory, memory);
    EXPECT_EQ(r.failure, kind == 0   ? "out of memory (std::bad_alloc) in entity 2"
                         : kind == 1 ? "out of memory (calloc failed) in entity 2"
                                     : "boom (in entity 2)");
    // Windows from 0.1 ms, 0.5 ms long: [1.6 ms, 2.1 ms) holds the throw and
    // ran whole; nothing after it.
    EXPECT_EQ(r.reached, vtime::zero() + microseconds(2100));
    ASSERT_FALSE(at(w, 0).timers.empty());
    EXPECT_EQ(at(w, 0).timers.back().first, microseconds(2000).ns());
  }
}

// The conductor running out of memory as it grants a window stops the run
// as an entity that throws does, naming the conductor, at the end of the
// window before: it used to end the process with no outputs. The entities
// granted part of the failed window run it, then finish.
/// Four entities that tick every 100 us from 0.1 ms.
world ticking_world() {
  auto w = make_world(4);
  for (std::size_t i = 0; i < 4; ++i) {
    at(w, i).start = [](probe& p) { p.schedule(microseconds(100), 0); };
    at(w, i).timer = [](probe& p, std::uint64_t) { p.schedule(microseconds(100), 0); };
  }
  return w;
}

TEST(Kernel, AnExceptionInTheConductorStopsTheRunNamingIt) {
  // Windows are 0.5 ms long.
  auto w = ticking_world();
  auto opts = virtual_opts(milliseconds(10), microseconds(500));
  // Window 3 is [1.1 ms, 1.6 ms); entities 0 and 1 get it, 2 and 3 do not.
  opts.faults.conductor_at_window = 3;
  auto r = run(w, opts);
  EXPECT_TRUE(r.interrupted);
  EXPECT_TRUE(r.out_of_memory);
  EXPECT_EQ(r.failure, "out of memory (std::bad_alloc) in the run's conductor");
  EXPECT_EQ(r.windows, 3u);
  EXPECT_EQ(r.reached, vtime::zero() + microseconds(1100));
  for (std::size_t i = 0; i < 4; ++i) {
    ASSERT_FALSE(at(w, i).timers.empty());
    EXPECT_EQ(at(w, i).timers.back().first, microseconds(i < 2 ? 1500 : 1000).ns()) << i;
  }
}

// An entity's actor running out of memory as CAF starts it (where a
// scenario too big for the machine runs out, e.g. mesh-100k under a memory
// limit) ends the process with what, where, the advice and exit code 2: it
// used to abort as an internal error. The run cannot stop in order, since
// that actor never takes its grants.
TEST(KernelDeathTest, AnEntityOutOfMemoryAsItStartsEndsTheProcessWithExitCode2) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto w = make_world(4);
  auto opts = virtual_opts(milliseconds(1), microseconds(500));
  opts.faults.entity_start = 3;
  opts.before_exit = [] { std::fprintf(stderr, "before_exit called\n"); };
  EXPECT_EXIT(run(w, opts), ::testing::ExitedWithCode(exit_out_of_memory),
              "satemu: error: out of memory \\(std::bad_alloc\\) in entity 2: this scenario "
              "needs more memory than the process may take.*\n"
              "\\[satemu\\] the run cannot go on: no outputs written\n"
              "before_exit called\n");
  // Without the failure the same world runs to its end.
  opts.faults.entity_start = 0;
  EXPECT_FALSE(run(w, opts).interrupted);
}

// A grant the conductor fails to send (out of memory in CAF's send, which
// may have queued it for an entity CAF then never schedules) ends the
// process the same way: stopping in order, as for the conductor's own
// bookkeeping, had hung the run waiting for that entity (mesh-100k under
// ulimit -v, once in 27 runs).
TEST(KernelDeathTest, AGrantTheConductorFailsToSendEndsTheProcessWithExitCode2) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto w = ticking_world();
  auto opts = virtual_opts(milliseconds(10), microseconds(500));
  opts.faults.conductor_send_at_window = 3;
  EXPECT_EXIT(run(w, opts), ::testing::ExitedWithCode(exit_out_of_memory),
              "satemu: error: out of memory \\(std::bad_alloc\\) in the run's conductor: this "
              "scenario needs more memory than the process may take");
}

// A process without room under its address-space limit for the run's
// threads and its reserve fails as the run starts, with std::bad_alloc (the
// user's error: exit 2 from the CLI). The actor system's threads used to
// start with no room left and end the process in glibc or the allocator
// (mesh-100k under ulimit -v). The child may map 100 MiB more than it has.
TEST(KernelDeathTest, ARunWithoutRoomForItsThreadsThrowsBadAllocBeforeItStarts) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers map more address space than the limit this test sets";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto w = make_world(4);
  const auto opts = virtual_opts(milliseconds(1), microseconds(500));
  auto run_limited = [&] {
    satemu::testing::limit_address_space(100u << 20);
    try {
      run(w, opts);
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "std::bad_alloc out of run\n");
      std::_Exit(7);
    }
    std::_Exit(0);
  };
  EXPECT_EXIT(run_limited(), ::testing::ExitedWithCode(7), "std::bad_alloc out of run");
  // With no limit the same world runs.
  EXPECT_FALSE(run(w, opts).interrupted);
}

// std::bad_alloc once the entities are started, outside any actor's
// handler, ends the process with the advice and exit code 2, as out of an
// actor does, in either time mode:
// - out of one of the actor system's own threads (its scheduler's queues),
//   which had ended in the C++ runtime's std::terminate and abort;
// - in run's own thread (as it spawns the actors, sends their start, or
//   reports progress), where unwinding out of run had destroyed what the
//   running actors use (real-time mesh-100k under ulimit -v: "pure virtual
//   method called" and an abort, one run in two at 650 MiB).
TEST(KernelDeathTest, OutOfMemoryOutsideTheActorsOnceTheyRunEndsTheProcessWithExitCode2) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  using point = bool run_options::fault_points::*;
  for (const auto& [fault, where] :
       {std::pair<point, const char*>{&run_options::fault_points::thread_escape,
                                      "a thread of the run"},
        std::pair<point, const char*>{&run_options::fault_points::main_after_start,
                                      "the run's main thread"}}) {
    for (const bool real_time : {false, true}) {
      SCOPED_TRACE(absl::StrCat(where, real_time ? ", real time" : ", virtual time"));
      auto w = make_world(4);
      auto opts = real_time ? realtime_opts(milliseconds(20))
                            : virtual_opts(milliseconds(1), microseconds(500));
      opts.faults.*fault = true;
      opts.before_exit = [] { std::fprintf(stderr, "before_exit called\n"); };
      EXPECT_EXIT(run(w, opts), ::testing::ExitedWithCode(exit_out_of_memory),
                  absl::StrCat("satemu: error: out of memory \\(std::bad_alloc\\) in ", where,
                               ": this scenario needs more memory than the process may take.*\n"
                               "\\[satemu\\] the run cannot go on: no outputs written\n"
                               "before_exit called\n"));
      // Without the failure the same world runs to its end.
      opts.faults.*fault = false;
      EXPECT_FALSE(run(w, opts).interrupted);
    }
  }
}

TEST(Kernel, RunReportsTheCountersItsEntitiesCountedOrDeclared) {
  // Registered in this order, so the unused one has the lowest id and lies
  // inside every entity's counter vector.
  const counter_id unused = register_counter("test.unused");
  const counter_id declared = register_counter("test.declared");
  const counter_id counted = register_counter("test.counted");
  auto w = make_world(3);
  at(w, 0).start = [&](probe& p) {
    p.declare_counters({declared});
    p.count(counted, 2);
  };
  at(w, 1).start = [&](probe& p) { p.count(counted, 3); };
  at(w, 2).start = [&](probe& p) { p.declare_counters({counted}); };
  const auto r = run(w, virtual_opts(milliseconds(1), milliseconds(1)));
  EXPECT_EQ(r.counters.count("test.unused"), 0u);
  ASSERT_EQ(r.counters.count("test.declared"), 1u);
  EXPECT_EQ(r.counters.at("test.declared"), 0u);
  ASSERT_EQ(r.counters.count("test.counted"), 1u);
  EXPECT_EQ(r.counters.at("test.counted"), 5u);
  EXPECT_EQ(at(w, 0).counter(unused), 0u);
  EXPECT_EQ(at(w, 2).counter(counted), 0u);
  EXPECT_EQ(at(w, 1).counter(counted), 3u);
}

/// Random traffic among n entities with latencies >= lookahead; each
/// received envelope may be forwarded to a random peer.
world random_traffic_world(std::size_t n, duration lookahead) {
  auto w = make_world(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto& p = at(w, i);
    p.start = [n, lookahead](probe& self) {
      for (int k = 0; k < 3; ++k)
        self.schedule(microseconds(static_cast<std::int64_t>(self.random().below(20000))), k);
    };
    auto hop = [n, lookahead](probe& self) {
      auto dst = static_cast<entity_id>(self.random().below(n));
      auto latency = lookahead + microseconds(static_cast<std::int64_t>(self.random().below(3000)));
      self.send(dst, latency, protocol::kind::mesh, {});
    };
    p.timer = [hop](probe& self, std::uint64_t k) {
      hop(self);
      if (self.random().below(4) != 0)
        self.schedule(microseconds(static_cast<std::int64_t>(self.random().below(9000))), k);
    };
    p.receive = [hop](probe& self, const protocol::envelope& e) {
      if (e.hops < 6 && self.random().below(3) != 0)
        hop(self);
    };
  }
  return w;
}

TEST(Kernel, RandomTrafficNeverGoesBackInTime) {
  const auto lookahead = microseconds(500);
  for (std::size_t threads : {1u, 2u}) {
    auto w = random_traffic_world(200, lookahead);
    auto r = run(w, virtual_opts(milliseconds(300), lookahead, threads));
    ASSERT_FALSE(r.interrupted);
    std::uint64_t arrivals = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      EXPECT_EQ(at(w, i).backwards, 0u) << "entity " << i << " threads " << threads;
      for (const auto& a : at(w, i).arrivals) {
        EXPECT_EQ(a.now_ns, a.deliver_ns);
        EXPECT_GE(a.deliver_ns - a.send_ns, lookahead.ns());
      }
      arrivals += at(w, i).arrivals.size();
    }
    EXPECT_GT(arrivals, 1000u);
    EXPECT_EQ(r.envelopes, arrivals);
  }
}

TEST(Kernel, FingerprintIndependentOfThreadsAndRepeatable) {
  const auto lookahead = microseconds(500);
  std::vector<std::uint64_t> prints;
  for (std::size_t threads : {1u, 2u, 2u, 3u}) {
    auto w = random_traffic_world(300, lookahead);
    prints.push_back(run(w, virtual_opts(milliseconds(200), lookahead, threads)).fingerprint);
  }
  for (auto p : prints)
    EXPECT_EQ(p, prints.front());
  auto w = random_traffic_world(300, lookahead);
  auto opts = virtual_opts(milliseconds(200), lookahead, 2);
  opts.seed = 8;
  EXPECT_NE(run(w, opts).fingerprint, prints.front());
}

TEST(Kernel, TraceHoldsEveryEventInOrder) {
  const auto lookahead = microseconds(500);
  auto w = random_traffic_world(50, lookahead);
  auto opts = virtual_opts(milliseconds(100), lookahead, 2);
  opts.trace = true;
  auto r = run(w, opts);
  ASSERT_EQ(r.trace.size(), r.events);
  for (std::size_t i = 1; i < r.trace.size(); ++i)
    EXPECT_LE(r.trace[i - 1].time_ns, r.trace[i].time_ns);
}

TEST(Kernel, IdleTimeIsSkipped) {
  // Two events 1000 s apart with a 1 ms lookahead: a stepping kernel would
  // need a million windows; this one needs one per event.
  auto w = make_world(2);
  at(w, 0).start = [](probe& p) { p.schedule(seconds(1000), 1); };
  at(w, 0).timer = [](probe& p, std::uint64_t) {
    p.send(1, milliseconds(1), protocol::kind::mesh, {});
  };
  auto r = run(w, virtual_opts(seconds(2000), milliseconds(1)));
  ASSERT_EQ(at(w, 1).arrivals.size(), 1u);
  EXPECT_EQ(at(w, 1).arrivals[0].now_ns, (seconds(1000) + milliseconds(1)).ns());
  EXPECT_LE(r.windows, 3u);
  EXPECT_EQ(r.reached, vtime::zero() + seconds(2000));
}

TEST(Kernel, EventsAtOrAfterTheEndAreNotProcessed) {
  auto w = make_world(1);
  at(w, 0).start = [](probe& p) {
    p.schedule(milliseconds(9), 1);
    p.schedule(milliseconds(10), 2);
  };
  auto r = run(w, virtual_opts(milliseconds(10), milliseconds(1)));
  ASSERT_EQ(at(w, 0).timers.size(), 1u);
  EXPECT_EQ(at(w, 0).timers[0].second, 1u);
  EXPECT_EQ(r.events, 1u);
}

TEST(Kernel, StopFlagEndsTheRunAsInterrupted) {
  auto w = random_traffic_world(20, microseconds(500));
  std::atomic<bool> stop{true};
  auto opts = virtual_opts(seconds(10), microseconds(500));
  opts.stop = &stop;
  auto r = run(w, opts);
  EXPECT_TRUE(r.interrupted);
  EXPECT_LT(r.reached, opts.end);
}

// A run stopped mid-way has reached the end of its last window: every event
// before it ran (and none after), so that is how far the emulation got.
TEST(Kernel, AStoppedRunReachesTheEndOfItsLastWindow) {
  auto w = make_world(1);
  std::atomic<bool> stop{false};
  // A timer every 100 us; the one at 5 ms asks the run to stop.
  at(w, 0).start = [](probe& p) { p.schedule(microseconds(100), 0); };
  at(w, 0).timer = [&stop](probe& p, std::uint64_t) {
    if (p.now() == vtime::zero() + milliseconds(5))
      stop = true;
    p.schedule(microseconds(100), 0);
  };
  auto opts = virtual_opts(seconds(10), microseconds(500));
  opts.stop = &stop;
  auto r = run(w, opts);
  EXPECT_TRUE(r.interrupted);
  // Windows start at the first timer, 0.1 ms, and last 0.5 ms: the one
  // holding the 5 ms timer is [4.6 ms, 5.1 ms), and it ran whole.
  EXPECT_EQ(r.reached, vtime::zero() + microseconds(5100));
  ASSERT_FALSE(at(w, 0).timers.empty());
  EXPECT_EQ(at(w, 0).timers.back().first, milliseconds(5).ns());
}

// --- Compute -------------------------------------------------------------------

using test_compute::fake_job;
using test_compute::fake_service;
using test_compute::job;

TEST(KernelCompute, OneBatchPerWindowAndResultsAtRequestTimePlusDuration) {
  // Five entities ask at 100..500 us, all in the first window [100us, 1.1ms).
  auto w = make_world(5);
  struct got {
    std::int64_t ns;
    std::uint64_t output;
    std::size_t batch, batch_size;
  };
  std::vector<got> seen(5);
  for (std::size_t i = 0; i < 5; ++i) {
    at(w, i).start = [i](probe& p) {
      p.schedule(microseconds(100 * static_cast<std::int64_t>(i + 1)), 0);
    };
    at(w, i).timer = [i](probe& p, std::uint64_t) {
      p.compute(i, job(microseconds(200 * static_cast<std::int64_t>(i + 1)), i));
    };
    at(w, i).computed = [&seen](probe& p, std::uint64_t tag, compute_job& j) {
      const auto& f = dynamic_cast<fake_job&>(j);
      seen[tag] = {p.now().ns(), f.output, f.batch, f.batch_size};
    };
  }
  fake_service svc;
  auto opts = virtual_opts(milliseconds(10), milliseconds(1), 2);
  opts.compute.service = &svc;
  auto r = run(w, opts);
  ASSERT_EQ(svc.batches.size(), 1u);
  ASSERT_EQ(svc.batches[0].size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(svc.batches[0][i].first, i) << "sorted by entity";
    EXPECT_EQ(seen[i].ns, microseconds(300 * static_cast<std::int64_t>(i + 1)).ns()) << i;
    EXPECT_EQ(seen[i].output, 3 * i + 1);
    EXPECT_EQ(seen[i].batch_size, 5u);
    EXPECT_EQ(at(w, i).results.size(), 1u);
  }
  EXPECT_EQ(r.compute_requests, 5u);
  EXPECT_EQ(r.compute_batches, 1u);
  // 5 timers and 5 results.
  EXPECT_EQ(r.events, 10u);
  EXPECT_EQ(r.envelopes, 0u);
}

// A compute service that throws (out of memory, mostly) stops the run as
// an entity that throws does: at the end of that window, naming it, with no
// result of the failed batch delivered.
TEST(KernelCompute, AnExceptionInTheComputeServiceStopsTheRunNamingIt) {
  for (const bool memory : {true, false}) {
    // Entity 0 asks every 1 ms from 0.1 ms; lookahead 1 ms.
    auto w = make_world(2);
    at(w, 0).start = [](probe& p) { p.schedule(microseconds(100), 0); };
    at(w, 0).timer = [](probe& p, std::uint64_t n) {
      p.compute(n, job(microseconds(10)));
      p.schedule(milliseconds(1), n + 1);
    };
    fake_service svc;
    svc.fail_batch = 2; // the request at 2.1 ms
    svc.fail_out_of_memory = memory;
    auto opts = virtual_opts(milliseconds(10), milliseconds(1));
    opts.compute.service = &svc;
    auto r = run(w, opts);
    EXPECT_TRUE(r.interrupted);
    EXPECT_EQ(r.out_of_memory, memory);
    EXPECT_EQ(r.failure, memory ? "out of memory (std::bad_alloc) in the compute service"
                                : "boom (in the compute service)");
    // The window that asked ends where its result would have come (2.11 ms):
    // everything before that ran.
    EXPECT_EQ(r.reached, vtime::zero() + microseconds(2110));
    EXPECT_EQ(r.compute_batches, 2u);
    EXPECT_EQ(at(w, 0).results.size(), 2u);
  }
}

TEST(KernelCompute, WaitingEntityGoesOnFromItsResultInsideTheWindow) {
  // Lookahead 1 ms. Entity 0 has timers at 100 us and 500 us; at 100 us it
  // asks for 200 us of compute, and on that result for 100 us more, and on
  // that one for none at all. Every result falls inside the first window,
  // before the 500 us timer, which must come last.
  auto w = make_world(2);
  std::vector<std::pair<std::int64_t, std::string>> order;
  at(w, 0).start = [](probe& p) {
    p.schedule(microseconds(100), 1);
    p.schedule(microseconds(500), 2);
  };
  at(w, 0).timer = [&order](probe& p, std::uint64_t tag) {
    order.emplace_back(p.now().ns(), "timer" + std::to_string(tag));
    if (tag == 1) {
      p.compute(10, job(microseconds(200)));
      // A send made in the same event, after the request, still goes out.
      p.send(1, milliseconds(1), protocol::kind::mesh, {});
    }
  };
  at(w, 0).computed = [&order](probe& p, std::uint64_t tag, compute_job&) {
    order.emplace_back(p.now().ns(), "result" + std::to_string(tag));
    if (tag == 10)
      p.compute(11, job(microseconds(100)));
    else if (tag == 11)
      p.compute(12, job(duration::zero()));
  };
  fake_service svc;
  auto opts = virtual_opts(milliseconds(10), milliseconds(1));
  opts.compute.service = &svc;
  auto r = run(w, opts);
  const std::vector<std::pair<std::int64_t, std::string>> want = {
    {microseconds(100).ns(), "timer1"},  {microseconds(300).ns(), "result10"},
    {microseconds(400).ns(), "result11"}, {microseconds(400).ns(), "result12"},
    {microseconds(500).ns(), "timer2"}};
  EXPECT_EQ(order, want);
  EXPECT_EQ(at(w, 0).backwards, 0u);
  EXPECT_EQ(svc.batches.size(), 3u);
  ASSERT_EQ(at(w, 1).arrivals.size(), 1u);
  EXPECT_EQ(at(w, 1).arrivals[0].now_ns, (microseconds(100) + milliseconds(1)).ns());
  EXPECT_EQ(r.compute_requests, 3u);
}

TEST(KernelCompute, RequestsFromStartAndSeveralPerEventJoinOneBatch) {
  auto w = make_world(3);
  for (std::size_t i = 0; i < 3; ++i)
    at(w, i).start = [](probe& p) {
      p.compute(1, job(microseconds(50), 1));
      p.compute(2, job(microseconds(20), 2));
    };
  fake_service svc;
  auto opts = virtual_opts(milliseconds(5), milliseconds(1), 2);
  opts.compute.service = &svc;
  run(w, opts);
  ASSERT_EQ(svc.batches.size(), 1u);
  const std::vector<std::pair<entity_id, std::uint64_t>> want = {
    {0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}, {2, 1}};
  EXPECT_EQ(svc.batches[0], want);
  for (std::size_t i = 0; i < 3; ++i) {
    const std::vector<std::pair<std::int64_t, std::uint64_t>> results = {
      {microseconds(20).ns(), 2}, {microseconds(50).ns(), 1}};
    EXPECT_EQ(at(w, i).results, results) << i;
  }
}

/// Random traffic where a quarter of the arrivals ask for compute of up to
/// twice the lookahead, and each result is sent on to a random peer.
world random_compute_world(std::size_t n, duration lookahead) {
  auto w = random_traffic_world(n, lookahead);
  for (std::size_t i = 0; i < n; ++i) {
    auto& p = at(w, i);
    auto plain = p.receive;
    p.receive = [plain, lookahead](probe& self, const protocol::envelope& e) {
      if (self.random().below(4) == 0) {
        const auto most = static_cast<std::uint64_t>(2 * lookahead.ns());
        self.compute(e.src,
                     job(duration::from_ns(static_cast<std::int64_t>(self.random().below(most))),
                         e.seq));
      } else {
        plain(self, e);
      }
    };
    p.computed = [n, lookahead](probe& self, std::uint64_t, compute_job&) {
      self.send(static_cast<entity_id>(self.random().below(n)), lookahead, protocol::kind::mesh,
                {});
    };
  }
  return w;
}

TEST(KernelCompute, FingerprintIndependentOfThreads) {
  const auto lookahead = microseconds(500);
  std::vector<run_result> runs;
  std::vector<std::size_t> batches;
  for (std::size_t threads : {1u, 2u, 4u, 2u}) {
    auto w = random_compute_world(200, lookahead);
    fake_service svc;
    auto opts = virtual_opts(milliseconds(200), lookahead, threads);
    opts.compute.service = &svc;
    runs.push_back(run(w, opts));
    batches.push_back(svc.batches.size());
    for (std::size_t i = 0; i < w.size(); ++i)
      ASSERT_EQ(at(w, i).backwards, 0u) << "entity " << i << " threads " << threads;
  }
  EXPECT_GT(runs[0].compute_requests, 500u);
  EXPECT_GT(runs[0].compute_batches, 50u);
  EXPECT_LT(runs[0].compute_batches, runs[0].compute_requests);
  for (std::size_t k = 1; k < runs.size(); ++k) {
    EXPECT_EQ(runs[k].fingerprint, runs[0].fingerprint) << k;
    EXPECT_EQ(runs[k].events, runs[0].events) << k;
    EXPECT_EQ(runs[k].windows, runs[0].windows) << k;
    EXPECT_EQ(runs[k].compute_requests, runs[0].compute_requests) << k;
    EXPECT_EQ(batches[k], batches[0]) << k;
  }
  // Compute changed the run.
  auto w = random_traffic_world(200, lookahead);
  EXPECT_NE(run(w, virtual_opts(milliseconds(200), lookahead, 2)).fingerprint,
            runs[0].fingerprint);
}

// This run's figures as the kernel gave them before it knew compute.
constexpr std::uint64_t golden_random_traffic_fingerprint = 0x3ca478aabe733904ULL;
constexpr std::uint64_t golden_random_traffic_events = 14388;
constexpr std::uint64_t golden_random_traffic_windows = 219;

TEST(KernelCompute, NoRequestsLeaveTheRunAsItWas) {
  const auto lookahead = microseconds(500);
  auto w = random_traffic_world(300, lookahead);
  const auto plain = run(w, virtual_opts(milliseconds(200), lookahead, 2));
  EXPECT_EQ(plain.fingerprint, golden_random_traffic_fingerprint);
  EXPECT_EQ(plain.events, golden_random_traffic_events);
  EXPECT_EQ(plain.windows, golden_random_traffic_windows);
  // A compute service that is never asked changes nothing either.
  auto w2 = random_traffic_world(300, lookahead);
  fake_service svc;
  auto opts = virtual_opts(milliseconds(200), lookahead, 2);
  opts.compute.service = &svc;
  const auto with = run(w2, opts);
  EXPECT_EQ(with.fingerprint, plain.fingerprint);
  EXPECT_EQ(with.windows, plain.windows);
  EXPECT_EQ(with.compute_batches, 0u);
  EXPECT_TRUE(svc.batches.empty());
}

/// One 5 ms hop at time zero in real time. The hop is due 5 ms x dilation
/// after the run's wall-clock start, which the send itself follows by a
/// little; `wall_latency` is measured from before the run, so it is at
/// least that whatever the send's own delay (`lateness_ns` checks the due
/// time exactly).
struct realtime_hop {
  std::chrono::steady_clock::duration wall_latency;
  std::int64_t arrival_ns;
  std::size_t arrivals;
  run_result result;
};

realtime_hop run_realtime_hop(double dilation, duration end) {
  using clock = std::chrono::steady_clock;
  auto w = make_world(2);
  clock::time_point arrived_at{};
  at(w, 0).start = [&](probe& p) { p.send(1, milliseconds(5), protocol::kind::mesh, {}); };
  at(w, 1).receive = [&](probe&, const protocol::envelope&) { arrived_at = clock::now(); };
  auto o = realtime_opts(end);
  o.dilation = dilation;
  const auto before = clock::now();
  auto r = run(w, o);
  const auto& arr = at(w, 1).arrivals;
  return {arrived_at - before, arr.empty() ? -1 : arr[0].now_ns, arr.size(), std::move(r)};
}

TEST(KernelRealTime, FiveMillisecondHopIsNeverEarly) {
  auto hop = run_realtime_hop(1.0, milliseconds(50));
  ASSERT_EQ(hop.arrivals, 1u);
  EXPECT_EQ(hop.arrival_ns, milliseconds(5).ns());
  EXPECT_GE(hop.wall_latency, std::chrono::milliseconds(5));
  ASSERT_EQ(hop.result.lateness_ns.count(), 1u);
  EXPECT_GE(hop.result.lateness_ns.min(), 0);
}

TEST(KernelRealTime, DilationStretchesWallTime) {
  auto hop = run_realtime_hop(4.0, milliseconds(10));
  ASSERT_EQ(hop.arrivals, 1u);
  EXPECT_GE(hop.wall_latency, std::chrono::milliseconds(20));
  ASSERT_EQ(hop.result.lateness_ns.count(), 1u);
  EXPECT_GE(hop.result.lateness_ns.min(), 0);
  EXPECT_GE(hop.result.wall_seconds, 0.040);
}

// Two entities pass one message back and forth, 1 ms a hop, for 1 s: each
// hop is due at its own time from the run's start, so a handler's lateness
// is not passed on along the chain. Timed from each handler instead, the
// lateness grew by the handler's own lateness every hop (on a 2-core VM,
// a median of 53 ms here, and 111 hops never ran).
// A handler that runs late (here: stalls 300 ms at the hop due at 100 ms)
// makes the hops after it late until the run catches up; it does not pass
// its lateness on, as each hop is due at the run's start plus its emulated
// time. Passed on, the chain would end 300 hops short, with most hops late
// by 300 ms or more. Sent through the clock's thread even when due, a hop at
// a time, the hops fell behind for good on a busy VM (each wake-up of an
// idle thread 10 ms or more late): in 17 of 20 runs, 30 to 986 of the 999
// ran. The margins leave room for a host that pauses the process near the
// end (the hops due then do not run).
TEST(KernelRealTime, LatenessDoesNotBuildUpAlongAChain) {
  auto w = make_world(2);
  at(w, 0).start = [](probe& p) { p.send(1, milliseconds(1), protocol::kind::mesh, {}); };
  for (entity_id e : {0u, 1u})
    at(w, e).receive = [e](probe& p, const protocol::envelope& m) {
      if (p.now() == vtime::zero() + milliseconds(100))
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
      p.forward(1 - e, milliseconds(1), m);
    };
  auto o = realtime_opts(milliseconds(1000));
  auto r = run(w, o);
  // Hops arrive at 1, 2, ..., 999 ms; those due at the very end may be missed.
  const auto hops = at(w, 0).arrivals.size() + at(w, 1).arrivals.size();
  EXPECT_GE(hops, 900u);
  EXPECT_LE(hops, 999u);
  EXPECT_GE(r.lateness_ns.max(), milliseconds(250).ns()) << "the hops right after the stall";
  EXPECT_LT(r.lateness_ns.quantile(0.5), milliseconds(150).ns());
}

// A message that comes late, after one due later (here: its sender stalls
// 150 ms, so the message due at 1 ms comes after the one due at 50 ms), is
// handled at the later one's time: an entity's time never goes back (link
// queues busy into a past "now" dropped messages, and a device taken
// before it was free gave negative prefill times).
TEST(KernelRealTime, ALateMessageIsHandledWithoutTimeGoingBack) {
  auto w = make_world(3);
  at(w, 0).start = [](probe& p) { p.send(2, milliseconds(50), protocol::kind::mesh, {}); };
  at(w, 1).start = [](probe& p) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    p.send(2, milliseconds(1), protocol::kind::mesh, {});
  };
  auto r = run(w, realtime_opts(milliseconds(400)));
  const auto& got = at(w, 2).arrivals;
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].src, 0u);
  EXPECT_EQ(got[0].now_ns, milliseconds(50).ns());
  EXPECT_EQ(got[1].src, 1u);
  EXPECT_EQ(got[1].now_ns, milliseconds(50).ns());
  EXPECT_EQ(got[1].send_ns, 0);
  EXPECT_EQ(at(w, 2).backwards, 0u);
  // Its lateness is counted from when it was due.
  EXPECT_GE(r.lateness_ns.max(), milliseconds(100).ns());
}

// In real time too, an entity that throws (out of memory) stops the run,
// within the 100 ms the run's loop looks, naming the entity; the other
// entities' events stop with it.
TEST(KernelRealTime, AnExceptionInAnEntityStopsTheRun) {
  auto w = make_world(2);
  at(w, 0).start = [](probe& p) { p.schedule(milliseconds(1), 0); };
  at(w, 0).timer = [](probe& p, std::uint64_t) { p.schedule(milliseconds(1), 0); };
  at(w, 1).start = [](probe& p) { p.schedule(milliseconds(50), 1); };
  at(w, 1).timer = [](probe&, std::uint64_t) { throw std::bad_alloc(); };
  auto o = realtime_opts(seconds(10));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run(w, o);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_TRUE(r.interrupted);
  EXPECT_TRUE(r.out_of_memory);
  EXPECT_EQ(r.failure, "out of memory (std::bad_alloc) in entity 1");
  EXPECT_LT(r.reached, vtime::zero() + seconds(5));
  ASSERT_FALSE(at(w, 0).timers.empty());
  EXPECT_LT(at(w, 0).timers.back().first, milliseconds(5000).ns());
}

TEST(KernelRealTime, ComputeRequestsBatchUpToTheMaximum) {
  // Three entities ask at time zero; the batch runs when the third arrives
  // (the wall-time window is far longer than the run).
  auto w = make_world(3);
  for (std::size_t i = 0; i < 3; ++i)
    at(w, i).start = [i](probe& p) { p.compute(i, job(milliseconds(2), i)); };
  fake_service svc;
  auto o = realtime_opts(milliseconds(60));
  o.compute.service = &svc;
  o.compute.realtime_max_batch = 3;
  o.compute.realtime_window = std::chrono::seconds(60);
  auto r = run(w, o);
  ASSERT_EQ(svc.batches.size(), 1u);
  EXPECT_EQ(svc.batches[0].size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const std::vector<std::pair<std::int64_t, std::uint64_t>> want = {{milliseconds(2).ns(), i}};
    EXPECT_EQ(at(w, i).results, want) << i;
  }
  EXPECT_EQ(r.compute_requests, 3u);
  EXPECT_EQ(r.lateness_ns.count(), 3u);
  EXPECT_GE(r.lateness_ns.min(), 0);
}

TEST(KernelRealTime, AnExceptionInTheComputeServiceStopsTheRun) {
  auto w = make_world(1);
  at(w, 0).start = [](probe& p) { p.compute(7, job(milliseconds(1), 1)); };
  fake_service svc;
  svc.fail_batch = 0;
  auto o = realtime_opts(seconds(10));
  o.compute.service = &svc;
  o.compute.realtime_window = std::chrono::milliseconds(5);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run(w, o);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_TRUE(r.interrupted);
  EXPECT_TRUE(r.out_of_memory);
  EXPECT_EQ(r.failure, "out of memory (std::bad_alloc) in the compute service");
  EXPECT_TRUE(at(w, 0).results.empty());
}

TEST(KernelRealTime, ComputeBatchRunsAfterItsWindow) {
  // One request, a batch of up to 64: it runs when its window closes.
  auto w = make_world(1);
  at(w, 0).start = [](probe& p) { p.compute(7, job(milliseconds(1), 1)); };
  std::uint64_t output = 0;
  at(w, 0).computed = [&output](probe&, std::uint64_t, compute_job& j) {
    output = dynamic_cast<fake_job&>(j).output;
  };
  fake_service svc;
  auto o = realtime_opts(milliseconds(60));
  o.compute.service = &svc;
  o.compute.realtime_window = std::chrono::milliseconds(5);
  run(w, o);
  ASSERT_EQ(svc.batches.size(), 1u);
  const std::vector<std::pair<std::int64_t, std::uint64_t>> want = {{milliseconds(1).ns(), 7}};
  EXPECT_EQ(at(w, 0).results, want);
  EXPECT_EQ(output, 4u);
}

// A batch still running when the run ends answers entities that have ended,
// which drop the results; the run waits for it. (The entities' actors went
// first, and the answer went to a freed actor: "pure virtual method called"
// in 4 of 60 real-time SkyMemory runs on a busy VM.)
TEST(KernelRealTime, ABatchRunningAtTheEndAnswersEndedEntities) {
  auto w = make_world(2);
  for (std::size_t i = 0; i < 2; ++i)
    at(w, i).start = [i](probe& p) { p.compute(i, job(milliseconds(1), i)); };
  fake_service svc;
  svc.wall_time = std::chrono::milliseconds(200);
  auto o = realtime_opts(milliseconds(20));
  o.compute.service = &svc;
  o.compute.realtime_max_batch = 2;
  const auto r = run(w, o);
  EXPECT_FALSE(r.interrupted) << r.failure;
  EXPECT_EQ(svc.batches.size(), 1u);
  EXPECT_EQ(r.compute_requests, 2u);
  EXPECT_TRUE(at(w, 0).results.empty());
  EXPECT_TRUE(at(w, 1).results.empty());
}

} // namespace
} // namespace satemu::runtime
