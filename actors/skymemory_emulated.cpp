// satemu `skymemory` workload, emulated mode: users, cache servers, metrics.
#include "actors/skymemory_emulated.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gpu/compute_config.hpp"
#include "gpu/gpu_worker.hpp"
#include "gpu/half.hpp"
#include "gpu/model_runner.hpp"
#include "nlohmann/json.hpp"
#include "protocol/bytes.hpp"
#include "protocol/kvcache.hpp"
#include "runtime/histogram.hpp"

namespace satemu::actors::skymemory {

using protocol::kv_message;
using protocol::kv_op;
using runtime::duration;

namespace {

struct sky_counters {
  runtime::counter_id lookups, gets, chunks_served, puts, put_bytes, evictions, evict_notices,
    migrate_orders, migrated_chunks, migrated_bytes, migrated_stored, corrupt_sent,
    corrupt_detected, timeouts, not_found, malformed, compute_errors, prompts, unanswered,
    no_satellite;
};

const sky_counters& ids() {
  static const sky_counters c{
    runtime::register_counter("skymemory.lookups"),
    runtime::register_counter("skymemory.gets"),
    runtime::register_counter("skymemory.chunks_served"),
    runtime::register_counter("skymemory.puts_stored"),
    runtime::register_counter("skymemory.put_bytes_stored"),
    runtime::register_counter("skymemory.evictions"),
    runtime::register_counter("skymemory.evict_notices_received"),
    runtime::register_counter("skymemory.migrate_orders"),
    runtime::register_counter("skymemory.migrated_chunks"),
    runtime::register_counter("skymemory.migrated_bytes"),
    runtime::register_counter("skymemory.migrated_chunks_stored"),
    runtime::register_counter("skymemory.corrupt_chunks_sent"),
    runtime::register_counter("skymemory.corrupt_chunks_detected"),
    runtime::register_counter("skymemory.timeouts"),
    runtime::register_counter("skymemory.not_found"),
    runtime::register_counter("skymemory.malformed"),
    runtime::register_counter("skymemory.compute_errors"),
    runtime::register_counter("skymemory.prompts_served"),
    runtime::register_counter("skymemory.requests_unanswered"),
    runtime::register_counter("skymemory.requests_without_satellite"),
  };
  return c;
}

// Timer tags: the kind in the top byte, the request sequence below.
enum timer_kind : std::uint64_t { arrival = 1, check = 2, lookup_timeout = 3, get_timeout = 4,
                                   prefill_done = 5, layer_done = 6, answer_timeout = 7,
                                   decode_done = 8, send_later = 9, migrate_next = 10,
                                   lm_head_done = 11 };
constexpr std::uint64_t tag(timer_kind k, std::uint64_t seq) { return (k << 56) | seq; }
constexpr timer_kind tag_kind(std::uint64_t t) { return static_cast<timer_kind>(t >> 56); }
constexpr std::uint64_t tag_seq(std::uint64_t t) { return t & ((std::uint64_t{1} << 56) - 1); }

} // namespace

/// A request on the node running the model, between its arrival and the
/// end of its prefill (on a satellite: until its last answer is sent).
struct skymemory_node::active_request {
  enum class phase { queued, lookup, get, prefill, decode } at = phase::queued;
  /// `rec.seq` is this node's sequence number for the request (the user's
  /// own on a user); `rec.start_ns` when the node got it.
  request_record rec;
  /// The user the request is for, and its sequence number there.
  runtime::entity_id client = 0;
  std::uint64_t client_seq = 0;
  /// The layout's slots (block i on slots[i mod size]): a user's when the
  /// device takes the request, a satellite's those the prompt came with;
  /// empty: no cache lookup.
  std::vector<std::uint32_t> slots;
  std::vector<std::uint64_t> hashes;
  /// Server of each block, fixed at the start.
  std::vector<runtime::entity_id> server;
  std::vector<char> present;
  std::vector<char> valid;
  std::size_t waiting = 0;
  /// Chunks asked for by the get.
  std::size_t requested = 0;
  // compute real: the prompt, the fetched blocks' bytes, and per layer the
  // keys and values of the tokens computed here.
  std::vector<std::uint32_t> tokens;
  std::vector<std::shared_ptr<const std::vector<std::byte>>> data;
  std::vector<gpu::tensor> keys, values;
  /// When the device took the request (its lookup began), and when its
  /// prefill began.
  std::int64_t lookup_start_ns = 0;
  std::int64_t prefill_start_ns = 0;
};

namespace {

// A block's bytes (compute real): per layer, the keys then the values of its
// tokens, rows of kv_dim, as fp16.
using block_bytes = std::vector<std::byte>;

std::size_t block_offset(std::size_t layer, bool values, std::size_t rows, std::size_t kv) {
  return ((layer * 2 + (values ? 1 : 0)) * rows * kv) * sizeof(std::uint16_t);
}

void put_fp16(const float* from, std::size_t n, std::byte* to) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint16_t h = gpu::float_to_fp16_bits(from[i]);
    std::memcpy(to + i * sizeof h, &h, sizeof h);
  }
}

void get_fp16(const std::byte* from, std::size_t n, float* to) {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t h;
    std::memcpy(&h, from + i * sizeof h, sizeof h);
    to[i] = gpu::fp16_bits_to_float(h);
  }
}

} // namespace

skymemory_node::skymemory_node(std::shared_ptr<space_network> net,
                               std::shared_ptr<const emulated_config> cfg, bool user)
  : space_node(std::move(net)), cfg_(std::move(cfg)), user_(user),
    block_bytes_(kv_block_bytes(cfg_->model, cfg_->block_tokens)),
    store_(user ? 0 : cfg_->capacity_bytes) {
  const sky_counters& c = ids();
  declare_counters({c.lookups, c.gets, c.chunks_served, c.puts, c.put_bytes, c.evictions,
                    c.evict_notices, c.migrate_orders, c.migrated_chunks, c.migrated_bytes,
                    c.migrated_stored, c.corrupt_sent, c.corrupt_detected, c.timeouts,
                    c.not_found, c.malformed, c.compute_errors, c.prompts, c.unanswered,
                    c.no_satellite});
}

void skymemory_node::on_start() {
  space_node::on_start();
  if (!user_)
    return;
  auto t = layout_tracker::make(cfg_->planes, cfg_->sats_per_plane, cfg_->altitude_m,
                                cfg_->layout, cfg_->servers, cfg_->in_plane, cfg_->phasing);
  if (t.ok()) // checked when the workload was built
    layout_ = std::move(*t);
  schedule_app(cfg_->start + duration::from_ns(static_cast<std::int64_t>(
                                random().exponential(static_cast<double>(cfg_->interval.ns())))),
               tag(arrival, 0));
  if (cfg_->cache)
    schedule_app(cfg_->check_interval, tag(check, 0));
}

void skymemory_node::send_kv(runtime::entity_id dst, const kv_message& m, bool corrupt,
                             duration after) {
  auto body = protocol::encode_kv(m, corrupt);
  if (dst != id() && after == duration::zero()) {
    send_over(dst, protocol::kind::kvcache, std::move(body));
    return;
  }
  // Later (a chunk once it is read) by a timer: a message enters its link's
  // FIFO when it is ready, so that it holds up nothing before then. To itself
  // (a satellite running the model asks its own cache server): no link, only
  // the sender's processing delay.
  const auto n = next_later_++;
  later_[n] = {dst, std::move(body)};
  schedule_app(after, tag(send_later, n));
}

