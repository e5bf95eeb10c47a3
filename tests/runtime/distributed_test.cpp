// Distributed runs without the satemu binary: the byte format, envelope
// batches crossing nodes (round trip, every truncation, hostile values), the
// partition, and whole runs of a test workload over two in-process worker
// nodes against the same run in one process. The command-line run over
// worker processes is tested in tests/cli/distributed_test.cpp.
#include "runtime/distributed.hpp"

#include <chrono>
#include <limits>
#include <random>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "protocol/bytes.hpp"
#include "protocol/envelope_batch.hpp"
#include "protocol/payload.hpp"
#include "runtime/histogram.hpp"
#include "runtime/kernel.hpp"
#include "runtime/node.hpp"
#include "fake_compute.hpp"

namespace satemu::runtime {
namespace {

using namespace std::chrono_literals;

bool contains(const absl::Status& st, const std::string& needle) {
  return std::string(st.message()).find(needle) != std::string::npos;
}

// --- bytes -------------------------------------------------------------------

TEST(bytes, round_trip_every_type) {
  std::string buf;
  protocol::byte_writer w(buf);
  w.u8(0xab);
  w.u16(0xbeef);
  w.u32(0xdeadbeef);
  w.u64(~std::uint64_t{0} - 5);
  w.i64(-42);
  w.f64(-0.1);
  w.bytes("hello");
  w.bytes("");
  EXPECT_EQ(buf.size(), 1u + 2 + 4 + 8 + 8 + 8 + 4 + 5 + 4);
  protocol::byte_reader r(buf);
  EXPECT_EQ(r.u8("a"), 0xab);
  EXPECT_EQ(r.u16("b"), 0xbeef);
  EXPECT_EQ(r.u32("c"), 0xdeadbeefu);
  EXPECT_EQ(r.u64("d"), ~std::uint64_t{0} - 5);
  EXPECT_EQ(r.i64("e"), -42);
  EXPECT_EQ(r.f64("f"), -0.1);
  EXPECT_EQ(r.bytes("g"), "hello");
  EXPECT_EQ(r.bytes("h"), "");
  EXPECT_TRUE(r.at_end());
  r.expect_end("all");
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST(bytes, little_endian_on_the_wire) {
  std::string buf;
  protocol::byte_writer(buf).u32(0x01020304);
  EXPECT_EQ(buf, std::string("\x04\x03\x02\x01", 4));
}

TEST(bytes, failures_stick_and_name_the_field) {
  std::string buf;
  protocol::byte_writer(buf).u32(100); // announces 100 bytes, has none
  protocol::byte_reader r(buf);
  EXPECT_EQ(r.bytes("payload"), "");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status(), "truncated payload")) << r.status();
  EXPECT_EQ(r.u64("later"), 0u);
  EXPECT_TRUE(contains(r.status(), "payload")) << "the first failure is kept";

  std::string c;
  protocol::byte_writer(c).u64(1'000'000);
  protocol::byte_reader rc(c);
  EXPECT_EQ(rc.count("items", 8), 0u);
  EXPECT_TRUE(contains(rc.status(), "does not fit")) << rc.status();

