/// satemu `skymemory` workload, emulated mode: SkyMemory's KV-cache
/// protocol as real messages (protocol/kvcache.capnp) between ground users
/// and cache servers on the satellites of a moving Walker shell
/// (actors/space.hpp).
///
/// Every ground endpoint is a user. At random times (exponential gaps of
/// mean `interval`) it draws an MMLU-style prompt (a few-shot header shared
/// with other prompts, then its own question; actors/kvcache.hpp), cuts it
/// into blocks with chained hashes and places block i in slot i mod
/// `servers` of its layout around its serving satellite (the analytic
/// model's `strategy`). The node running the model (`compute.at`: the user
/// itself, or with `satellite` the user's serving satellite, to which the
/// user sends a `prompt` carrying the tokens and the layout's slots) then
///   1. sends a `lookup` to every server of the blocks and waits for the
///      replies (or `timeout`): the cached prefix is the longest run of
///      blocks from the first that are held;
///   2. `get`s the prefix's chunks; each server answers chunk by chunk after
///      `chunk_time` of processing per chunk. A chunk that fails its checksum,
///      an error, or a chunk not back by the timeout ends the usable prefix
///      there (a miss, never wrong data);
///   3. prefills the rest of the prompt on its device, then `put`s the
///      blocks it computed (owned by the user). At least the last token is
///      always computed (a fully cached prompt recomputes its last block),
///      since the first output token needs it.
/// On a satellite, it then sends an `answer` down to the user with the first
/// output token and, after the decode steps, one with the last; each answer
/// also carries the satellite's account of the request (cached tokens,
/// chunks, fetch and prefill time), for the user's records. A user that has
/// no answer after `answer_timeout` gives the request up (counted, not
/// recorded); a user with no serving satellite cannot send its prompt
/// (counted).
/// The prefill depends on `compute.mode`:
/// - `modeled`: timed by the roofline of `compute.device` for
///   `compute.model` (prefill_time), not executed; chunks carry zero filler
///   of the block's real size. Prompts queue on the device as in `real`.
/// - `real`: the model's layers run on the run's GPU worker
///   (gpu/gpu_worker.hpp; weights synthetic or from `compute.weights`),
///   one compute request per layer over the uncached tokens (and a timed
///   one for the LM head), continuing the
///   fetched blocks' keys and values (prefix caching: decoder_layer_extend).
///   A chunk carries the block's real keys (after RoPE) and values of every
///   layer, as fp16 (layer by layer: keys then values, token rows of kv
///   heads x head dim), exactly the block's modeled size; the last prompt
///   token's final hidden state is kept per request (`output`). Each layer
///   request takes its modeled duration on the device of the node that runs
///   the model (the worker's roofline per request), and that node's
///   requests queue on its device: on a satellite, those of every user it
///   serves.
/// TTFT = fetch + prefill at the ground; on a satellite the prompt's uplink
/// and the first token's downlink are added (both as measured; for a lost
/// first token, from the last one's account and downlink). TTLT adds
/// (output_tokens - 1) decode steps (timed by the roofline, not executed, in
/// both modes), on a satellite as the arrival of the last token. The
/// no-cache baseline is computed per request with the same prompt: the
/// prefill of the whole prompt with no lookup, with the same cost model as
/// the cached path, plus (on a satellite) the request's measured up- and
/// downlink; TTLT adds the same decode.
///
/// Servers hold chunks in an LRU store of `capacity` bytes and send an
/// `evict_notice` to a chunk's owner when evicting it. Each user checks its
/// serving satellite every topology epoch; on a handover the box strategies
/// send `migrate` to every satellite that left its layout, which moves that
/// user's chunks to the satellite entering in its place
/// (`layout_tracker::recentre`), one chunk after another at the ISL rate
/// (a handover's burst would overflow the link queues); `hop` leaves chunks
/// where they are.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/kvcache.hpp"
#include "actors/space.hpp"
#include "protocol/kvcache.hpp"

namespace satemu::gpu {
class gpu_worker;
struct model_weights;
struct request_cost;
class tensor;
} // namespace satemu::gpu

