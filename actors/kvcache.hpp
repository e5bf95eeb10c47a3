/// satemu SkyMemory building blocks, free of the kernel: what the emulated
/// `skymemory` workload (actors/skymemory_emulated.hpp) is made of, each
/// testable on its own.
///
/// - `block_hashes`: a prompt cut into blocks of `block_tokens` tokens, each
///   named by a chained hash of its tokens and its parent's hash (as vLLM's
///   prefix cache and LMCache do), so two prompts of one user share the
///   hashes of their common full-block prefix and nothing after the first
///   difference.
/// - `lru_store`: a cache server's chunks under a byte capacity, evicting the
///   least recently used.
/// - `prompt_source`: MMLU-style prompts, a few-shot header shared by many
///   prompts followed by per-question text.
/// - `layout_tracker`: which satellite holds each layout slot of one user's
///   chunks (the analytic model's layouts, actors/skymemory_model.hpp, on a
///   Walker shell) and which chunks migrate when the serving satellite changes.
/// - `prefill_time` / `decode_time`: the hardware roofline (gpu/hardware.hpp)
///   applied to a model profile's FLOPs and bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "actors/skymemory_model.hpp"
#include "gpu/hardware.hpp"
#include "gpu/model.hpp"
#include "runtime/rng.hpp"
#include "runtime/time.hpp"

namespace satemu::actors::skymemory {

/// Chained hashes of the full blocks of `tokens`: hash_i = H(hash_{i-1},
/// tokens of block i), hash_{-1} = H(a fixed root, owner). The owner (the
/// user whose blocks they are) scopes the names: users never find each
/// other's blocks, as a block has one owner. A trailing partial block has
/// no hash (it is never cached). block_tokens >= 1.
std::vector<std::uint64_t> block_hashes(std::span<const std::uint32_t> tokens,
                                        std::uint32_t block_tokens, std::uint32_t owner);

/// One chunk a cache server holds (the bytes themselves are not kept: they
/// are the block's size of filler, re-sent with the checksum taken then).
struct stored_chunk {
  std::uint64_t hash = 0;
  std::uint32_t index = 0;
  std::uint32_t tokens = 0;
  /// The user whose layout placed it here (migrations move by owner).
  std::uint32_t owner = 0;
  std::uint64_t bytes = 0;
  /// The KV bytes when they are real (`compute: real`); null for filler.
  std::shared_ptr<const std::vector<std::byte>> data;
};

/// Chunks under a byte capacity with least-recently-used eviction. Order is
/// deterministic (no hash-map iteration decides anything).
class lru_store {
public:
  explicit lru_store(std::uint64_t capacity_bytes) : capacity_(capacity_bytes) {}

  struct put_result {
    /// False when the chunk alone is bigger than the capacity.
    bool stored = false;
    /// Chunks evicted to make room, least recently used first.
    std::vector<stored_chunk> evicted;
  };
  /// Stores `c` as the most recently used (replacing a chunk with the same
  /// hash), evicting from the least recently used end while over capacity.
  put_result put(const stored_chunk& c);
  /// The chunk `hash`, made the most recently used; nullptr when absent.
  const stored_chunk* get(std::uint64_t hash);
  /// Whether `hash` is held; does not change the order.
  bool contains(std::uint64_t hash) const { return index_.contains(hash); }
  /// Removes and returns every chunk of `owner`, least recently used first.
  std::vector<stored_chunk> take_owner(std::uint32_t owner);