  std::string t = "abc";
  protocol::byte_reader rt(t);
  rt.expect_end("x");
  EXPECT_TRUE(contains(rt.status(), "3 trailing bytes")) << rt.status();
}

TEST(bytes, histogram_round_trips_exactly) {
  histogram h;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 5000; ++i)
    h.record(static_cast<std::int64_t>(rng() % 10'000'000'000ULL));
  std::string buf;
  protocol::byte_writer w(buf);
  h.save(w);
  histogram back;
  protocol::byte_reader r(buf);
  back.load(r);
  r.expect_end("histogram");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(back.count(), h.count());
  EXPECT_EQ(back.mean(), h.mean()) << "the sum must survive exactly";
  for (double q : {0.0, 0.1, 0.5, 0.9, 0.99, 1.0})
    EXPECT_EQ(back.quantile(q), h.quantile(q)) << q;
  EXPECT_EQ(back.min(), h.min());
  EXPECT_EQ(back.max(), h.max());
}

// --- envelope batches --------------------------------------------------------------

std::vector<protocol::routed_envelope> sample_batch() {
  std::vector<protocol::routed_envelope> b;
  for (std::uint32_t i = 0; i < 5; ++i) {
    protocol::routed_envelope r;
    r.hop = i + 1;
    r.from = 9 - i;
    r.env.src = i;
    r.env.dst = 7;
    r.env.send_ns = 1000 * i;
    r.env.deliver_ns = 1000 * i + 5000;
    r.env.seq = 100 + i;
    r.env.hops = static_cast<std::uint16_t>(i);
    r.env.k = protocol::kind::mesh;
    if (i % 2 == 0)
      r.env.body = protocol::payload::build_words(i + 1, [&](std::span<std::uint64_t> w) {
        for (std::size_t j = 0; j < w.size(); ++j)
          w[j] = 0x0101010101010101ULL * (i + j);
      });
    b.push_back(std::move(r));
  }
  return b;
}

TEST(envelope_batch, round_trips) {
  const auto batch = sample_batch();
  std::string bytes;
  protocol::encode_envelopes(batch, bytes);
  std::vector<protocol::routed_envelope> back;
  ASSERT_TRUE(protocol::decode_envelopes(bytes, 10, back).ok());
  EXPECT_EQ(back, batch);
}

TEST(envelope_batch, splits_into_parts_no_bigger_than_asked) {
  const auto batch = sample_batch();
  auto encoded_size = [](std::span<const protocol::routed_envelope> part) {
    std::string bytes;
    protocol::encode_envelopes(part, bytes);
    return bytes.size();
  };
  const auto whole = encoded_size(batch);
  std::size_t most_parts = 0;
  for (std::size_t max = 1; max <= whole + 8; ++max) {
    const auto parts = protocol::split_envelopes(batch, max);
    std::vector<protocol::routed_envelope> joined;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      ASSERT_FALSE(parts[i].empty()) << max;
      // Within the limit unless one envelope alone exceeds it; and as full
      // as the limit allows: the next envelope would not have fit.
      if (parts[i].size() > 1) {
        EXPECT_LE(encoded_size(parts[i]), max) << max << ", part " << i;
      }
      if (i + 1 < parts.size()) {
        std::vector<protocol::routed_envelope> more(parts[i].begin(), parts[i].end());
        more.push_back(parts[i + 1].front());
        EXPECT_GT(encoded_size(more), max) << max << ", part " << i;
      }
      joined.insert(joined.end(), parts[i].begin(), parts[i].end());
    }
    EXPECT_EQ(joined, batch) << max;
    most_parts = std::max(most_parts, parts.size());
    if (max >= whole) {
      EXPECT_EQ(parts.size(), 1u) << max;
    }
  }
  EXPECT_EQ(most_parts, batch.size());
  EXPECT_TRUE(protocol::split_envelopes({}, 100).empty());
}

TEST(envelope_batch, every_truncation_and_extension_is_rejected) {
  std::string bytes;
  protocol::encode_envelopes(sample_batch(), bytes);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    std::vector<protocol::routed_envelope> out;
    EXPECT_FALSE(protocol::decode_envelopes(std::string_view(bytes).substr(0, n), 10, out).ok())
      << "prefix of " << n << " bytes";
  }
  std::vector<protocol::routed_envelope> out;
  auto st = protocol::decode_envelopes(bytes + "x", 10, out);
  EXPECT_TRUE(contains(st, "trailing")) << st;
}

TEST(envelope_batch, hostile_values_are_rejected) {
  std::vector<protocol::routed_envelope> out;
  std::string bytes;
  protocol::encode_envelopes(sample_batch(), bytes);
  auto st = protocol::decode_envelopes(bytes, 5, out); // entity 9 sends the first
  EXPECT_TRUE(contains(st, "envelope 0 names entity 9 of a run with 5 entities")) << st;
  out.clear();
  st = protocol::decode_envelopes(bytes, 0, out);
  EXPECT_TRUE(contains(st, "names entity 1 of a run with 0 entities")) << st;

  auto b = sample_batch();
  b[1].env.deliver_ns = b[1].env.send_ns - 1;
  bytes.clear();
  protocol::encode_envelopes(b, bytes);
  out.clear();
  st = protocol::decode_envelopes(bytes, 10, out);
  EXPECT_TRUE(contains(st, "before it was sent")) << st;

  // A payload of 12 bytes is not a Cap'n Proto message.
  std::string odd;
  protocol::byte_writer w(odd);
  w.u64(1);
  for (int i = 0; i < 4; ++i)
    w.u32(1);
  w.i64(0);
  w.i64(10);
  w.u64(0);
  w.u32(0);
  w.u16(1);
  w.bytes(std::string(12, 'x'));
  out.clear();
  st = protocol::decode_envelopes(odd, 10, out);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(contains(st, "envelope 0")) << st;

  // A count far beyond the bytes is refused before allocating.
  std::string huge;
  protocol::byte_writer(huge).u64(~std::uint64_t{0});
  out.clear();
  st = protocol::decode_envelopes(huge, 10, out);
  EXPECT_TRUE(contains(st, "does not fit")) << st;
}