namespace satemu::actors::skymemory {

/// What an emulated skymemory scenario asks for.
struct emulated_config {
  strategy layout = strategy::rotation;
  int servers = 9;
  /// Layouts in the serving satellite's plane only.
  bool in_plane = false;
  runtime::duration chunk_time = runtime::milliseconds(1);
  std::uint32_t block_tokens = 16;
  std::uint64_t capacity_bytes = 1ull << 30;
  prompt_spec prompts;
  std::uint32_t output_tokens = 32;
  runtime::duration interval = runtime::seconds(1);
  runtime::duration start = runtime::duration::zero();
  runtime::duration timeout = runtime::seconds(2);
  /// Probability that a server damages a chunk it sends.
  double corruption = 0;
  /// False: no lookups or puts (every request recomputes).
  bool cache = true;
  /// `compute.at: satellite`: the model runs on the user's serving satellite.
  bool on_satellite = false;
  /// on_satellite: how long a user waits for its answers.
  runtime::duration answer_timeout = runtime::seconds(60);
  gpu::model_profile model;
  gpu::hardware_profile device;
  /// `compute.mode: real`: prefill runs the model's layers on the GPU worker.
  bool real = false;
  /// real: the model (shared by every user) and the arithmetic the emulated
  /// device runs it in.
  std::shared_ptr<const gpu::model_weights> weights;
  /// compute.mode real: "synthetic, seed 0", or the weights file.
  std::string weights_source;
  gpu::compute_precision precision = gpu::compute_precision::fp16;
  std::uint64_t seed = 0;
  /// The shell the layouts live on (`phasing`: its Walker F, the index
  /// shift of ISLs across the seam).
  int planes = 0, sats_per_plane = 0, phasing = 0;
  double altitude_m = 0;
  /// How often users check for a handover (the topology epoch).
  runtime::duration check_interval = runtime::milliseconds(100);
  /// The decode after a prompt of prompt_tokens (decode_time).
  runtime::duration decode = runtime::duration::zero();
};

/// One finished request, as its user saw it (the account's figures from
/// the node that ran it).
struct request_record : protocol::kv_account {
  std::uint64_t seq = 0;
  std::int64_t start_ns = 0;
  std::uint32_t header = 0;
  std::uint32_t prompt_tokens = 0;
  std::int64_t ttft_ns = 0;
  std::int64_t ttlt_ns = 0;
  std::int64_t ttft_nocache_ns = 0;
  std::int64_t ttlt_nocache_ns = 0;
  /// Serving satellite at the start, -1 for none (the request recomputes).
  /// On a satellite: the satellite the prompt was sent to.
  std::int32_t serving = -1;
  /// compute.at satellite: the prompt's uplink (arrival at the satellite)
  /// and the first token's downlink; 0 at the ground.
  std::int64_t uplink_ns = 0;
  std::int64_t downlink_ns = 0;
  /// compute real: the last prompt token's hidden state after the last layer.
  std::vector<float> output;
};

/// A satellite with a cache server (and, with compute.at satellite, the
/// model for the users it serves), or a ground user issuing prompts.
class skymemory_node final : public space_node {
public:
  skymemory_node(std::shared_ptr<space_network> net, std::shared_ptr<const emulated_config> cfg,
                 bool user);

  const std::vector<request_record>& records() const { return records_; }
  std::uint64_t requests_started() const { return next_seq_; }
  /// Requests started and neither finished nor given up (a user's: waiting
  /// for replies, its prefill or its answers).
  std::size_t requests_in_flight() const { return active_.size() + asked_.size(); }
  const lru_store& store() const { return store_; }

  void save_results(protocol::byte_writer& w) const override;
  void load_results(protocol::byte_reader& r) override;

protected:
  void on_start() override;
  void on_app_envelope(protocol::envelope& e) override;
  void on_app_timer(std::uint64_t tag) override;
  void on_compute(std::uint64_t tag, std::unique_ptr<runtime::compute_job> job) override;

private:
  struct active_request;
  /// compute.at satellite: a prompt sent up, until its last answer.
  struct asked_request {
    request_record rec;
    bool answered = false; ///< the first answer is in
  };
  void start_request();
  /// A user's layout around its serving satellite now (placed on first
  /// use); empty without the cache or a serving satellite.
  std::vector<std::uint32_t> current_slots();
  /// A request for the device: it runs one at a time, first come first
  /// served, from its lookup to the end of its prefill.
  void enqueue(std::unique_ptr<active_request> a);
  /// The device takes the first request of device_queue_ (dropping those no
  /// longer active), or stays idle.
  void take_next();
  /// Request `seq`, on the device, is done with it; the next one starts.
  void release_device(std::uint64_t seq);
  /// compute.mode real: request `seq`, on the device, is dropped and
  /// counted (compute_errors); the next one starts.
  void drop_for_compute_error(std::uint64_t seq);
  /// The device took `a`: its lookups go out.
  void begin(active_request& a);
  void answer(active_request& a, bool last);
  void receive_answer(const protocol::kv_message& m);
  void finish_lookup(active_request& a);
  void finish_fetch(active_request& a);
  void run_layer(active_request& a, gpu::tensor x);
  runtime::duration baseline_prefill(std::uint32_t tokens) const;
  /// The LM head after a prefill's last layer, at the worker's precision.
  gpu::request_cost lm_head_cost() const;
  /// The output tokens after the first, after a prompt of `context` tokens.
  runtime::duration decode_steps(std::uint32_t context) const;
  void finish_prefill(std::uint64_t seq);
  void check_handover();
  void receive_kv(const protocol::payload_ptr& body);
  void send_next_migration();
  void serve(const protocol::kv_message& m);
  /// Stores a put (or, `migrated`, a migrated) chunk, counting it as such.
  void store_chunk(const protocol::kv_chunk& c, bool migrated);
  void receive_reply(const protocol::kv_message& m);
  /// Sends `m` to `dst` `after` from now (to itself by a timer, no link).
  void send_kv(runtime::entity_id dst, const protocol::kv_message& m, bool corrupt = false,
               runtime::duration after = runtime::duration::zero());

