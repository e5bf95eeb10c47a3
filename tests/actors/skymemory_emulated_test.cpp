// Tests of emulated SkyMemory: the building blocks on their own (chained
// block hashes, the LRU store, chunk checksums, layouts and migration) and
// the workload over a moving 19x5 shell (hits, corruption, loss, migration,
// determinism, distributed results).
#include "actors/skymemory_emulated.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/output.hpp"
#include "protocol/bytes.hpp"
#include "protocol/kvcache.hpp"
#include "space_fixture.hpp"

namespace {

using namespace satemu::actors::skymemory;
using satemu::actors::testing::run_text;

// The testbed shell with one user; 60 s, a prompt every second on average.
const std::string small_yaml = R"(name: sky-test
seed: 3
duration: 60s
constellation:
  shells:
    - {planes: 5, sats_per_plane: 19, altitude: 550km, inclination: 53deg, phasing: 1}
  update_interval: 100ms
  queue: 64MiB
ground:
  gsl: {min_elevation: 10deg}
  users:
    - {name: nyc, lat: 40.71, lon: -74.01}
compute: {mode: modeled, model: llama-3.2-1b, device: jetson-nano}
workload:
  kind: skymemory
  mode: emulated
  servers: 5
  in_plane: true
  chunk_time: 1ms
  prompt_tokens: 256
  sharing: 0.75
  headers: 2
  interval: 1s
  timeout: 500ms
)";

std::vector<std::uint32_t> tokens(std::uint32_t n, std::uint32_t base) {
  std::vector<std::uint32_t> t(n);
  for (std::uint32_t i = 0; i < n; ++i)
    t[i] = base + i * 7;
  return t;
}

TEST(SkymemoryBlocks, ChainedHashesMatchExactlyOnTheCommonPrefix) {
  const auto a = tokens(100, 1);
  auto b = a;
  b[40] += 1; // inside block 2 of 16-token blocks
  const auto ha = block_hashes(a, 16, 95), hb = block_hashes(b, 16, 95);
  ASSERT_EQ(ha.size(), 6u); // 100 tokens: 6 full blocks, the partial one has no hash
  ASSERT_EQ(hb.size(), 6u);
  EXPECT_EQ(block_hashes(a, 16, 95), ha); // deterministic
  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(ha[i], hb[i]) << i;
  for (int i = 2; i < 6; ++i)
    EXPECT_NE(ha[i], hb[i]) << i; // the chain differs from the first difference on
  // The same block after a different parent has a different hash.
  auto c = a;
  c[0] += 1;
  const auto hc = block_hashes(c, 16, 95);
  for (int i = 0; i < 6; ++i)
    EXPECT_NE(hc[i], ha[i]) << i;
  // Another user's blocks of the same tokens have other names.
  const auto other = block_hashes(a, 16, 96);
  for (int i = 0; i < 6; ++i)
    EXPECT_NE(other[i], ha[i]) << i;
  // A prompt that extends another shares all its hashes.
  auto longer = a;
  longer.resize(200, 5);
  const auto hl = block_hashes(longer, 16, 95);
  EXPECT_TRUE(std::equal(ha.begin(), ha.end(), hl.begin()));
  EXPECT_EQ(std::set<std::uint64_t>(hl.begin(), hl.end()).size(), hl.size());
}

TEST(SkymemoryBlocks, LruEvictsLeastRecentlyUsedFirst) {
  lru_store s(300);
  auto chunk = [](std::uint64_t h, std::uint64_t bytes = 100) {
    return stored_chunk{h, 0, 16, 7, bytes, nullptr};
  };
  EXPECT_TRUE(s.put(chunk(1)).evicted.empty());
  EXPECT_TRUE(s.put(chunk(2)).evicted.empty());
  EXPECT_TRUE(s.put(chunk(3)).evicted.empty());
  EXPECT_EQ(s.used_bytes(), 300u);
  ASSERT_NE(s.get(1), nullptr); // 1 becomes the most recent: order 2, 3, 1
  EXPECT_TRUE(s.contains(2));   // contains does not touch
  EXPECT_EQ(s.order(), (std::vector<std::uint64_t>{2, 3, 1}));
  auto r = s.put(chunk(4));
  ASSERT_EQ(r.evicted.size(), 1u);
  EXPECT_EQ(r.evicted[0].hash, 2u);
  // A bigger chunk evicts as many as it needs, oldest first.
  r = s.put(chunk(5, 200));
  ASSERT_EQ(r.evicted.size(), 2u);
  EXPECT_EQ(r.evicted[0].hash, 3u);
  EXPECT_EQ(r.evicted[1].hash, 1u);
  EXPECT_EQ(s.order(), (std::vector<std::uint64_t>{4, 5}));
  EXPECT_EQ(s.used_bytes(), 300u);
  EXPECT_EQ(s.get(2), nullptr);
  // Too big for the whole store: not stored, nothing evicted.
  r = s.put(chunk(6, 301));
  EXPECT_FALSE(r.stored);
  EXPECT_TRUE(r.evicted.empty());
  EXPECT_EQ(s.size(), 2u);
  // Re-putting a held hash refreshes it without double counting.
  s.put(chunk(4));
  EXPECT_EQ(s.order(), (std::vector<std::uint64_t>{5, 4}));
  EXPECT_EQ(s.used_bytes(), 300u);
  EXPECT_EQ(s.take_owner(7).size(), 2u);
  EXPECT_EQ(s.used_bytes(), 0u);
}

TEST(SkymemoryBlocks, CorruptedChunkFailsItsChecksum) {
  using namespace satemu::protocol;
  kv_message m;
  m.op = kv_op::chunk;
  m.request = 9;
  m.chunk = {0xabcdef, 3, 16, 100, 0, 4096, nullptr};
  auto good = decode_kv(encode_kv(m));
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE(good->chunk.checksum_ok);
  EXPECT_EQ(good->chunk.data_bytes, 4096u);
  EXPECT_EQ(good->chunk.hash, 0xabcdefu);
  auto bad = decode_kv(encode_kv(m, /*corrupt=*/true));
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_FALSE(bad->chunk.checksum_ok);
  // A chunk claiming another block's identity fails too.
  const std::vector<std::byte> zeros(4096);
  EXPECT_NE(kv_checksum(0xabcdef, 3, 16, zeros), kv_checksum(0xabcdef, 4, 16, zeros));
  EXPECT_NE(kv_checksum(0xabcdef, 3, 16, zeros), kv_checksum(0xabcdee, 3, 16, zeros));
  auto flipped = zeros;
  flipped[4095] = std::byte{1};
  EXPECT_NE(kv_checksum(1, 0, 16, zeros), kv_checksum(1, 0, 16, flipped));
  // The other messages round-trip.
  kv_message l;
  l.op = kv_op::lookup_reply;
  l.hashes = {1, 2, 3};
  auto dl = decode_kv(encode_kv(l));
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->op, kv_op::lookup_reply);
  EXPECT_EQ(dl->hashes, l.hashes);
  kv_message mg;
  mg.op = kv_op::migrate;
  mg.owner = 95;
  mg.target = 12;
  auto dm = decode_kv(encode_kv(mg));
  ASSERT_TRUE(dm.ok());
  EXPECT_EQ(dm->op, kv_op::migrate);
  EXPECT_EQ(dm->owner, 95u);
  EXPECT_EQ(dm->target, 12u);
}

// A receiver sends to the ids a message names, so each must be an entity of
// the run.
TEST(SkymemoryBlocks, EntityIdsOutsideTheRunAreRefused) {
  using namespace satemu::protocol;
  auto refused = [](const kv_message& m, std::size_t entities) {
    const auto st = check_kv_entities(m, entities);
    return st.ok() ? std::string() : std::string(st.message());
  };
  kv_message c;
  c.op = kv_op::chunk;
  c.origin = 99;
  c.chunk.owner = 99;
  EXPECT_EQ(refused(c, 100), "");
  EXPECT_EQ(refused(c, 99), "kvcache: origin is entity 99 of a run with 99");
  c.origin = 3;
  EXPECT_EQ(refused(c, 99), "kvcache: chunk owner is entity 99 of a run with 99");
  c.op = kv_op::lookup; // no chunk: its owner is not read
  EXPECT_EQ(refused(c, 99), "");
  kv_message mg;
  mg.op = kv_op::migrate;
  mg.owner = 5;
  mg.target = 4294967295u;
  EXPECT_EQ(refused(mg, 10), "kvcache: migration target is entity 4294967295 of a run with 10");
  mg.target = 9;
  EXPECT_EQ(refused(mg, 10), "");
  mg.owner = 10;
  EXPECT_EQ(refused(mg, 10), "kvcache: migration owner is entity 10 of a run with 10");
  kv_message p;
  p.op = kv_op::prompt;
  p.tokens = {1, 2};
  p.servers = {1, 2, 4294967280u, 3};
  EXPECT_EQ(refused(p, 10), "kvcache: a server is entity 4294967280 of a run with 10");
  p.servers.pop_back();
  p.servers[2] = 9;
  EXPECT_EQ(refused(p, 10), "");
  // What the receiver checks is what arrives.
  p.servers[2] = 10;
  auto back = decode_kv(encode_kv(p));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(refused(*back, 10), "kvcache: a server is entity 10 of a run with 10");
}