// A valid batch with a few bytes changed: what decodes is exactly what it
// encodes back to (nothing is read but kept, nothing made up), and what does
// not decode says why. Under the sanitizers this also shows no byte read out
// of bounds.
TEST(envelope_batch, changed_bytes_decode_exactly_or_are_refused) {
  std::string valid;
  protocol::encode_envelopes(sample_batch(), valid);
  std::mt19937_64 rng(11);
  int accepted = 0, refused = 0;
  for (int rep = 0; rep < 4000; ++rep) {
    std::string bytes = valid;
    for (std::uint64_t k = 0, n = 1 + rng() % 3; k < n; ++k)
      bytes[rng() % bytes.size()] = static_cast<char>(rng());
    if (rep % 4 == 0)
      bytes.resize(rng() % (bytes.size() + 1));
    std::vector<protocol::routed_envelope> out;
    const auto st = protocol::decode_envelopes(bytes, 10, out);
    if (st.ok()) {
      ++accepted;
      std::string again;
      protocol::encode_envelopes(out, again);
      EXPECT_EQ(again, bytes) << "rep " << rep;
    } else {
      ++refused;
      EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_FALSE(st.message().empty());
    }
  }
  // Both sides were exercised (most changes land in times, ids or payload).
  EXPECT_GT(accepted, 100);
  EXPECT_GT(refused, 100);
}

// --- partition ---------------------------------------------------------------

TEST(partition, keeps_groups_whole_and_balances) {
  // 10 planes of 10, then 4 ground endpoints placed with planes 0, 9, 9, 5.
  std::vector<std::uint32_t> g;
  for (std::uint32_t p = 0; p < 10; ++p)
    for (int i = 0; i < 10; ++i)
      g.push_back(p);
  for (std::uint32_t p : {0u, 9u, 9u, 5u})
    g.push_back(p);
  const auto n = partition_groups(g, 3);
  ASSERT_EQ(n.size(), g.size());
  std::vector<std::size_t> count(3, 0);
  for (std::size_t i = 0; i < g.size(); ++i) {
    ++count[n[i]];
    // Same group, same node.
    for (std::size_t j = 0; j < i; ++j) {
      if (g[i] == g[j]) {
        ASSERT_EQ(n[i], n[j]) << i << " " << j;
      }
    }
  }
  // Contiguous in group order, every node used, about a third each.
  for (std::size_t i = 1; i < 100; ++i)
    EXPECT_LE(n[i - 1], n[i]);
  for (auto c : count) {
    EXPECT_GE(c, 20u);
    EXPECT_LE(c, 50u);
  }
}

TEST(partition, one_node_or_few_groups) {
  std::vector<std::uint32_t> g{4, 4, 4, 7, 7};
  EXPECT_EQ(partition_groups(g, 1), (std::vector<std::uint32_t>{0, 0, 0, 0, 0}));
  const auto n = partition_groups(g, 4);
  EXPECT_EQ(n[0], n[2]);
  EXPECT_EQ(n[3], n[4]);
  EXPECT_NE(n[0], n[3]);
  // Every entity alone: runs of consecutive ids.
  std::vector<std::uint32_t> ids(9);
  for (std::uint32_t i = 0; i < 9; ++i)
    ids[i] = i;
  EXPECT_EQ(partition_groups(ids, 3), (std::vector<std::uint32_t>{0, 0, 0, 1, 1, 1, 2, 2, 2}));
}

// --- whole runs -----------------------------------------------------------------

/// Sends messages to random entities, which forward some of them once more:
/// every event depends on the order of the ones before it. With `computes`,
/// a third of its timers ask for compute (up to 3 ms of it) instead of
/// sending, and each result is sent on.
class chatter final : public entity {
public:
  explicit chatter(std::uint32_t n, bool computes = false) : n_(n), computes_(computes) {
  }

  void save_results(protocol::byte_writer& w) const override {
    w.u64(received_);
    w.u64(digest_);
    delay_.save(w);
  }
  void load_results(protocol::byte_reader& r) override {
    received_ = r.u64("received");
    digest_ = r.u64("digest");
    delay_.load(r);
  }