void skymemory_node::on_app_timer(std::uint64_t t) {
  const auto seq = tag_seq(t);
  switch (tag_kind(t)) {
    case arrival:
      start_request();
      schedule_app(duration::from_ns(static_cast<std::int64_t>(
                     random().exponential(static_cast<double>(cfg_->interval.ns())))),
                   tag(arrival, 0));
      return;
    case check:
      check_handover();
      schedule_app(cfg_->check_interval, tag(check, 0));
      return;
    case lookup_timeout:
    case get_timeout: {
      auto it = active_.find(seq);
      if (it == active_.end())
        return;
      auto& a = *it->second;
      const bool lookup = tag_kind(t) == lookup_timeout;
      if ((lookup && a.at != active_request::phase::lookup) ||
          (!lookup && a.at != active_request::phase::get))
        return;
      count(ids().timeouts);
      a.rec.timed_out = true;
      if (lookup)
        finish_lookup(a);
      else
        finish_fetch(a);
      return;
    }
    case prefill_done:
      finish_prefill(seq);
      release_device(seq);
      return;
    case decode_done:
      if (auto it = active_.find(seq); it != active_.end()) {
        if (user_)
          records_.push_back(std::move(it->second->rec));
        else
          answer(*it->second, true);
        active_.erase(it);
      }
      return;
    case answer_timeout:
      if (asked_.erase(seq) > 0)
        count(ids().unanswered);
      return;
    case migrate_next:
      send_next_migration();
      return;
    case send_later:
      if (auto it = later_.find(seq); it != later_.end()) {
        auto [dst, body] = std::move(it->second);
        later_.erase(it);
        if (dst == id())
          receive_kv(body);
        else
          send_over(dst, protocol::kind::kvcache, std::move(body));
      }
      return;
    case layer_done: // compute tags (on_compute), never a timer's
    case lm_head_done:
      return;
  }
}

void skymemory_node::start_request() {
  const auto seq = next_seq_++;
  auto p = make_prompt(cfg_->prompts, cfg_->seed, random());
  const auto serving = serving_satellite();
  request_record rec;
  rec.seq = seq;
  rec.start_ns = now().ns();
  rec.header = p.header;
  rec.prompt_tokens = static_cast<std::uint32_t>(p.tokens.size());
  rec.serving = serving;
  // None in view: on the ground the request runs without the cache; with
  // the model on a satellite it cannot be sent.
  if (serving < 0)
    count(ids().no_satellite);
  if (cfg_->on_satellite) {
    // The model is up there: send the prompt and the layout to it.
    if (serving < 0)
      return;
    kv_message m;
    m.op = kv_op::prompt;
    m.request = seq;
    m.origin = id();
    m.tokens = std::move(p.tokens);
    m.servers = current_slots();
    send_kv(static_cast<runtime::entity_id>(serving), m);
    asked_[seq].rec = std::move(rec);
    schedule_app(cfg_->answer_timeout, tag(answer_timeout, seq));
    return;
  }
  auto a = std::make_unique<active_request>();
  a->rec = std::move(rec);
  a->client = id();
  a->client_seq = seq;
  a->tokens = std::move(p.tokens);
  enqueue(std::move(a));
}

std::vector<std::uint32_t> skymemory_node::current_slots() {
  const auto serving = serving_satellite();
  if (!cfg_->cache || serving < 0 || !layout_)
    return {};
  if (!layout_->placed())
    layout_->reset(static_cast<std::uint32_t>(serving));
  return layout_->slots();
}

void skymemory_node::enqueue(std::unique_ptr<active_request> owned) {
  const auto seq = owned->rec.seq;
  active_[seq] = std::move(owned);
  device_queue_.push_back(seq);
  if (device_queue_.size() == 1)
    take_next();
}

void skymemory_node::take_next() {
  while (!device_queue_.empty()) {
    auto it = active_.find(device_queue_.front());
    if (it != active_.end()) {
      begin(*it->second);
      return;
    }
    device_queue_.pop_front(); // dropped while it waited
  }
}

void skymemory_node::release_device(std::uint64_t seq) {
  if (device_queue_.empty() || device_queue_.front() != seq)
    return; // not the request on the device
  device_queue_.pop_front();
  take_next();
}

void skymemory_node::drop_for_compute_error(std::uint64_t seq) {
  count(ids().compute_errors);
  active_.erase(seq);
  release_device(seq);
}

namespace {

// Of a prompt's `blocks` whole blocks, those a fetch can use: the last
// prompt token is always computed (the first output token needs it), so a
// block that ends the prompt is not fetched.
std::size_t fetchable_blocks(std::size_t blocks, std::uint32_t block_tokens,
                             std::uint32_t prompt_tokens) {
  return blocks > 0 && blocks * block_tokens >= prompt_tokens ? blocks - 1 : blocks;
}

} // namespace

void skymemory_node::begin(active_request& a) {
  const auto seq = a.rec.seq;
  a.lookup_start_ns = now().ns();
  a.rec.device_wait_ns = a.lookup_start_ns - a.rec.start_ns;
  // A user looks up on its layout of the moment.
  if (user_)
    a.slots = current_slots();
  a.hashes = block_hashes(a.tokens, cfg_->block_tokens, a.client);
  const auto n = a.hashes.size();
  a.present.assign(n, 0);
  a.valid.assign(n, 0);
  if (cfg_->real)
    a.data.resize(n);
  // Nothing to fetch: no lookup round trip either.
  if (a.slots.empty() || fetchable_blocks(n, cfg_->block_tokens, a.rec.prompt_tokens) == 0) {
    finish_fetch(a);
    return;
  }
  // One lookup per server, for its blocks, in server order.
  std::map<runtime::entity_id, std::vector<std::uint64_t>> asks;
  a.server.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    a.server[i] = a.slots[i % a.slots.size()];
    asks[a.server[i]].push_back(a.hashes[i]);
  }
  a.at = active_request::phase::lookup;
  a.waiting = asks.size();
  for (auto& [server, hashes] : asks) {
    kv_message m;
    m.op = kv_op::lookup;
    m.request = seq;
    m.origin = id();
    m.hashes = std::move(hashes);
    send_kv(server, m);
  }
  schedule_app(cfg_->timeout, tag(lookup_timeout, seq));
}

void skymemory_node::finish_lookup(active_request& a) {
  const std::size_t usable =
    fetchable_blocks(a.hashes.size(), cfg_->block_tokens, a.rec.prompt_tokens);
  std::size_t prefix = 0;
  while (prefix < usable && a.present[prefix])
    ++prefix;
  if (prefix == 0) {
    finish_fetch(a);
    return;
  }
  std::map<runtime::entity_id, std::vector<std::uint64_t>> gets;
  for (std::size_t i = 0; i < prefix; ++i)
    gets[a.server[i]].push_back(a.hashes[i]);
  a.at = active_request::phase::get;
  a.waiting = prefix;
  a.requested = prefix;
  for (auto& [server, hashes] : gets) {
    kv_message m;
    m.op = kv_op::get;
    m.request = a.rec.seq;
    m.origin = id();
    m.hashes = std::move(hashes);
    send_kv(server, m);
  }
  schedule_app(cfg_->timeout, tag(get_timeout, a.rec.seq));
}