// Every op with each of its fields away from the default comes back equal,
// so a field the encoder drops fails here.
TEST(SkymemoryBlocks, EveryMessageRoundTripsFieldForField) {
  using namespace satemu::protocol;
  const auto data = std::make_shared<const std::vector<std::byte>>(
    std::vector<std::byte>{std::byte{1}, std::byte{2}, std::byte{3}});
  const kv_chunk chunk{0x1234567890abcdefu, 7, 16, 41, 0, 3, data};
  std::vector<kv_message> all;
  for (auto op : {kv_op::put, kv_op::chunk, kv_op::migrate_chunk}) {
    kv_message m;
    m.op = op;
    m.chunk = chunk;
    all.push_back(m);
  }
  for (auto op : {kv_op::lookup, kv_op::lookup_reply, kv_op::get, kv_op::evict_notice}) {
    kv_message m;
    m.op = op;
    m.hashes = {3, 0xffffffffffffffffu, 5};
    all.push_back(m);
  }
  kv_message mg;
  mg.op = kv_op::migrate;
  mg.owner = 17;
  mg.target = 23;
  all.push_back(mg);
  kv_message err;
  err.op = kv_op::error;
  err.error = kv_error::bad_checksum;
  err.error_hash = 99;
  all.push_back(err);
  kv_message p;
  p.op = kv_op::prompt;
  p.tokens = {5, 6, 70000};
  p.servers = {8, 9};
  all.push_back(p);
  kv_message a;
  a.op = kv_op::answer;
  a.answer = {{11, 12, 13, 14, 15, 16, 17, 18, 19, true}, true, 20, 21, {1.5f, -2.0f}};
  all.push_back(a);
  ASSERT_EQ(all.size(), 11u) << "one per op";
  for (std::size_t i = 0; i < all.size(); ++i) {
    auto& m = all[i];
    m.request = 1000 + i;
    m.origin = 3;
    auto back = decode_kv(encode_kv(m), /*keep_data=*/true);
    ASSERT_TRUE(back.ok()) << i << ": " << back.status();
    EXPECT_TRUE(*back == m) << "op " << static_cast<int>(m.op);
    // And each field counts: one changed is a different message.
    auto other = m;
    other.request += 1;
    EXPECT_FALSE(*back == other);
  }
  // The comparison sees the answer's account and the chunk's bytes.
  auto changed = all.back();
  changed.answer.device_wait_ns += 1;
  EXPECT_FALSE(changed == all.back());
  auto filler = all.front();
  filler.chunk.data = nullptr;
  EXPECT_FALSE(filler == all.front());
  filler.chunk.data =
    std::make_shared<const std::vector<std::byte>>(std::vector<std::byte>(3, std::byte{0}));
  auto zeros = all.front();
  zeros.chunk.data = nullptr;
  EXPECT_TRUE(filler == zeros) << "null data is data_bytes zero bytes";
}