  std::shared_ptr<const emulated_config> cfg_;
  bool user_;
  std::uint64_t block_bytes_;
  // Server side.
  lru_store store_;
  std::int64_t busy_until_ns_ = 0;
  /// Chunks leaving for another server (migrate), sent one by one at the
  /// ISL rate; `migrating_` while one is on its way.
  std::deque<std::pair<runtime::entity_id, stored_chunk>> migrations_;
  bool migrating_ = false;
  /// Messages that leave later (chunks once read) or go to itself, by a
  /// timer: the destination and the bytes.
  std::map<std::uint64_t, std::pair<runtime::entity_id, protocol::payload_ptr>> later_;
  std::uint64_t next_later_ = 0;
  // User side.
  std::optional<layout_tracker> layout_;
  std::uint64_t next_seq_ = 0;
  /// The requests for the device, the first one on it.
  std::deque<std::uint64_t> device_queue_;
  std::map<std::uint64_t, std::unique_ptr<active_request>> active_;
  /// compute.at satellite: the user's prompts waiting for their answers.
  std::map<std::uint64_t, asked_request> asked_;
  std::vector<request_record> records_;
};

class emulated_workload final : public space_workload {
public:
  /// With build_depth::check, a real-compute workload has no weights and
  /// must not run.
  static absl::StatusOr<std::unique_ptr<emulated_workload>> make(const runtime::scenario& s,
                                                                 build_depth depth);
  ~emulated_workload() override;

  /// compute real: the GPU worker that runs the users' prefill; else null.
  runtime::compute_service* compute() override;

  /// Hit rate, TTFT/TTLT with and without the cache and their reduction,
  /// bytes fetched and put, migrations, evictions, timeouts, corrupt chunks.
  nlohmann::json metrics(const runtime::run_result& r) const override;
  /// requests.csv (one row per finished request), handovers.csv and the
  /// topology records.
  std::map<std::string, std::string> files(const runtime::run_result& r) const override;
  /// The network's, and link queues too small for a prompt's puts.
  std::vector<std::string> warnings() const override;
  /// When more than 5% of the requests started did not finish.
  std::vector<std::string> result_warnings(const runtime::run_result& r) const override;

  /// The network's state, and the backend this node computed on (compute
  /// real), which the coordinator of a distributed run reports.
  std::string node_state() const override;
  absl::Status merge_node_state(std::string_view state) override;

  const emulated_config& config() const { return *cfg_; }
  const skymemory_node& node(std::size_t i) const {
    return static_cast<const skymemory_node&>(*entities_[i]);
  }

private:
  std::shared_ptr<const emulated_config> cfg_;
  std::unique_ptr<gpu::gpu_worker> worker_;
  /// The coordinator of a distributed run (no worker_ of its own): the
  /// backends its workers computed on, each once.
  std::vector<std::string> node_backends_;

  /// compute real: this process's backend, or its workers' ("cpu", or
  /// "cpu, cuda" when they differ).
  std::string backend_name() const;
};

/// For the command line: InvalidArgument naming the first key of the
/// analytic model (planes, kv_size, sweeps, ...) that the file or a `--set`
/// sets away from its default for an emulated skymemory workload, which
/// would ignore it (and `answer_timeout` with the model on the ground); OK
/// for any other workload. A resolved scenario, which writes every default
/// out, passes.
absl::Status check_emulated_keys(const runtime::scenario& s);

/// Reads the emulated-mode keys, the constellation (one Walker shell) and
/// the compute section (model and device). InvalidArgument naming the key.
absl::StatusOr<emulated_config> emulated_config_from(const runtime::scenario& s);

} // namespace satemu::actors::skymemory