  std::uint64_t received_ = 0;
  std::uint64_t digest_ = 0;
  histogram delay_;

protected:
  void on_start() override { schedule(microseconds(random().below(1000)), 0); }
  void on_timer(std::uint64_t) override {
    if (computes_ && random().below(3) == 0) {
      compute(0, test_compute::job(microseconds(random().below(3000)), now().ns()));
      schedule(microseconds(200 + random().below(800)), 0);
      return;
    }
    const auto dst = static_cast<entity_id>(random().below(n_));
    send(dst, milliseconds(1) + microseconds(random().below(3000)), protocol::kind::mesh, nullptr);
    schedule(microseconds(200 + random().below(800)), 0);
  }
  void on_compute(std::uint64_t, std::unique_ptr<compute_job> job) override {
    const auto& j = dynamic_cast<const test_compute::fake_job&>(*job);
    digest_ = digest_ * 31 + j.output + static_cast<std::uint64_t>(now().ns());
    send(static_cast<entity_id>(random().below(n_)), milliseconds(1), protocol::kind::mesh,
         nullptr);
  }
  void on_envelope(protocol::envelope& e) override {
    ++received_;
    digest_ = digest_ * 31 + e.src * 7 + static_cast<std::uint64_t>(now().ns());
    delay_.record(now().ns() - e.send_ns);
    if (e.hops == 0 && random().below(3) == 0)
      forward(static_cast<entity_id>(random().below(n_)), milliseconds(1), std::move(e));
  }

private:
  std::uint32_t n_;
  bool computes_;
};

std::vector<std::unique_ptr<entity>> make_chatter(std::uint32_t n, bool computes = false) {
  std::vector<std::unique_ptr<entity>> v;
  for (std::uint32_t i = 0; i < n; ++i)
    v.push_back(std::make_unique<chatter>(n, computes));
  return v;
}

constexpr std::uint32_t chatter_entities = 40;
constexpr std::int64_t chatter_end_ns = 300'000'000; // 0.3 s

hosted_run build_chatter(bool computes = false) {
  // Each node has its own compute service, as each has its own GPU worker.
  struct owned_run {
    std::vector<std::unique_ptr<entity>> entities;
    test_compute::fake_service compute;
  };
  auto owned = std::make_shared<owned_run>();
  owned->entities = make_chatter(chatter_entities, computes);
  hosted_run h;
  h.entities = &owned->entities;
  if (computes)
    h.compute = &owned->compute;
  h.lookahead_ns = milliseconds(1).ns();
  h.end_ns = chatter_end_ns;
  h.seed = 5;
  h.workload_state = [] { return std::string("state"); };
  h.owner = owned;
  return h;
}

std::unique_ptr<worker_node> start_worker(const std::string& secret,
                                          std::shared_ptr<std::vector<std::string>> log = nullptr,
                                          bool computes = false) {
  worker_options o;
  o.secret = secret;
  o.node.threads = 2;
  o.build_run = [computes](const std::string&) -> absl::StatusOr<hosted_run> {
    return build_chatter(computes);
  };
  auto mu = std::make_shared<std::mutex>();
  o.log = [log, mu](const std::string& line) {
    if (log) {
      std::lock_guard<std::mutex> g(*mu);
      log->push_back(line);
    }
  };
  auto w = worker_node::start(std::move(o));
  EXPECT_TRUE(w.ok()) << w.status();
  return std::make_unique<worker_node>(std::move(*w));
}

/// A coordinator's options for the chatter run `opts` over workers w1 and
/// w2, each hosting a run of consecutive ids.
coordinator_options two_node_run(const worker_node& w1, const worker_node& w2,
                                 const std::string& secret, const run_options& opts) {
  coordinator_options co;
  co.workers = {w1.address(), w2.address()};
  co.secret = secret;
  co.scenario_yaml = "unused by the test builder";
  std::vector<std::uint32_t> ids(chatter_entities);
  for (std::uint32_t i = 0; i < chatter_entities; ++i)
    ids[i] = i;
  co.node_of = partition_groups(ids, 2);
  co.end = opts.end;
  co.lookahead = opts.lookahead;
  return co;
}

/// The coordinated run as one process reports it: the workers' final entity
/// states loaded into fresh chatter twins, whose tallies complete the result.
struct twin_run {
  std::vector<std::unique_ptr<entity>> twins;
  run_result result;
};
twin_run load_twins(const coordinated_run& cr, const coordinator_options& co, bool computes) {
  twin_run t{make_chatter(chatter_entities, computes), cr.result};
  EXPECT_EQ(cr.entity_states.size(), 2u);
  for (std::uint32_t k = 0; k < cr.entity_states.size(); ++k) {
    auto st = load_entity_states(cr.entity_states[k], t.twins, co.node_of, k);
    EXPECT_TRUE(st.ok()) << st;
  }
  tally_entities(t.twins, t.result);
  return t;
}