TEST(SkymemoryBlocks, PromptAndAnswerRoundTrip) {
  using namespace satemu::protocol;
  kv_message p;
  p.op = kv_op::prompt;
  p.request = 41;
  p.origin = 95;
  p.tokens = {7, 0, 4000000000u, 12};
  p.servers = {44, 43, 45};
  auto dp = decode_kv(encode_kv(p));
  ASSERT_TRUE(dp.ok()) << dp.status();
  EXPECT_EQ(dp->op, kv_op::prompt);
  EXPECT_EQ(dp->request, 41u);
  EXPECT_EQ(dp->origin, 95u);
  EXPECT_EQ(dp->tokens, p.tokens);
  EXPECT_EQ(dp->servers, p.servers);
  kv_message a;
  a.op = kv_op::answer;
  a.request = 41;
  a.answer.cached_tokens = 384;
  a.answer.chunks_fetched = 24;
  a.answer.chunks_corrupt = 1;
  a.answer.chunks_missing = 2;
  a.answer.bytes_fetched = 12'582'912;
  a.answer.bytes_put = 4'194'304;
  a.answer.fetch_ns = 68'458'004;
  a.answer.prefill_ns = 564'689'488;
  a.answer.timed_out = true;
  a.answer.last = true;
  a.answer.received_ns = 1'000'000'007;
  a.answer.sent_ns = 3'000'000'011;
  a.answer.hidden = {1.5f, -2.25f, 0.0f};
  auto da = decode_kv(encode_kv(a));
  ASSERT_TRUE(da.ok()) << da.status();
  EXPECT_EQ(da->op, kv_op::answer);
  const auto& x = da->answer;
  EXPECT_TRUE(x.last);
  EXPECT_EQ(x.received_ns, 1'000'000'007);
  EXPECT_EQ(x.sent_ns, 3'000'000'011);
  EXPECT_EQ(x.cached_tokens, 384u);
  EXPECT_EQ(x.chunks_fetched, 24u);
  EXPECT_EQ(x.chunks_corrupt, 1u);
  EXPECT_EQ(x.chunks_missing, 2u);
  EXPECT_EQ(x.bytes_fetched, 12'582'912u);
  EXPECT_EQ(x.bytes_put, 4'194'304u);
  EXPECT_EQ(x.fetch_ns, 68'458'004);
  EXPECT_EQ(x.prefill_ns, 564'689'488);
  EXPECT_TRUE(x.timed_out);
  EXPECT_EQ(x.hidden, a.answer.hidden);
}

TEST(SkymemoryBlocks, CorruptedChunkIsAMissNeverData) {
  auto run = run_text<emulated_workload>(small_yaml, {"workload.corruption=1"});
  ASSERT_TRUE(run.w);
  const auto m = run.w->metrics(run.r);
  EXPECT_GT(m["chunks_corrupt_detected"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(m["token_hit_rate"].get<double>(), 0.0);
  EXPECT_EQ(m["bytes_fetched"].get<std::uint64_t>(), 0u);
  const auto& user = run.w->node(95);
  ASSERT_FALSE(user.records().empty());
  for (const auto& r : user.records()) {
    EXPECT_EQ(r.cached_tokens, 0u);
    EXPECT_EQ(r.ttft_ns, r.device_wait_ns + r.fetch_ns + r.prefill_ns);
  }
}

TEST(SkymemoryBlocks, MigrationMovesExactlyTheLeavingColumn) {
  // 5 planes of 19, a 3x3 rotation box around plane 2, satellite 9.
  auto t = layout_tracker::make(5, 19, 550e3, strategy::rotation, 9);
  ASSERT_TRUE(t.ok()) << t.status();
  auto id = [](int plane, int sat) { return static_cast<std::uint32_t>(plane * 19 + sat); };
  t->reset(id(2, 9));
  const auto before = t->slots();
  // The serving satellite moves one back in its plane (satellites move
  // towards higher indices): column 10 leaves, column 7 enters.
  const auto moves = t->recentre(id(2, 8));
  ASSERT_EQ(moves.size(), 3u);
  for (int row = 0; row < 3; ++row) {
    EXPECT_EQ(moves[row].from, id(1 + row, 10)) << row;
    EXPECT_EQ(moves[row].to, id(1 + row, 7)) << row;
  }
  // Every other slot stays on its satellite.
  std::size_t same = 0;
  for (std::size_t i = 0; i < before.size(); ++i)
    same += before[i] == t->slots()[i] ? 1 : 0;
  EXPECT_EQ(same, 6u);
  // The analytic model's migration counts the same column.
  params p;
  p.g = {5, 19, 2, 9, 550e3};
  p.servers = 9;
  p.kv_bytes = 9 * 1000;
  p.chunk_bytes = 1000;
  auto a = evaluate(p, strategy::rotation);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->migration_chunks, moves.size());
  // hop keeps its chunks where they are.
  auto h = layout_tracker::make(5, 19, 550e3, strategy::hop, 9);
  h->reset(id(2, 9));
  EXPECT_TRUE(h->recentre(id(2, 8)).empty());
  EXPECT_EQ(h->centre(), id(2, 8));
  // In-plane layouts stay in the serving plane.
  auto ip = layout_tracker::make(5, 19, 550e3, strategy::rotation, 5, true);
  ip->reset(id(3, 0));
  for (auto s : ip->slots())
    EXPECT_EQ(s / 19, 3u);
  const auto ipm = ip->recentre(id(3, 18));
  ASSERT_EQ(ipm.size(), 1u);
  EXPECT_EQ(ipm[0].from, id(3, 2));
  EXPECT_EQ(ipm[0].to, id(3, 16));
}

// Across the seam of a Walker shell (last plane to the first), satellite j
// links to j + F of the first plane: a layout offset that crosses it names
// that ISL neighbour, not the satellite of the same index (F + 1 hops away).
TEST(SkymemoryBlocks, LayoutsAcrossTheSeamFollowThePhasing) {
  constexpr int phasing = 3;
  auto id = [](int plane, int sat) { return static_cast<std::uint32_t>(plane * 19 + sat); };
  auto hop = layout_tracker::make(5, 19, 550e3, strategy::hop, 5, false, phasing);
  ASSERT_TRUE(hop.ok()) << hop.status();
  // Breadth-first: the centre, previous plane, next satellite, next plane,
  // previous satellite.
  hop->reset(id(4, 0));
  EXPECT_EQ(hop->slots(),
            (std::vector<std::uint32_t>{id(4, 0), id(3, 0), id(4, 1), id(0, 3), id(4, 18)}));
  hop->reset(id(0, 5));
  EXPECT_EQ(hop->slots(),
            (std::vector<std::uint32_t>{id(0, 5), id(4, 2), id(0, 6), id(1, 5), id(0, 4)}));
  // Without phasing, the plain torus.
  auto plain = layout_tracker::make(5, 19, 550e3, strategy::hop, 5);
  plain->reset(id(4, 0));
  EXPECT_EQ(plain->slots()[3], id(0, 0));
  // A rotation box across the seam: a shift of one satellite still moves
  // exactly one column, the seam's row shifted like its satellites.
  auto box = layout_tracker::make(5, 19, 550e3, strategy::rotation, 9, false, phasing);
  box->reset(id(4, 9));
  const auto moves = box->recentre(id(4, 8));
  ASSERT_EQ(moves.size(), 3u);
  EXPECT_EQ(moves[0].from, id(3, 10));
  EXPECT_EQ(moves[0].to, id(3, 7));
  EXPECT_EQ(moves[1].from, id(4, 10));
  EXPECT_EQ(moves[1].to, id(4, 7));
  EXPECT_EQ(moves[2].from, id(0, 13));
  EXPECT_EQ(moves[2].to, id(0, 10));
}

TEST(SkymemoryEmulated, SharedHeadersHitAndCutTtft) {
  auto run = run_text<emulated_workload>(small_yaml);
  ASSERT_TRUE(run.w);
  const auto m = run.w->metrics(run.r);
  EXPECT_GT(m["requests_finished"].get<std::uint64_t>(), 30u);
  // 75% of a prompt is one of two headers: most of it hits after the first prompts.
  EXPECT_GT(m["token_hit_rate"].get<double>(), 0.5);
  EXPECT_LE(m["token_hit_rate"].get<double>(), 0.75);
  EXPECT_GT(m["ttft_reduction"]["p50"].get<double>(), 0.3);
  EXPECT_EQ(m["timeouts"].get<std::uint64_t>(), 0u);
  for (const auto& r : run.w->node(95).records()) {
    EXPECT_EQ(r.cached_tokens % 16, 0u);
    EXPECT_LE(r.cached_tokens, 192u); // never more than the shared header
    EXPECT_EQ(r.chunks_fetched * 16, r.cached_tokens);
    EXPECT_EQ(r.ttft_ns, r.device_wait_ns + r.fetch_ns + r.prefill_ns);
    EXPECT_EQ(r.ttlt_ns - r.ttft_ns, r.ttlt_nocache_ns - r.ttft_nocache_ns);
  }
  const auto files = run.w->files(run.r);
  ASSERT_TRUE(files.contains("requests.csv"));
  EXPECT_EQ(std::count(files.at("requests.csv").begin(), files.at("requests.csv").end(), '\n'),
            static_cast<long>(run.w->node(95).records().size()) + 1);

  // The summary's figures as the README defines them, from the records.
  const auto& recs = run.w->node(95).records();
  ASSERT_EQ(m["requests_finished"].get<std::size_t>(), recs.size());
  std::uint64_t cached = 0, prompted = 0;
  for (const auto& r : recs) {
    cached += r.cached_tokens;
    prompted += r.prompt_tokens;
  }
  EXPECT_DOUBLE_EQ(m["token_hit_rate"].get<double>(), static_cast<double>(cached) / prompted);
  // A reduction's mean is 1 - sum(with cache) / sum(without); a percentile's
  // is 1 - the ratio of the two distributions' percentiles, each of which is
  // at most a 64th above the exact (nearest-rank) one.
  auto exact = [](std::vector<std::int64_t> v, double q) {
    std::sort(v.begin(), v.end());
    const auto rank = std::max<std::size_t>(1, std::ceil(q * static_cast<double>(v.size())));
    return static_cast<double>(v[rank - 1]);
  };
  for (const bool last : {false, true}) {
    SCOPED_TRACE(last ? "ttlt" : "ttft");
    std::vector<std::int64_t> with, without;
    long double sum_with = 0, sum_without = 0;
    for (const auto& r : recs) {
      with.push_back(last ? r.ttlt_ns : r.ttft_ns);
      without.push_back(last ? r.ttlt_nocache_ns : r.ttft_nocache_ns);
      sum_with += with.back();
      sum_without += without.back();
    }
    const auto& red = m[last ? "ttlt_reduction" : "ttft_reduction"];
    EXPECT_NEAR(red["mean"].get<double>(), static_cast<double>(1 - sum_with / sum_without), 1e-12);
    for (const auto& [key, q] : {std::pair{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}}) {
      const double a = exact(with, q), b = exact(without, q), got = red[key].get<double>();
      EXPECT_LE(got, 1 - a / (b * (1 + 1 / 64.0)) + 1e-12) << key;
      EXPECT_GE(got, 1 - a * (1 + 1 / 64.0) / b - 1e-12) << key;
    }
  }
}

// Three users a few tens of km apart share serving satellites and so
// layouts, and draw the same few-shot headers: still none finds another's
// blocks (a block has one owner), so each user's first prompt with a header
// misses, and its later ones hit on its own blocks.
TEST(SkymemoryEmulated, UsersNeverHitOnEachOthersBlocks) {
  auto run = run_text<emulated_workload>(
    small_yaml, {"ground.users=[{name: nyc, lat: 40.71, lon: -74.01}, {name: newark, lat: 40.73, "
                 "lon: -74.17}, {name: phl, lat: 39.95, lon: -75.17}]"});
  ASSERT_TRUE(run.w);
  for (std::size_t user = 95; user < 98; ++user) {
    auto records = run.w->node(user).records();
    std::sort(records.begin(), records.end(),
              [](const auto& a, const auto& b) { return a.start_ns < b.start_ns; });
    std::set<std::uint32_t> seen;
    std::size_t hits = 0;
    for (const auto& r : records) {
      if (seen.insert(r.header).second) {
        EXPECT_EQ(r.cached_tokens, 0u) << "user " << user << ", header " << r.header;
      }
      hits += r.cached_tokens > 0 ? 1 : 0;
    }
    EXPECT_EQ(seen.size(), 2u);
    EXPECT_GT(hits, records.size() / 2) << "user " << user;
  }
}

// A prompt that is all shared header, two blocks long: its first block is
// fetched and its last, which holds the prompt's last token (always
// computed), is not (it was fetched and thrown away).
TEST(SkymemoryEmulated, TheBlockEndingAPromptIsNeverFetched) {
  for (const char* at : {"ground", "satellite"}) {
    auto run = run_text<emulated_workload>(
      small_yaml, {"workload.prompt_tokens=32", "workload.sharing=1", "workload.headers=1",
                   std::string("compute.at=") + at});
    ASSERT_TRUE(run.w);
    const auto& records = run.w->node(95).records();
    ASSERT_GT(records.size(), 30u) << at;
    std::size_t hits = 0;
    for (const auto& r : records) {
      EXPECT_LE(r.cached_tokens, 16u) << at << " " << r.seq;
      EXPECT_EQ(r.chunks_fetched * 16, r.cached_tokens) << at << " " << r.seq;
      hits += r.cached_tokens == 16 ? 1 : 0;
    }
    EXPECT_GT(hits, records.size() / 2) << at;
    const auto m = run.w->metrics(run.r);
    EXPECT_EQ(m["bytes_fetched"].get<std::uint64_t>(), hits * m["block_bytes"].get<std::uint64_t>())
      << at;
  }
}

// A request looks its blocks up when the device takes it, not when it
// arrives: a prompt every 200 ms, about 0.4 s of device each, so requests
// wait, and one whose header an earlier request put while it waited finds
// the whole header (12 blocks of 16 tokens).
TEST(SkymemoryEmulated, ARequestLooksUpWhenTheDeviceTakesIt) {
  auto run =
    run_text<emulated_workload>(small_yaml, {"workload.interval=200ms", "duration=30s"});
  ASSERT_TRUE(run.w);
  auto records = run.w->node(95).records();
  ASSERT_GT(records.size(), 20u);
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a.start_ns < b.start_ns; });
  const auto margin = satemu::runtime::milliseconds(100).ns(); // the puts' way up
  std::size_t put_while_waiting = 0;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const auto lookup = r.start_ns + r.device_wait_ns;
    EXPECT_EQ(r.ttft_ns, r.device_wait_ns + r.fetch_ns + r.prefill_ns) << r.seq;
    for (std::size_t j = 0; j < i; ++j) {
      const auto& p = records[j];
      const auto put = p.start_ns + p.ttft_ns;
      if (p.header != r.header || put + margin > lookup)
        continue;
      EXPECT_EQ(r.cached_tokens, 192u) << r.seq << " after " << p.seq;
      put_while_waiting += put > r.start_ns ? 1 : 0;
      break;
    }
  }
  EXPECT_GT(put_while_waiting, 5u);
  EXPECT_GT(run.w->metrics(run.r)["token_hit_rate"].get<double>(), 0.6);
}