void skymemory_node::finish_fetch(active_request& a) {
  std::size_t cached = 0;
  while (cached < a.valid.size() && a.valid[cached])
    ++cached;
  const std::size_t answered = a.rec.chunks_fetched + a.rec.chunks_corrupt;
  a.rec.chunks_missing = static_cast<std::uint32_t>(a.requested - std::min(a.requested, answered));
  a.rec.cached_tokens = static_cast<std::uint32_t>(cached * cfg_->block_tokens);
  a.rec.fetch_ns = now().ns() - a.lookup_start_ns;
  a.at = active_request::phase::prefill;
  a.prefill_start_ns = now().ns();
  if (cfg_->real) {
    // The layer requests go to the GPU worker one after another.
    // Prompt tokens are drawn below the model's vocabulary (prompts.vocab).
    const std::vector<std::int32_t> uncached(a.tokens.begin() + a.rec.cached_tokens,
                                             a.tokens.end());
    auto x = gpu::embed(*cfg_->weights, uncached);
    if (x.ok()) {
      run_layer(a, std::move(*x));
      return;
    }
    drop_for_compute_error(a.rec.seq); // a bug, as for a refused layer request
    return;
  }
  // Saturated: a prefill longer than the time left (292 years) never ends.
  const auto prefill = prefill_time(cfg_->model, cfg_->device,
                                    a.rec.prompt_tokens - a.rec.cached_tokens, a.rec.cached_tokens);
  a.rec.prefill_ns = prefill.ns();
  schedule_app(prefill, tag(prefill_done, a.rec.seq));
}

void skymemory_node::finish_prefill(std::uint64_t seq) {
  auto it = active_.find(seq);
  if (it == active_.end())
    return;
  auto& a = *it->second;
  auto& rec = a.rec;
  // Store the blocks computed here: a user on its layout of the moment, a
  // satellite on the layout the prompt came with.
  const auto slots = user_ ? current_slots() : a.slots;
  for (std::size_t i = rec.cached_tokens / cfg_->block_tokens;
       !slots.empty() && i < a.hashes.size(); ++i) {
    kv_message m;
    m.op = kv_op::put;
    m.request = seq;
    m.origin = id();
    m.chunk.hash = a.hashes[i];
    m.chunk.index = static_cast<std::uint32_t>(i);
    m.chunk.tokens = cfg_->block_tokens;
    m.chunk.owner = a.client;
    m.chunk.data_bytes = static_cast<std::uint32_t>(block_bytes_);
    if (cfg_->real) {
      // Rows of block i among the tokens computed here.
      const std::size_t bt = cfg_->block_tokens;
      const std::size_t first = i * bt - rec.cached_tokens;
      const auto kv = static_cast<std::size_t>(a.keys.front().cols());
      auto bytes = std::make_shared<block_bytes>(block_bytes_);
      for (std::size_t l = 0; l < a.keys.size(); ++l) {
        put_fp16(a.keys[l].data() + first * kv, bt * kv,
                 bytes->data() + block_offset(l, false, bt, kv));
        put_fp16(a.values[l].data() + first * kv, bt * kv,
                 bytes->data() + block_offset(l, true, bt, kv));
      }
      m.chunk.data = std::move(bytes);
    }
    send_kv(slots[i % slots.size()], m);
    rec.bytes_put += block_bytes_;
  }
  a.keys.clear();
  a.values.clear();
  a.data.clear();
  const auto decode = decode_steps(rec.prompt_tokens);
  if (!user_) {
    // Down to the user: the first token now, the last after the decode.
    if (decode == duration::zero()) {
      answer(a, true);
      active_.erase(it);
      return;
    }
    answer(a, false);
    a.at = active_request::phase::decode;
    schedule_app(decode, tag(decode_done, seq));
    return;
  }
  rec.ttft_ns = now().ns() - rec.start_ns;
  rec.ttlt_ns = duration::from_ns(rec.ttft_ns).plus_or_max(decode).ns();
  // The baseline waits for the device as long as this request did.
  rec.ttft_nocache_ns =
    duration::from_ns(rec.device_wait_ns).plus_or_max(baseline_prefill(rec.prompt_tokens)).ns();
  rec.ttlt_nocache_ns = duration::from_ns(rec.ttft_nocache_ns).plus_or_max(decode).ns();
  // Finished at its last token, as on a satellite: one whose decode ends
  // after the run is still running then.
  if (decode > duration::zero()) {
    a.at = active_request::phase::decode;
    a.tokens.clear();
    a.hashes.clear();
    schedule_app(decode, tag(decode_done, seq));
    return;
  }
  records_.push_back(std::move(rec));
  active_.erase(it);
}

runtime::duration skymemory_node::decode_steps(std::uint32_t context) const {
  // Every prompt has prompt_tokens tokens: that decode is worked out once.
  if (context == cfg_->prompts.prompt_tokens)
    return cfg_->decode;
  return decode_time(cfg_->model, cfg_->device, context, cfg_->output_tokens);
}

void skymemory_node::answer(active_request& a, bool last) {
  const auto& rec = a.rec;
  kv_message m;
  m.op = kv_op::answer;
  m.request = a.client_seq;
  m.origin = id();
  auto& x = m.answer;
  static_cast<protocol::kv_account&>(x) = rec;
  x.last = last;
  x.received_ns = rec.start_ns;
  x.sent_ns = now().ns();
  // The last prompt token's final hidden state; zeros of the same size when
  // modeled, so that both modes send as many bytes down.
  x.hidden = cfg_->real ? rec.output
                        : std::vector<float>(static_cast<std::size_t>(cfg_->model.hidden_size));
  send_kv(a.client, m);
}

void skymemory_node::receive_answer(const kv_message& m) {
  auto it = asked_.find(m.request);
  if (it == asked_.end())
    return; // given up, or a duplicate
  auto& rec = it->second.rec;
  const auto& x = m.answer;
  if (!it->second.answered) {
    // The first token, or the last when the first was lost.
    it->second.answered = true;
    static_cast<protocol::kv_account&>(rec) = x;
    rec.output = x.hidden;
    rec.uplink_ns = x.received_ns - rec.start_ns;
    rec.downlink_ns = now().ns() - x.sent_ns;
    // The first token left once the wait for the device, the lookup, fetch
    // and prefill were done; when it was lost, this last token's downlink
    // stands in for its own.
    rec.ttft_ns = x.last ? rec.uplink_ns + rec.device_wait_ns + rec.fetch_ns + rec.prefill_ns +
                             rec.downlink_ns
                         : now().ns() - rec.start_ns;
    rec.ttft_nocache_ns = duration::from_ns(rec.uplink_ns + rec.device_wait_ns + rec.downlink_ns)
                            .plus_or_max(baseline_prefill(rec.prompt_tokens))
                            .ns();
  }
  if (!x.last)
    return;
  // The baseline decodes and sends down the same way.
  rec.ttlt_ns = now().ns() - rec.start_ns;
  rec.ttlt_nocache_ns = duration::from_ns(rec.ttft_nocache_ns)
                          .plus_or_max(duration::from_ns(rec.ttlt_ns - rec.ttft_ns))
                          .ns();
  records_.push_back(std::move(rec));
  asked_.erase(it);
}

void skymemory_node::run_layer(active_request& a, gpu::tensor x) {
  const auto& m = *cfg_->weights;
  const std::size_t layer = a.keys.size();
  const std::int64_t past = a.rec.cached_tokens;
  const std::int64_t kv = m.config.attn.kv_dim();
  gpu::tensor pk, pv;
  if (past > 0) {
    // This layer's keys and values of the cached blocks, back to fp32.
    const std::size_t bt = cfg_->block_tokens;
    pk = gpu::tensor({past, kv});
    pv = gpu::tensor({past, kv});
    for (std::size_t b = 0; b * bt < static_cast<std::size_t>(past); ++b) {
      const auto* bytes = a.data[b]->data();
      const auto n = bt * static_cast<std::size_t>(kv);
      get_fp16(bytes + block_offset(layer, false, bt, static_cast<std::size_t>(kv)), n,
               pk.data() + b * n);
      get_fp16(bytes + block_offset(layer, true, bt, static_cast<std::size_t>(kv)), n,
               pv.data() + b * n);
    }
  }
  compute(tag(layer_done, a.rec.seq),
          gpu::compute_request::layer(m.layer_configs[layer], m.layers[layer], std::move(x), std::move(pk),
                                      std::move(pv)));
}