TEST(distributed, two_nodes_give_the_single_process_run) {
  // One process.
  auto ref = make_chatter(chatter_entities);
  run_options opts;
  opts.end = vtime::from_ns(chatter_end_ns);
  opts.lookahead = milliseconds(1);
  opts.seed = 5;
  opts.threads = 2;
  const auto single = run(ref, opts);
  ASSERT_GT(single.envelopes, 1000u);

  // Two worker nodes; the coordinator's twins get their states.
  const std::string secret = "a secret of enough bytes";
  auto w1 = start_worker(secret);
  auto w2 = start_worker(secret);
  const auto co = two_node_run(*w1, *w2, secret, opts);
  auto cr = coordinate(co);
  ASSERT_TRUE(cr.failure.ok()) << cr.failure;
  ASSERT_EQ(cr.entity_states.size(), 2u);
  EXPECT_EQ(cr.workload_states, (std::vector<std::string>{"state", "state"}));
  auto [twins, dist] = load_twins(cr, co, false);
  EXPECT_EQ(dist.fingerprint, single.fingerprint);
  EXPECT_EQ(dist.events, single.events);
  EXPECT_EQ(dist.envelopes, single.envelopes);
  EXPECT_EQ(dist.windows, single.windows);
  EXPECT_EQ(dist.reached, single.reached);
  EXPECT_FALSE(dist.interrupted);
  for (std::uint32_t i = 0; i < chatter_entities; ++i) {
    const auto& a = static_cast<const chatter&>(*ref[i]);
    const auto& b = static_cast<const chatter&>(*twins[i]);
    EXPECT_EQ(a.received_, b.received_) << i;
    EXPECT_EQ(a.digest_, b.digest_) << i;
    EXPECT_EQ(a.delay_.mean(), b.delay_.mean()) << i;
  }
  // Traffic crossed nodes, and each node hosted its half.
  EXPECT_GT(cr.cross_envelopes, 100u);
  ASSERT_EQ(cr.nodes.size(), 2u);
  EXPECT_EQ(cr.nodes[0].entities + cr.nodes[1].entities, chatter_entities);
  EXPECT_EQ(cr.nodes[0].events + cr.nodes[1].events, single.events);
  EXPECT_GT(cr.nodes[0].cross_envelopes, 0u);
  EXPECT_EQ(w1->wait(5s).code(), absl::StatusCode::kOk);
  EXPECT_EQ(w2->wait(5s).code(), absl::StatusCode::kOk);
}

TEST(distributed, two_nodes_with_compute_give_the_single_process_run) {
  // Requests stay on their node (each node's own service runs them), and
  // results do not depend on the batch: the run is the single-process run.
  auto ref = make_chatter(chatter_entities, true);
  test_compute::fake_service svc;
  run_options opts;
  opts.end = vtime::from_ns(chatter_end_ns);
  opts.lookahead = milliseconds(1);
  opts.seed = 5;
  opts.threads = 2;
  opts.compute.service = &svc;
  const auto single = run(ref, opts);
  ASSERT_GT(single.compute_requests, 1000u);
  ASSERT_GT(single.envelopes, 1000u);

  const std::string secret = "a secret of enough bytes";
  auto w1 = start_worker(secret, nullptr, true);
  auto w2 = start_worker(secret, nullptr, true);
  const auto co = two_node_run(*w1, *w2, secret, opts);
  auto cr = coordinate(co);
  ASSERT_TRUE(cr.failure.ok()) << cr.failure;
  auto [twins, dist] = load_twins(cr, co, true);
  EXPECT_EQ(dist.fingerprint, single.fingerprint);
  EXPECT_EQ(dist.events, single.events);
  EXPECT_EQ(dist.envelopes, single.envelopes);
  EXPECT_EQ(dist.windows, single.windows);
  for (std::uint32_t i = 0; i < chatter_entities; ++i)
    EXPECT_EQ(static_cast<const chatter&>(*ref[i]).digest_,
              static_cast<const chatter&>(*twins[i]).digest_)
      << i;
  // Without compute the same chatter is another run.
  auto plain = make_chatter(chatter_entities, false);
  opts.compute.service = nullptr;
  EXPECT_NE(run(plain, opts).fingerprint, single.fingerprint);
  EXPECT_EQ(w1->wait(5s).code(), absl::StatusCode::kOk);
  EXPECT_EQ(w2->wait(5s).code(), absl::StatusCode::kOk);
}