  std::uint64_t capacity_bytes() const { return capacity_; }
  std::uint64_t used_bytes() const { return used_; }
  std::size_t size() const { return lru_.size(); }
  /// Hashes from least to most recently used.
  std::vector<std::uint64_t> order() const;

private:
  std::uint64_t capacity_;
  std::uint64_t used_ = 0;
  std::list<stored_chunk> lru_; ///< front: least recently used
  absl::flat_hash_map<std::uint64_t, std::list<stored_chunk>::iterator> index_;
};

/// MMLU-style prompts: `headers` few-shot headers of `shared_tokens` tokens
/// each (header h's tokens depend only on the run seed and h, so every user
/// shares them), then `prompt_tokens - shared_tokens` tokens of question.
struct prompt_spec {
  std::uint32_t prompt_tokens = 1024;
  std::uint32_t shared_tokens = 768;
  std::uint32_t headers = 4;
  std::uint32_t vocab = 128'256;
};

struct prompt {
  std::uint32_t header = 0;
  std::vector<std::uint32_t> tokens;
};

/// Draws the header uniformly and the question tokens from `r`; header
/// tokens come from a stream of `seed` and the header number.
prompt make_prompt(const prompt_spec& spec, std::uint64_t seed, runtime::rng& r);

/// Where one user's layout slots are on a single Walker shell (satellite id
/// = plane x sats_per_plane + index in plane). Chunk i lives in slot
/// i mod servers. A layout offset (planes, satellites) names the satellite
/// that many ISL hops away: across the seam between the last plane and the
/// first, index j's neighbour is j + `phasing` (the Walker shift), so an
/// offset that crosses it is shifted by the phasing too.
class layout_tracker {
public:
  /// InvalidArgument (naming workload.servers) as make_box. With
  /// `in_plane`, layouts use only the serving satellite's plane (a ring of
  /// sats_per_plane), for shells whose planes have no ISLs between them.
  static absl::StatusOr<layout_tracker> make(int planes, int sats_per_plane, double altitude_m,
                                             strategy s, int servers, bool in_plane = false,
                                             int phasing = 0);

  /// Lays the slots out around `centre` afresh (the analytic layout).
  void reset(std::uint32_t centre);

  struct move {
    std::uint32_t from = 0;
    std::uint32_t to = 0;
  };
  /// The serving satellite is now `centre`. Box strategies (rotation,
  /// hop_rotation): slots whose satellite is outside the layout around the
  /// new centre move to its satellites that hold no slot, paired in order of
  /// (plane offset, satellite offset) from the new centre, so a shift of one
  /// satellite moves exactly the leaving column to the entering one, row by
  /// row. hop: nothing moves (its chunks stay on their satellites).
  std::vector<move> recentre(std::uint32_t centre);

  bool placed() const { return !slots_.empty(); }
  std::uint32_t centre() const { return centre_; }
  /// Satellite of each slot, in layout order.
  const std::vector<std::uint32_t>& slots() const { return slots_; }
  std::uint32_t server_of_block(std::uint32_t block) const {
    return slots_[block % slots_.size()];
  }

private:
  std::vector<std::uint32_t> layout_around(std::uint32_t centre) const;
  offset offset_from(std::uint32_t centre, std::uint32_t sat) const;

  grid g_;
  strategy s_ = strategy::rotation;
  int servers_ = 1;
  bool in_plane_ = false;
  int phasing_ = 0;
  std::uint32_t centre_ = 0;
  std::vector<std::uint32_t> slots_;
};

/// KV bytes of a block: layers x kv heads x head dim x 2 x 2 (fp16) x tokens.
std::uint64_t kv_block_bytes(const gpu::model_profile& m, std::uint32_t block_tokens);

/// Emulated time of prefilling `new_tokens` tokens after `past_tokens`
/// cached ones, layer by layer on `hw` in fp16 (weights and the KV cache
/// read once per layer, one launch overhead per kernel), plus the LM head
/// for the last token: what compute.mode: real charges (gpu::layer_cost
/// and gpu::lm_head_cost as requests to the GPU worker).
runtime::duration prefill_time(const gpu::model_profile& m, const gpu::hardware_profile& hw,
                               std::int64_t new_tokens, std::int64_t past_tokens);
/// Emulated time of the decode after a prompt of `context` tokens: the
/// output_tokens - 1 steps after the first token (which the prefill gives),
/// step k attending to the prompt and the k tokens output so far. At most
/// duration::max().
runtime::duration decode_time(const gpu::model_profile& m, const gpu::hardware_profile& hw,
                              std::int64_t context, std::int64_t output_tokens);

} // namespace satemu::actors::skymemory