void skymemory_node::on_compute(std::uint64_t t, std::unique_ptr<runtime::compute_job> job) {
  auto it = active_.find(tag_seq(t));
  if (it == active_.end())
    return;
  auto& a = *it->second;
  auto& req = gpu::as_request(*job);
  if (!req.result.ok()) {
    // The layers refused the request (a bug, not a network event).
    drop_for_compute_error(a.rec.seq);
    return;
  }
  // One prompt at a time on the device: the worker has no earlier request
  // of this entity's to make it wait (were there one, it would be part of
  // the prefill).
  if (tag_kind(t) == layer_done) {
    a.keys.push_back(std::move(req.keys));
    a.values.push_back(std::move(req.values));
    auto out = std::move(*req.result);
    if (a.keys.size() < cfg_->weights->layers.size()) {
      run_layer(a, std::move(out));
      return;
    }
    const auto d = static_cast<std::size_t>(out.cols());
    const float* last = out.matrix().row(out.rows() - 1);
    a.rec.output.assign(last, last + d);
    // The first token still needs the LM head: timed, not run (the output
    // is the last hidden state), as in compute.mode: modeled.
    const gpu::request_cost head = lm_head_cost();
    compute(tag(lm_head_done, a.rec.seq),
            gpu::compute_request::modeled(head.flops, head.bytes, head.launches));
    return;
  }
  const auto seq = a.rec.seq;
  a.rec.prefill_ns = now().ns() - a.prefill_start_ns;
  finish_prefill(seq);
  release_device(seq);
}

runtime::duration skymemory_node::baseline_prefill(std::uint32_t tokens) const {
  if (!cfg_->real)
    return prefill_time(cfg_->model, cfg_->device, tokens, 0);
  // The cached path's cost model: one layer request after another, each
  // with its own layer's configuration (Gemma's global layers attend to
  // every key, its sliding-window ones to the window).
  const auto& m = *cfg_->weights;
  runtime::duration total = runtime::duration::zero();
  for (std::size_t l = 0; l < m.layers.size(); ++l)
    total = total.plus_or_max(gpu::modeled_duration(
      cfg_->device, cfg_->precision,
      gpu::layer_cost(m.layer_configs[l], m.layers[l], tokens, 0,
                      gpu::element_bytes(cfg_->precision))));
  return total.plus_or_max(gpu::modeled_duration(cfg_->device, cfg_->precision, lm_head_cost()));
}

gpu::request_cost skymemory_node::lm_head_cost() const {
  return gpu::lm_head_cost(cfg_->model, gpu::element_bytes(cfg_->precision));
}

void skymemory_node::check_handover() {
  if (!layout_ || !layout_->placed())
    return;
  const auto serving = serving_satellite();
  if (serving < 0 || static_cast<std::uint32_t>(serving) == layout_->centre())
    return;
  for (const auto& mv : layout_->recentre(static_cast<std::uint32_t>(serving))) {
    kv_message m;
    m.op = kv_op::migrate;
    m.origin = id();
    m.owner = id();
    m.target = mv.to;
    send_kv(mv.from, m);
  }
}

void skymemory_node::on_app_envelope(protocol::envelope& e) {
  if (e.k == protocol::kind::kvcache)
    receive_kv(e.body);
}

void skymemory_node::receive_kv(const protocol::payload_ptr& body) {
  auto m = protocol::decode_kv(body, cfg_->real);
  // Dropped: a malformed message, or one naming entities outside the run.
  if (!m.ok() || !protocol::check_kv_entities(*m, network().nodes()).ok()) {
    count(ids().malformed);
    return;
  }
  // Answers to the node running a request (a user, or with the model on a
  // satellite a satellite too), or asks for a cache server.
  switch (m->op) {
    case kv_op::lookup_reply:
    case kv_op::chunk:
    case kv_op::error:
    case kv_op::evict_notice:
    case kv_op::answer:
      receive_reply(*m);
      return;
    default:
      if (user_)
        count(ids().malformed);
      else
        serve(*m);
      return;
  }
}

void skymemory_node::store_chunk(const protocol::kv_chunk& c, bool migrated) {
  auto r = store_.put({c.hash, c.index, c.tokens, c.owner, c.data_bytes, c.data});
  if (!r.stored)
    return;
  if (migrated) {
    count(ids().migrated_stored);
  } else {
    count(ids().puts);
    count(ids().put_bytes, c.data_bytes);
  }
  if (r.evicted.empty())
    return;
  count(ids().evictions, r.evicted.size());
  std::map<std::uint32_t, std::vector<std::uint64_t>> by_owner;
  for (const auto& x : r.evicted)
    by_owner[x.owner].push_back(x.hash);
  for (auto& [owner, hashes] : by_owner) {
    kv_message n;
    n.op = kv_op::evict_notice;
    n.origin = id();
    n.hashes = std::move(hashes);
    send_kv(owner, n);
  }
}

void skymemory_node::serve(const kv_message& m) {
  switch (m.op) {
    case kv_op::put:
    case kv_op::migrate_chunk:
      if (!m.chunk.checksum_ok) {
        count(ids().corrupt_detected);
        kv_message r;
        r.op = kv_op::error;
        r.request = m.request;
        r.origin = id();
        r.error = protocol::kv_error::bad_checksum;
        r.error_hash = m.chunk.hash;
        send_kv(m.chunk.owner, r);
        return;
      }
      store_chunk(m.chunk, m.op == kv_op::migrate_chunk);
      return;
    case kv_op::lookup: {
      count(ids().lookups);
      kv_message r;
      r.op = kv_op::lookup_reply;
      r.request = m.request;
      r.origin = id();
      for (auto h : m.hashes)
        if (store_.contains(h))
          r.hashes.push_back(h);
      send_kv(m.origin, r);
      return;
    }
    case kv_op::get: {
      count(ids().gets);
      // Chunks leave one after another, each after chunk_time of processing.
      std::int64_t t = std::max(now().ns(), busy_until_ns_);
      for (auto h : m.hashes) {
        kv_message r;
        r.request = m.request;
        r.origin = id();
        const auto* c = store_.get(h);
        if (c == nullptr) {
          count(ids().not_found);
          r.op = kv_op::error;
          r.error = protocol::kv_error::not_found;
          r.error_hash = h;
          send_kv(m.origin, r, false, duration::from_ns(t - now().ns()));
          continue;
        }
        t += cfg_->chunk_time.ns();
        r.op = kv_op::chunk;
        r.chunk = {c->hash, c->index, c->tokens, c->owner, 0, static_cast<std::uint32_t>(c->bytes),
                   c->data};
        const bool corrupt = cfg_->corruption > 0 && fault_random().uniform() < cfg_->corruption;
        if (corrupt)
          count(ids().corrupt_sent);
        count(ids().chunks_served);
        send_kv(m.origin, r, corrupt, duration::from_ns(t - now().ns()));
      }
      busy_until_ns_ = t;
      return;
    }
    case kv_op::prompt: {
      // The model runs here (compute.at satellite): the request of user
      // `origin`, on the layout it sent.
      if (m.tokens.empty()) {
        count(ids().malformed);
        return;
      }
      count(ids().prompts);
      auto a = std::make_unique<active_request>();
      a->rec.seq = next_seq_++;
      a->rec.start_ns = now().ns();
      a->rec.prompt_tokens = static_cast<std::uint32_t>(m.tokens.size());
      a->rec.serving = static_cast<std::int32_t>(id());
      a->client = m.origin;
      a->client_seq = m.request;
      a->slots = m.servers;
      a->tokens = m.tokens;
      enqueue(std::move(a));
      return;
    }
    case kv_op::migrate: {
      count(ids().migrate_orders);
      for (auto& c : store_.take_owner(m.owner))
        migrations_.push_back({m.target, std::move(c)});
      if (!migrating_)
        send_next_migration();
      return;
    }
    default:
      count(ids().malformed);
      return;
  }
}

