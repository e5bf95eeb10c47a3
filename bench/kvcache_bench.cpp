// SkyMemory KV-cache protocol (protocol/kvcache.capnp): the cost of each
// message, and KV messages per wall second through the virtual-time kernel.
//
//   BM_Kv_EncodeDecode/<op>[/<chunk bytes>]
//       encode_kv then decode_kv(keep_data = true) of one KvMessage, as a
//       cache server or a `compute: real` user receives it: the chunk ops
//       (put, chunk, migrate_chunk) carry real bytes in `chunk.data`
//       (12,288 B and 3 MiB), checksummed on encode and again on decode, and
//       decoding copies them out; chunk_filler carries zero filler of those
//       sizes instead (a run without real KV data: its checksum takes the
//       lanes remembered for the size, and decoding keeps no data); the hash
//       lists (lookup, lookup_reply, get, evict_notice) hold the 64 block
//       hashes of a 1,024-token prompt in 16-token blocks; prompt carries
//       1,024 tokens and 9 servers, answer a satellite's account
//       (answer_hidden also a 2,048-float hidden state, as with compute
//       real). Counters: items_per_second (messages),
//       data_bytes_per_s (KV data bytes, chunk ops only), flat_bytes (the
//       encoded payload). One line of `kv_cases` per op.
//   BM_Kv_KernelPutGet/chunk_bytes/threads
//       64 client/server entity pairs, 5 ms links (lookahead 5 ms). Each
//       round a client puts `blocks` chunks of real bytes to its server and,
//       in the same event, gets them back with one `get`; the next round
//       starts when the last chunk is in. Servers decode (keep_data,
//       checksum), store in an `lru_store` of two rounds' chunks, so from the
//       third round on every put evicts one chunk of two rounds before and
//       answers it with an `evict_notice` (as skymemory_emulated does), and
//       answer a get with one `chunk` per hash, encoded from the stored
//       bytes. Clients decode (keep_data) and check every chunk (checksum,
//       hash, index, size). Manual time = the kernel's wall_seconds.
//       Counters: kv_msgs_per_s (every KvMessage delivered), chunk_msgs_per_s
//       (put + chunk), data_bytes_per_s (KV bytes in them), payload_bytes_per_s
//       (encoded payloads of every message), msgs. The case fails unless
//       every message sent was received, every round finished and no check
//       failed.
//
// Reference points (TOOLCHAIN.md, same class of machine): Cap'n Proto encode +
// decode of 256 B ~4-5 M msg/s per core; 64 KiB ~10-12 GB/s.
//
// Run: ./build/bench/kvcache_bench --benchmark_repetitions=3
//        --benchmark_report_aggregates_only=true
// (about 1 minute on an otherwise idle 2-core machine).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "actors/kvcache.hpp"
#include "bench/bench_main.hpp"
#include "protocol/kvcache.hpp"
#include "runtime/entity.hpp"
#include "runtime/kernel.hpp"
#include "runtime/rng.hpp"