TEST(SkymemoryEmulated, WithoutTheCacheEveryPromptIsPrefilledWhole) {
  auto run = run_text<emulated_workload>(small_yaml, {"workload.cache=false"});
  ASSERT_TRUE(run.w);
  const auto m = run.w->metrics(run.r);
  EXPECT_EQ(m["token_hit_rate"].get<double>(), 0.0);
  EXPECT_EQ(m["ttft_reduction"]["mean"].get<double>(), 0.0);
  for (const auto& r : run.w->node(95).records())
    EXPECT_EQ(r.ttft_ns, r.ttft_nocache_ns);
}

TEST(SkymemoryEmulated, LostMessagesTimeOutAndRecomputeNeverHang) {
  // A prompt every 2 s: a whole prefill (1.09 s on the Jetson Nano) after
  // every timed-out lookup must not queue up on the device, so that what is
  // unfinished at the end is the last requests, not a backlog.
  auto run = run_text<emulated_workload>(
    small_yaml, {"constellation.loss=0.3", "workload.interval=2s", "duration=120s"});
  ASSERT_TRUE(run.w);
  const auto m = run.w->metrics(run.r);
  EXPECT_GT(m["timeouts"].get<std::uint64_t>(), 0u);
  EXPECT_GT(run.r.counters.at("space.drops_loss"), 0u);
  const auto& user = run.w->node(95);
  // Every request started more than two timeouts and a whole prefill before
  // the end has finished.
  const auto full = prefill_time(run.w->config().model, run.w->config().device, 256, 0).ns();
  const std::int64_t end = satemu::runtime::seconds(120).ns();
  std::size_t timed_out = 0;
  for (const auto& r : user.records()) {
    EXPECT_LE(r.fetch_ns, 2 * satemu::runtime::milliseconds(500).ns() + 1);
    timed_out += r.timed_out ? 1 : 0;
  }
  EXPECT_GT(timed_out, 0u);
  std::size_t old_enough = 0;
  for (const auto& r : user.records())
    old_enough += r.start_ns + satemu::runtime::seconds(1).ns() + full < end ? 1 : 0;
  EXPECT_GE(user.records().size() + 3, user.requests_started());
  EXPECT_GT(old_enough, 30u);
}

// Losses and corruption draw on their own stream: the prompts a user sends
// and when it sends them are the same at any fault rate.
TEST(SkymemoryEmulated, FaultsLeaveThePromptsAsTheyWere) {
  auto prompts = [](std::vector<std::string> sets) {
    sets.push_back("duration=120s");
    auto run = run_text<emulated_workload>(small_yaml, sets);
    EXPECT_TRUE(run.w);
    std::map<std::uint64_t, std::tuple<std::int64_t, std::uint32_t, std::uint32_t>> out;
    for (const auto& r : run.w->node(95).records())
      out[r.seq] = {r.start_ns, r.header, r.prompt_tokens};
    return std::pair(out, run.r.counters);
  };
  const auto [clean, clean_counters] = prompts({});
  const auto [faulty, counters] =
    prompts({"constellation.loss=0.05", "workload.corruption=0.3"});
  EXPECT_GT(counters.at("space.drops_loss"), 0u);
  EXPECT_GT(counters.at("skymemory.corrupt_chunks_sent"), 0u);
  ASSERT_GT(faulty.size(), 20u);
  for (const auto& [seq, prompt] : faulty) {
    ASSERT_TRUE(clean.count(seq)) << seq;
    EXPECT_EQ(clean.at(seq), prompt) << "request " << seq;
  }
}