void skymemory_node::send_next_migration() {
  migrating_ = !migrations_.empty();
  if (!migrating_)
    return;
  const auto [target, c] = std::move(migrations_.front());
  migrations_.pop_front();
  kv_message r;
  r.op = kv_op::migrate_chunk;
  r.origin = id();
  r.chunk = {c.hash, c.index, c.tokens, c.owner, 0, static_cast<std::uint32_t>(c.bytes), c.data};
  count(ids().migrated_chunks);
  count(ids().migrated_bytes, c.bytes);
  send_kv(target, r);
  // The next one when this one is on the wire: a burst never queues up.
  const double bits = static_cast<double>(c.bytes + protocol::envelope::header_bytes) * 8.0;
  schedule_app(duration::from_ns(static_cast<std::int64_t>(
                 std::ceil(bits / network().config().isl_rate_bps * 1e9))),
               tag(migrate_next, 0));
}

void skymemory_node::receive_reply(const kv_message& m) {
  if (m.op == kv_op::evict_notice) {
    count(ids().evict_notices, m.hashes.size());
    return;
  }
  if (m.op == kv_op::answer) {
    receive_answer(m);
    return;
  }
  auto it = active_.find(m.request);
  if (it == active_.end())
    return; // late: the request went on without it
  auto& a = *it->second;
  switch (m.op) {
    case kv_op::lookup_reply: {
      if (a.at != active_request::phase::lookup)
        return;
      {
        // Linear in the prompt's blocks (a long prompt of small blocks has
        // 10^5 of them, a reply as many hashes).
        const std::unordered_set<std::uint64_t> held(m.hashes.begin(), m.hashes.end());
        for (std::size_t i = 0; i < a.hashes.size(); ++i)
          if (a.server[i] == m.origin && held.contains(a.hashes[i]))
            a.present[i] = 1;
      }
      if (--a.waiting == 0)
        finish_lookup(a);
      return;
    }
    case kv_op::chunk: {
      if (a.at != active_request::phase::get)
        return;
      const auto i = m.chunk.index;
      const bool ok = m.chunk.checksum_ok && i < a.hashes.size() && a.hashes[i] == m.chunk.hash &&
                      m.chunk.data_bytes == block_bytes_;
      if (ok) {
        if (!a.valid[i]) {
          a.valid[i] = 1;
          if (cfg_->real)
            a.data[i] = m.chunk.data;
          ++a.rec.chunks_fetched;
          a.rec.bytes_fetched += m.chunk.data_bytes;
        }
      } else {
        count(ids().corrupt_detected);
        ++a.rec.chunks_corrupt;
      }
      if (--a.waiting == 0)
        finish_fetch(a);
      return;
    }
    case kv_op::error: {
      if (a.at != active_request::phase::get || m.error != protocol::kv_error::not_found)
        return;
      if (--a.waiting == 0)
        finish_fetch(a);
      return;
    }
    default:
      count(ids().malformed);
      return;
  }
}

void skymemory_node::save_results(protocol::byte_writer& w) const {
  space_node::save_results(w);
  w.u64(next_seq_);
  w.u64(records_.size());
  for (const auto& r : records_) {
    w.u64(r.seq);
    w.i64(r.start_ns);
    w.u32(r.header);
    w.u32(r.prompt_tokens);
    w.u32(r.cached_tokens);
    w.u32(r.chunks_fetched);
    w.u32(r.chunks_corrupt);
    w.u32(r.chunks_missing);
    w.u64(r.bytes_fetched);
    w.u64(r.bytes_put);
    w.i64(r.fetch_ns);
    w.i64(r.prefill_ns);
    w.i64(r.device_wait_ns);
    w.i64(r.ttft_ns);
    w.i64(r.ttlt_ns);
    w.i64(r.ttft_nocache_ns);
    w.i64(r.ttlt_nocache_ns);
    w.u8(r.timed_out ? 1 : 0);
    w.u32(static_cast<std::uint32_t>(r.serving));
    w.i64(r.uplink_ns);
    w.i64(r.downlink_ns);
    w.bytes({reinterpret_cast<const char*>(r.output.data()), r.output.size() * sizeof(float)});
  }
}

void skymemory_node::load_results(protocol::byte_reader& r) {
  space_node::load_results(r);
  next_seq_ = r.u64("requests started");
  records_.resize(r.count("request records", 129));
  for (auto& x : records_) {
    x.seq = r.u64("request sequence");
    x.start_ns = r.i64("request start");
    x.header = r.u32("request header");
    x.prompt_tokens = r.u32("prompt tokens");
    x.cached_tokens = r.u32("cached tokens");
    x.chunks_fetched = r.u32("chunks fetched");
    x.chunks_corrupt = r.u32("chunks corrupt");
    x.chunks_missing = r.u32("chunks missing");
    x.bytes_fetched = r.u64("bytes fetched");
    x.bytes_put = r.u64("bytes put");
    x.fetch_ns = r.i64("fetch time");
    x.prefill_ns = r.i64("prefill time");
    x.device_wait_ns = r.i64("device wait");
    x.ttft_ns = r.i64("ttft");
    x.ttlt_ns = r.i64("ttlt");
    x.ttft_nocache_ns = r.i64("ttft without cache");
    x.ttlt_nocache_ns = r.i64("ttlt without cache");
    x.timed_out = r.u8("timed out") != 0;
    x.serving = static_cast<std::int32_t>(r.u32("serving satellite"));
    x.uplink_ns = r.i64("uplink");
    x.downlink_ns = r.i64("downlink");
    const auto out = r.bytes("request output");
    if (out.size() % sizeof(float) != 0)
      r.fail("request output: not a whole number of floats");
    x.output.resize(out.size() / sizeof(float));
    if (!out.empty() && out.size() % sizeof(float) == 0)
      std::memcpy(x.output.data(), out.data(), out.size());
  }
}

absl::Status check_emulated_keys(const runtime::scenario& s) {
  if (s.get_string("workload.kind") != "skymemory" || s.get_string("workload.mode") != "emulated")
    return absl::OkStatus();
  for (const char* k : {"planes", "sats_per_plane", "center_plane", "center_satellite", "altitude",
                        "kv_size", "chunk_size", "strategies", "sweeps"}) {
    const auto key = absl::StrCat("workload.", k);
    if (s.departs_from_default(key))
      return absl::InvalidArgumentError(absl::StrCat(
        key, ": a key of the analytic model (mode: analytic, satemu sweep); mode emulated takes "
             "the grid from the constellation section and the KV size from compute.model"));
  }
  if (s.departs_from_default("workload.answer_timeout") &&
      s.get_string("compute.at") != "satellite")
    return absl::InvalidArgumentError(
      "workload.answer_timeout: only used when the model runs on a satellite (compute.at: "
      "satellite); at the ground the user runs its requests itself");
  return absl::OkStatus();
}