TEST(distributed, states_for_another_node_are_rejected) {
  auto e = make_chatter(4);
  std::vector<std::uint32_t> node_of{0, 0, 1, 1};
  const auto bytes = save_entity_states(e, node_of, 0);
  auto st = load_entity_states(bytes, e, node_of, 1);
  EXPECT_TRUE(contains(st, "entity 0 is not hosted by node 1")) << st;
  st = load_entity_states(bytes.substr(0, bytes.size() - 1), e, node_of, 0);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(load_entity_states(bytes, e, node_of, 0).ok());
  // States that leave out an entity the node hosts (entity 1) are refused.
  const std::vector<std::uint32_t> other_split{0, 1, 1, 1};
  const auto short_of_one = save_entity_states(e, other_split, 0);
  st = load_entity_states(short_of_one, e, node_of, 0);
  EXPECT_TRUE(contains(st, "entity 1, hosted by node 0, is missing")) << st;
}

TEST(distributed, a_malformed_grant_aborts_the_run_and_the_worker_survives) {
  const std::string secret = "another secret of enough bytes";
  auto log = std::make_shared<std::vector<std::string>>();
  auto w = start_worker(secret, log);
  auto link = worker_link::connect(w->address(), secret, 5000ms);
  ASSERT_TRUE(link.ok()) << link.status();
  std::vector<std::uint32_t> node_of(chatter_entities, 0);
  ASSERT_TRUE(link->send(protocol::node_setup{"x", 0, 1, node_of, 1}).ok());
  auto m = link->receive(10000ms);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(std::holds_alternative<protocol::node_ready>(*m)) << protocol::node_kind_name(*m);
  m = link->receive(10000ms);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(std::holds_alternative<protocol::node_report>(*m)) << protocol::node_kind_name(*m);
  // A grant whose envelope batch is cut short.
  std::string bytes;
  protocol::encode_envelopes(sample_batch(), bytes);
  protocol::node_grant g;
  g.window_end = 1'000'000;
  g.batches = {bytes.substr(0, bytes.size() - 3)};
  ASSERT_TRUE(link->send(g).ok());
  m = link->receive(10000ms);
  ASSERT_TRUE(m.ok()) << m.status();
  auto* abort = std::get_if<protocol::node_abort>(&*m);
  ASSERT_NE(abort, nullptr) << protocol::node_kind_name(*m);
  EXPECT_NE(abort->reason.find("malformed envelope batch"), std::string::npos) << abort->reason;
  // The worker still answers.
  ASSERT_TRUE(link->send(protocol::node_ping{1, "alive?"}).ok());
  m = link->receive(10000ms);
  ASSERT_TRUE(m.ok()) << m.status();
  auto* pong = std::get_if<protocol::node_pong>(&*m);
  ASSERT_NE(pong, nullptr) << protocol::node_kind_name(*m);
  EXPECT_EQ(pong->data, "alive?");
  EXPECT_TRUE(link->close(5000ms).ok());
  // The session ended with its run aborted: not the success of a run whose
  // results went out (`satemu worker` exits 3, not 0).
  const auto ended = w->wait(5000ms);
  EXPECT_EQ(ended.code(), absl::StatusCode::kAborted) << ended;
  EXPECT_NE(ended.message().find("before the run completed (aborted: a grant carried a malformed "
                                 "envelope batch"),
            std::string::npos)
    << ended;
  bool logged = false;
  for (const auto& line : *log)
    logged = logged || line.find("malformed envelope batch") != std::string::npos;
  EXPECT_TRUE(logged);
}

/// The reason the worker at the end of `link` gives for refusing a setup
/// of the chatter run on one node with `threads` threads, or what it did
/// instead, in parentheses.
std::string refusal(worker_link& link, std::uint32_t threads) {
  std::vector<std::uint32_t> node_of(chatter_entities, 0);
  if (auto sent = link.send(protocol::node_setup{"x", 0, 1, node_of, threads}); !sent.ok())
    return absl::StrCat("(setup not sent: ", sent.message(), ")");
  auto m = link.receive(10000ms);
  if (!m.ok())
    return absl::StrCat("(no answer: ", m.status().message(), ")");
  const auto* refused = std::get_if<protocol::node_refused>(&*m);
  if (refused == nullptr)
    return absl::StrCat("(", std::string(protocol::node_kind_name(*m)), ")");
  return refused->reason;
}

// A coordinator's thread count is bounded as the scenario's is: 5,000
// threads are refused, not started (or hung on).
TEST(distributed, a_setup_asking_for_too_many_threads_is_refused) {
  const std::string secret = "a secret for the thread count";
  auto w = start_worker(secret);
  auto link = worker_link::connect(w->address(), secret, 5000ms);
  ASSERT_TRUE(link.ok()) << link.status();
  EXPECT_EQ(refusal(*link, 5000), "the coordinator asks for 5000 threads, more than 1024");
  EXPECT_TRUE(link->close(5000ms).ok());
}