TEST(SkymemoryEmulated, HandoverMigratesTheLeavingSatellitesChunks) {
  // Ten minutes over New York include handovers (serving satellite 44 -> 43).
  // One output token: every request that put blocks has finished, and its
  // puts are in bytes_put.
  auto run = run_text<emulated_workload>(small_yaml, {"duration=300s", "workload.output_tokens=1"});
  ASSERT_TRUE(run.w);
  const auto m = run.w->metrics(run.r);
  ASSERT_GE(m["handovers"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(m["migrate_orders"].get<std::uint64_t>(), m["handovers"].get<std::uint64_t>());
  EXPECT_GT(m["migrated_chunks"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(m["migrated_bytes"].get<std::uint64_t>(),
            m["migrated_chunks"].get<std::uint64_t>() * m["block_bytes"].get<std::uint64_t>());
  // Migrations are paced at the ISL rate: the chunks leaving a satellite at
  // a handover (123 MiB here, through 64 MiB link queues) all arrive, and
  // are counted as stored apart from puts.
  EXPECT_EQ(run.r.counters.at("space.drops_queue_full"), 0u);
  EXPECT_EQ(run.r.counters.at("skymemory.migrated_chunks_stored"),
            m["migrated_chunks"].get<std::uint64_t>());
  EXPECT_EQ(run.r.counters.at("skymemory.put_bytes_stored"), m["bytes_put"].get<std::uint64_t>());
}

// A server's chunks enter its link as each is read, not all at once: a
// chunk read 60 ms on had held the link FIFO from the get on, so chunks
// of servers further out, forwarded through it, waited behind reads not yet
// done, and the reserved time counted as bytes against the queue (5 GB/s
// of 10 Gbps ISL time, over 64 MiB): at 20 ms a chunk they were dropped,
// and the cache never hit.
TEST(SkymemoryEmulated, ChunksEnterTheirLinkWhenReadNotBefore) {
  auto fast = run_text<emulated_workload>(small_yaml, {"duration=120s"});
  auto slow = run_text<emulated_workload>(small_yaml, {"duration=120s", "workload.chunk_time=20ms",
                                                       "workload.timeout=2s"});
  ASSERT_TRUE(fast.w && slow.w);
  const auto f = fast.w->metrics(fast.r), s = slow.w->metrics(slow.r);
  EXPECT_EQ(slow.r.counters.at("space.drops_queue_full"), 0u);
  EXPECT_EQ(s["requests_timed_out"].get<std::uint64_t>(), 0u);
  EXPECT_GT(f["token_hit_rate"].get<double>(), 0.5);
  EXPECT_EQ(s["token_hit_rate"].get<double>(), f["token_hit_rate"].get<double>());
  // Neighbours' chunks pass between the serving satellite's own reads:
  // 144.7 ms at p90, where they had waited behind them (176.2 ms).
  EXPECT_LT(s["fetch_ms"]["p90"].get<double>(), 160.0);
}

// A request at the ground finishes at its last token, as one on a satellite
// does: one still decoding when the run ends is not counted as finished
// (at its first token, 61 of the Starlink run's had ended after the run).
// Requests with no satellite in view run without the cache and are counted.
TEST(SkymemoryEmulated, GroundRequestsFinishAtTheirLastToken) {
  auto run = run_text<emulated_workload>(small_yaml, {"duration=30s", "workload.interval=500ms"});
  ASSERT_TRUE(run.w);
  const auto m = run.w->metrics(run.r);
  const auto& records = run.w->node(95).records();
  ASSERT_FALSE(records.empty());
  for (const auto& r : records)
    EXPECT_LT(r.start_ns + r.ttlt_ns, 30'000'000'000) << r.seq;
  // Prefills of 1.1 s and decodes of 1.6 s: the last few are still running.
  EXPECT_GT(m["requests_started"].get<std::uint64_t>(), records.size() + 1);
  EXPECT_EQ(m["requests_finished"].get<std::uint64_t>(), records.size());
  EXPECT_EQ(m["requests_without_satellite"].get<std::uint64_t>(), 0u);

  auto pole = run_text<emulated_workload>(
    small_yaml, {"duration=10s", "ground.users=[{name: pole, lat: 89, lon: 0}]"});
  ASSERT_TRUE(pole.w);
  const auto p = pole.w->metrics(pole.r);
  const auto started = p["requests_started"].get<std::uint64_t>();
  ASSERT_GT(started, 0u);
  EXPECT_EQ(pole.r.counters.at("skymemory.requests_without_satellite"), started);
  EXPECT_EQ(p["requests_without_satellite"].get<std::uint64_t>(), started);
  EXPECT_EQ(p["token_hit_rate"].get<double>(), 0.0);
}

TEST(SkymemoryEmulated, FingerprintIndependentOfThreadsAndResultsRoundTrip) {
  auto one = run_text<emulated_workload>(small_yaml, {}, 1);
  auto two = run_text<emulated_workload>(small_yaml, {}, 2);
  ASSERT_TRUE(one.w && two.w);
  EXPECT_EQ(one.r.fingerprint, two.r.fingerprint);
  const auto& user = one.w->node(95);
  std::string bytes;
  satemu::protocol::byte_writer w(bytes);
  user.save_results(w);
  auto& twin = const_cast<skymemory_node&>(two.w->node(95));
  satemu::protocol::byte_reader r(bytes);
  twin.load_results(r);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(twin.records().size(), user.records().size());
  for (std::size_t i = 0; i < user.records().size(); ++i) {
    EXPECT_EQ(twin.records()[i].ttft_ns, user.records()[i].ttft_ns);
    EXPECT_EQ(twin.records()[i].cached_tokens, user.records()[i].cached_tokens);
  }
  EXPECT_EQ(twin.requests_started(), user.requests_started());
}

// A user's device runs one prompt at a time, first come first served, in
// both compute modes: prompts that come faster than it prefills them wait
// (device_wait_ns, before the lookup), and the baseline waits as long, so
// that without the cache every request takes exactly its baseline. In mode
// real the baseline costs each layer with its own configuration: Gemma's
// global layers attend to every key, its sliding-window ones to the window.
void check_device_queue(const std::vector<std::string>& compute) {
  // One output token: a request finishes with its prefill (decode steps,
  // 0.5 s each with Gemma's launches, would end past the run).
  auto sets = compute;
  sets.insert(sets.end(), {"workload.cache=false", "duration=20s", "workload.output_tokens=1"});
  auto run = run_text<emulated_workload>(small_yaml, sets);
  ASSERT_TRUE(run.w);
  auto records = run.w->node(95).records();
  ASSERT_GT(records.size(), 10u);
  std::size_t waited = 0;
  for (const auto& r : records) {
    EXPECT_EQ(r.ttft_ns, r.ttft_nocache_ns) << r.seq;
    EXPECT_GE(r.device_wait_ns, 0) << r.seq;
    EXPECT_EQ(r.ttft_ns, r.device_wait_ns + r.fetch_ns + r.prefill_ns) << r.seq;
    waited += r.device_wait_ns > 0 ? 1 : 0;
  }
  EXPECT_GT(waited, records.size() / 2);
  // The device's busy spans [start + wait, start + ttft) follow one another
  // without overlapping, and a request that waited starts as the one before
  // it ends.
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a.start_ns < b.start_ns; });
  for (std::size_t i = 1; i < records.size(); ++i) {
    const auto& p = records[i - 1];
    const auto& r = records[i];
    if (r.device_wait_ns > 0)
      EXPECT_EQ(r.start_ns + r.device_wait_ns, p.start_ns + p.ttft_ns) << r.seq;
    else
      EXPECT_GE(r.start_ns, p.start_ns + p.ttft_ns) << r.seq;
  }
  const auto csv = run.w->files(run.r).at("requests.csv");
  EXPECT_NE(csv.find(",device_wait_ms\n"), std::string::npos);
}

// The emulated device runs the model in fp16: a built-in device's fp32
// peak alone would change nothing, and is refused naming the key; its fp16
// peak sets the timing.
TEST(SkymemoryEmulated, DeviceOverridesSetTheFiguresTheTimingUses) {
  satemu::actors::register_workloads();
  auto make = [](const std::vector<std::string>& sets) {
    auto sc = satemu::runtime::load_scenario_text(small_yaml, "t.yaml", sets);
    EXPECT_TRUE(sc.ok()) << sc.status();
    return satemu::actors::make_workload(*sc);
  };
  auto fp32 = make({"compute.device_override.peak_fp32_flops=1e6"});
  ASSERT_FALSE(fp32.ok());
  EXPECT_EQ(std::string(fp32.status().message()).rfind(
              "compute.device_override.peak_fp32_flops: the emulated device runs the model in "
              "fp16, so its timing uses jetson-nano's peak_fp16_flops",
              0),
            0u)
    << fp32.status();
  auto slow = run_text<emulated_workload>(
    small_yaml, {"compute.device_override.peak_fp16_flops=4.7e10", "workload.cache=false",
                 "duration=30s"});
  auto base = run_text<emulated_workload>(small_yaml, {"workload.cache=false", "duration=30s"});
  ASSERT_TRUE(slow.w && base.w);
  ASSERT_FALSE(slow.w->node(95).records().empty());
  ASSERT_FALSE(base.w->node(95).records().empty());
  // A tenth of the Jetson Nano's 472 GFLOP/s: prefill is compute-bound.
  EXPECT_GT(slow.w->node(95).records().front().prefill_ns,
            5 * base.w->node(95).records().front().prefill_ns);
}

// The decode after a prompt: each step attends to one more key than the one
// before. A device too slow for the time type (a queue past 292 years)
// saturates: its prompts never finish, and the run goes on.
TEST(SkymemoryEmulated, DecodeStepsGrowWithTheContextAndSlowDevicesSaturate) {
  const auto model = satemu::gpu::find_model("llama-3.2-1b");
  const auto device = satemu::gpu::find_hardware("jetson-nano");
  ASSERT_TRUE(model.ok() && device.ok());
  EXPECT_EQ(decode_time(*model, *device, 256, 1), satemu::runtime::duration::zero());
  EXPECT_EQ(decode_time(*model, *device, 256, 3),
            prefill_time(*model, *device, 1, 256) + prefill_time(*model, *device, 1, 257));
  EXPECT_LT(prefill_time(*model, *device, 1, 256), prefill_time(*model, *device, 1, 4096));
  auto slow = run_text<emulated_workload>(
    small_yaml, {"compute.device=sat-payload",
                 "compute.device_override={peak_fp16_flops: 1e6, memory_bytes_per_s: 1e6, "
                 "launch_overhead: 0s}",
                 "compute.model=mixtral-8x7b", "workload.prompt_tokens=32000",
                 "workload.interval=10ms", "duration=2s"});
  ASSERT_TRUE(slow.w);
  EXPECT_GT(slow.w->node(95).requests_started(), 20u);
  EXPECT_TRUE(slow.w->node(95).records().empty());
}

TEST(SkymemoryEmulated, ADeviceRunsOnePromptAtATimeModeled) {
  // llama-3.2-1b on a Jetson Nano: 256 tokens take about 1.1 s, a prompt
  // comes every second.
  check_device_queue({});
}

TEST(SkymemoryEmulated, ADeviceRunsOnePromptAtATimeReal) {
  // A Gemma model, each launch made 25 ms long: over a second a prompt.
  check_device_queue({"compute.mode=real", "compute.model=tiny-gemma", "compute.backend=cpu",
                      "compute.device_override.launch_overhead=25ms"});
}

// compute real: the tiny model's layers run on the GPU worker (CPU
// backend), chunks carry the real keys and values, and a request that
// continues a fetched prefix ends in the same hidden state as the same
// prompt computed whole (up to the fp16 the chunks store). `at`: where the
// model runs (compute.at).
void check_real_compute(const std::string& at) {
  const std::vector<std::string> real = {"compute.mode=real", "compute.model=tiny",
                                         "compute.backend=cpu", "duration=40s",
                                         "compute.at=" + at};
  auto with = run_text<emulated_workload>(small_yaml, real);
  auto sets = real;
  sets.push_back("workload.cache=false");
  auto without = run_text<emulated_workload>(small_yaml, sets);
  ASSERT_TRUE(with.w && without.w);
  const auto m = with.w->metrics(with.r);
  EXPECT_EQ(m["compute_errors"].get<std::uint64_t>(), 0u);
  // The digest of the hidden states: the continued prompts' differ (fp16
  // keys and values), so the runs' digests do.
  EXPECT_NE(m["outputs_digest"], without.w->metrics(without.r)["outputs_digest"]);
  EXPECT_GT(m["token_hit_rate"].get<double>(), 0.4);
  const auto& a = with.w->node(95).records();
  const auto& b = without.w->node(95).records();
  ASSERT_GT(a.size(), 20u);
  // Two layers and the LM head (timed, not run) per request, batched per
  // window.
  EXPECT_EQ(with.r.compute_requests, 3 * a.size());
  EXPECT_GT(with.r.compute_batches, 0u);
  // Tiny model: 2 layers x (keys, values) x 16 tokens x 32 x fp16.
  EXPECT_EQ(m["block_bytes"].get<std::uint64_t>(), 4096u);
  std::size_t continued = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    ASSERT_EQ(a[i].seq, b[i].seq);
    ASSERT_EQ(a[i].output.size(), 64u);
    ASSERT_EQ(b[i].output.size(), 64u);
    EXPECT_EQ(b[i].cached_tokens, 0u);
    EXPECT_EQ(a[i].ttft_ns, a[i].uplink_ns + a[i].device_wait_ns + a[i].fetch_ns + a[i].prefill_ns +
                              a[i].downlink_ns);
    // The baseline's prefill is the run without the cache's (their waits
    // differ: the cached run's device also waits for fetches).
    EXPECT_EQ(a[i].ttft_nocache_ns - a[i].uplink_ns - a[i].downlink_ns - a[i].device_wait_ns,
              b[i].prefill_ns)
      << i;
    EXPECT_EQ(b[i].fetch_ns, 0) << i;
    double dot = 0, na = 0, nb = 0, diff = 0;
    for (std::size_t k = 0; k < 64; ++k) {
      dot += double(a[i].output[k]) * b[i].output[k];
      na += double(a[i].output[k]) * a[i].output[k];
      nb += double(b[i].output[k]) * b[i].output[k];
      diff += std::pow(double(a[i].output[k]) - b[i].output[k], 2);
    }
    if (a[i].cached_tokens == 0) {
      EXPECT_EQ(a[i].output, b[i].output) << i; // the same computation
      continue;
    }
    ++continued;
    EXPECT_GT(dot / std::sqrt(na * nb), 0.9999) << i;
    EXPECT_LT(std::sqrt(diff / nb), 1e-2) << i;
    EXPECT_GT(diff, 0.0) << i; // fp16 keys and values, not the fp32 ones
    EXPECT_LT(a[i].prefill_ns, b[i].prefill_ns) << i;
  }
  EXPECT_GT(continued, 10u);
}

TEST(SkymemoryEmulated, RealComputeContinuesFetchedKeysAndValues) { check_real_compute("ground"); }

// The emulated times do not depend on whether the layers run: compute.mode
// modeled charges each prefill what the GPU worker charges the real layer
// requests and the LM head (one launch overhead per kernel), so both modes
// give the same requests at the same times, cached prefixes included. (On a
// satellite, a real answer also carries the hidden state down: 256 bytes
// more on the downlink.)
TEST(SkymemoryEmulated, ModeledAndRealComputeGiveTheSameTimes) {
  for (const char* at : {"ground", "satellite"}) {
    SCOPED_TRACE(at);
    const std::vector<std::string> base = {"compute.model=tiny", "duration=40s",
                                           std::string("compute.at=") + at};
    auto modeled = base, real = base;
    modeled.push_back("compute.mode=modeled");
    real.push_back("compute.mode=real");
    real.push_back("compute.backend=cpu");
    auto a = run_text<emulated_workload>(small_yaml, modeled);
    auto b = run_text<emulated_workload>(small_yaml, real);
    ASSERT_TRUE(a.w && b.w);
    const auto& ra = a.w->node(95).records();
    const auto& rb = b.w->node(95).records();
    ASSERT_EQ(ra.size(), rb.size());
    ASSERT_GT(ra.size(), 20u);
    std::size_t cached = 0;
    for (std::size_t i = 0; i < ra.size(); ++i) {
      ASSERT_EQ(ra[i].seq, rb[i].seq);
      EXPECT_EQ(ra[i].cached_tokens, rb[i].cached_tokens) << i;
      EXPECT_EQ(ra[i].prefill_ns, rb[i].prefill_ns) << i;
      EXPECT_EQ(ra[i].device_wait_ns, rb[i].device_wait_ns) << i;
      // On a satellite, the answers carry as many bytes down in both modes.
      EXPECT_EQ(ra[i].downlink_ns, rb[i].downlink_ns) << i;
      EXPECT_EQ(ra[i].ttft_ns, rb[i].ttft_ns) << i;
      EXPECT_EQ(ra[i].ttft_nocache_ns, rb[i].ttft_nocache_ns) << i;
      EXPECT_EQ(ra[i].ttlt_ns, rb[i].ttlt_ns) << i;
      EXPECT_EQ(ra[i].ttlt_nocache_ns, rb[i].ttlt_nocache_ns) << i;
      cached += ra[i].cached_tokens > 0 ? 1 : 0;
    }
    EXPECT_GT(cached, 10u);
  }
}

TEST(SkymemoryEmulated, RealComputeOnASatelliteContinuesFetchedKeysAndValues) {
  check_real_compute("satellite");
}

// compute.at satellite: the user sends its prompt up to its serving
// satellite, which looks up, fetches, prefills and puts on the user's
// layout and sends the first and the last token down.
TEST(SkymemoryEmulated, ModelOnASatelliteAnswersPromptsSentUp) {
  auto run = run_text<emulated_workload>(small_yaml, {"compute.at=satellite"});
  ASSERT_TRUE(run.w);
  const auto m = run.w->metrics(run.r);
  EXPECT_EQ(m["model_at"], "satellite");
  const auto& user = run.w->node(95);
  EXPECT_GT(user.records().size(), 30u);
  EXPECT_EQ(m["prompts_served"].get<std::uint64_t>(), user.requests_started());
  EXPECT_EQ(m["requests_unanswered"].get<std::uint64_t>(), 0u);
  // The serving satellite is a server of the layout too: it reads its own
  // chunks without a link, and nothing times out.
  EXPECT_EQ(m["timeouts"].get<std::uint64_t>(), 0u);
  // The satellites ran the requests; the user ran none itself.
  EXPECT_EQ(run.r.counters.at("skymemory.prompts_served"), user.requests_started());
  EXPECT_GT(m["token_hit_rate"].get<double>(), 0.5);
  EXPECT_LE(m["token_hit_rate"].get<double>(), 0.75);
  EXPECT_GT(m["ttft_reduction"]["p50"].get<double>(), 0.3);
  const auto full = prefill_time(run.w->config().model, run.w->config().device, 256, 0).ns();
  for (const auto& r : user.records()) {
    ASSERT_GE(r.serving, 0);
    EXPECT_LT(r.serving, 95);
    EXPECT_EQ(r.cached_tokens % 16, 0u);
    EXPECT_LE(r.cached_tokens, 192u);
    EXPECT_EQ(r.chunks_fetched * 16, r.cached_tokens);
    // One ground link each way, 550 km up at least, slant at most ~1,900 km.
    EXPECT_GT(r.uplink_ns, satemu::runtime::microseconds(1'800).ns()) << r.seq;
    EXPECT_LT(r.uplink_ns, satemu::runtime::milliseconds(20).ns()) << r.seq;
    EXPECT_GT(r.downlink_ns, satemu::runtime::microseconds(1'800).ns()) << r.seq;
    EXPECT_LT(r.downlink_ns, satemu::runtime::milliseconds(20).ns()) << r.seq;
    EXPECT_EQ(r.ttft_ns, r.uplink_ns + r.device_wait_ns + r.fetch_ns + r.prefill_ns + r.downlink_ns)
      << r.seq;
    // The baseline waits for the satellite's device as long as the request did.
    EXPECT_LE(r.prefill_ns, full) << r.seq;
    EXPECT_EQ(r.ttft_nocache_ns, r.uplink_ns + r.device_wait_ns + full + r.downlink_ns) << r.seq;
    EXPECT_EQ(r.ttlt_ns - r.ttft_ns, r.ttlt_nocache_ns - r.ttft_nocache_ns);
    // The last token leaves 31 decode steps after the first.
    const auto decode =
      decode_time(run.w->config().model, run.w->config().device, 256, 32).ns();
    EXPECT_GE(r.ttlt_ns - r.ttft_ns, decode - satemu::runtime::milliseconds(20).ns());
    EXPECT_LE(r.ttlt_ns - r.ttft_ns, decode + satemu::runtime::milliseconds(20).ns());
  }
  const auto csv = run.w->files(run.r).at("requests.csv");
  EXPECT_NE(csv.find("serving_satellite,uplink_ms,downlink_ms,device_wait_ms\n"), std::string::npos);
  // Without the cache the baseline is exactly what happens.
  auto off = run_text<emulated_workload>(small_yaml, {"compute.at=satellite", "workload.cache=false"});
  ASSERT_TRUE(off.w);
  ASSERT_FALSE(off.w->node(95).records().empty());
  for (const auto& r : off.w->node(95).records()) {
    EXPECT_EQ(r.cached_tokens, 0u);
    EXPECT_EQ(r.ttft_ns, r.ttft_nocache_ns);
    EXPECT_EQ(r.ttlt_ns, r.ttlt_nocache_ns);
  }
}

// A prompt or an answer lost on the way: the user gives up after
// answer_timeout, counts it and goes on; nothing hangs. A prompt every 2 s:
// the device, which waits for lookups and chunks that time out (500 ms
// each), keeps up.
TEST(SkymemoryEmulated, ModelOnASatelliteLostPromptsAreGivenUpNeverHang) {
  auto run = run_text<emulated_workload>(
    small_yaml, {"compute.at=satellite", "constellation.loss=0.3", "workload.answer_timeout=10s",
                 "workload.interval=2s", "duration=120s"});
  ASSERT_TRUE(run.w);
  const auto m = run.w->metrics(run.r);
  const auto& user = run.w->node(95);
  const auto unanswered = m["requests_unanswered"].get<std::uint64_t>();
  EXPECT_GT(unanswered, 0u);
  EXPECT_GT(m["timeouts"].get<std::uint64_t>(), 0u);
  EXPECT_GT(user.records().size(), 10u);
  // Every request is answered, given up, or still waiting at the end; the
  // waiting ones are younger than the answer timeout (about 5 at one
  // prompt every 2 s).
  EXPECT_EQ(user.records().size() + unanswered + user.requests_in_flight(),
            user.requests_started());
  EXPECT_LE(user.requests_in_flight(), 25u);
  // Where the first token was lost and the last arrived, the record still
  // times the first token from the satellite's account (it had taken the
  // last one's arrival, the whole decode included, as the first's).
  const auto decode = decode_time(run.w->config().model, run.w->config().device, 256, 32).ns();
  for (const auto& r : user.records()) {
    EXPECT_LE(r.ttlt_ns, satemu::runtime::seconds(10).ns());
    EXPECT_EQ(r.ttft_ns, r.uplink_ns + r.device_wait_ns + r.fetch_ns + r.prefill_ns + r.downlink_ns)
      << r.seq;
    EXPECT_GE(r.ttlt_ns - r.ttft_ns, decode - satemu::runtime::milliseconds(20).ns()) << r.seq;
    EXPECT_EQ(r.ttlt_ns - r.ttft_ns, r.ttlt_nocache_ns - r.ttft_nocache_ns) << r.seq;
  }
}

// A run in which no request finishes still has every latency key and hit
// rate, as null (no data, not a cache that never hit), and says so.
TEST(SkymemoryEmulated, WithoutFinishedRequestsTheLatenciesAreNull) {
  auto run = run_text<emulated_workload>(small_yaml, {"duration=500ms", "compute.at=satellite"});
  ASSERT_TRUE(run.w);
  const auto m = run.w->metrics(run.r);
  EXPECT_EQ(m["requests_finished"].get<std::uint64_t>(), 0u);
  for (const char* k : {"ttft_ms", "ttft_nocache_ms", "ttlt_ms", "ttlt_nocache_ms", "fetch_ms",
                        "prefill_ms", "device_wait_ms", "ttft_reduction", "ttlt_reduction",
                        "uplink_ms", "downlink_ms", "token_hit_rate", "request_hit_rate"}) {
    ASSERT_TRUE(m.contains(k)) << k;
    EXPECT_TRUE(m[k].is_null()) << k;
  }
  EXPECT_TRUE(run.w->result_warnings(run.r).empty()); // none started
  // Every request given up (an answer timeout of 1 ms): said.
  auto lost = run_text<emulated_workload>(
    small_yaml, {"duration=5s", "compute.at=satellite", "workload.answer_timeout=1ms"});
  ASSERT_TRUE(lost.w);
  const auto l = lost.w->metrics(lost.r);
  const auto started = l["requests_started"].get<std::uint64_t>();
  ASSERT_GT(started, 0u);
  EXPECT_TRUE(l["token_hit_rate"].is_null());
  const auto warned = lost.w->result_warnings(lost.r);
  ASSERT_EQ(warned.size(), 1u);
  EXPECT_EQ(warned[0].rfind("100% of the requests started (" + std::to_string(started) + " of " +
                              std::to_string(started) + ") did not finish (" +
                              std::to_string(l["requests_unanswered"].get<std::uint64_t>()) +
                              " given up unanswered, 0 not sent: no satellite in view): the "
                              "latencies and hit rates cover the "
                              "finished ones only",
                            0),
            0u)
    << warned[0];
  auto done = run_text<emulated_workload>(small_yaml, {"duration=10s"});
  ASSERT_TRUE(done.w);
  const auto d = done.w->metrics(done.r);
  ASSERT_GT(d["requests_finished"].get<std::uint64_t>(), 0u);
  EXPECT_GE(d["device_wait_ms"]["max"].get<double>(), 0.0);
}

/// What validate and run warn about the small scenario with `sets`.
std::vector<std::string> warnings(const std::vector<std::string>& sets) {
  return satemu::actors::testing::warnings_of(small_yaml, sets);
}

// Link queues smaller than what a prompt puts at once drop some puts: the
// run warns (1 MiB, the default, holds 1 of a 256-token prompt's 16 chunks
// of 512 KiB, each 144 bytes more on the wire). So it does when a block is
// longer than the prompts or their shared headers: nothing can hit.
TEST(SkymemoryEmulated, QueuesTooSmallForAPromptsPutsAreWarnedAbout) {
  EXPECT_TRUE(warnings({}).empty()); // 64 MiB
  const auto small = warnings({"constellation.queue=1MiB"});
  ASSERT_EQ(small.size(), 1u);
  EXPECT_EQ(small[0].rfind("constellation.queue: 1MiB holds 1 of the 16 chunks (524432B each on "
                           "the wire) a prompt puts at once over one link, so the puts beyond "
                           "those (15) are dropped",
                           0),
            0u)
    << small[0];
  // 16 chunks of 524,432 bytes fit 8,390,912 bytes, not 8 MiB.
  EXPECT_EQ(warnings({"constellation.queue=8390912B"}).size(), 0u);
  EXPECT_EQ(warnings({"constellation.queue=8390911B"}).size(), 1u);
  EXPECT_TRUE(warnings({"constellation.queue=1MiB", "workload.cache=false"}).empty());
  const auto long_blocks = warnings({"workload.block_tokens=512"});
  ASSERT_EQ(long_blocks.size(), 1u);
  EXPECT_EQ(long_blocks[0], "workload.block_tokens: 512 is more than a prompt's 256 tokens "
                            "(workload.prompt_tokens): no prompt has a whole block to cache, so "
                            "the cache never hits");
  // 17 tokens at sharing 0.75: a header of 13 tokens, less than 16.
  const auto short_header = warnings({"workload.prompt_tokens=17"});
  ASSERT_EQ(short_header.size(), 1u);
  EXPECT_EQ(short_header[0], "workload.sharing: a prompt's shared header is 13 tokens (sharing x "
                             "prompt_tokens), less than a block of 16 (workload.block_tokens): "
                             "prompts share no whole block, so the cache never hits");
  EXPECT_TRUE(warnings({"workload.prompt_tokens=22"}).empty()); // 16.5 -> a header of 17
  EXPECT_EQ(warnings({"workload.sharing=0"}).size(), 1u);
  // A prompt of one block: that block ends it and is always computed.
  const auto one_block = warnings({"workload.prompt_tokens=16", "workload.sharing=1"});
  ASSERT_EQ(one_block.size(), 1u);
  EXPECT_EQ(one_block[0], "workload.block_tokens: 16 is a prompt's whole 16 tokens "
                          "(workload.prompt_tokens): its one block ends the prompt, whose last "
                          "token is always computed, so no block is ever fetched");
}

// Such a prompt costs no lookup round trip: with nothing to fetch, the
// fetch takes no time (it had taken a lookup's round trip every time).
TEST(SkymemoryBlocks, APromptWithNothingToFetchLooksNothingUp) {
  auto run = run_text<emulated_workload>(small_yaml,
                                         {"workload.prompt_tokens=16", "workload.sharing=1"});
  ASSERT_TRUE(run.w);
  const auto& user = run.w->node(95);
  ASSERT_FALSE(user.records().empty());
  for (const auto& r : user.records()) {
    EXPECT_EQ(r.fetch_ns, 0);
    EXPECT_EQ(r.cached_tokens, 0u);
  }
  // The block is still put (a longer prompt with the same start can use it).
  EXPECT_GT(run.w->metrics(run.r)["bytes_put"].get<std::uint64_t>(), 0u);
}

// The 5x19 shell's planes have no ISLs between them: a layout across planes
// puts cache servers out of the user's reach, and the run warns, naming them.
TEST(SkymemoryEmulated, ServersOutOfReachAreWarnedAbout) {
  EXPECT_TRUE(warnings({"workload.servers=19"}).empty()); // the whole plane
  const auto across = warnings({"workload.servers=9", "workload.in_plane=false"});
  ASSERT_EQ(across.size(), 1u);
  EXPECT_EQ(across[0], "workload.servers: at time 0, 6 of the 9 cache servers of user nyc "
                       "(satellites 24, 25, 26, 62, 63, 64) have no route from it over the links "
                       "of the moment: requests to them are dropped "
                       "(counters.space.drops_no_route); with no ISLs between planes, "
                       "`workload.in_plane: true` keeps the layout in the serving satellite's "
                       "plane");
  // Without the cache there are no servers.
  EXPECT_TRUE(warnings({"workload.servers=9", "workload.in_plane=false", "workload.cache=false"})
                .empty());
}

TEST(SkymemoryEmulated, BadCombinationsNameTheKey) {
  satemu::actors::register_workloads();
  auto make = [](std::vector<std::string> sets) {
    auto sc = satemu::runtime::load_scenario_text(small_yaml, "t.yaml", sets);
    EXPECT_TRUE(sc.ok()) << sc.status();
    return satemu::actors::make_workload(*sc).status();
  };
  auto st = make({"workload.servers=20"});
  EXPECT_EQ(st.message(), "workload.servers: 20 servers need more satellites than a plane has "
                          "(19; workload.in_plane: true keeps the servers in the serving plane)");
  st = make({"workload.servers=96", "workload.in_plane=false"});
  EXPECT_EQ(st.message(),
            "workload.servers: 96 servers need more satellites than the shell has (95)");
  // A prompt and its answer must fit the model's context.
  st = make({"workload.prompt_tokens=131072"});
  EXPECT_EQ(st.message(), "workload.prompt_tokens: 131072 prompt and 32 output tokens are more "
                          "than llama-3.2-1b's context of 131072 tokens");
  EXPECT_TRUE(make({"workload.prompt_tokens=131040"}).ok());
  st = make({"workload.capacity=1KiB"});
  EXPECT_NE(st.message().find("workload.capacity"), std::string::npos) << st;
  EXPECT_TRUE(make({}).ok());
  // A block of 512 MiB (16384 tokens of llama-3.2-1b) is more than a
  // message carries: the run aborted as it sent the first one.
  st = make({"workload.block_tokens=16384", "workload.prompt_tokens=16400",
             "workload.capacity=4GiB"});
  EXPECT_EQ(st.message(), "workload.block_tokens: a block of 536870912 bytes of llama-3.2-1b's "
                          "keys and values is more than a message carries (536870911 bytes)");
  // A start at the end sent nothing, and the run said nothing.
  st = make({"workload.start=100000s"});
  EXPECT_EQ(st.message().substr(0, 59),
            "workload.start: must be before the end of the run (duration");
  // Counts past 32 bits are refused, never cut down (2^32 servers ran as 0).
  for (const char* set : {"workload.servers=4294967296", "workload.output_tokens=4294967295",
                          "workload.headers=4294967297"}) {
    auto bad = satemu::runtime::load_scenario_text(small_yaml, "t.yaml", {set});
    ASSERT_FALSE(bad.ok()) << set;
    EXPECT_NE(bad.status().message().find("expected an integer in [1, 1073741824]"),
              std::string::npos)
      << bad.status();
  }
  // Keys the run would not use are refused: those of real kernels with a
  // modeled device (real time's batching too), and real time's batching in
  // virtual time.
  for (const char* k : {"backend=cpu", "weights=w.safetensors", "seed=3", "memory_limit=1B",
                        "threads=2", "batch_window=2ms", "max_batch=8"}) {
    st = make({absl::StrCat("compute.", k)});
    const std::string key = std::string(k).substr(0, std::string(k).find('='));
    EXPECT_EQ(st.message(), absl::StrCat("compute.", key, ": only used with compute.mode: real "
                                         "(modeled costs the layers from the device's figures "
                                         "without running them)"));
  }
  for (const char* k : {"compute.batch_window=2ms", "compute.max_batch=8"}) {
    st = make({k, "compute.mode=real", "compute.model=tiny"});
    EXPECT_NE(st.message().find(": only used with clock.mode: realtime"), std::string::npos)
      << k << ": " << st;
    EXPECT_TRUE(make({k, "compute.mode=real", "compute.model=tiny", "clock.mode=realtime"}).ok())
      << k;
  }
  // A batch waits at most a minute.
  const auto long_window =
    satemu::runtime::load_scenario_text(small_yaml, "t.yaml", {"compute.batch_window=61s"});
  EXPECT_NE(long_window.status().message().find(
              "compute.batch_window: expected a duration in [0s, 1min], got '61s'"),
            std::string::npos)
    << long_window.status();
  // The defaults written out, as a resolved scenario does, are no departure.
  EXPECT_TRUE(make({"compute.seed=0", "compute.backend=auto", "compute.max_batch=64"}).ok());
  // answer_timeout is for a model on a satellite only.
  auto sc = satemu::runtime::load_scenario_text(small_yaml, "t.yaml", {"workload.answer_timeout=5s"});
  ASSERT_TRUE(sc.ok()) << sc.status();
  st = check_emulated_keys(*sc);
  EXPECT_NE(st.message().find("workload.answer_timeout"), std::string::npos) << st;
  sc = satemu::runtime::load_scenario_text(small_yaml, "t.yaml",
                                           {"workload.answer_timeout=5s", "compute.at=satellite"});
  ASSERT_TRUE(sc.ok()) << sc.status();
  EXPECT_TRUE(check_emulated_keys(*sc).ok());
}

// `satemu validate` builds to check, without the weights: llama-3.2-1b's
// take 4.9 GB in fp32, which a run touches as it makes them.
TEST(SkymemoryEmulated, ACheckBuildMakesNoWeightsButRefusesWhatARunWould) {
  satemu::actors::register_workloads();
  auto sc = satemu::runtime::load_scenario_text(
    small_yaml, "t.yaml", {"compute.mode=real", "compute.backend=cpu", "compute.threads=1"});
  ASSERT_TRUE(sc.ok()) << sc.status();
  const auto before = satemu::runtime::current_rss_bytes();
  auto w = satemu::actors::make_workload(*sc, satemu::actors::build_depth::check);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_NE((*w)->compute(), nullptr);
  const auto after = satemu::runtime::current_rss_bytes();
  EXPECT_LT(after, before + (1ull << 30)) << before << " -> " << after << " bytes resident";
  // A memory limit below the weights, and one beyond the machine's memory,
  // are refused by either build.
  for (const auto* limit : {"compute.memory_limit=1GB", "compute.memory_limit=1000TB"}) {
    auto bad = satemu::runtime::load_scenario_text(
      small_yaml, "t.yaml", {"compute.mode=real", "compute.backend=cpu", limit});
    ASSERT_TRUE(bad.ok()) << bad.status();
    for (auto depth : {satemu::actors::build_depth::check, satemu::actors::build_depth::run}) {
      const auto st = satemu::actors::make_workload(*bad, depth).status();
      EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << limit << ": " << st;
      EXPECT_EQ(st.message().find("compute.memory_limit: "), 0u) << st;
    }
  }
}

} // namespace