absl::StatusOr<emulated_config> emulated_config_from(const runtime::scenario& s) {
  emulated_config c;
  if (!s.has("compute"))
    return absl::InvalidArgumentError(
      "compute: emulated SkyMemory needs a compute section (model and device) to time prefill");
  auto compute = gpu::compute_config_from(s);
  if (!compute.ok())
    return compute.status();
  c.model = compute->model;
  c.device = compute->device;
  c.real = !compute->modeled;
  c.on_satellite = compute->on_satellite;
  c.answer_timeout = s.get_duration("workload.answer_timeout");
  c.seed = static_cast<std::uint64_t>(s.get_int("seed"));
  if (s.list_size("constellation.shells") != 1)
    return absl::InvalidArgumentError(
      "constellation.shells: emulated SkyMemory lays chunks out on one Walker shell; give "
      "exactly one");
  c.planes = static_cast<int>(s.get_int("constellation.shells.0.planes"));
  c.sats_per_plane = static_cast<int>(s.get_int("constellation.shells.0.sats_per_plane"));
  c.phasing = static_cast<int>(s.get_int("constellation.shells.0.phasing"));
  c.altitude_m = s.get_distance("constellation.shells.0.altitude").m;
  if (s.has("ground") && s.get_bool("ground.gsl.per_shell"))
    return absl::InvalidArgumentError("ground.gsl.per_shell: not used by emulated SkyMemory");
  c.check_interval = s.get_duration("constellation.update_interval");
  c.layout = *parse_strategy(s.get_string("workload.strategy"));
  c.servers = static_cast<int>(s.get_int("workload.servers"));
  c.in_plane = s.get_bool("workload.in_plane");
  if (const auto sats = static_cast<std::int64_t>(c.in_plane ? 1 : c.planes) * c.sats_per_plane;
      c.servers > sats)
    return absl::InvalidArgumentError(absl::StrCat(
      "workload.servers: ", c.servers, " servers need more satellites than ",
      c.in_plane ? "a plane has (" : "the shell has (", sats,
      c.in_plane ? "; workload.in_plane: true keeps the servers in the serving plane)" : ")"));
  c.chunk_time = s.get_duration("workload.chunk_time");
  c.block_tokens = static_cast<std::uint32_t>(s.get_int("workload.block_tokens"));
  c.capacity_bytes = s.get_data_size("workload.capacity").bytes;
  c.prompts.prompt_tokens = static_cast<std::uint32_t>(s.get_int("workload.prompt_tokens"));
  const double sharing = s.get_real("workload.sharing");
  c.prompts.shared_tokens =
    static_cast<std::uint32_t>(std::llround(sharing * c.prompts.prompt_tokens));
  c.prompts.headers = static_cast<std::uint32_t>(s.get_int("workload.headers"));
  c.prompts.vocab = static_cast<std::uint32_t>(c.model.vocab_size);
  c.output_tokens = static_cast<std::uint32_t>(s.get_int("workload.output_tokens"));
  if (const std::int64_t context = c.model.max_context;
      context > 0 && c.prompts.prompt_tokens + c.output_tokens > context)
    return absl::InvalidArgumentError(absl::StrCat(
      "workload.prompt_tokens: ", c.prompts.prompt_tokens, " prompt and ", c.output_tokens,
      " output tokens are more than ", c.model.name, "'s context of ", context, " tokens"));
  c.interval = s.get_duration("workload.interval");
  c.start = s.get_duration("workload.start");
  if (c.start >= s.get_duration("duration"))
    return absl::InvalidArgumentError(
      absl::StrCat("workload.start: must be before the end of the run (duration ",
                   runtime::to_string(s.get_duration("duration")), ")"));
  c.timeout = s.get_duration("workload.timeout");
  c.corruption = s.get_real("workload.corruption");
  c.cache = s.get_bool("workload.cache");
  const auto block = kv_block_bytes(c.model, c.block_tokens);
  if (block > protocol::max_kv_chunk_bytes)
    return absl::InvalidArgumentError(absl::StrCat(
      "workload.block_tokens: a block of ", block, " bytes of ", c.model.name,
      "'s keys and values is more than a message carries (", protocol::max_kv_chunk_bytes,
      " bytes)"));
  if (block > c.capacity_bytes)
    return absl::InvalidArgumentError(absl::StrCat("workload.capacity: smaller than one block (",
                                                   block, " bytes)"));
  c.decode = decode_time(c.model, c.device, c.prompts.prompt_tokens, c.output_tokens);
  return c;
}

absl::StatusOr<std::unique_ptr<emulated_workload>> emulated_workload::make(
  const runtime::scenario& s, build_depth depth) {
  auto space = space_config_from(s);
  if (!space.ok())
    return space.status();
  auto cfg = emulated_config_from(s);
  if (!cfg.ok())
    return cfg.status();
  if (space->grounds.empty())
    return absl::InvalidArgumentError(
      "ground.users: emulated SkyMemory needs at least one ground user");
  auto w = std::unique_ptr<emulated_workload>(new emulated_workload());
  if (cfg->real) {
    // The users' prefill runs on a GPU worker, on the section's model.
    auto compute = gpu::compute_config_from(s);
    if (!compute.ok())
      return compute.status();
    absl::StatusOr<gpu::model_weights> model = absl::UnknownError("no model");
    if (depth == build_depth::check) {
      if (auto st = gpu::check_model_memory(*compute); !st.ok())
        return st;
    } else if (depth == build_depth::run) {
      model = gpu::model_for(*compute);
      if (!model.ok())
        return model.status();
    }
    if (depth != build_depth::coordinate) {
      auto worker = gpu::make_gpu_worker(*compute);
      if (!worker.ok())
        return absl::Status(worker.status().code(),
                            absl::StrCat(absl::IsResourceExhausted(worker.status())
                                           ? "compute.threads: "
                                           : "compute.backend: ",
                                         worker.status().message()));
      w->worker_ = std::move(*worker);
    }
    cfg->precision = gpu::gpu_worker_options{}.precision;
    cfg->weights_source = compute->weights_file.empty()
                            ? absl::StrCat("synthetic, seed ", compute->seed)
                            : compute->weights_file;
    if (model.ok())
      cfg->weights = std::make_shared<const gpu::model_weights>(std::move(*model));
  }
  w->cfg_ = std::make_shared<const emulated_config>(std::move(*cfg));
  const auto shared = w->cfg_;
  auto st = w->build_nodes(std::move(*space), [&](const std::shared_ptr<space_network>& net,
                                                  std::size_t i) -> std::unique_ptr<space_node> {
    return std::make_unique<skymemory_node>(net, shared, i >= net->satellites());
  });
  if (!st.ok())
    return st;
  return w;
}

emulated_workload::~emulated_workload() = default;

runtime::compute_service* emulated_workload::compute() { return worker_.get(); }

std::string emulated_workload::backend_name() const {
  if (worker_)
    return std::string(worker_->device_backend().name());
  return absl::StrJoin(node_backends_, ", ");
}

std::string emulated_workload::node_state() const {
  std::string out;
  protocol::byte_writer w(out);
  w.bytes(space_workload::node_state());
  w.bytes(worker_ ? backend_name() : std::string());
  return out;
}

absl::Status emulated_workload::merge_node_state(std::string_view state) {
  protocol::byte_reader r(state);
  const auto network = r.bytes("the network state");
  const auto backend = r.bytes("the compute backend");
  r.expect_end("the SkyMemory state");
  if (!r.ok())
    return r.status();
  if (auto st = space_workload::merge_node_state(network); !st.ok())
    return st;
  if (!backend.empty() &&
      std::find(node_backends_.begin(), node_backends_.end(), backend) == node_backends_.end())
    node_backends_.emplace_back(backend);
  return absl::OkStatus();
}