// A scenario too big for a worker's memory is refused with the advice, as
// one process refuses it, and the worker goes on answering. Out of memory
// as it built had ended the worker in std::terminate, and the run's thread
// starting with no room left in a segfault in the allocator (mesh-100k over
// two workers, one under ulimit -v 280 to 330 MiB).
TEST(distributed, a_scenario_too_big_for_a_worker_is_refused) {
  const std::string secret = "a secret for the big scenario";
  for (const bool no_room : {false, true}) {
    SCOPED_TRACE(no_room ? "no room for the run's thread" : "out of memory as it builds");
    worker_options o;
    o.secret = secret;
    o.node.threads = 1;
    o.build_run = [](const std::string&) -> absl::StatusOr<hosted_run> {
      throw std::bad_alloc();
    };
    if (no_room) {
      // More address space than any process has: the setup is refused
      // before the build is called.
      o.run_room_bytes = std::numeric_limits<std::size_t>::max() / 2;
    }
    o.log = [](const std::string&) {};
    auto w = worker_node::start(std::move(o));
    ASSERT_TRUE(w.ok()) << w.status();
    auto link = worker_link::connect(w->address(), secret, 5000ms);
    ASSERT_TRUE(link.ok()) << link.status();
    EXPECT_EQ(refusal(*link, 1),
              absl::StrCat(no_room ? "out of memory on this worker as the run started: "
                                   : "out of memory building the scenario on this worker: ",
                           out_of_memory_advice));
    ASSERT_TRUE(link->send(protocol::node_ping{1, "alive?"}).ok());
    auto m = link->receive(10000ms);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_NE(std::get_if<protocol::node_pong>(&*m), nullptr) << protocol::node_kind_name(*m);
    EXPECT_TRUE(link->close(5000ms).ok());
  }
}

// A worker stopped while it builds the scenario (making model weights takes
// seconds) ends at once, telling its coordinator why; the build is left to
// finish behind it (before, the worker waited for it).
TEST(distributed, a_worker_stopped_while_it_builds_does_not_wait_for_the_build) {
  const std::string secret = "a secret for the slow build";
  auto building = std::make_shared<std::atomic<bool>>(false);
  worker_options o;
  o.secret = secret;
  o.node.threads = 1;
  o.build_run = [building](const std::string&) -> absl::StatusOr<hosted_run> {
    building->store(true);
    std::this_thread::sleep_for(3000ms);
    return build_chatter(false);
  };
  o.log = [](const std::string&) {};
  auto w = worker_node::start(std::move(o));
  ASSERT_TRUE(w.ok()) << w.status();
  auto link = worker_link::connect(w->address(), secret, 5000ms);
  ASSERT_TRUE(link.ok()) << link.status();
  std::vector<std::uint32_t> node_of(chatter_entities, 0);
  ASSERT_TRUE(link->send(protocol::node_setup{"x", 0, 1, node_of, 1}).ok());
  const auto deadline = std::chrono::steady_clock::now() + 5000ms;
  while (!building->load() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(building->load());
  const auto t0 = std::chrono::steady_clock::now();
  w->stop("stopped by the test");
  { auto ending = std::move(*w); }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
  auto m = link->receive(5000ms);
  ASSERT_TRUE(m.ok()) << m.status();
  auto* abort = std::get_if<protocol::node_abort>(&*m);
  ASSERT_NE(abort, nullptr) << protocol::node_kind_name(*m);
  EXPECT_EQ(abort->reason, "stopped by the test");
}

/// What worker node 0 of 2 (entities 0..19; 20..39 on node 1) answers to
/// its first grant, from `start` (4 ms: the 1 ms lookahead) to 5 ms,
/// carrying `batch`: the kind of the answer, and an abort's reason.
std::pair<std::string, std::string> answer_to_grant(const std::string& batch,
                                                    std::int64_t start = 4'000'000) {
  const std::string secret = "a secret for the grant checks";
  auto w = start_worker(secret);
  auto link = worker_link::connect(w->address(), secret, 5000ms);
  EXPECT_TRUE(link.ok()) << link.status();
  if (!link.ok())
    return {};
  std::vector<std::uint32_t> node_of(chatter_entities, 0);
  for (std::uint32_t i = chatter_entities / 2; i < chatter_entities; ++i)
    node_of[i] = 1;
  EXPECT_TRUE(link->send(protocol::node_setup{"x", 0, 2, node_of, 1}).ok());
  for (int i = 0; i < 2; ++i) // ready, then the report on the start
    EXPECT_TRUE(link->receive(10000ms).ok());
  protocol::node_grant g;
  g.window_start = start;
  g.window_end = 5'000'000;
  g.batches = {batch};
  EXPECT_TRUE(link->send(g).ok());
  auto m = link->receive(10000ms);
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok())
    return {};
  std::string reason;
  if (auto* a = std::get_if<protocol::node_abort>(&*m))
    reason = a->reason;
  EXPECT_TRUE(link->close(5000ms).ok());
  return {std::string(protocol::node_kind_name(*m)), reason};
}