namespace {

using namespace satemu;
using protocol::kv_message;
using protocol::kv_op;
using bytes_ptr = std::shared_ptr<const std::vector<std::byte>>;

constexpr std::uint32_t small_chunk = 12 * 1024;
constexpr std::uint32_t large_chunk = 3 * 1024 * 1024;
constexpr std::uint32_t block_tokens = 16;

/// `n` random bytes (stands for a block's keys and values).
bytes_ptr random_bytes(std::size_t n, std::uint64_t stream) {
  runtime::rng r{1, 0, stream};
  auto v = std::make_shared<std::vector<std::byte>>(n);
  for (auto& b : *v)
    b = static_cast<std::byte>(r.next());
  return v;
}

// ---------------------------------------------------------------------------
// Encode + decode of each message.

/// The 64 block hashes of a 1,024-token prompt.
std::vector<std::uint64_t> prompt_hashes() {
  runtime::rng r{1, 0, 1};
  std::vector<std::uint32_t> tokens(1024);
  for (auto& t : tokens)
    t = static_cast<std::uint32_t>(r.below(128'256));
  return actors::skymemory::block_hashes(tokens, block_tokens, 0);
}

kv_message chunk_message(kv_op op, std::uint32_t chunk_bytes) {
  kv_message m;
  m.op = op;
  m.request = 7;
  m.origin = 3;
  m.chunk.hash = prompt_hashes()[5];
  m.chunk.index = 5;
  m.chunk.tokens = block_tokens;
  m.chunk.owner = 3;
  m.chunk.data = random_bytes(chunk_bytes, 2);
  return m;
}

/// A chunk of zero filler, as a run without real KV data sends.
kv_message filler_message(std::uint32_t chunk_bytes) {
  auto m = chunk_message(kv_op::chunk, 0);
  m.chunk.data = nullptr;
  m.chunk.data_bytes = chunk_bytes;
  return m;
}

kv_message hashes_message(kv_op op) {
  kv_message m;
  m.op = op;
  m.request = 7;
  m.origin = 3;
  m.hashes = prompt_hashes();
  return m;
}

kv_message migrate_message() {
  kv_message m;
  m.op = kv_op::migrate;
  m.origin = 3;
  m.owner = 3;
  m.target = 41;
  return m;
}

kv_message error_message() {
  kv_message m;
  m.op = kv_op::error;
  m.request = 7;
  m.origin = 41;
  m.error = protocol::kv_error::not_found;
  m.error_hash = prompt_hashes()[5];
  return m;
}

/// A user's 1,024-token prompt and its 9-server layout (compute.at
/// satellite).
kv_message prompt_message() {
  runtime::rng r{1, 0, 1};
  kv_message m;
  m.op = kv_op::prompt;
  m.request = 7;
  m.origin = 3;
  m.tokens.resize(1024);
  for (auto& t : m.tokens)
    t = static_cast<std::uint32_t>(r.below(128'256));
  m.servers = {40, 41, 42, 59, 60, 61, 78, 79, 80};
  return m;
}

/// A satellite's answer: its account of the request and, with compute
/// real, the final hidden state of Llama-3.2-1B (2,048 floats; `hidden`).
kv_message answer_message(bool hidden) {
  kv_message m;
  m.op = kv_op::answer;
  m.request = 7;
  m.origin = 41;
  m.answer.cached_tokens = 768;
  m.answer.chunks_fetched = 48;
  m.answer.bytes_fetched = 48ull << 19;
  m.answer.fetch_ns = 68'458'004;
  m.answer.prefill_ns = 564'689'488;
  m.answer.received_ns = 2'443'967'777;
  m.answer.sent_ns = 3'077'115'269;
  if (hidden)
    m.answer.hidden.assign(2048, 0.25f);
  return m;
}

/// One message kind to time. Chunk ops run once per chunk size, the others
/// once (`make` then gets 0).
struct kv_case {
  const char* name;
  bool chunked;
  kv_message (*make)(std::uint32_t chunk_bytes);
};

const kv_case kv_cases[] = {
  {"put", true, [](std::uint32_t b) { return chunk_message(kv_op::put, b); }},
  {"lookup", false, [](std::uint32_t) { return hashes_message(kv_op::lookup); }},
  {"lookup_reply", false, [](std::uint32_t) { return hashes_message(kv_op::lookup_reply); }},
  {"get", false, [](std::uint32_t) { return hashes_message(kv_op::get); }},
  {"chunk", true, [](std::uint32_t b) { return chunk_message(kv_op::chunk, b); }},
  {"chunk_filler", true, filler_message},
  {"migrate", false, [](std::uint32_t) { return migrate_message(); }},
  {"migrate_chunk", true, [](std::uint32_t b) { return chunk_message(kv_op::migrate_chunk, b); }},
  {"evict_notice", false, [](std::uint32_t) { return hashes_message(kv_op::evict_notice); }},
  {"error", false, [](std::uint32_t) { return error_message(); }},
  {"prompt", false, [](std::uint32_t) { return prompt_message(); }},
  {"answer", false, [](std::uint32_t) { return answer_message(false); }},
  {"answer_hidden", false, [](std::uint32_t) { return answer_message(true); }},
};

void BM_Kv_EncodeDecode(benchmark::State& state, kv_message m) {
  std::size_t flat_bytes = 0;
  for (auto _ : state) {
    ++m.request;
    auto p = protocol::encode_kv(m);
    auto d = protocol::decode_kv(p, /*keep_data=*/m.chunk.data != nullptr);
    if (!d.ok() || d->op != m.op || d->request != m.request ||
        (protocol::carries_chunk(m.op) && !d->chunk.checksum_ok)) {
      state.SkipWithError("decode failed or checksum mismatch");
      break;
    }
    benchmark::DoNotOptimize(d->chunk.data);
    benchmark::DoNotOptimize(d->hashes.data());
    benchmark::DoNotOptimize(d->tokens.data());
    benchmark::DoNotOptimize(d->answer.hidden.data());
    flat_bytes = p.size_bytes();
  }
  state.SetItemsProcessed(state.iterations());
  if (protocol::carries_chunk(m.op)) {
    // In 10^9 bytes, as the kernel cases below count them (Google
    // Benchmark's bytes_per_second prints in 2^30).
    state.counters["data_bytes_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) *
        static_cast<double>(m.chunk.data ? m.chunk.data->size() : m.chunk.data_bytes),
      benchmark::Counter::kIsRate);
  }
  state.counters["flat_bytes"] = static_cast<double>(flat_bytes);
}

void register_encode_decode() {
  for (const auto& c : kv_cases) {
    const std::string name = std::string("BM_Kv_EncodeDecode/") + c.name;
    if (!c.chunked) {
      benchmark::RegisterBenchmark(name.c_str(), BM_Kv_EncodeDecode, c.make(0));
      continue;
    }
    for (std::uint32_t bytes : {small_chunk, large_chunk})
      benchmark::RegisterBenchmark((name + "/" + std::to_string(bytes)).c_str(),
                                   BM_Kv_EncodeDecode, c.make(bytes));
  }
}

// ---------------------------------------------------------------------------
// Put-then-get traffic through the kernel.

constexpr std::uint32_t pairs = 64;
constexpr auto link_latency = runtime::milliseconds(5);

struct traffic {
  std::uint32_t chunk_bytes = 0;
  /// Chunks put, then got, per round.
  std::uint32_t blocks = 0;
  std::uint32_t rounds = 0;
  /// Shared by every client: chunk i of a round carries data[i % size].
  std::vector<bytes_ptr> data;
};

/// 12 KiB: a 1,024-token prompt's 64 blocks per round. 3 MiB: 2 blocks per
/// round (6 MiB). Rounds: 1-5 s of wall time per run on a 2-core VM.
traffic traffic_for(std::int64_t chunk_bytes) {
  traffic t;
  t.chunk_bytes = static_cast<std::uint32_t>(chunk_bytes);
  if (chunk_bytes == small_chunk) {
    t.blocks = 64;
    t.rounds = 40;
  } else if (chunk_bytes == large_chunk) {
    t.blocks = 2;
    t.rounds = 6;
  } else {
    return {};
  }
  for (std::uint64_t i = 0; i < 4; ++i)
    t.data.push_back(random_bytes(t.chunk_bytes, 10 + i));
  return t;
}

/// What an entity sent and received, summed over the run afterwards.
struct tally {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t chunk_msgs = 0;    ///< put + chunk received
  std::uint64_t data_bytes = 0;    ///< KV bytes in them
  std::uint64_t payload_bytes = 0; ///< encoded payloads received
  std::uint64_t failures = 0;      ///< decode, checksum or protocol failures

  void add(const tally& o) {
    sent += o.sent;
    received += o.received;
    chunk_msgs += o.chunk_msgs;
    data_bytes += o.data_bytes;
    payload_bytes += o.payload_bytes;
    failures += o.failures;
  }
};

/// Common to both ends: sends and decodes KvMessages, counting them.
class kv_endpoint : public runtime::entity {
public:
  const tally& counts() const { return tally_; }

protected:
  void send_kv(runtime::entity_id dst, const kv_message& m) {
    ++tally_.sent;
    send(dst, link_latency, protocol::kind::kvcache, protocol::encode_kv(m));
  }

  /// The decoded message, or nullopt (counted as a failure).
  std::optional<kv_message> receive_kv(const protocol::envelope& e) {
    ++tally_.received;
    tally_.payload_bytes += e.body.size_bytes();
    auto m = protocol::decode_kv(e.body, true);
    if (!m.ok() || e.k != protocol::kind::kvcache) {
      ++tally_.failures;
      return std::nullopt;
    }
    if (protocol::carries_chunk(m->op)) {
      ++tally_.chunk_msgs;
      tally_.data_bytes += m->chunk.data_bytes;
      if (!m->chunk.checksum_ok) {
        ++tally_.failures;
        return std::nullopt;
      }
    }
    return std::move(*m);
  }

  tally tally_;
};

class kv_server final : public kv_endpoint {
public:
  explicit kv_server(std::uint64_t capacity_bytes) : store_(capacity_bytes) {}

protected:
  void on_envelope(protocol::envelope& e) override {
    auto m = receive_kv(e);
    if (!m)
      return;
    if (m->op == kv_op::put)
      store(m->chunk);
    else if (m->op == kv_op::get)
      serve(*m);
    else
      ++tally_.failures;
  }

private:
  void store(const protocol::kv_chunk& c) {
    auto r = store_.put({c.hash, c.index, c.tokens, c.owner, c.data_bytes, c.data});
    if (!r.stored) {
      ++tally_.failures;
      return;
    }
    if (r.evicted.empty())
      return;
    kv_message n; // every chunk here has one owner: the pair's client
    n.op = kv_op::evict_notice;
    n.origin = id();
    for (const auto& x : r.evicted)
      n.hashes.push_back(x.hash);
    send_kv(c.owner, n);
  }

  void serve(const kv_message& m) {
    for (auto h : m.hashes) {
      kv_message r;
      r.request = m.request;
      r.origin = id();
      const auto* c = store_.get(h);
      if (c == nullptr) {
        r.op = kv_op::error;
        r.error = protocol::kv_error::not_found;
        r.error_hash = h;
      } else {
        r.op = kv_op::chunk;
        r.chunk = {c->hash, c->index, c->tokens, c->owner, 0,
                   static_cast<std::uint32_t>(c->bytes), c->data};
      }
      send_kv(m.origin, r);
    }
  }

  actors::skymemory::lru_store store_;
};

class kv_client final : public kv_endpoint {
public:
  kv_client(runtime::entity_id server, const traffic* t) : server_(server), t_(t) {}

  std::uint32_t rounds_done() const { return rounds_done_; }

protected:
  void on_start() override { start_round(); }

  void on_envelope(protocol::envelope& e) override {
    auto m = receive_kv(e);
    if (!m)
      return;
    if (m->op == kv_op::evict_notice)
      return;
    // Chunks come back in the order of the get, each the one put.
    if (m->op != kv_op::chunk || m->request != rounds_done_ || got_ >= t_->blocks ||
        m->chunk.index != got_ || m->chunk.hash != hashes_[got_] ||
        m->chunk.data_bytes != t_->chunk_bytes) {
      ++tally_.failures;
      return;
    }
    if (++got_ < t_->blocks)
      return;
    if (++rounds_done_ < t_->rounds)
      start_round();
  }

private:
  void start_round() {
    got_ = 0;
    hashes_.clear();
    for (std::uint32_t i = 0; i < t_->blocks; ++i) {
      kv_message m;
      m.op = kv_op::put;
      m.request = rounds_done_;
      m.origin = id();
      m.chunk.hash = random().next();
      m.chunk.index = i;
      m.chunk.tokens = block_tokens;
      m.chunk.owner = id();
      m.chunk.data = t_->data[i % t_->data.size()];
      hashes_.push_back(m.chunk.hash);
      send_kv(server_, m);
    }
    // Same latency, later sequence number: arrives after the puts.
    kv_message g;
    g.op = kv_op::get;
    g.request = rounds_done_;
    g.origin = id();
    g.hashes = hashes_;
    send_kv(server_, g);
  }

  runtime::entity_id server_;
  const traffic* t_;
  std::vector<std::uint64_t> hashes_;
  std::uint32_t got_ = 0;
  std::uint32_t rounds_done_ = 0;
};

void BM_Kv_KernelPutGet(benchmark::State& state) {
  const auto t = traffic_for(state.range(0));
  const auto threads = static_cast<std::size_t>(state.range(1));
  if (t.blocks == 0) {
    state.SkipWithError("no traffic for this chunk size");
    return;
  }
  runtime::run_result r;
  tally total;
  for (auto _ : state) {
    // Entity 2i is client i, 2i + 1 its server, holding two rounds' chunks.
    std::vector<std::unique_ptr<runtime::entity>> entities;
    for (std::uint32_t i = 0; i < pairs; ++i) {
      entities.push_back(std::make_unique<kv_client>(2 * i + 1, &t));
      entities.push_back(
        std::make_unique<kv_server>(std::uint64_t{2} * t.blocks * t.chunk_bytes));
    }
    runtime::run_options opts;
    opts.mode = runtime::clock_mode::virtual_time;
    opts.end = runtime::vtime::zero() + runtime::seconds(3600); // ends when traffic does
    opts.lookahead = link_latency;
    opts.threads = threads;
    opts.seed = 1;
    r = runtime::run(entities, opts);
    benchmark::DoNotOptimize(r);
    total = {};
    std::uint32_t unfinished = 0;
    for (std::uint32_t i = 0; i < pairs; ++i) {
      const auto& client = static_cast<const kv_client&>(*entities[2 * i]);
      const auto& server = static_cast<const kv_server&>(*entities[2 * i + 1]);
      total.add(client.counts());
      total.add(server.counts());
      unfinished += client.rounds_done() != t.rounds;
    }
    if (r.interrupted || total.sent == 0 || total.sent != total.received ||
        total.received != r.envelopes || unfinished != 0 || total.failures != 0) {
      state.SkipWithError(("lost or failed messages: sent " + std::to_string(total.sent) +
                           ", received " + std::to_string(total.received) + ", failures " +
                           std::to_string(total.failures) + ", unfinished clients " +
                           std::to_string(unfinished))
                            .c_str());
      return;
    }
    state.SetIterationTime(r.wall_seconds);
  }
  const auto per_s = [&](std::uint64_t n) { return static_cast<double>(n) / r.wall_seconds; };
  state.counters["kv_msgs_per_s"] = per_s(total.received);
  state.counters["chunk_msgs_per_s"] = per_s(total.chunk_msgs);
  state.counters["data_bytes_per_s"] = per_s(total.data_bytes);
  state.counters["payload_bytes_per_s"] = per_s(total.payload_bytes);
  state.counters["msgs"] = static_cast<double>(total.received);
  state.counters["windows"] = static_cast<double>(r.windows);
}

void register_kernel_put_get() {
  benchmark::RegisterBenchmark("BM_Kv_KernelPutGet", BM_Kv_KernelPutGet)
    ->ArgNames({"chunk_bytes", "threads"})
    ->ArgsProduct({{small_chunk, large_chunk}, {1, 2}})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
}

} // namespace

// Registered here rather than with BENCHMARK() so that the encode/decode
// cases, built from the kv_cases table, run first.
int main(int argc, char** argv) {
  register_encode_decode();
  register_kernel_put_get();
  return satemu::bench::run_benchmarks(argc, argv);
}