namespace {

double reduction(double with, double without) { return without > 0 ? 1.0 - with / without : 0.0; }

std::uint64_t counter_of(const runtime::run_result& r, const std::string& name) {
  auto it = r.counters.find(name);
  return it == r.counters.end() ? 0 : it->second;
}

} // namespace

nlohmann::json emulated_workload::metrics(const runtime::run_result& r) const {
  runtime::histogram ttft, ttlt, ttft0, ttlt0, fetch, prefill, device_wait, uplink, downlink;
  std::uint64_t started = 0, done = 0, prompt_tokens = 0, cached_tokens = 0, hits = 0,
                fetched = 0, put = 0, corrupt = 0, timed_out = 0;
  double sum_ttft = 0, sum_ttft0 = 0, sum_ttlt = 0, sum_ttlt0 = 0;
  for (std::size_t g = 0; g < net_->grounds(); ++g) {
    const auto& n = node(net_->satellites() + g);
    started += n.requests_started();
    for (const auto& x : n.records()) {
      ++done;
      prompt_tokens += x.prompt_tokens;
      cached_tokens += x.cached_tokens;
      hits += x.cached_tokens > 0 ? 1 : 0;
      fetched += x.bytes_fetched;
      put += x.bytes_put;
      corrupt += x.chunks_corrupt;
      timed_out += x.timed_out ? 1 : 0;
      ttft.record(x.ttft_ns);
      ttlt.record(x.ttlt_ns);
      ttft0.record(x.ttft_nocache_ns);
      ttlt0.record(x.ttlt_nocache_ns);
      fetch.record(x.fetch_ns);
      prefill.record(x.prefill_ns);
      device_wait.record(x.device_wait_ns);
      uplink.record(x.uplink_ns);
      downlink.record(x.downlink_ns);
      sum_ttft += static_cast<double>(x.ttft_ns);
      sum_ttft0 += static_cast<double>(x.ttft_nocache_ns);
      sum_ttlt += static_cast<double>(x.ttlt_ns);
      sum_ttlt0 += static_cast<double>(x.ttlt_nocache_ns);
    }
  }
  nlohmann::json j = network_metrics(r);
  j["mode"] = "emulated";
  j["strategy"] = to_string(cfg_->layout);
  j["servers"] = cfg_->servers;
  j["model"] = cfg_->model.name;
  j["device"] = cfg_->device.name;
  if (cfg_->real) {
    j["prefill"] = "run on real tensors by the GPU worker, one request per layer and a last one "
                   "for the LM head (timed only), each timed by the device's roofline";
    j["backend"] = backend_name();
    j["compute_errors"] = counter_of(r, "skymemory.compute_errors");
    // What was computed: the weights, and a digest of every finished
    // request's final hidden state (users in order, then requests in order),
    // the same bits for every thread count on one backend (over several
    // nodes the batches differ, and so may the last bits: gpu_worker.hpp).
    j["weights"] = cfg_->weights_source;
    std::uint64_t digest = 0;
    for (std::size_t g = 0; g < net_->grounds(); ++g)
      for (const auto& x : node(net_->satellites() + g).records())
        for (const float v : x.output)
          digest = runtime::hash_combine(digest, std::bit_cast<std::uint32_t>(v));
    j["outputs_digest"] = absl::StrFormat("%016x", digest);
  } else {
    j["prefill"] = "timed by the device's roofline (no kernels run)";
  }
  j["model_at"] = cfg_->on_satellite ? "satellite" : "ground";
  j["baseline"] = cfg_->on_satellite
                    ? "per request: the same prompt prefilled whole on the same satellite, with "
                      "no lookup, after the same wait for its device, plus the request's "
                      "measured uplink and downlink"
                    : "per request: the same prompt prefilled whole, with no lookup, after the "
                      "same wait for the device";
  j["cache_enabled"] = cfg_->cache;
  j["block_tokens"] = cfg_->block_tokens;
  j["block_bytes"] = kv_block_bytes(cfg_->model, cfg_->block_tokens);
  j["requests_started"] = started;
  j["requests_finished"] = done;
  j["requests_without_satellite"] = counter_of(r, "skymemory.requests_without_satellite");
  if (cfg_->on_satellite) {
    j["prompts_served"] = counter_of(r, "skymemory.prompts_served");
    j["requests_unanswered"] = counter_of(r, "skymemory.requests_unanswered");
  }
  j["requests_timed_out"] = timed_out;
  // Over the finished requests: null (no data) when none finished.
  j["token_hit_rate"] =
    prompt_tokens > 0
      ? nlohmann::json(static_cast<double>(cached_tokens) / static_cast<double>(prompt_tokens))
      : nlohmann::json(nullptr);
  j["request_hit_rate"] =
    done > 0 ? nlohmann::json(static_cast<double>(hits) / static_cast<double>(done))
             : nlohmann::json(nullptr);
  j["bytes_fetched"] = fetched;
  j["bytes_put"] = put;
  j["chunks_corrupt_detected"] = corrupt;
  j["migrated_chunks"] = counter_of(r, "skymemory.migrated_chunks");
  j["migrated_bytes"] = counter_of(r, "skymemory.migrated_bytes");
  j["migrate_orders"] = counter_of(r, "skymemory.migrate_orders");
  j["evictions"] = counter_of(r, "skymemory.evictions");
  j["timeouts"] = counter_of(r, "skymemory.timeouts");
  if (done > 0) {
    j["ttft_ms"] = milliseconds_summary(ttft);
    j["ttft_nocache_ms"] = milliseconds_summary(ttft0);
    j["ttlt_ms"] = milliseconds_summary(ttlt);
    j["ttlt_nocache_ms"] = milliseconds_summary(ttlt0);
    j["fetch_ms"] = milliseconds_summary(fetch);
    j["prefill_ms"] = milliseconds_summary(prefill);
    j["device_wait_ms"] = milliseconds_summary(device_wait);
    if (cfg_->on_satellite) {
      j["uplink_ms"] = milliseconds_summary(uplink);
      j["downlink_ms"] = milliseconds_summary(downlink);
    }
    auto q = [](const runtime::histogram& h, double p) { return static_cast<double>(h.quantile(p)); };
    j["ttft_reduction"] = {{"mean", reduction(sum_ttft, sum_ttft0)},
                           {"p50", reduction(q(ttft, 0.5), q(ttft0, 0.5))},
                           {"p90", reduction(q(ttft, 0.9), q(ttft0, 0.9))},
                           {"p99", reduction(q(ttft, 0.99), q(ttft0, 0.99))}};
    j["ttlt_reduction"] = {{"mean", reduction(sum_ttlt, sum_ttlt0)},
                           {"p50", reduction(q(ttlt, 0.5), q(ttlt0, 0.5))},
                           {"p90", reduction(q(ttlt, 0.9), q(ttlt0, 0.9))},
                           {"p99", reduction(q(ttlt, 0.99), q(ttlt0, 0.99))}};
  } else {
    // No request finished: the figures are there, as null, for scripts.
    for (const char* k : {"ttft_ms", "ttft_nocache_ms", "ttlt_ms", "ttlt_nocache_ms", "fetch_ms",
                          "prefill_ms", "device_wait_ms", "ttft_reduction", "ttlt_reduction"})
      j[k] = nullptr;
    if (cfg_->on_satellite)
      j["uplink_ms"] = j["downlink_ms"] = nullptr;
  }
  return j;
}