TEST(distributed, a_grant_carrying_impossible_envelopes_aborts_the_run) {
  // One envelope for entity 3 (here) from entity 25 (node 1), due at 4.5 ms,
  // in the window from 4 ms (5 ms less the 1 ms lookahead).
  auto envelope = [] {
    protocol::routed_envelope r;
    r.hop = 3;
    r.from = 25;
    r.env.src = 30;
    r.env.dst = 3;
    r.env.send_ns = 3'000'000;
    r.env.deliver_ns = 4'500'000;
    r.env.k = protocol::kind::mesh;
    return r;
  };
  auto answer = [](const protocol::routed_envelope& r) {
    std::string bytes;
    protocol::encode_envelopes({&r, 1}, bytes);
    return answer_to_grant(bytes);
  };
  auto good = answer(envelope());
  EXPECT_EQ(good.first, "report") << good.second;

  struct bad_case {
    std::function<void(protocol::routed_envelope&)> change;
    std::string reason;
  };
  const std::vector<bad_case> cases = {
    {[](auto& r) { r.env.k = protocol::kind::timer; }, "kind 0 (timer), which never travels"},
    {[](auto& r) { r.env.k = protocol::kind::compute; }, "kind 5 (compute), which never"},
    {[](auto& r) { r.env.k = static_cast<protocol::kind>(999); }, "kind 999 (unknown)"},
    {[](auto& r) { r.from = 4; }, "from entity 4, which this node hosts"},
    {[](auto& r) { r.hop = 20; }, "for entity 20, which node 1 hosts"},
    {[](auto& r) { r.env.deliver_ns = 3'999'999; },
     "due at 3999999 ns, before the window it grants (from 4000000 ns)"},
    {[](auto& r) { r.env.src = 40; }, "names entity 40 of a run with 40 entities"},
  };
  for (const auto& c : cases) {
    auto r = envelope();
    c.change(r);
    const auto [kind, reason] = answer(r);
    EXPECT_EQ(kind, "abort") << c.reason;
    EXPECT_NE(reason.find(c.reason), std::string::npos) << reason;
  }
  // So does a window longer than the lookahead (its envelope in it), or
  // one that ends where it starts.
  std::string bytes;
  const auto r = envelope();
  protocol::encode_envelopes({&r, 1}, bytes);
  for (const std::int64_t start : {3'999'999, 5'000'000}) {
    const auto [kind, reason] = answer_to_grant(bytes, start);
    EXPECT_EQ(kind, "abort") << start;
    EXPECT_NE(reason.find(absl::StrCat("a grant's window [", start, ", 5000000) ns starts "
                                       "before the last one (from 0 ns), is empty, or is "
                                       "longer than the lookahead of 1000000 ns")),
              std::string::npos)
      << reason;
  }
}

TEST(distributed, a_grant_before_setup_is_an_error_frame) {
  const std::string secret = "yet another secret of bytes";
  auto w = start_worker(secret);
  auto link = worker_link::connect(w->address(), secret, 5000ms);
  ASSERT_TRUE(link.ok()) << link.status();
  ASSERT_TRUE(link->send(protocol::node_grant{1, false, false, {}}).ok());
  auto m = link->receive(10000ms);
  ASSERT_TRUE(m.ok()) << m.status();
  auto* e = std::get_if<protocol::node_error>(&*m);
  ASSERT_NE(e, nullptr) << protocol::node_kind_name(*m);
  EXPECT_EQ(e->code, protocol::node_error_code::unexpected_frame);
  EXPECT_TRUE(link->close(5000ms).ok());
}

TEST(distributed, unreachable_worker_fails_the_run_naming_it) {
  coordinator_options co;
  co.workers = {node_address{"127.0.0.1", 1}};
  co.secret = "s";
  co.node_of = {0};
  co.end = vtime::from_ns(1'000'000);
  co.connect_timeout = 2000ms;
  auto cr = coordinate(co);
  EXPECT_FALSE(cr.failure.ok());
  EXPECT_TRUE(contains(cr.failure, "127.0.0.1:1")) << cr.failure;
}

} // namespace
} // namespace satemu::runtime