std::vector<std::string> emulated_workload::result_warnings(const runtime::run_result& r) const {
  std::uint64_t started = 0, done = 0;
  for (std::size_t g = 0; g < net_->grounds(); ++g) {
    const auto& n = node(net_->satellites() + g);
    started += n.requests_started();
    done += n.records().size();
  }
  if (started == 0 || static_cast<double>(started - done) <= 0.05 * static_cast<double>(started))
    return {};
  const auto unanswered = counter_of(r, "skymemory.requests_unanswered");
  const auto unsent = counter_of(r, "skymemory.requests_without_satellite");
  return {absl::StrFormat(
    "%.0f%% of the requests started (%d of %d) did not finish%s: the latencies and hit rates "
    "cover the finished ones only; where requests were still running at the end, a longer "
    "duration lowers the share",
    100.0 * static_cast<double>(started - done) / static_cast<double>(started), started - done,
    started,
    cfg_->on_satellite ? absl::StrCat(" (", unanswered, " given up unanswered, ", unsent,
                                      " not sent: no satellite in view)")
                       : std::string())};
}

std::vector<std::string> emulated_workload::warnings() const {
  auto out = space_workload::warnings();
  // A prompt's computed blocks leave through one link at once.
  const std::uint64_t blocks = cfg_->prompts.prompt_tokens / cfg_->block_tokens;
  const std::uint64_t block = kv_block_bytes(cfg_->model, cfg_->block_tokens);
  if (cfg_->cache && blocks == 0)
    out.push_back(absl::StrCat(
      "workload.block_tokens: ", cfg_->block_tokens, " is more than a prompt's ",
      cfg_->prompts.prompt_tokens, " tokens (workload.prompt_tokens): no prompt has a whole "
      "block to cache, so the cache never hits"));
  else if (cfg_->cache &&
           fetchable_blocks(blocks, cfg_->block_tokens, cfg_->prompts.prompt_tokens) == 0)
    out.push_back(absl::StrCat(
      "workload.block_tokens: ", cfg_->block_tokens, " is a prompt's whole ",
      cfg_->prompts.prompt_tokens, " tokens (workload.prompt_tokens): its one block ends the "
      "prompt, whose last token is always computed, so no block is ever fetched"));
  // Only the shared headers repeat: the rest of a prompt is drawn afresh.
  else if (cfg_->cache && cfg_->prompts.shared_tokens < cfg_->block_tokens)
    out.push_back(absl::StrCat(
      "workload.sharing: a prompt's shared header is ", cfg_->prompts.shared_tokens,
      " tokens (sharing x prompt_tokens), less than a block of ", cfg_->block_tokens,
      " (workload.block_tokens): prompts share no whole block, so the cache never hits"));
  // A put on the wire: the block, its fields and the envelope's header.
  kv_message put;
  put.op = kv_op::put;
  put.request = put.chunk.hash = put.chunk.checksum = ~std::uint64_t{0};
  put.origin = put.chunk.index = put.chunk.tokens = put.chunk.owner = ~std::uint32_t{0};
  put.chunk.data_bytes = static_cast<std::uint32_t>(block);
  const std::uint64_t wire =
    protocol::encode_kv(put, false)->size_bytes() + protocol::envelope::header_bytes;
  const std::uint64_t queue = net_->config().queue_bytes;
  if (cfg_->cache && blocks * wire > queue)
    out.push_back(absl::StrCat(
      "constellation.queue: ", runtime::to_string(runtime::data_size{queue}), " holds ",
      queue / wire, " of the ", blocks, " chunks (", runtime::to_string(runtime::data_size{wire}),
      " each on the wire) a prompt puts at once over one link, so the puts beyond those (",
      blocks - queue / wire, ") are dropped at full link queues "
      "(counters.space.drops_queue_full); the shipped SkyMemory scenarios use 64MiB"));
  // Cache servers a user cannot reach (a layout across planes with no ISLs
  // between them) drop the requests sent to them. Checked at time 0.
  auto layout = layout_tracker::make(cfg_->planes, cfg_->sats_per_plane, cfg_->altitude_m,
                                     cfg_->layout, cfg_->servers, cfg_->in_plane, cfg_->phasing);
  if (cfg_->cache && layout.ok()) {
    const auto ep = net_->at(runtime::vtime::zero());
    const auto& snap = *ep->snapshot;
    std::size_t users = 0;
    std::string first;
    for (std::size_t g = 0; g < net_->grounds(); ++g) {
      const auto sat = snap.serving[g * snap.groups];
      if (sat < 0)
        continue;
      layout->reset(static_cast<std::uint32_t>(sat));
      const auto user = snap.ground_node(g);
      std::vector<std::uint32_t> cut;
      for (const auto k : layout->slots())
        if (ep->routes->next(user, k) == runtime::route_tree::none)
          cut.push_back(k);
      if (cut.empty())
        continue;
      if (users++ == 0)
        first = absl::StrCat(cut.size(), " of the ", layout->slots().size(),
                             " cache servers of user ", net_->config().grounds[g].name,
                             " (satellites ",
                             absl::StrJoin(cut.begin(), cut.begin() + std::min<std::size_t>(
                                                                         cut.size(), 8), ", "),
                             cut.size() > 8 ? ", ..." : "", ")");
    }
    if (users > 0)
      out.push_back(absl::StrCat(
        "workload.servers: at time 0, ", first, " have no route from it over the links of the "
        "moment", users > 1 ? absl::StrCat(", nor have some of ", users - 1, " more users'") : "",
        ": requests to them are dropped (counters.space.drops_no_route)",
        cfg_->in_plane ? "" : "; with no ISLs between planes, `workload.in_plane: true` keeps "
                              "the layout in the serving satellite's plane"));
  }
  return out;
}

std::map<std::string, std::string> emulated_workload::files(const runtime::run_result& r) const {
  std::string csv =
    "user,seq,start_s,header,prompt_tokens,cached_tokens,chunks_fetched,chunks_corrupt,"
    "chunks_missing,bytes_moved,fetch_ms,prefill_ms,ttft_ms,ttlt_ms,ttft_nocache_ms,"
    "ttlt_nocache_ms,timed_out,serving_satellite,uplink_ms,downlink_ms,device_wait_ms\n";
  auto ms = [](std::int64_t ns) { return static_cast<double>(ns) * 1e-6; };
  for (std::size_t g = 0; g < net_->grounds(); ++g) {
    const auto& n = node(net_->satellites() + g);
    const auto name = net_->config().grounds[g].name;
    for (const auto& x : n.records())
      absl::StrAppendFormat(&csv,
                            "%s,%d,%.9f,%d,%d,%d,%d,%d,%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%d,%d,"
                            "%.6f,%.6f,%.6f\n",
                            name, x.seq, static_cast<double>(x.start_ns) * 1e-9, x.header,
                            x.prompt_tokens, x.cached_tokens, x.chunks_fetched, x.chunks_corrupt,
                            x.chunks_missing, x.bytes_fetched + x.bytes_put, ms(x.fetch_ns),
                            ms(x.prefill_ns), ms(x.ttft_ns), ms(x.ttlt_ns), ms(x.ttft_nocache_ns),
                            ms(x.ttlt_nocache_ns), x.timed_out ? 1 : 0, x.serving,
                            ms(x.uplink_ns), ms(x.downlink_ns), ms(x.device_wait_ns));
  }
  auto out = network_files(r);
  out["requests.csv"] = std::move(csv);
  return out;
}

} // namespace satemu::actors::skymemory
